r"""Weight and activity regularizers: penalties added to the training loss.

A regularizer turns an array into a scalar penalty :math:`R(x)` and gives its gradient
:math:`\partial R / \partial x`, written by hand next to the formula. Layers take them
as ``kernel_regularizer``, ``bias_regularizer`` and ``activity_regularizer`` (Dense,
Conv2D) or ``gamma_regularizer`` and ``beta_regularizer`` (BatchNormalization), by name
or as an object:

- a *weight* penalty :math:`R(W)` is computed once per training step from the current
  weights, added to the loss that ``fit`` and ``evaluate`` report, and its gradient
  is added to the weight's gradient before the optimizer step;
- an *activity* penalty is computed on the layer's output at every call and divided by
  the batch size, :math:`R(y) / n`; its gradient flows back through that call.

``model.losses`` lists the current penalties, as in Keras. Names: ``"l1"``, ``"l2"``
(factor 0.01), ``"l1_l2"`` (0.01 and 0.01), ``"l1l2"`` (Keras 3's ``L1L2()``, factors 0),
``"orthogonal_regularizer"``, and the class names.

Your own regularizer subclasses :class:`Regularizer` and defines ``__call__`` (the value)
and ``gradient`` (its derivative); add ``get_config`` to save it with a model. A subclass
is found by its class name when a saved model is loaded, once its class is defined.

Examples
--------
>>> import numpy as np, npnet
>>> w = np.array([[1.0, -2.0], [0.5, 0.0]], dtype="float32")
>>> npnet.regularizers.L2(0.1)(w)    # 0.1 * (1 + 4 + 0.25)
0.525
>>> npnet.regularizers.L2(0.1).gradient(w)
array([[ 0.2, -0.4],
       [ 0.1,  0. ]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_choice, check_float

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "get", "serialize"]

#: Keras' ``backend.epsilon()``.
_EPSILON = 1e-7


def _factor(value: Any, name: str, owner: str, default: float) -> float:
    """A non-negative finite factor (None means the default), as Keras' ``validate_float_arg``."""
    return default if value is None else check_float(value, name, low=0.0, owner=owner)


