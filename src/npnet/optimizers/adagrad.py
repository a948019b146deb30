"""Adagrad: per-parameter rates that shrink with the sum of squared gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_float
from .base import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al.), as Keras' ``Adagrad``.

    The accumulator :math:`a` starts at ``initial_accumulator_value`` and sums the squared
    gradients:

    .. math::
        a \leftarrow a + g^2, \qquad
        p \leftarrow p - \frac{\eta\, g}{\sqrt{a + \epsilon}}

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        Adagrad usually wants a larger rate than Adam; the original paper's form is 1.0.
    initial_accumulator_value : float, default 0.1
        Starting value of the accumulators, at least 0.
    epsilon : float, default 1e-7
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slot: ``accumulator``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.Adagrad(learning_rate=0.1).step([p], [np.array([0.5], np.float32)])
    >>> p  # 1 - 0.1 * 0.5 / sqrt(0.1 + 0.25 + 1e-7)
    array([0.91548], dtype=float32)
    """

    _slot_names = ("accumulator",)
    _nonnegative_slots = ("accumulator",)

    def __init__(self, learning_rate: Any = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.initial_accumulator_value = check_float(initial_accumulator_value, "initial_accumulator_value",
                                                     low=0.0, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)

    def build(self, params):
        """Create the state for ``params``; the accumulators start at ``initial_accumulator_value``."""
        super().build(params)
        for a in self.slots["accumulator"]:
            a.fill(self.initial_accumulator_value)

    def _update(self, p, g, slots, buf, lr):
        a = slots["accumulator"]
        np.multiply(g, g, out=buf)
        a += buf
        np.add(a, self.epsilon, out=buf)
        np.sqrt(buf, out=buf)
        np.divide(g, buf, out=buf)
        buf *= lr
        p -= buf

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
