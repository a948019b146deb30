"""Lion: steps of fixed size along the sign of an interpolated momentum."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_float
from .base import Optimizer

__all__ = ["Lion"]


class Lion(Optimizer):
    r"""Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms"), as Keras' ``Lion``.

    .. math::
        p \leftarrow p - \eta\, \operatorname{sign}(\beta_1 m + (1 - \beta_1) g), \qquad
        m \leftarrow \beta_2 m + (1 - \beta_2) g

    Every element moves by exactly :math:`\eta` (or not at all), so Lion wants a rate
    3 to 10 times smaller than Adam's.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    beta_1 : float, default 0.9
        In (0, 1]; at 0 Lion would be sign SGD.
    beta_2 : float, default 0.99
        In [0, 1].
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slot: ``m``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0, 1.0], np.float32)
    >>> npnet.Lion(learning_rate=0.1).step([p], [np.array([0.5, -2.0], np.float32)])
    >>> p
    array([0.9, 1.1], dtype=float32)
    """

    _slot_names = ("m",)

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.99, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_float(beta_1, "beta_1", low=0.0, high=1.0, low_inclusive=False, owner=owner)
        self.beta_2 = check_float(beta_2, "beta_2", low=0.0, high=1.0, owner=owner)

    def _update(self, p, g, slots, buf, lr):
        m = slots["m"]
        # sign(b1 * m + (1 - b1) * g), computed as sign(m + (g - m) * (1 - b1))
        np.subtract(g, m, out=buf)
        buf *= 1.0 - self.beta_1
        buf += m
        np.sign(buf, out=buf)
        buf *= lr
        p -= buf
        m -= g  # m = b2 * (m - g) + g
        m *= self.beta_2
        m += g

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
