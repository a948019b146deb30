"""Adadelta: steps scaled by running means of squared gradients and squared steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_float
from .base import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler), as Keras' ``Adadelta``.

    With running means :math:`a` of the squared gradients and :math:`d` of the squared
    steps, both zero at the start:

    .. math::
        a \leftarrow \rho a + (1 - \rho) g^2, \qquad
        \Delta = \frac{\sqrt{d + \epsilon}}{\sqrt{a + \epsilon}}\, g, \qquad
        d \leftarrow \rho d + (1 - \rho) \Delta^2, \qquad
        p \leftarrow p - \eta \Delta

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        The original paper's form is 1.0.
    rho : float, default 0.95
        Decay of the running means, in [0, 1).
    epsilon : float, default 1e-7
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slots: ``accumulated_grad`` (:math:`a`) and ``accumulated_delta`` (:math:`d`).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.Adadelta(learning_rate=1.0).step([p], [np.array([0.5], np.float32)])
    >>> p  # 1 - sqrt(1e-7) * 0.5 / sqrt(0.05 * 0.25 + 1e-7)
    array([0.998586], dtype=float32)
    """

    _slot_names = ("accumulated_grad", "accumulated_delta")
    _nonnegative_slots = ("accumulated_grad", "accumulated_delta")
    _scratch_names = ("tmp",)

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.rho = check_float(rho, "rho", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)

    def _update(self, p, g, slots, buf, lr):
        a, d, tmp = slots["accumulated_grad"], slots["accumulated_delta"], slots["tmp"]
        # running means as x += (new - x) * (1 - rho)
        np.multiply(g, g, out=buf)
        buf -= a
        buf *= 1.0 - self.rho
        a += buf
        # buf = sqrt(d + eps) * g / sqrt(a + eps): the step before the learning rate
        np.add(d, self.epsilon, out=buf)
        np.sqrt(buf, out=buf)
        buf *= g
        np.add(a, self.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        buf /= tmp
        np.multiply(buf, buf, out=tmp)
        tmp -= d
        tmp *= 1.0 - self.rho
        d += tmp
        buf *= lr
        p -= buf

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
