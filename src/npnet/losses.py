"""Losses. ``forward(y_true, y_pred)`` returns the mean loss over the batch as a float;
``backward()`` returns ``dL/dy_pred`` for the same batch.

Cross-entropy losses compute :math:`\\log` of probabilities through a stable
log-softmax when they see logits (``from_logits=True``, or fused with a final Softmax by
``Sequential``): :math:`\\log p_i = z_i - m - \\log \\sum_j e^{z_j - m}`, with
:math:`m = \\max_j z_j`, so logits of 1e4 neither overflow nor produce ``log(0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_float

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "get",
]

_EPS = 1e-7


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Stable :math:`\\log \\mathrm{softmax}(z)` along the last axis."""
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _sparse_labels(y_true: Any, n_classes: int, owner: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{owner}: expected class ids of shape (batch,), received shape {y.shape}")
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{owner}: expected integer class ids, received dtype {y.dtype} with non-integer values")
    yi = y.astype(np.int64)
    if yi.size and (yi.min() < 0 or yi.max() >= n_classes):
        bad = yi[(yi < 0) | (yi >= n_classes)][0]
        raise ValueError(f"{owner}: labels must be in [0, {n_classes}), received label {bad}")
    return yi


class Loss:
    """Base class: subclasses implement :meth:`forward` and :meth:`backward`."""

    name = "loss"
    _cache: Any = None

    def forward(self, y_true: Any, y_pred: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: np.ndarray) -> float:
        return self.forward(y_true, y_pred)

    def _require_forward(self) -> None:
        if getattr(self, "_cache", None) is None:
            raise RuntimeError(f"{type(self).__name__}: backward() called before forward()")

    def check_targets(self, y: np.ndarray, n_outputs: int) -> None:
        """Raise a clear error if targets ``y`` cannot be used with ``n_outputs`` model outputs."""

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class _CrossentropyBase(Loss):
    """Shared logic: both categorical losses reduce to a target distribution ``t``."""

    fusable = True

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)
        self._cache = None

    def _targets(self, y_true: Any, n_classes: int, dtype) -> np.ndarray:
        raise NotImplementedError

    def _forward_logits(self, y_true: Any, z: np.ndarray) -> float:
        t = self._targets(y_true, z.shape[-1], z.dtype)
        logp = log_softmax(z)
        p = np.exp(logp)
        self._cache = ("logits", t, p)
        return float(-(t * logp).sum() / z.shape[0])

    def forward(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if self.from_logits:
            return self._forward_logits(y_true, y_pred)
        t = self._targets(y_true, y_pred.shape[-1], y_pred.dtype)
        p = np.clip(y_pred, _EPS, 1.0)
        self._cache = ("probs", t, p)
        return float(-(t * np.log(p)).sum() / y_pred.shape[0])

    def backward(self):
        self._require_forward()
        kind, t, p = self._cache
        n = p.shape[0]
        if kind == "logits":
            # d/dz of -sum t log softmax(z) = softmax(z) * sum(t) - t; sum(t) = 1 per row.
            return ((p - t) / n).astype(p.dtype, copy=False)
        return (-t / p / n).astype(p.dtype, copy=False)

    def _prediction_from_logits(self) -> np.ndarray:
        return self._cache[2]

    def get_config(self):
        return {"from_logits": self.from_logits}


class CategoricalCrossentropy(_CrossentropyBase):
    r"""Cross-entropy against one-hot (or soft) targets of shape ``(batch, classes)``.

    .. math:: L = -\frac{1}{n} \sum_{i} \sum_k t_{ik} \log p_{ik}

    Parameters
    ----------
    from_logits : bool, default False
        Whether ``y_pred`` are logits rather than probabilities.
    label_smoothing : float in [0, 1], default 0
        Targets become :math:`t (1 - s) + s / K`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> loss = npnet.losses.CategoricalCrossentropy()
    >>> round(loss.forward(np.array([[0, 1]]), np.array([[0.5, 0.5]])), 6)
    0.693147
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        super().__init__(from_logits)
        self.label_smoothing = check_float(label_smoothing, "label_smoothing", low=0.0, high=1.0,
                                           owner=type(self).__name__)

    def check_targets(self, y, n_outputs):
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(
                f"{type(self).__name__}: expected one-hot targets of shape (batch, {n_outputs}), "
                f"received shape {y.shape}; for class ids use SparseCategoricalCrossentropy"
            )

    def _targets(self, y_true, n_classes, dtype):
        t = np.asarray(y_true, dtype=dtype)
        if t.shape[-1] != n_classes:
            raise ValueError(
                f"{type(self).__name__}: expected targets with last dimension {n_classes}, received shape {t.shape}"
            )
        if self.label_smoothing:
            s = self.label_smoothing
            t = t * (1.0 - s) + s / n_classes
        return t

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(_CrossentropyBase):
    r"""Cross-entropy against integer class ids of shape ``(batch,)``.

    .. math:: L = -\frac{1}{n} \sum_i \log p_{i, y_i}

    Labels must be integers in ``[0, classes)``; anything else raises ``ValueError``.
    """

    name = "sparse_categorical_crossentropy"

    def check_targets(self, y, n_outputs):
        _sparse_labels(y, n_outputs, type(self).__name__)

    def _targets(self, y_true, n_classes, dtype):
        yi = _sparse_labels(y_true, n_classes, type(self).__name__)
        t = np.zeros((yi.shape[0], n_classes), dtype=dtype)
        t[np.arange(yi.shape[0]), yi] = 1
        return t


class BinaryCrossentropy(Loss):
    r"""Binary cross-entropy on probabilities (or logits), averaged over all elements.

    .. math:: L = -\operatorname{mean}\, [t \log p + (1 - t) \log (1 - p)]

    With ``from_logits=True`` it uses :math:`\max(z, 0) - z t + \log(1 + e^{-|z|})`,
    whose gradient is :math:`(\sigma(z) - t) / N`.
    """

    name = "binary_crossentropy"
    fusable = True

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)
        self._cache = None

    def check_targets(self, y, n_outputs):
        yy = y[:, None] if y.ndim == 1 and n_outputs == 1 else y
        if yy.ndim < 2 or yy.shape[-1] != n_outputs:
            raise ValueError(
                f"BinaryCrossentropy: expected targets of shape (batch, {n_outputs}), received shape {y.shape}"
            )
        if np.any((yy < 0) | (yy > 1)):
            raise ValueError("BinaryCrossentropy: targets must lie in [0, 1]")

    def _t(self, y_true, y_pred):
        t = np.asarray(y_true, dtype=y_pred.dtype)
        if t.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            t = t[..., None]
        if t.shape != y_pred.shape:
            raise ValueError(f"BinaryCrossentropy: targets of shape {t.shape} do not match predictions {y_pred.shape}")
        return t

    def _forward_logits(self, y_true, z):
        t = self._t(y_true, z)
        from .layers.activation import _sigmoid

        p = _sigmoid(z)
        self._cache = ("logits", t, p)
        return float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))

    def forward(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if self.from_logits:
            return self._forward_logits(y_true, y_pred)
        t = self._t(y_true, y_pred)
        p = np.clip(y_pred, _EPS, 1 - _EPS)
        self._cache = ("probs", t, p)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))

    def backward(self):
        self._require_forward()
        kind, t, p = self._cache
        if kind == "logits":
            return ((p - t) / p.size).astype(p.dtype, copy=False)
        return ((p - t) / (p * (1 - p)) / p.size).astype(p.dtype, copy=False)

    def _prediction_from_logits(self):
        return self._cache[2]

    def get_config(self):
        return {"from_logits": self.from_logits}


class MeanSquaredError(Loss):
    r"""Mean of squared errors over all elements: :math:`L = \operatorname{mean}(y - t)^2`, :math:`dL/dy = 2 (y - t) / N`."""

    name = "mean_squared_error"

    def __init__(self) -> None:
        self._cache = None

    def _t(self, y_true, y_pred):
        t = np.asarray(y_true, dtype=y_pred.dtype)
        if t.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            t = t[..., None]
        if t.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__}: targets of shape {t.shape} do not match predictions {y_pred.shape}")
        return t

    def check_targets(self, y, n_outputs):
        yy = y[:, None] if y.ndim == 1 and n_outputs == 1 else y
        if yy.ndim < 2 or yy.shape[-1] != n_outputs:
            raise ValueError(
                f"{type(self).__name__}: expected targets of shape (batch, {n_outputs}), received shape {y.shape}"
            )

    def forward(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        d = y_pred - self._t(y_true, y_pred)
        self._cache = (d,)
        return float(np.mean(d * d))

    def backward(self):
        self._require_forward()
        (d,) = self._cache
        return (d * (2.0 / d.size)).astype(d.dtype, copy=False)


class MeanAbsoluteError(MeanSquaredError):
    r"""Mean absolute error :math:`\operatorname{mean}|y - t|`, :math:`dL/dy = \operatorname{sign}(y - t) / N`."""

    name = "mean_absolute_error"

    def forward(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        d = y_pred - self._t(y_true, y_pred)
        self._cache = (d,)
        return float(np.mean(np.abs(d)))

    def backward(self):
        self._require_forward()
        (d,) = self._cache
        return (np.sign(d) / d.size).astype(d.dtype, copy=False)


_BY_NAME: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier: Any) -> Loss:
    """Return a loss from a Keras name (``"sparse_categorical_crossentropy"``, ``"mse"``, ...),
    a ``{"class_name", "config"}`` dict, or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"compile: unknown loss {identifier!r}; known names: {sorted(_BY_NAME)}")


def serialize(loss: Loss) -> dict[str, Any]:
    """Return a JSON-safe ``{"class_name", "config"}`` description (inverse of ``get``)."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