class Regularizer:
    r"""Base class of regularizers: a penalty :math:`R(x)` and its gradient.

    Subclasses define :meth:`__call__` (the value) and :meth:`gradient` (its derivative
    with respect to ``x``, an array of the same shape), and :meth:`get_config` to be
    saved with a model.

    Examples
    --------
    A penalty on the squared sum of each column:

    .. math:: R(W) = c \sum_j \Big(\sum_i W_{ij}\Big)^2, \qquad
              \frac{\partial R}{\partial W_{ij}} = 2 c \sum_k W_{kj}

    >>> import numpy as np, npnet
    >>> class ColumnSum(npnet.regularizers.Regularizer):
    ...     def __init__(self, c=0.01):
    ...         self.c = c
    ...     def __call__(self, x):
    ...         return float(self.c * np.sum(np.sum(x, axis=0) ** 2))
    ...     def gradient(self, x):
    ...         return (2 * self.c * np.sum(x, axis=0, keepdims=True) * np.ones_like(x)).astype(x.dtype)
    ...     def get_config(self):
    ...         return {"c": self.c}
    >>> layer = npnet.layers.Dense(2, kernel_regularizer=ColumnSum(0.5), kernel_initializer="ones")
    >>> _ = layer(np.ones((1, 3), dtype="float32"))
    >>> layer.losses    # 0.5 * (3**2 + 3**2)
    [9.0]
    """

    def __call__(self, x: np.ndarray) -> float:
        """The penalty of ``x`` (a float)."""
        return 0.0

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\partial R / \\partial x`, an array of the shape and dtype of ``x``."""
        return np.zeros_like(x)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe (override it to save your own class)."""
        if type(self) is Regularizer:
            return {}
        raise NotImplementedError(
            f"{type(self).__name__}: define get_config() returning its constructor arguments to save it")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        """Create a regularizer from the output of :meth:`get_config`."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        try:
            return bool(self.get_config() == other.get_config())  # type: ignore[attr-defined]
        except NotImplementedError:
            return self is other

    __hash__ = object.__hash__


class L1L2(Regularizer):
    r"""L1 and L2 penalties together (Keras' formula):

    .. math:: R(x) = \ell_1 \sum |x| + \ell_2 \sum x^2, \qquad
              \frac{\partial R}{\partial x} = \ell_1 \operatorname{sign}(x) + 2 \ell_2 x

    (with :math:`\operatorname{sign}(0) = 0`). Note: no factor 1/2 on the L2 term.

    Parameters
    ----------
    l1, l2 : float, default 0.0
        Non-negative factors (None means 0).
    """

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0) -> None:
        owner = type(self).__name__
        self.l1 = _factor(l1, "l1", owner, 0.0)
        self.l2 = _factor(l2, "l2", owner, 0.0)

    def __call__(self, x):
        value = 0.0
        if self.l1:
            value += float(np.asarray(self.l1, x.dtype) * np.sum(np.abs(x)))
        if self.l2:
            value += float(np.asarray(self.l2, x.dtype) * np.sum(np.square(x)))
        return value

    def gradient(self, x):
        g = np.zeros_like(x)
        if self.l1:
            g += np.sign(x) * np.asarray(self.l1, x.dtype)
        if self.l2:
            g += x * np.asarray(2.0 * self.l2, x.dtype)
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    r"""L1 penalty (Keras' formula):

    .. math:: R(x) = \ell_1 \sum |x|, \qquad
              \frac{\partial R}{\partial x} = \ell_1 \operatorname{sign}(x)

    with :math:`\operatorname{sign}(0) = 0` (the subgradient at the kink).

    Parameters
    ----------
    l1 : float, default 0.01
        Non-negative factor (None means 0.01).
    """

    def __init__(self, l1: float | None = 0.01) -> None:
        self.l1 = _factor(l1, "l1", type(self).__name__, 0.01)

    def __call__(self, x):
        return float(np.asarray(self.l1, x.dtype) * np.sum(np.abs(x)))

    def gradient(self, x):
        return np.sign(x) * np.asarray(self.l1, x.dtype)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    r"""L2 penalty (Keras' formula, without a factor 1/2):

    .. math:: R(x) = \ell_2 \sum x^2, \qquad \frac{\partial R}{\partial x} = 2 \ell_2 x

    Parameters
    ----------
    l2 : float, default 0.01
        Non-negative factor (None means 0.01).
    """

    def __init__(self, l2: float | None = 0.01) -> None:
        self.l2 = _factor(l2, "l2", type(self).__name__, 0.01)

    def __call__(self, x):
        return float(np.asarray(self.l2, x.dtype) * np.sum(np.square(x)))

    def gradient(self, x):
        return x * np.asarray(2.0 * self.l2, x.dtype)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    r"""Encourage the rows (or columns) of a matrix to be orthogonal (Keras' formula).

    With the rows normalized, :math:`n_i = x_i / \max(\lVert x_i \rVert, \epsilon)`
    (:math:`\epsilon = 10^{-7}`), :math:`P = N N^\top` of size :math:`s \times s` and
    :math:`p = s (s - 1) / 2` pairs:

    .. math::
        R(x) = \frac{f}{2 p} \sum_{i \ne j} |P_{ij}|, \qquad
        \frac{\partial R}{\partial N} = 2 G N, \quad
        G_{ij} = \frac{f}{2 p} \operatorname{sign}(P_{ij}) [i \ne j]

    and through the normalization, for a row with :math:`\lVert x_i \rVert > \epsilon`,
    :math:`\partial R / \partial x_i = (g_i - n_i (n_i \cdot g_i)) / \lVert x_i \rVert`
    with :math:`g_i = \partial R / \partial n_i` (else :math:`g_i / \epsilon`).
    ``mode="columns"`` does the same on :math:`x^\top`.

    Parameters
    ----------
    factor : float, default 0.01
    mode : {"rows", "columns"}
        For a Dense kernel ``(in, units)``, ``"rows"`` makes the rows orthogonal.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        owner = type(self).__name__
        self.factor = check_float(factor, "factor", low=0.0, owner=owner)
        self.mode = check_choice(mode, "mode", ["rows", "columns"], owner=owner)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise ValueError(f"{type(self).__name__}: expected a matrix (rank 2), received shape {x.shape}")
        m = x if self.mode == "rows" else x.T
        if m.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__}: needs at least 2 {self.mode} to compare, received shape {x.shape}")
        return m

    def _parts(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        norms = np.sqrt(np.maximum(np.sum(np.square(m), axis=1, keepdims=True), _EPSILON * _EPSILON))
        n = m / norms
        s = m.shape[0]
        c = self.factor * 0.5 / (s * (s - 1) / 2.0)
        product = n @ n.T
        np.fill_diagonal(product, 0.0)
        return n, norms, product, c

    def __call__(self, x):
        _, _, product, c = self._parts(self._rows(x))
        return float(np.asarray(c, x.dtype) * np.sum(np.abs(product)))

    def gradient(self, x):
        m = self._rows(x)
        n, norms, product, c = self._parts(m)
        g_n = (2.0 * c) * (np.sign(product) @ n)  # G is symmetric: dR/dN = (G + G^T) N = 2 G N
        clamped = np.sum(np.square(m), axis=1, keepdims=True) <= _EPSILON * _EPSILON
        radial = np.where(clamped, 0.0, np.sum(n * g_n, axis=1, keepdims=True))
        g = ((g_n - n * radial) / norms).astype(x.dtype)
        return g if self.mode == "rows" else g.T

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


_BUILTIN = (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)
_BY_NAME: dict[str, Any] = {
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "l1_l2": lambda: L1L2(l1=0.01, l2=0.01),
    "orthogonal_regularizer": OrthogonalRegularizer,
    **{cls.__name__: cls for cls in _BUILTIN if cls is not Regularizer},
}


def _subclasses(base: type) -> list[type]:
    out: list[type] = []
    stack: list[type] = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


def class_named(base: type, builtin: tuple[type, ...], name: Any, what: str, owner: str | None) -> type:
    """The class of a serialized object: one of ``builtin`` or a defined subclass of ``base``."""
    for cls in builtin:
        if cls.__name__ == name:
            return cls
    found = {cls for cls in _subclasses(base) if cls.__name__ == name}
    prefix = f"{owner}: " if owner else ""
    if len(found) > 1:
        raise ValueError(f"{prefix}several {what} classes are named {name!r}; give them distinct names")
    if not found:
        raise ValueError(
            f"{prefix}unknown {what} class {name!r}; known: {sorted(c.__name__ for c in builtin)} and the "
            f"subclasses of npnet.{base.__module__.split('.')[-1]}.{base.__name__} defined so far")
    return found.pop()


def _check_defines_gradient(reg: Regularizer, owner: str | None) -> Regularizer:
    cls = type(reg)
    if cls.__call__ is not Regularizer.__call__ and cls.gradient is Regularizer.gradient:
        prefix = f"{owner}: " if owner else ""
        raise TypeError(
            f"{prefix}regularizer {cls.__name__} defines __call__ but not gradient(x); npnet needs the "
            "gradient of every penalty written by hand")
    return reg


def get(identifier: Any, owner: str | None = None) -> Regularizer | None:
    """Return a regularizer from a name (``"l2"``), a config dict, a class or an instance.

    ``None`` gives ``None`` (no penalty).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known names.
    TypeError
        For anything else, including a plain function (it has no gradient).
    """
    prefix = f"{owner}: " if owner else ""
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return _check_defines_gradient(identifier, owner)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return _check_defines_gradient(identifier(), owner)
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"{prefix}unknown regularizer {identifier!r}; known names: {sorted(_BY_NAME)}")
        return _BY_NAME[identifier]()  # type: ignore[no-any-return]
    if isinstance(identifier, dict) and set(identifier) >= {"class_name"}:
        cls = class_named(Regularizer, _BUILTIN, identifier["class_name"], "regularizer", owner)
        config = identifier.get("config") or {}
        if not isinstance(config, dict):
            raise TypeError(f"{prefix}regularizer config must be a dict, received {config!r}")
        return _check_defines_gradient(cls.from_config(config), owner)  # type: ignore[attr-defined]
    if callable(identifier):
        raise TypeError(
            f"{prefix}a regularizer must be a name or an npnet.regularizers.Regularizer, received the function "
            f"{getattr(identifier, '__name__', identifier)!r}; subclass Regularizer and write its gradient()")
    raise TypeError(
        f"{prefix}a regularizer must be a name, a config dict or an npnet.regularizers.Regularizer, "
        f"received {identifier!r} of type {type(identifier).__name__}")


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    """A JSON-safe form, ``{"class_name": ..., "config": ...}`` (``None`` stays ``None``)."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def gradient_of(regularizer: Regularizer, x: np.ndarray, owner: str) -> np.ndarray:
    """``regularizer.gradient(x)`` checked: an array of the shape of ``x``, in its dtype."""
    g = np.asarray(regularizer.gradient(x))
    if g.shape != x.shape:
        raise ValueError(
            f"{owner}: {type(regularizer).__name__}.gradient returned shape {g.shape} for an array of shape {x.shape}")
    return g.astype(x.dtype, copy=False)
