"""Learning-rate schedules: callables mapping the optimizer's step count to a rate.

Pass one as an optimizer's ``learning_rate``; the optimizer calls it with its
``iterations`` (0 on the first step) before each update. The classes, their arguments,
defaults, formulas and configs are Keras 3's ``keras.optimizers.schedules``; values are
computed in Python floats (float64).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from ._validation import check_bool, check_float, check_int

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "get",
    "serialize",
    "deserialize",
]


def _check_name(name: Any, owner: str) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"{owner}: `name` must be a string or None, received {name!r} of type {type(name).__name__}")
    return name


def _check_rate(value: Any, name: str, owner: str) -> float:
    return check_float(value, name, low=0.0, owner=owner)


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step) -> float`` and ``get_config``.

    A subclass defined in your code is saved by class name inside an optimizer's config and
    found again by that name when the model is loaded (or pass it in ``custom_objects`` of
    :func:`deserialize`); ``from_config`` calls the constructor with the config.

    Examples
    --------
    >>> import npnet
    >>> class Halving(npnet.schedules.LearningRateSchedule):
    ...     def __init__(self, initial_learning_rate):
    ...         self.initial_learning_rate = initial_learning_rate
    ...     def __call__(self, step):
    ...         return self.initial_learning_rate / (step + 1)
    ...     def get_config(self):
    ...         return {"initial_learning_rate": self.initial_learning_rate}
    >>> opt = npnet.SGD(learning_rate=Halving(0.1))
    >>> opt.iterations = 1
    >>> opt.learning_rate
    0.05
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"learning-rate schedule {type(self).__name__} must define __call__(self, step)")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"learning-rate schedule {type(self).__name__} must define get_config() to be saved")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


class _Checked(LearningRateSchedule):
    """A built-in schedule: its value at every step is a finite float, or a ValueError
    naming the schedule, the step and its arguments (never an OverflowError or inf)."""

    def _value(self, step: int) -> float:
        raise NotImplementedError

    def __call__(self, step):
        try:
            value = float(self._value(step))
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise ValueError(f"{type(self).__name__}: the learning rate at step {step} overflows "
                             f"({self!r}); choose arguments whose rates stay finite")
        return value


class ExponentialDecay(_Checked):
    r"""Exponential decay, as Keras' ``ExponentialDecay``.

    .. math:: lr(t) = lr_0 \cdot r^{t / T}

    with :math:`r` = ``decay_rate`` and :math:`T` = ``decay_steps``; with
    ``staircase=True`` the exponent is :math:`\lfloor t / T \rfloor`.

    Parameters
    ----------
    initial_learning_rate : float
        :math:`lr_0`, at least 0.
    decay_steps : int
        At least 1.
    decay_rate : float
        Greater than 0.
    staircase : bool, default False
    name : str, default "ExponentialDecay"

    Examples
    --------
    >>> from npnet.schedules import ExponentialDecay
    >>> s = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> s(0), s(10), s(20)
    (0.1, 0.05, 0.025)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str | None = "ExponentialDecay") -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _check_rate(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", minimum=1, owner=owner)
        self.decay_rate = check_float(decay_rate, "decay_rate", low=0.0, low_inclusive=False, owner=owner)
        self.staircase = check_bool(staircase, "staircase", owner=owner)
        self.name = _check_name(name, owner)
        try:
            finite = math.isfinite(self._value(self.decay_steps))
        except OverflowError:
            finite = False
        if not finite:
            raise ValueError(f"{owner}: the rate after `decay_steps` steps, initial_learning_rate * decay_rate = "
                             f"{self.initial_learning_rate!r} * {self.decay_rate!r}, overflows")

    def _value(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate * self.decay_rate ** p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _number_list(value: Any, what: str, owner: str) -> list:
    if not isinstance(value, (str, bytes, dict)):
        try:
            return list(value)
        except TypeError:  # not iterable, or a 0-d array
            pass
    raise TypeError(f"{owner}: `{what}` must be a list of numbers, received {value!r}")


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate between step boundaries, as Keras' ``PiecewiseConstantDecay``.

    The rate is ``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while
    ``boundaries[0] < step <= boundaries[1]``, ..., and ``values[-1]`` after the last boundary.

    Parameters
    ----------
    boundaries : list of int
        Strictly increasing step counts.
    values : list of float
        One more entry than ``boundaries``, each at least 0.
    name : str, default "PiecewiseConstant"

    Examples
    --------
    >>> from npnet.schedules import PiecewiseConstantDecay
    >>> s = PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])
    >>> s(100), s(101), s(500)
    (1.0, 0.5, 0.1)
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float],
                 name: str | None = "PiecewiseConstant") -> None:
        owner = type(self).__name__
        self.boundaries = [check_int(b, "boundaries", owner=owner) for b in _number_list(boundaries, "boundaries", owner)]
        self.values = [_check_rate(v, "values", owner) for v in _number_list(values, "values", owner)]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"{owner}: `values` must have one more entry than `boundaries`, received "
                f"{len(self.values)} values and {len(self.boundaries)} boundaries"
            )
        if any(b2 <= b1 for b1, b2 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{owner}: `boundaries` must increase strictly, received {self.boundaries}")
        self.name = _check_name(name, owner)

    def __call__(self, step):
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class PolynomialDecay(_Checked):
    r"""Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate``, as Keras' ``PolynomialDecay``.

    .. math:: lr(t) = (lr_0 - lr_{end}) \left(1 - \frac{\min(t, T)}{T}\right)^{p} + lr_{end}

    with :math:`T` = ``decay_steps`` and :math:`p` = ``power``. With ``cycle=True`` the
    step is not clipped; instead :math:`T` is replaced by
    :math:`T \lceil t / T \rceil` (by :math:`T` at step 0), the first multiple of
    ``decay_steps`` not below the step, so the rate jumps back up after each multiple.

    Parameters
    ----------
    initial_learning_rate : float
        :math:`lr_0`, at least 0.
    decay_steps : int
        At least 1.
    end_learning_rate : float, default 0.0001
        At least 0 (it may exceed ``initial_learning_rate``: the rate then rises).
    power : float, default 1.0
        At least 0.
    cycle : bool, default False
    name : str, default "PolynomialDecay"

    Examples
    --------
    >>> from npnet.schedules import PolynomialDecay
    >>> s = PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, power=2.0)
    >>> s(0), s(5), s(10), s(50)
    (1.0, 0.25, 0.0, 0.0)
    >>> c = PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, cycle=True)
    >>> c(10), c(15)
    (0.0, 0.25)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False, name: str | None = "PolynomialDecay") -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _check_rate(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", minimum=1, owner=owner)
        self.end_learning_rate = _check_rate(end_learning_rate, "end_learning_rate", owner)
        self.power = check_float(power, "power", low=0.0, owner=owner)
        self.cycle = check_bool(cycle, "cycle", owner=owner)
        self.name = _check_name(name, owner)

    def _value(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= 1 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, decay_steps)
        remaining = max(1.0 - step / decay_steps, 0.0)
        return float((self.initial_learning_rate - self.end_learning_rate) * remaining ** self.power
                     + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class InverseTimeDecay(_Checked):
    r"""Inverse-time decay, as Keras' ``InverseTimeDecay``.

    .. math:: lr(t) = \frac{lr_0}{1 + r \, t / T}

    with :math:`r` = ``decay_rate`` and :math:`T` = ``decay_steps``; with
    ``staircase=True``, :math:`t / T` becomes :math:`\lfloor t / T \rfloor`.

    Parameters
    ----------
    initial_learning_rate : float
        :math:`lr_0`, at least 0.
    decay_steps : int or float
        Greater than 0 (Keras' own example passes ``1.0``).
    decay_rate : float
        At least 0.
    staircase : bool, default False
    name : str, default "InverseTimeDecay"

    Examples
    --------
    >>> from npnet.schedules import InverseTimeDecay
    >>> s = InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> s(0), s(20), round(s(5), 6)
    (0.1, 0.05, 0.08)
    >>> InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)(19)
    0.06666666666666667
    """

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False, name: str | None = "InverseTimeDecay") -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _check_rate(initial_learning_rate, "initial_learning_rate", owner)
        if isinstance(decay_steps, numbers.Integral) and not isinstance(decay_steps, bool):
            self.decay_steps: float = check_int(decay_steps, "decay_steps", minimum=1, owner=owner)
        else:
            self.decay_steps = check_float(decay_steps, "decay_steps", low=0.0, low_inclusive=False, owner=owner)
        self.decay_rate = check_float(decay_rate, "decay_rate", low=0.0, owner=owner)
        self.staircase = check_bool(staircase, "staircase", owner=owner)
        self.name = _check_name(name, owner)

    def _value(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate / (1.0 + self.decay_rate * p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _cosine(fraction: float, alpha: float, scale: float = 1.0) -> float:
    """Keras' cosine factor ``(1 - alpha) * scale * (1 + cos(pi * fraction)) / 2 + alpha``."""
    return (1.0 - alpha) * (0.5 * scale * (1.0 + math.cos(math.pi * fraction))) + alpha


class CosineDecay(_Checked):
    r"""Cosine decay with an optional linear warm-up, as Keras' ``CosineDecay``.

    Without warm-up, :math:`lr(t) = lr_0 \left((1 - \alpha)\, \tfrac12 (1 + \cos(\pi \min(t, T) / T)) + \alpha\right)`
    with :math:`T` = ``decay_steps``. With ``warmup_target`` and ``warmup_steps`` = W, the
    rate first rises linearly from ``initial_learning_rate`` to ``warmup_target`` over W
    steps, then decays from ``warmup_target`` as above with :math:`t - W`.

    Parameters
    ----------
    initial_learning_rate : float
        :math:`lr_0`, at least 0.
    decay_steps : int
        At least 1.
    alpha : float, default 0.0
        The final rate as a fraction of the rate the decay starts from, in [0, 1].
    name : str, default "CosineDecay"
        Fourth argument, as in Keras.
    warmup_target : float, optional
        The rate reached at the end of the warm-up; ``None`` skips the warm-up.
    warmup_steps : int, default 0

    Examples
    --------
    >>> from npnet.schedules import CosineDecay
    >>> s = CosineDecay(1.0, decay_steps=10, alpha=0.1)
    >>> s(0), round(s(5), 6), s(10)
    (1.0, 0.55, 0.1)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str | None = "CosineDecay", warmup_target: float | None = None,
                 warmup_steps: int = 0) -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _check_rate(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", minimum=1, owner=owner)
        self.alpha = check_float(alpha, "alpha", low=0.0, high=1.0, owner=owner)
        self.name = _check_name(name, owner)
        self.warmup_target = None if warmup_target is None else _check_rate(warmup_target, "warmup_target", owner)
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0, owner=owner)

    def _decay(self, start: float, t: float) -> float:
        return float(start * _cosine(min(t, self.decay_steps) / self.decay_steps, self.alpha))

    def _value(self, step):
        if self.warmup_target is None:
            return self._decay(self.initial_learning_rate, step)
        if step < self.warmup_steps:
            frac = step / self.warmup_steps
            return float(self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * frac)
        return self._decay(self.warmup_target, step - self.warmup_steps)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(_Checked):
    r"""Cosine decay with warm restarts (SGDR), as Keras' ``CosineDecayRestarts``.

    Period :math:`i = 0, 1, \dots` lasts :math:`T_0 \, m_t^i` steps (:math:`T_0` =
    ``first_decay_steps``, :math:`m_t` = ``t_mul``) and starts at the step
    :math:`T_0 (m_t^i - 1) / (m_t - 1)` (at :math:`T_0 i` when :math:`m_t = 1`). At a
    fraction :math:`f` of period :math:`i`,

    .. math:: lr = lr_0 \left((1 - \alpha)\, m_m^i \, \tfrac12 (1 + \cos \pi f) + \alpha\right)

    with :math:`m_m` = ``m_mul``: each restart begins at ``m_mul`` times the previous
    peak, and the floor :math:`\alpha \, lr_0` stays the same.

    Parameters
    ----------
    initial_learning_rate : float
        :math:`lr_0`, at least 0.
    first_decay_steps : int
        The length of the first period, at least 1.
    t_mul : float, default 2.0
        Each period is ``t_mul`` times longer than the one before; at least 1.
    m_mul : float, default 1.0
        Each restart's peak is ``m_mul`` times the one before; at least 0.
    alpha : float, default 0.0
        The floor as a fraction of ``initial_learning_rate``, in [0, 1].
    name : str, default "SGDRDecay"

    Examples
    --------
    >>> from npnet.schedules import CosineDecayRestarts
    >>> s = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    >>> s(0), round(s(5), 6), s(10), round(s(20), 6), s(30)
    (1.0, 0.5, 0.5, 0.25, 0.25)
    """

    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0,
                 m_mul: float = 1.0, alpha: float = 0.0, name: str | None = "SGDRDecay") -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _check_rate(initial_learning_rate, "initial_learning_rate", owner)
        self.first_decay_steps = check_int(first_decay_steps, "first_decay_steps", minimum=1, owner=owner)
        t_mul = check_float(t_mul, "t_mul", owner=owner)
        if t_mul < 1.0:
            raise ValueError(
                f"{owner}: `t_mul` must be in [1, inf), received {t_mul!r} (shrinking periods add up to a "
                "finite number of steps, after which the rate is undefined)")
        self.t_mul = t_mul
        self.m_mul = check_float(m_mul, "m_mul", low=0.0, owner=owner)
        self.alpha = check_float(alpha, "alpha", low=0.0, high=1.0, owner=owner)
        self.name = _check_name(name, owner)

    def _period(self, fraction: float) -> tuple[int, float]:
        """The restart index and the fraction done of its period, ``fraction`` in first periods."""
        t = self.t_mul
        if t == 1.0:
            i = math.floor(fraction)
            return i, fraction - i
        # Keras' closed form, then a correction so a step exactly on a restart opens the new period.
        i = max(math.floor(math.log(1.0 + fraction * (t - 1.0)) / math.log(t)), 0)

        def start(k: int) -> float:
            try:
                return (t ** k - 1.0) / (t - 1.0)
            except OverflowError:
                return math.inf

        while start(i + 1) <= fraction:
            i += 1
        while i > 0 and start(i) > fraction:
            i -= 1
        return i, (fraction - start(i)) / t ** i

    def _value(self, step):
        i, f = self._period(step / self.first_decay_steps)
        try:
            peak = self.m_mul ** i
        except OverflowError:
            raise ValueError(f"CosineDecayRestarts {self.name!r}: the rate overflows at step {step} "
                             f"(m_mul={self.m_mul} raised to the power of {i} restarts)") from None
        return float(self.initial_learning_rate * _cosine(f, self.alpha, peak))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_BUILTIN: tuple[type[LearningRateSchedule], ...] = (
    ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay, CosineDecayRestarts,
)


def _subclasses() -> list[type]:
    out: list[type] = []
    stack: list[type] = list(LearningRateSchedule.__subclasses__())
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


def _class_named(name: str, custom_objects: dict[str, Any] | None) -> type[LearningRateSchedule]:
    cls = (custom_objects or {}).get(name)
    if cls is not None:
        if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
            raise TypeError(f"schedules.deserialize: custom_objects[{name!r}] must be a LearningRateSchedule "
                            f"subclass, received {cls!r}")
        return cls
    for builtin in _BUILTIN:
        if builtin.__name__ == name:
            return builtin
    found = {c for c in _subclasses() if c.__name__ == name}
    if len(found) > 1:
        raise ValueError(f"schedules.deserialize: several LearningRateSchedule classes are named {name!r}; "
                         "pass the one to use in custom_objects")
    if not found:
        raise ValueError(
            f"schedules.deserialize: unknown learning-rate schedule class {name!r}; known: "
            f"{sorted(c.__name__ for c in _BUILTIN)} and the subclasses of "
            "npnet.schedules.LearningRateSchedule defined so far")
    return found.pop()


def serialize(learning_rate_schedule: LearningRateSchedule) -> dict[str, Any]:
    """A JSON-safe ``{"class_name": ..., "config": ...}`` description, the inverse of :func:`deserialize`.

    Examples
    --------
    >>> import npnet
    >>> npnet.schedules.serialize(npnet.schedules.InverseTimeDecay(0.1, 10, 0.5))
    {'class_name': 'InverseTimeDecay', 'config': {'initial_learning_rate': 0.1, 'decay_steps': 10, \
'decay_rate': 0.5, 'staircase': False, 'name': 'InverseTimeDecay'}}
    """
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(f"schedules.serialize: expected a LearningRateSchedule, received {learning_rate_schedule!r} "
                        f"of type {type(learning_rate_schedule).__name__}")
    return {"class_name": type(learning_rate_schedule).__name__, "config": learning_rate_schedule.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> LearningRateSchedule:
    """The schedule that :func:`serialize` described.

    Keras' extra keys (``"module"``, ``"registered_name"``) are accepted and ignored. A
    subclass of :class:`LearningRateSchedule` of your own is found by its class name, or
    given in ``custom_objects`` (class name to class).

    Examples
    --------
    >>> import npnet
    >>> s = npnet.schedules.deserialize({"class_name": "PolynomialDecay",
    ...                                  "config": {"initial_learning_rate": 0.1, "decay_steps": 100,
    ...                                             "end_learning_rate": 0.01, "power": 0.5}})
    >>> s(100), s.name
    (0.01, 'PolynomialDecay')
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) or not isinstance(
            config.get("config", {}), dict):
        raise ValueError("schedules.deserialize: expected {'class_name': ..., 'config': {...}}, "
                         f"received {config!r}")
    cls = _class_named(config["class_name"], custom_objects)
    return cls.from_config(dict(config.get("config", {})))


def get(identifier: Any, custom_objects: dict[str, Any] | None = None) -> LearningRateSchedule:
    """A schedule from a :func:`serialize` dict, or the schedule itself."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    return deserialize(identifier, custom_objects)
