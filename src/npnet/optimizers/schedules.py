"""Learning-rate schedules under Keras' spelling ``optimizers.schedules``.

The same classes as :mod:`npnet.schedules`, so ``npnet.optimizers.schedules.CosineDecay``
and ``npnet.schedules.CosineDecay`` are one class.

Examples
--------
>>> import npnet.optimizers.schedules
>>> npnet.optimizers.schedules.ExponentialDecay is npnet.schedules.ExponentialDecay
True
"""

from ..schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    get,
    serialize,
)

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
