"""Losses. ``forward(y_true, y_pred, sample_weight=None)`` returns the loss as a float;
``backward()`` returns its gradient with respect to ``y_pred`` for the same call.

**Reduction.** As in Keras (``reduction="sum_over_batch_size"``), a loss first computes one
value per sample, or one per position for inputs such as ``(batch, time, classes)``: the
per-sample losses :math:`\\ell` have the shape of ``y_pred`` without its class or feature
axis. With weights :math:`w` (``sample_weight`` of shape ``(batch,)`` or the shape of
:math:`\\ell`) the loss is

.. math:: L = \\frac{1}{|\\ell|} \\sum_j w_j \\ell_j,

divided by the *number* of per-sample values :math:`|\\ell|`, not by the sum of the weights.
Without weights, :math:`w = 1`.

Cross-entropy losses compute :math:`\\log` of probabilities through a stable
log-softmax when they see logits (``from_logits=True``, or fused with a final Softmax by
the model): :math:`\\log p_i = z_i - m - \\log \\sum_j e^{z_j - m}`, with
:math:`m = \\max_j z_j`, so logits of 1e4 neither overflow nor produce ``log(0)``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ._validation import check_bool, check_float, check_int

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "LogCosh",
    "KLDivergence",
    "Poisson",
    "Hinge",
    "SquaredHinge",
    "CategoricalHinge",
    "CosineSimilarity",
    "get",
    "serialize",
    "register_loss",
]

_EPS = 1e-7


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Stable :math:`\\log \\mathrm{softmax}(z)` along the last axis."""
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _sample_weight(sample_weight: Any, values_shape: tuple[int, ...], dtype: Any, owner: str) -> np.ndarray | None:
    """``sample_weight`` checked against the per-sample loss shape and shaped to broadcast
    against it along the leading axes: ``(batch,)`` becomes ``(batch, 1, ..., 1)``. Axes of
    length 1 after the batch axis broadcast; a scalar weighs every value alike."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: expected numeric `sample_weight`, received dtype {w.dtype}")
    values_shape = tuple(values_shape)
    if w.ndim == len(values_shape) + 1 and w.shape[-1] == 1:
        w = w[..., 0]  # Keras drops a trailing axis of 1
    fits = w.ndim <= len(values_shape) and all(
        a == b or (i > 0 and a == 1) for i, (a, b) in enumerate(zip(w.shape, values_shape)))
    if not fits:
        expected = f"{values_shape[:1]} (one weight per sample)"
        if len(values_shape) > 1:
            expected += f" or {values_shape} (one weight per loss value)"
        raise ValueError(f"{owner}: expected `sample_weight` of shape {expected}, received shape {w.shape}")
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise ValueError(f"{owner}: `sample_weight` contains NaN or infinity (first at index {bad})")
    return w.astype(dtype, copy=False).reshape(w.shape + (1,) * (len(values_shape) - w.ndim))


def _check_axis(axis: Any, owner: str) -> int:
    return check_int(axis, "axis", owner=owner)


def _move_last(y: np.ndarray, axis: int, owner: str, what: str = "y_pred") -> np.ndarray:
    """``y`` with ``axis`` moved to the end (a view); a clear error if the axis is out of range."""
    if not -y.ndim <= axis < y.ndim:
        raise ValueError(f"{owner}: `axis`={axis} is out of range for {what} of shape {y.shape}")
    return y if axis in (-1, y.ndim - 1) else np.moveaxis(y, axis, -1)


def _aligned(y_true: Any, y_pred: np.ndarray, owner: str) -> np.ndarray:
    """Targets shaped as ``y_pred``: a trailing axis of 1 on either side is added or dropped
    (Keras' ``squeeze_or_expand_to_same_rank``); any other mismatch raises."""
    t = np.asarray(y_true, dtype=y_pred.dtype)
    if t.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        t = t[..., None]
    elif t.ndim == y_pred.ndim + 1 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.shape != y_pred.shape:
        raise ValueError(f"{owner}: targets of shape {t.shape} do not match predictions {y_pred.shape}")
    return t


def _label_values(y: np.ndarray, n_classes: int, owner: str) -> np.ndarray:
    """Integer class ids in ``[0, n_classes)`` as int64, or a clear error."""
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{owner}: expected integer class ids, received dtype {y.dtype} with non-integer values")
    yi = y.astype(np.int64)
    if yi.size and (yi.min() < 0 or yi.max() >= n_classes):
        bad = yi[(yi < 0) | (yi >= n_classes)][0]
        raise ValueError(f"{owner}: labels must be in [0, {n_classes}), received label {bad}")
    return yi


def _sparse_labels(y_true: Any, pred_shape: tuple[int, ...], owner: str) -> np.ndarray:
    """Class ids of the shape of the predictions without their (last) class axis."""
    y = np.asarray(y_true)
    expected = tuple(pred_shape[:-1])
    if y.shape == expected + (1,):
        y = y[..., 0]
    if y.shape != expected:
        raise ValueError(
            f"{owner}: expected class ids of shape {expected} (the predictions' shape {tuple(pred_shape)} "
            f"without the class axis), received shape {y.shape}")
    return _label_values(y, pred_shape[-1], owner)


def _accepts_sample_weight(method: Any) -> bool:
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return True
    return "sample_weight" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Loss:
    r"""Base class of every loss: subclasses implement :meth:`forward` and :meth:`backward`.

    ``forward(y_true, y_pred, sample_weight=None)`` returns the loss as a float and keeps
    what ``backward()`` needs; ``backward()`` returns :math:`\partial L / \partial y_{pred}`,
    an array of the shape of ``y_pred``. :meth:`reduce` and :meth:`reduce_gradient` apply
    Keras' reduction (see the module docstring) and its derivative, so a subclass only
    writes its per-sample values and their derivative.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> class MeanFourthPower(npnet.losses.Loss):
    ...     def forward(self, y_true, y_pred, sample_weight=None):
    ...         d = y_pred - y_true
    ...         self._cache = d
    ...         return self.reduce(np.mean(d ** 4, axis=-1), sample_weight)
    ...     def backward(self):
    ...         d = self._cache
    ...         return self.reduce_gradient()[..., None] * 4 * d ** 3 / d.shape[-1]
    >>> loss = MeanFourthPower()
    >>> loss(np.zeros((2, 1)), np.array([[1.0], [2.0]]))   # (1 + 16) / 2
    8.5
    >>> loss.backward()                                       # 4 d^3 / 2
    array([[ 2.],
           [16.]])
    """

    name = "loss"
    _cache: Any = None
    _reduced: Any = None

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size", dtype: Any = None) -> None:
        """Keras' base-class arguments, so a subclass can call ``super().__init__(name=...)``.

        ``reduction`` must be Keras' default, ``"sum_over_batch_size"``: it is the only
        reduction npnet's losses compute. ``dtype`` is accepted for Keras code and unused
        (losses compute in float64 and return a Python float).
        """
        owner = type(self).__name__
        if name is not None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"{owner}: `name` must be a non-empty string, received {name!r}")
            self.name = name
        if reduction != "sum_over_batch_size":
            raise ValueError(f"{owner}: `reduction` must be 'sum_over_batch_size' (Keras' default, the only "
                             f"reduction npnet computes), received {reduction!r}")

    def forward(self, y_true: Any, y_pred: np.ndarray, sample_weight: Any = None) -> float:
        """Return the loss of ``y_pred`` against ``y_true``, weighted by ``sample_weight``."""
        raise NotImplementedError(
            f"{type(self).__name__}: a Loss subclass must implement forward(y_true, y_pred, sample_weight=None) "
            "and backward(); npnet does not use Keras' call() (see 'Write your own loss' in the docs)")

    def backward(self) -> np.ndarray:
        """Return :math:`\\partial L / \\partial y_{pred}` for the last :meth:`forward` call."""
        raise NotImplementedError(
            f"{type(self).__name__}: a Loss subclass must implement backward(), the derivative of its "
            "forward() with respect to y_pred (see 'Write your own loss' in the docs)")

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        if sample_weight is None:
            return self.forward(y_true, y_pred)
        if not _accepts_sample_weight(self.forward):
            raise TypeError(
                f"{type(self).__name__}: forward() takes no `sample_weight`; give it a parameter "
                "sample_weight=None and reduce with self.reduce(values, sample_weight)")
        return self.forward(y_true, y_pred, sample_weight=sample_weight)

    def reduce(self, values: Any, sample_weight: Any = None) -> float:
        r"""Keras' ``"sum_over_batch_size"`` reduction of per-sample losses.

        Parameters
        ----------
        values : ndarray of shape (batch, ...)
            One loss per sample (or per sample and position).
        sample_weight : ndarray of shape (batch,) or of the shape of ``values``, optional

        Returns
        -------
        float
            :math:`\sum_j w_j \ell_j / |\ell|`. The derivative with respect to ``values``
            is then available from :meth:`reduce_gradient`.
        """
        values = np.asarray(values)
        if values.ndim == 0:
            raise ValueError(f"{type(self).__name__}: reduce() expects per-sample losses of shape (batch, ...), "
                             "received a scalar")
        w = _sample_weight(sample_weight, values.shape, values.dtype if values.dtype.kind == "f" else np.float64,
                           f"{type(self).__name__}")
        n = max(values.size, 1)
        self._reduced = (w, n, values.shape, values.dtype)
        return float((values.sum() if w is None else (values * w).sum()) / n)

    def reduce_gradient(self) -> np.ndarray:
        r""":math:`\partial L / \partial \ell_j = w_j / |\ell|` for the last :meth:`reduce`,
        an array of the shape of its ``values``."""
        if self._reduced is None:
            raise RuntimeError(f"{type(self).__name__}: reduce_gradient() called before reduce()")
        w, n, shape, dtype = self._reduced
        dtype = dtype if np.dtype(dtype).kind == "f" else np.float64
        if w is None:
            return np.broadcast_to(np.asarray(1.0 / n, dtype=dtype), shape)
        return np.broadcast_to(w / np.asarray(n, dtype=w.dtype), shape)

    def _weights(self, sample_weight: Any, values_shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        return _sample_weight(sample_weight, values_shape, dtype, type(self).__name__)

    def _require_forward(self) -> None:
        if getattr(self, "_cache", None) is None:
            raise RuntimeError(f"{type(self).__name__}: backward() called before forward()")

    def check_targets(self, y: np.ndarray, n_outputs: int) -> None:
        """Raise a clear error if targets ``y`` cannot be used with ``n_outputs`` model outputs."""

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, for saving (override it if ``__init__`` takes any)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class _CrossentropyBase(Loss):
    """Shared logic: both categorical losses reduce to a target distribution ``t`` over the
    class axis, moved last; per-sample losses have the shape of ``y_pred`` without it."""

    def __init__(self, from_logits: bool = False, axis: int = -1) -> None:
        self.from_logits = check_bool(from_logits, "from_logits", owner=type(self).__name__)
        self.axis = _check_axis(axis, type(self).__name__)
        self._cache = None

    @property
    def fusable(self) -> bool:
        """Whether a final softmax (over the last axis) can be fused with this loss."""
        return self.axis == -1

    def _targets(self, y_true: Any, pred_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        raise NotImplementedError

    def _last(self, y_pred: Any) -> np.ndarray:
        y = np.asarray(y_pred)
        if y.ndim < 2:
            raise ValueError(f"{type(self).__name__}: expected predictions of shape (batch, ..., classes), "
                             f"received shape {y.shape}")
        return _move_last(y, self.axis, type(self).__name__)

    def _forward_logits(self, y_true: Any, z: np.ndarray, sample_weight: Any = None) -> float:
        z = self._last(z)
        t = self._targets(y_true, z.shape, z.dtype)
        n = max(z.size // max(z.shape[-1], 1), 1)  # number of per-sample losses
        w = self._weights(sample_weight, z.shape[:-1], z.dtype)
        logp = log_softmax(z)
        p = np.exp(logp)
        self._cache = ("logits", t, p, w, n, None)
        if w is None:
            return float(-(t * logp).sum() / n)
        return float(-((t * logp).sum(axis=-1) * w).sum() / n)

    def forward(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            return self._forward_logits(y_true, y_pred, sample_weight)
        y = self._last(y_pred)
        t = self._targets(y_true, y.shape, y.dtype)
        n = max(y.size // max(y.shape[-1], 1), 1)
        w = self._weights(sample_weight, y.shape[:-1], y.dtype)
        s = y.sum(axis=-1, keepdims=True)
        s = np.where(s == 0, 1, s).astype(y.dtype, copy=False)
        q = y / s
        c = np.clip(q, _EPS, 1.0 - _EPS)
        self._cache = ("probs", t, c, w, n, (q, s))
        per = -(t * np.log(c)).sum(axis=-1)
        return float((per.sum() if w is None else (per * w).sum()) / n)

    def backward(self):
        r"""On logits: :math:`(p - t)\,w/n`. On probabilities :math:`y`, with the row sum
        :math:`s`, :math:`q = y/s` and :math:`c = \mathrm{clip}(q, \epsilon, 1-\epsilon)`:
        :math:`g_k = -t_k / c_k` where the clip is inactive (0 where it is active) and
        :math:`\partial L/\partial y_k = (g_k - \sum_j g_j q_j)\, w / (n s)`."""
        self._require_forward()
        kind, t, p, w, n, extra = self._cache
        if kind == "logits":
            # d/dz of -sum t log softmax(z) = softmax(z) * sum(t) - t; sum(t) = 1 per row.
            g = ((p - t) / n).astype(p.dtype, copy=False)
        else:
            q, s = extra
            inside = (q >= p.dtype.type(_EPS)) & (q <= p.dtype.type(1.0 - _EPS))
            gq = np.where(inside, -t / p, 0).astype(p.dtype, copy=False)
            g = ((gq - (gq * q).sum(axis=-1, keepdims=True)) / (s * n)).astype(p.dtype, copy=False)
        if w is not None:
            g = g * w[..., None]
        return g if self.axis in (-1, g.ndim - 1) else np.moveaxis(g, -1, self.axis)

    def get_config(self):
        return {"from_logits": self.from_logits, "axis": self.axis}


class CategoricalCrossentropy(_CrossentropyBase):
    r"""Cross-entropy against one-hot (or soft) targets of the shape of ``y_pred``.

    .. math:: \ell = -\sum_k t_k \log c_k, \qquad
              c = \mathrm{clip}\!\left(\frac{y}{\sum_k y_k}, \epsilon, 1 - \epsilon\right)

    per sample (and per position for ``(batch, ..., classes)`` inputs), then the mean over
    the per-sample losses (weighted by ``sample_weight``). Probabilities are rescaled to sum
    to 1 along the class axis before clipping, as in Keras; with logits the loss uses a stable
    log-softmax instead.

    Parameters
    ----------
    from_logits : bool, default False
        Whether ``y_pred`` are logits rather than probabilities.
    label_smoothing : float in [0, 1], default 0
        Targets become :math:`t (1 - s) + s / K`.
    axis : int, default -1
        The class axis.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> loss = npnet.losses.CategoricalCrossentropy()
    >>> round(loss.forward(np.array([[0, 1]]), np.array([[0.5, 0.5]])), 6)
    0.693147
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> None:
        super().__init__(from_logits, axis)
        self.label_smoothing = check_float(label_smoothing, "label_smoothing", low=0.0, high=1.0,
                                           owner=type(self).__name__)

    def check_targets(self, y, n_outputs):
        if self.axis == -1 and (y.ndim < 2 or y.shape[-1] != n_outputs):
            raise ValueError(
                f"{type(self).__name__}: expected one-hot targets of shape (batch, ..., {n_outputs}), "
                f"received shape {y.shape}; for class ids use SparseCategoricalCrossentropy"
            )

    def _targets(self, y_true, pred_shape, dtype):
        t = np.asarray(y_true, dtype=dtype)
        if self.axis not in (-1, t.ndim - 1) and t.ndim == len(pred_shape):
            t = np.moveaxis(t, self.axis, -1)
        if t.shape != tuple(pred_shape):
            raise ValueError(
                f"{type(self).__name__}: expected targets of the predictions' shape "
                f"{tuple(pred_shape)} (class axis last), received shape {t.shape}"
            )
        if self.label_smoothing:
            s = self.label_smoothing
            t = t * (1.0 - s) + s / pred_shape[-1]
        return t

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(_CrossentropyBase):
    r"""Cross-entropy against integer class ids.

    .. math:: \ell = -\log c_{y}, \qquad c = \mathrm{clip}\!\left(\frac{p}{\sum_k p_k}, \epsilon, 1 - \epsilon\right)

    Labels have the shape of ``y_pred`` without the class axis: ``(batch,)`` for
    ``(batch, classes)`` predictions, ``(batch, time)`` for ``(batch, time, classes)`` (a
    trailing axis of 1 is dropped). They must be integers in ``[0, classes)``; anything else
    raises ``ValueError``.

    Parameters
    ----------
    from_logits : bool, default False
    axis : int, default -1
        The class axis of ``y_pred``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> loss = npnet.losses.SparseCategoricalCrossentropy()
    >>> round(loss(np.array([1, 0]), np.array([[0.5, 0.5], [0.8, 0.2]])), 6)   # -(log .5 + log .8) / 2
    0.458145
    """

    name = "sparse_categorical_crossentropy"

    def check_targets(self, y, n_outputs):
        if self.axis == -1:
            _label_values(np.asarray(y), n_outputs, type(self).__name__)

    def _targets(self, y_true, pred_shape, dtype):
        yi = _sparse_labels(y_true, tuple(pred_shape), type(self).__name__)
        t = np.zeros(tuple(pred_shape), dtype=dtype)
        np.put_along_axis(t, yi[..., None], 1, axis=-1)
        return t


class BinaryCrossentropy(Loss):
    r"""Binary cross-entropy on probabilities (or logits), averaged over the last axis per
    sample, then over the per-sample losses (weighted by ``sample_weight``).

    .. math:: \ell = -\operatorname{mean}_{\text{axis}}\, [t \log c + (1 - t) \log (1 - c)],
              \qquad c = \mathrm{clip}(p, \epsilon, 1 - \epsilon)

    With ``from_logits=True`` it uses :math:`\max(z, 0) - z t + \log(1 + e^{-|z|})`,
    whose gradient is :math:`(\sigma(z) - t) / N`. On probabilities the gradient is
    :math:`(c - t) / (c (1 - c)) / N` where the clip is inactive and 0 where it is active.

    Parameters
    ----------
    from_logits : bool, default False
    label_smoothing : float in [0, 1], default 0
        Targets become :math:`t (1 - s) + s / 2`.
    axis : int, default -1
        The axis averaged per sample.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> loss = npnet.losses.BinaryCrossentropy()
    >>> round(loss([[1.0, 0.0]], np.array([[0.8, 0.4]])), 6)   # -(log .8 + log .6) / 2
    0.366985
    """

    name = "binary_crossentropy"
    fusable = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1) -> None:
        self.from_logits = check_bool(from_logits, "from_logits", owner=type(self).__name__)
        self.label_smoothing = check_float(label_smoothing, "label_smoothing", low=0.0, high=1.0,
                                           owner=type(self).__name__)
        self.axis = _check_axis(axis, type(self).__name__)
        self._cache = None

    def check_targets(self, y, n_outputs):
        yy = y[:, None] if y.ndim == 1 and n_outputs == 1 else y
        if yy.ndim < 2 or yy.shape[-1] != n_outputs:
            raise ValueError(
                f"BinaryCrossentropy: expected targets of shape (batch, {n_outputs}), received shape {y.shape}"
            )
        if np.any((yy < 0) | (yy > 1)):
            raise ValueError("BinaryCrossentropy: targets must lie in [0, 1]")

    def _pair(self, y_true, y_pred, sample_weight):
        y = np.asarray(y_pred)
        shape = y.shape
        if y.ndim == 1:
            y = y[:, None]
        t = _aligned(y_true, y, type(self).__name__)
        y, t = _move_last(y, self.axis, type(self).__name__), _move_last(t, self.axis, type(self).__name__)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        w = self._weights(sample_weight, y.shape[:-1], y.dtype)
        return y, t, None if w is None else w[..., None], shape

    def _value(self, e, w):
        if w is None:
            return float(np.mean(e)) if e.size else 0.0
        return float((e * w).sum() / max(e.size, 1))

    def _forward_logits(self, y_true, z, sample_weight=None):
        from .layers.activation import _sigmoid

        z, t, w, shape = self._pair(y_true, z, sample_weight)
        p = _sigmoid(z)
        self._cache = ("logits", t, p, w, shape, None)
        return self._value(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))), w)

    def forward(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            return self._forward_logits(y_true, y_pred, sample_weight)
        y, t, w, shape = self._pair(y_true, y_pred, sample_weight)
        c = np.clip(y, _EPS, 1 - _EPS)
        self._cache = ("probs", t, c, w, shape, y)
        return self._value(-(t * np.log(c) + (1 - t) * np.log(1 - c)), w)

    def backward(self):
        self._require_forward()
        kind, t, p, w, shape, y = self._cache
        if kind == "logits":
            g = ((p - t) / p.size).astype(p.dtype, copy=False)
        else:
            inside = (y >= p.dtype.type(_EPS)) & (y <= p.dtype.type(1 - _EPS))
            g = np.where(inside, (p - t) / (p * (1 - p)) / p.size, 0).astype(p.dtype, copy=False)
        if w is not None:
            g = g * w
        if self.axis not in (-1, g.ndim - 1):
            g = np.moveaxis(g, -1, self.axis)
        return g.reshape(shape)

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis}


class _Elementwise(Loss):
    """Losses of the form :math:`\\ell = \\operatorname{mean}_{-1} e(t, y)` (or the sum over
    the last axis), then Keras' reduction. Subclasses define ``_elementwise(t, y)`` and its
    derivative ``_derivative(t, y)`` with respect to ``y``."""

    _sum_last = False  # KLDivergence sums over the last axis instead of averaging

    def __init__(self) -> None:
        self._cache = None

    def check_targets(self, y, n_outputs):
        yy = y[:, None] if y.ndim == 1 and n_outputs == 1 else y
        if yy.ndim < 2 or yy.shape[-1] != n_outputs:
            raise ValueError(
                f"{type(self).__name__}: expected targets of shape (batch, {n_outputs}), received shape {y.shape}"
            )

    def _prepare(self, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        return t

    def _elementwise(self, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _derivative(self, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, y_true, y_pred, sample_weight=None):
        y = np.asarray(y_pred)
        shape = y.shape
        if y.ndim == 1:
            y = y[:, None]
        t = self._prepare(_aligned(y_true, y, type(self).__name__), y)
        w = self._weights(sample_weight, y.shape[:-1], y.dtype)
        w = None if w is None else w[..., None]  # broadcast over the last axis too
        e = self._elementwise(t, y)
        denom = max(e.size // max(y.shape[-1], 1) if self._sum_last else e.size, 1)
        self._cache = (t, y, w, denom, shape)
        if w is None:
            return float(np.mean(e)) if not self._sum_last and e.size else float(e.sum() / denom)
        return float((e * w).sum() / denom)

    def backward(self):
        self._require_forward()
        t, y, w, denom, shape = self._cache
        g = (self._derivative(t, y) / denom).astype(y.dtype, copy=False)
        if w is not None:
            g = g * w
        return g.reshape(shape)


class MeanSquaredError(_Elementwise):
    r"""Mean of squared errors over the last axis: :math:`\ell = \operatorname{mean}(y - t)^2`;
    :math:`\partial \ell/\partial y = 2 (y - t) / K` for :math:`K` features.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.losses.MeanSquaredError()([[1.0, 2.0]], np.array([[0.0, 4.0]]))   # (1 + 4) / 2
    2.5
    """

    name = "mean_squared_error"

    def _elementwise(self, t, y):
        d = y - t
        return d * d

    def _derivative(self, t, y):
        return 2.0 * (y - t)


class MeanAbsoluteError(_Elementwise):
    r"""Mean absolute error over the last axis :math:`\ell = \operatorname{mean}|y - t|`;
    :math:`\partial \ell/\partial y = \operatorname{sign}(y - t) / K`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.losses.MeanAbsoluteError()([[1.0, 2.0]], np.array([[0.0, 4.0]]))   # (1 + 2) / 2
    1.5
    """

    name = "mean_absolute_error"

    def _elementwise(self, t, y):
        return np.abs(y - t)

    def _derivative(self, t, y):
        return np.sign(y - t)


class Huber(_Elementwise):
    r"""Huber loss: quadratic for small errors, linear for large ones, averaged over the last axis.

    With :math:`x = y - t`,

    .. math:: e = \begin{cases} \tfrac12 x^2 & |x| \le \delta \\
              \delta |x| - \tfrac12 \delta^2 & |x| > \delta \end{cases}, \qquad
              \frac{\partial e}{\partial y} = \mathrm{clip}(x, -\delta, \delta).

    Parameters
    ----------
    delta : float > 0, default 1.0
        Where the loss changes from quadratic to linear.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.losses.Huber()([[0.0, 0.0]], np.array([[0.5, 3.0]]))   # (0.125 + 2.5) / 2
    1.3125
    """

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = check_float(delta, "delta", low=0.0, low_inclusive=False, owner="Huber")

    def _elementwise(self, t, y):
        x = y - t
        a = np.abs(x)
        d = self.delta
        return np.where(a <= d, 0.5 * x * x, d * a - 0.5 * d * d)

    def _derivative(self, t, y):
        return np.clip(y - t, -self.delta, self.delta)

    def get_config(self):
        return {"delta": self.delta}


class LogCosh(_Elementwise):
    r"""Logarithm of the hyperbolic cosine of the error, averaged over the last axis.

    With :math:`x = y - t`, computed stably as :math:`x + \mathrm{softplus}(-2x) - \log 2`:

    .. math:: e = \log\cosh x, \qquad \frac{\partial e}{\partial y} = \tanh x.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> round(npnet.losses.LogCosh()([[0.0]], np.array([[1.0]])), 6)   # log cosh 1
    0.433781
    """

    name = "log_cosh"

    def _elementwise(self, t, y):
        x = y - t
        return x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0).astype(x.dtype)

    def _derivative(self, t, y):
        return np.tanh(y - t)


class KLDivergence(_Elementwise):
    r"""Kullback-Leibler divergence, summed over the last axis.

    Targets and predictions are clipped to :math:`[\epsilon, 1]` (:math:`\epsilon = 10^{-7}`):
    with :math:`\bar t = \mathrm{clip}(t)` and :math:`\bar y = \mathrm{clip}(y)`,

    .. math:: \ell = \sum_k \bar t_k \log \frac{\bar t_k}{\bar y_k}, \qquad
              \frac{\partial \ell}{\partial y_k} = -\frac{\bar t_k}{\bar y_k}
              \ \text{where the clip of } y_k \text{ is inactive, else } 0.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> round(npnet.losses.KLDivergence()([[0.5, 0.5]], np.array([[0.25, 0.75]])), 6)
    0.143841
    """

    name = "kl_divergence"
    _sum_last = True

    def _prepare(self, t, y):
        return np.clip(t, _EPS, 1.0)

    def _elementwise(self, t, y):
        return t * np.log(t / np.clip(y, _EPS, 1.0))

    def _derivative(self, t, y):
        inside = (y >= y.dtype.type(_EPS)) & (y <= 1)
        return np.where(inside, -t / np.clip(y, _EPS, 1.0), 0)


class Poisson(_Elementwise):
    r"""Poisson loss, averaged over the last axis:

    .. math:: e = y - t \log(y + \epsilon), \qquad \frac{\partial e}{\partial y} = 1 - \frac{t}{y + \epsilon}.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> round(npnet.losses.Poisson()([[2.0]], np.array([[0.5]])), 6)   # 0.5 - 2 log(0.5 + 1e-7)
    1.886294
    """

    name = "poisson"

    def _elementwise(self, t, y):
        return y - t * np.log(y + _EPS)

    def _derivative(self, t, y):
        return 1.0 - t / (y + _EPS)


def _hinge_labels(t: np.ndarray) -> np.ndarray:
    """Keras' rule: if every label of the batch is 0 or 1, use ``2 t - 1`` (labels -1 and 1)."""
    return 2.0 * t - 1.0 if np.all((t == 0) | (t == 1)) else t


class Hinge(_Elementwise):
    r"""Hinge loss, averaged over the last axis, for labels -1 and 1.

    .. math:: e = \max(1 - t y, 0), \qquad \frac{\partial e}{\partial y} = -t \ \text{where } t y < 1, \text{ else } 0.

    As in Keras, a batch whose labels are all 0 or 1 is converted to -1 and 1 first.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.losses.Hinge()([[1.0, 0.0]], np.array([[0.5, 0.5]]))   # (0.5 + 1.5) / 2
    1.0
    """

    name = "hinge"

    def _prepare(self, t, y):
        return _hinge_labels(t)

    def _elementwise(self, t, y):
        return np.maximum(1.0 - t * y, 0.0)

    def _derivative(self, t, y):
        return np.where(1.0 - t * y > 0, -t, 0)


class SquaredHinge(Hinge):
    r"""Squared hinge loss, averaged over the last axis, for labels -1 and 1 (0 and 1 are
    converted as for :class:`Hinge`).

    .. math:: e = \max(1 - t y, 0)^2, \qquad \frac{\partial e}{\partial y} = -2 t \max(1 - t y, 0).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.losses.SquaredHinge()([[1.0, 0.0]], np.array([[0.5, 0.5]]))   # (0.25 + 2.25) / 2
    1.25
    """

    name = "squared_hinge"

    def _elementwise(self, t, y):
        m = np.maximum(1.0 - t * y, 0.0)
        return m * m

    def _derivative(self, t, y):
        return -2.0 * t * np.maximum(1.0 - t * y, 0.0)


class CategoricalHinge(Loss):
    r"""Categorical hinge loss over the last axis, for one-hot targets.

    With :math:`\mathrm{pos} = \sum_k t_k y_k` and :math:`\mathrm{neg} = \max_k (1 - t_k) y_k`
    (attained at :math:`k = j`, the first maximum on ties),

    .. math:: \ell = \max(\mathrm{neg} - \mathrm{pos} + 1, 0), \qquad
              \frac{\partial \ell}{\partial y_k} = [\ell > 0]\,\big((1 - t_j)[k = j] - t_k\big).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> round(npnet.losses.CategoricalHinge()([[0.0, 1.0]], np.array([[0.3, 0.6]])), 6)   # 0.3 - 0.6 + 1
    0.7
    """

    name = "categorical_hinge"

    def __init__(self) -> None:
        self._cache = None

    check_targets = _Elementwise.check_targets

    def forward(self, y_true, y_pred, sample_weight=None):
        y = np.asarray(y_pred)
        shape = y.shape
        if y.ndim == 1:
            y = y[:, None]
        t = _aligned(y_true, y, type(self).__name__)
        pos = (t * y).sum(axis=-1)
        neg_all = (1.0 - t) * y
        j = neg_all.argmax(axis=-1)[..., None]
        neg = np.take_along_axis(neg_all, j, axis=-1)[..., 0]
        values = np.maximum(neg - pos + 1.0, 0.0)
        self._cache = (t, j, values > 0, shape)
        return self.reduce(values, sample_weight)

    def backward(self):
        self._require_forward()
        t, j, active, shape = self._cache
        g = -t
        np.put_along_axis(g, j, np.take_along_axis(g, j, axis=-1) + 1.0 - np.take_along_axis(t, j, axis=-1), axis=-1)
        g = g * (active * self.reduce_gradient())[..., None]
        return g.astype(t.dtype, copy=False).reshape(shape)


class CosineSimilarity(Loss):
    r"""Negative cosine similarity along ``axis``: :math:`\ell = -\hat t \cdot \hat y`.

    Each vector is divided by :math:`\max(\lVert v \rVert, \epsilon)` (Keras' L2 normalization,
    :math:`\epsilon = 10^{-7}`), so a zero vector gives 0. With :math:`n = \lVert y \rVert > \epsilon`,

    .. math:: \frac{\partial \ell}{\partial y} = -\frac{\hat t - (\hat t \cdot \hat y)\, \hat y}{n},

    and :math:`-\hat t / \epsilon` where the norm is clamped.

    Parameters
    ----------
    axis : int, default -1
        The axis along which the similarity is computed.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> round(npnet.losses.CosineSimilarity()([[0.0, 1.0], [1.0, 1.0]], np.array([[1.0, 0.0], [1.0, 1.0]])), 6)
    -0.5
    """

    name = "cosine_similarity"

    def __init__(self, axis: int = -1) -> None:
        self.axis = _check_axis(axis, "CosineSimilarity")
        self._cache = None

    def check_targets(self, y, n_outputs):
        if self.axis == -1:
            _Elementwise.check_targets(self, y, n_outputs)

    def forward(self, y_true, y_pred, sample_weight=None):
        y = np.asarray(y_pred)
        shape = y.shape
        if y.ndim == 1:
            y = y[:, None]
        t = _aligned(y_true, y, type(self).__name__)
        y, t = _move_last(y, self.axis, "CosineSimilarity"), _move_last(t, self.axis, "CosineSimilarity")
        floor = y.dtype.type(_EPS * _EPS)
        ss_t = (t * t).sum(axis=-1, keepdims=True)
        ss_y = (y * y).sum(axis=-1, keepdims=True)
        th = t / np.sqrt(np.maximum(ss_t, floor))
        ny = np.sqrt(np.maximum(ss_y, floor))
        yh = y / ny
        self._cache = (th, yh, ny, ss_y > floor, shape)
        return self.reduce(-(th * yh).sum(axis=-1), sample_weight)

    def backward(self):
        self._require_forward()
        th, yh, ny, unclamped, shape = self._cache
        proj = np.where(unclamped, (th * yh).sum(axis=-1, keepdims=True) * yh, 0)
        g = -(th - proj) / ny * self.reduce_gradient()[..., None]
        g = g.astype(yh.dtype, copy=False)
        if self.axis not in (-1, g.ndim - 1):
            g = np.moveaxis(g, -1, self.axis)
        return g.reshape(shape)

    def get_config(self):
        return {"axis": self.axis}


_BUILTIN: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "log_cosh": LogCosh,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "KLD": KLDivergence,
    "poisson": Poisson,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
    "cosine_similarity": CosineSimilarity,
}
_BY_CLASS: dict[str, type[Loss]] = {cls.__name__: cls for cls in _BUILTIN.values()}
_BY_NAME: dict[str, type[Loss]] = {**_BUILTIN, **_BY_CLASS}


def register_loss(cls: type[Loss]) -> type[Loss]:
    """Register your own :class:`Loss` subclass so that a model compiled with it can be
    saved and loaded (usable as a decorator).

    Loading never imports anything named in a file: register the class before
    :func:`npnet.load_model`. Its :meth:`Loss.get_config` must return the constructor's
    arguments.

    Parameters
    ----------
    cls : type
        A subclass of :class:`Loss`.

    Returns
    -------
    type
        ``cls`` itself.
    """
    if not (isinstance(cls, type) and issubclass(cls, Loss)):
        raise TypeError(f"register_loss: expected a subclass of npnet.losses.Loss, received {cls!r}")
    existing = _BY_CLASS.get(cls.__name__)
    if existing is not None and existing is not cls and existing.__module__ == __name__:
        raise ValueError(f"register_loss: the name {cls.__name__!r} belongs to npnet's own loss")
    _BY_CLASS[cls.__name__] = cls
    _BY_NAME[cls.__name__] = cls
    return cls


def _check_implemented(cls: type[Loss]) -> None:
    """Refuse a Loss class that does not define both ``forward`` and ``backward``: training
    would otherwise fail only inside ``fit``."""
    has_forward = cls.forward is not Loss.forward
    has_backward = cls.backward is not Loss.backward
    if has_forward and has_backward:
        return
    needs = ("npnet needs forward(y_true, y_pred, sample_weight=None) -> float and backward() -> dL/dy_pred, "
             "the derivative written by hand")
    if not has_forward and not has_backward:
        keras = (" (its call() is Keras' method, which npnet does not use: it has no automatic "
                 "differentiation)" if callable(getattr(cls, "call", None)) else "")
        raise TypeError(f"compile: loss {cls.__name__} overrides neither forward() nor backward(){keras}; "
                        f"{needs} (see 'Write your own loss' in the docs)")
    missing, present = ("backward()", "forward()") if has_forward else ("forward()", "backward()")
    raise TypeError(f"compile: loss {cls.__name__} defines {present} but not {missing}; {needs} "
                    "(see 'Write your own loss' in the docs)")


def get(identifier: Any) -> Loss:
    """Return a loss from a Keras name (``"sparse_categorical_crossentropy"``, ``"mse"``,
    ``"Huber"``, ...), a ``{"class_name", "config"}`` dict, a Loss subclass, or an instance.

    Raises
    ------
    TypeError
        For a plain function, or a Loss class that does not override both
        :meth:`Loss.forward` and :meth:`Loss.backward` (a Keras-style loss that defines
        only ``call``, for example).
    ValueError
        For an unknown name or class name.
    """
    if isinstance(identifier, Loss):
        _check_implemented(type(identifier))
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        _check_implemented(identifier)
        return identifier()
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        _check_implemented(_BY_CLASS[identifier["class_name"]])
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    if callable(identifier) and not isinstance(identifier, (str, dict)):
        name = getattr(identifier, "__name__", repr(identifier))
        raise TypeError(
            f"compile: loss {name!r} is a plain function, but npnet needs the loss's gradient too; write a "
            "subclass of npnet.losses.Loss with forward(y_true, y_pred, sample_weight=None) -> float and "
            "backward() -> dL/dy_pred (see 'Write your own loss' in the docs)")
    if isinstance(identifier, dict):
        raise ValueError(f"compile: unknown loss class {identifier.get('class_name')!r}; register your own "
                         f"with npnet.losses.register_loss; known classes: {sorted(_BY_CLASS)}")
    raise ValueError(f"compile: unknown loss {identifier!r}; known names: {sorted(_BUILTIN)}")


def serialize(loss: Loss) -> dict[str, Any]:
    """Return a JSON-safe ``{"class_name", "config"}`` description (inverse of ``get``)."""
    name = type(loss).__name__
    if _BY_CLASS.get(name) is not type(loss):
        raise ValueError(f"save: the loss class {name} is not registered; decorate it with "
                         "@npnet.losses.register_loss so that a saved model can name it")
    return {"class_name": name, "config": loss.get_config()}
