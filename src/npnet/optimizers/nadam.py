"""Nadam: Adam with Nesterov momentum and Dozat's momentum schedule."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_float
from .base import Optimizer

__all__ = ["Nadam"]


class Nadam(Optimizer):
    r"""Nadam (Dozat), as Keras' ``Nadam``.

    Momentum follows the schedule :math:`\mu_t = \beta_1 (1 - \tfrac12 \cdot 0.96^t)`, and
    :math:`\Pi_t = \prod_{i \le t} \mu_i`. At step :math:`t` (1 on the first update):

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2,

        \hat m = \frac{\mu_{t+1}\, m}{1 - \Pi_t \mu_{t+1}} + \frac{(1 - \mu_t)\, g}{1 - \Pi_t}, \qquad
        \hat v = \frac{v}{1 - \beta_2^t}, \qquad
        p \leftarrow p - \frac{\eta\, \hat m}{\sqrt{\hat v} + \epsilon}

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
    Slots: ``m`` and ``v``. The product :math:`\Pi_t` depends on the step count alone and
    is recomputed from ``iterations`` after a state is restored.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.Nadam(learning_rate=0.1).step([p], [np.array([0.5], np.float32)])
    >>> p  # the first step moves by about the learning rate
    array([0.9], dtype=float32)
    """

    _slot_names = ("m", "v")
    _nonnegative_slots = ("v",)
    _scratch_names = ("tmp",)

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_float(beta_1, "beta_1", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.beta_2 = check_float(beta_2, "beta_2", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self._product = 1.0  # the momentum product over steps 1 .. _product_steps
        self._product_steps = 0

    def _mu(self, t: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96**t)

    def _prepare(self, lr):
        if self._product_steps != self.iterations:  # a restored or reset step count
            self._product, self._product_steps = 1.0, 0
            for t in range(1, self.iterations + 1):
                self._product *= self._mu(t)
            self._product_steps = self.iterations
        t = self.iterations + 1
        mu_t, mu_next = self._mu(t), self._mu(t + 1)
        self._product *= mu_t
        self._product_steps = t
        c_m = mu_next / (1.0 - self._product * mu_next)
        c_g = (1.0 - mu_t) / (1.0 - self._product)  # > 0 since mu_t < 1
        # m_hat = c_g * (g + (c_m / c_g) * m); sqrt(v_hat) = sqrt(v * v_scale)
        self._m_ratio = c_m / c_g
        self._v_scale = 1.0 / (1.0 - self.beta_2**t)
        self._alpha = lr * c_g

    def _update(self, p, g, slots, buf, lr):
        m, v, tmp = slots["m"], slots["v"], slots["tmp"]
        m -= g  # m = b1 * (m - g) + g
        m *= self.beta_1
        m += g
        np.multiply(g, g, out=buf)  # v += (g^2 - v) * (1 - b2)
        buf -= v
        buf *= 1.0 - self.beta_2
        v += buf
        np.multiply(v, self._v_scale, out=buf)
        np.sqrt(buf, out=buf)
        buf += self.epsilon
        np.multiply(m, self._m_ratio, out=tmp)
        tmp += g
        tmp /= buf
        tmp *= self._alpha
        p -= tmp

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

