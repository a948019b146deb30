r"""Weight constraints: projections applied to a weight after each optimizer update.

Layers take them as ``kernel_constraint`` and ``bias_constraint`` (Dense, Conv2D) or
``gamma_constraint`` and ``beta_constraint`` (BatchNormalization), by name
(``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``, or the class name)
or as an object. After every optimizer step of ``fit`` (and ``train_on_batch``), each
constrained weight is replaced, in place, by ``constraint(weight)``, as Keras' optimizer
does. A constraint has no gradient: it is not part of the loss.

The norms are taken over ``axis`` (an int or a tuple of ints), with Keras' formulas and
:math:`\epsilon = 10^{-7}`. For a Dense kernel ``(in, units)``, ``axis=0`` constrains the
incoming weights of each unit; for a Conv2D kernel ``(kh, kw, in, filters)``, use
``axis=(0, 1, 2)`` for each filter.

Your own constraint subclasses :class:`Constraint` and defines ``__call__(w)``, returning
the projected array (same shape); add ``get_config`` if it takes arguments.

Examples
--------
>>> import numpy as np, npnet
>>> w = np.array([[3.0, 0.1], [4.0, 0.2]], dtype="float32")
>>> np.round(npnet.constraints.MaxNorm(2.0)(w), 4)   # column norms 5 and 0.22: the first is scaled to 2
array([[1.2, 0.1],
       [1.6, 0.2]], dtype=float32)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._validation import check_float
from .regularizers import class_named

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "get", "serialize"]

#: Keras' ``backend.epsilon()``.
_EPSILON = 1e-7


def _check_axis(axis: Any, owner: str) -> int | tuple[int, ...]:
    """An int or a non-empty tuple of distinct ints (lists become tuples)."""
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
        if len(set(int(a) for a in axis)) != len(axis):
            raise ValueError(f"{owner}: `axis` repeats an axis, received {axis!r}")
        return tuple(int(a) for a in axis)
    raise TypeError(f"{owner}: `axis` must be an int or a tuple of ints, received {axis!r}")


class Constraint:
    """Base class of constraints: ``constraint(w)`` returns the projected ``w``.

    The base class leaves ``w`` unchanged. Subclasses define :meth:`__call__` (same shape
    in, same shape out) and :meth:`get_config` if they take arguments.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> class Clip(npnet.constraints.Constraint):
    ...     def __init__(self, limit=1.0):
    ...         self.limit = limit
    ...     def __call__(self, w):
    ...         return np.clip(w, -self.limit, self.limit)
    ...     def get_config(self):
    ...         return {"limit": self.limit}
    >>> Clip(0.5)(np.array([-2.0, 0.25, 3.0]))
    array([-0.5 ,  0.25,  0.5 ])
    """

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """The projection of ``w`` (an array of the same shape)."""
        return w

    def check(self, shape: tuple[int, ...], owner: str) -> None:
        """Raise if this constraint cannot apply to a weight of ``shape`` (a bad ``axis``)."""
        axis = getattr(self, "axis", None)
        if axis is None:
            return
        axes = axis if isinstance(axis, tuple) else (axis,)
        for a in axes:
            if not -len(shape) <= a < len(shape):
                raise ValueError(
                    f"{owner}: {type(self).__name__} `axis` {axis!r} is out of range for a weight of "
                    f"shape {tuple(shape)}")
        if len({a % len(shape) for a in axes}) != len(axes):
            raise ValueError(f"{owner}: {type(self).__name__} `axis` {axis!r} names one axis twice for a weight "
                             f"of shape {tuple(shape)}")

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        """Create a constraint from the output of :meth:`get_config`."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.get_config() == other.get_config())  # type: ignore[attr-defined]

    __hash__ = object.__hash__


