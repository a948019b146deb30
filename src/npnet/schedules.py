"""Learning-rate schedules: callables mapping the optimizer's step count to a rate.

Pass one as an optimizer's ``learning_rate``; the optimizer calls it with its
``iterations`` (0 on the first step) before each update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._validation import check_float, check_int

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "CosineDecay",
    "get",
    "serialize",
]


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step) -> float`` and ``get_config``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class ExponentialDecay(LearningRateSchedule):
    r"""``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.

    Examples
    --------
    >>> from npnet.schedules import ExponentialDecay
    >>> s = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> s(0), s(10), s(20)
    (0.1, 0.05, 0.025)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False) -> None:
        owner = type(self).__name__
        self.initial_learning_rate = check_float(initial_learning_rate, "initial_learning_rate", low=0.0, owner=owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", minimum=1, owner=owner)
        self.decay_rate = check_float(decay_rate, "decay_rate", low=0.0, low_inclusive=False, owner=owner)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while ``step <= boundaries[1]``, ...

    Examples
    --------
    >>> from npnet.schedules import PiecewiseConstantDecay
    >>> s = PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])
    >>> s(100), s(101), s(500)
    (1.0, 0.5, 0.1)
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]) -> None:
        owner = type(self).__name__
        self.boundaries = [check_int(b, "boundaries", owner=owner) for b in boundaries]
        self.values = [check_float(v, "values", low=0.0, owner=owner) for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"{owner}: `values` must have one more entry than `boundaries`, received "
                f"{len(self.values)} values and {len(self.boundaries)} boundaries"
            )
        if any(b2 <= b1 for b1, b2 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{owner}: `boundaries` must increase strictly, received {self.boundaries}")

    def __call__(self, step):
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    r"""Cosine decay with an optional linear warm-up, as Keras' ``CosineDecay``.

    Without warm-up, :math:`lr(t) = lr_0 \left((1 - \alpha)\, \tfrac12 (1 + \cos(\pi \min(t, T) / T)) + \alpha\right)`
    with :math:`T` = ``decay_steps``. With ``warmup_target`` and ``warmup_steps`` = W, the
    rate first rises linearly from ``initial_learning_rate`` to ``warmup_target`` over W
    steps, then decays from ``warmup_target`` as above with :math:`t - W`.

    Examples
    --------
    >>> from npnet.schedules import CosineDecay
    >>> s = CosineDecay(1.0, decay_steps=10, alpha=0.1)
    >>> s(0), round(s(5), 6), s(10)
    (1.0, 0.55, 0.1)
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        owner = type(self).__name__
        self.initial_learning_rate = check_float(initial_learning_rate, "initial_learning_rate", low=0.0, owner=owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", minimum=1, owner=owner)
        self.alpha = check_float(alpha, "alpha", low=0.0, high=1.0, owner=owner)
        self.warmup_target = None if warmup_target is None else check_float(warmup_target, "warmup_target", low=0.0, owner=owner)
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0, owner=owner)

    def _decay(self, start: float, t: float) -> float:
        t = min(t, self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * t / self.decay_steps))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(self.initial_learning_rate, step)
        if step < self.warmup_steps:
            frac = step / self.warmup_steps
            return self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * frac
        return self._decay(self.warmup_target, step - self.warmup_steps)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


_BY_CLASS: dict[str, type[LearningRateSchedule]] = {
    c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)
}


def get(config: dict[str, Any]) -> LearningRateSchedule:
    """Rebuild a schedule from ``serialize(schedule)``."""
    if not isinstance(config, dict) or config.get("class_name") not in _BY_CLASS:
        raise ValueError(f"unknown learning-rate schedule {config!r}; known: {sorted(_BY_CLASS)}")
    return _BY_CLASS[config["class_name"]].from_config(config.get("config", {}))


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Return a JSON-safe ``{"class_name", "config"}`` description (inverse of ``get``)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}
