"""Adamax: Adam with the infinity norm in place of the second moment."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_float
from .base import Optimizer

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba, section 7.1), as Keras' ``Adamax``.

    At step :math:`t` (1 on the first update):

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
        u \leftarrow \max(\beta_2 u, |g|), \qquad
        p \leftarrow p - \frac{\eta}{1 - \beta_1^t} \frac{m}{u + \epsilon}

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    beta_1, beta_2 : float, defaults 0.9 and 0.999
        In [0, 1).
    epsilon : float, default 1e-7
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slots: ``m`` and ``u``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.Adamax(learning_rate=0.1).step([p], [np.array([0.5], np.float32)])
    >>> p  # 1 - 0.1 / 0.1 * 0.05 / (0.5 + 1e-7)
    array([0.9], dtype=float32)
    """

    _slot_names = ("m", "u")
    _nonnegative_slots = ("u",)

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_float(beta_1, "beta_1", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.beta_2 = check_float(beta_2, "beta_2", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)

    def _prepare(self, lr):
        self._alpha = lr / (1.0 - self.beta_1 ** (self.iterations + 1))

    def _update(self, p, g, slots, buf, lr):
        m, u = slots["m"], slots["u"]
        m -= g  # m = b1 * (m - g) + g
        m *= self.beta_1
        m += g
        u *= self.beta_2
        np.abs(g, out=buf)
        np.maximum(u, buf, out=u)
        np.add(u, self.epsilon, out=buf)
        np.divide(m, buf, out=buf)
        buf *= self._alpha
        p -= buf

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
