"""RMSprop, plain or centered, with optional momentum."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_bool, check_float
from .base import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton), as Keras' ``RMSprop``.

    With a running mean square :math:`s` of the gradients:

    .. math::
        s \leftarrow \rho s + (1 - \rho) g^2, \qquad
        \Delta = \frac{\eta\, g}{\sqrt{s + \epsilon}}, \qquad
        p \leftarrow p - \Delta

    The :math:`\epsilon` sits inside the square root, so a gradient as small as
    :math:`\sqrt\epsilon` is not blown up to a step of size :math:`\eta`.
    ``centered=True`` also keeps a running mean :math:`\bar g \leftarrow \rho \bar g + (1 - \rho) g`
    and divides by :math:`\sqrt{s - \bar g^2 + \epsilon}`, an estimate of the variance.
    With ``momentum`` :math:`\mu > 0` the step goes through a velocity:
    :math:`u \leftarrow \mu u + \Delta`, :math:`p \leftarrow p - u`.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    rho : float, default 0.9
        Decay of the running means, in [0, 1).
    momentum : float, default 0.0
        In [0, 1].
    epsilon : float, default 1e-7
    centered : bool, default False
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slots: ``s``, ``u`` (with momentum), ``mg`` (the mean gradient, when centered).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([10.0], np.float32)
    >>> npnet.RMSprop(learning_rate=0.1).step([p], [np.array([10.0], np.float32)])
    >>> p  # 10 - 0.1 * 10 / sqrt(0.1 * 100 + 1e-7)
    array([9.683772], dtype=float32)
    """

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.rho = check_float(rho, "rho", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self.centered = check_bool(centered, "centered", owner=owner)
        self._slot_names = ("s",) + (("u",) if self.momentum else ()) + (("mg",) if self.centered else ())
        self._nonnegative_slots = ("s",)

    def _update(self, p, g, slots, buf, lr):
        s = slots["s"]
        # s = rho * s + (1 - rho) * g^2, computed as s += (g^2 - s) * (1 - rho).
        np.multiply(g, g, out=buf)
        buf -= s
        buf *= 1.0 - self.rho
        s += buf
        if self.centered:
            mg = slots["mg"]
            mg -= g  # mg = rho * (mg - g) + g
            mg *= self.rho
            mg += g
            np.multiply(mg, mg, out=buf)
            np.subtract(s, buf, out=buf)
            buf += self.epsilon
        else:
            np.add(s, self.epsilon, out=buf)
        np.sqrt(buf, out=buf)
        np.divide(g, buf, out=buf)
        buf *= lr
        if self.momentum:
            u = slots["u"]
            u *= self.momentum
            u += buf
            p -= u
        else:
            p -= buf

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