def _norms(w: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class MaxNorm(Constraint):
    r"""Scale down every slice whose L2 norm over ``axis`` exceeds ``max_value`` (Keras' formula):

    .. math:: w \leftarrow w \, \frac{\min(\lVert w \rVert, m)}{\epsilon + \lVert w \rVert}

    Parameters
    ----------
    max_value : float, default 2
    axis : int or tuple of int, default 0
    """

    def __init__(self, max_value: float = 2, axis: Any = 0) -> None:
        owner = type(self).__name__
        self.max_value = check_float(max_value, "max_value", low=0.0, owner=owner)
        self.axis = _check_axis(axis, owner)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0.0, self.max_value)
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


class NonNeg(Constraint):
    r"""Set negative weights to zero: :math:`w \leftarrow \max(w, 0)`."""

    def __call__(self, w):
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    r"""Scale every slice to unit L2 norm over ``axis`` (Keras' formula):

    .. math:: w \leftarrow \frac{w}{\epsilon + \lVert w \rVert}

    Parameters
    ----------
    axis : int or tuple of int, default 0
    """

    def __init__(self, axis: Any = 0) -> None:
        self.axis = _check_axis(axis, type(self).__name__)

    def __call__(self, w):
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


class MinMaxNorm(Constraint):
    r"""Move every slice's L2 norm over ``axis`` into ``[min_value, max_value]`` (Keras' formula):

    .. math::
        d = r \operatorname{clip}(\lVert w \rVert, a, b) + (1 - r) \lVert w \rVert, \qquad
        w \leftarrow w \, \frac{d}{\epsilon + \lVert w \rVert}

    ``rate`` :math:`r = 1` enforces the bounds at once; a smaller rate moves the norms
    towards them step by step.

    Parameters
    ----------
    min_value : float, default 0.0
    max_value : float, default 1.0
    rate : float in [0, 1], default 1.0
    axis : int or tuple of int, default 0
    """

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Any = 0) -> None:
        owner = type(self).__name__
        self.min_value = check_float(min_value, "min_value", low=0.0, owner=owner)
        self.max_value = check_float(max_value, "max_value", low=0.0, owner=owner)
        if self.min_value > self.max_value:
            raise ValueError(
                f"{owner}: `min_value` must be <= `max_value`, received {self.min_value} and {self.max_value}")
        self.rate = check_float(rate, "rate", low=0.0, high=1.0, owner=owner)
        self.axis = _check_axis(axis, owner)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1.0 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


_BUILTIN = (Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm)
_BY_NAME: dict[str, type[Constraint]] = {
    "max_norm": MaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
    **{cls.__name__: cls for cls in _BUILTIN if cls is not Constraint},
}


def get(identifier: Any, owner: str | None = None) -> Constraint | None:
    """Return a constraint from a name (``"max_norm"``), a config dict, a class or an instance.

    ``None`` gives ``None`` (no constraint).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known names.
    TypeError
        For anything else, including a plain function (subclass :class:`Constraint`).
    """
    prefix = f"{owner}: " if owner else ""
    if identifier is None:
        return None
    if isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"{prefix}unknown constraint {identifier!r}; known names: {sorted(_BY_NAME)}")
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = class_named(Constraint, _BUILTIN, identifier["class_name"], "constraint", owner)
        config = identifier.get("config") or {}
        if not isinstance(config, dict):
            raise TypeError(f"{prefix}constraint config must be a dict, received {config!r}")
        return cls.from_config(config)  # type: ignore[no-any-return,attr-defined]
    raise TypeError(
        f"{prefix}a constraint must be a name, a config dict or an npnet.constraints.Constraint, "
        f"received {identifier!r} of type {type(identifier).__name__}")


def serialize(constraint: Constraint | None) -> dict[str, Any] | None:
    """A JSON-safe form, ``{"class_name": ..., "config": ...}`` (``None`` stays ``None``)."""
    if constraint is None:
        return None
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


def apply(constraint: Constraint, w: np.ndarray, owner: str) -> None:
    """Replace ``w`` in place by ``constraint(w)``, checking the shape."""
    projected = np.asarray(constraint(w))
    if projected.shape != w.shape:
        raise ValueError(
            f"{owner}: {type(constraint).__name__} returned shape {projected.shape} for a weight of shape {w.shape}")
    np.copyto(w, projected, casting="same_kind")
