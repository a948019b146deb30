"""Stochastic gradient descent, with optional (Nesterov) momentum."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_bool, check_float
from .base import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (Nesterov) momentum, as Keras' ``SGD``.

    With velocity :math:`v` (zero at the start), momentum :math:`\mu` and rate :math:`\eta`:

    .. math::
        v \leftarrow \mu v - \eta g, \qquad
        p \leftarrow p + v \ \ \text{(plain)}, \qquad
        p \leftarrow p + \mu v - \eta g \ \ \text{(Nesterov)}

    Without momentum it is :math:`p \leftarrow p - \eta g`.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.01
    momentum : float, default 0.0
        In [0, 1].
    nesterov : bool, default False
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slot: ``velocity`` (only with momentum).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.SGD(learning_rate=0.1).step([p], [np.array([2.0], np.float32)])
    >>> p
    array([0.8], dtype=float32)
    """

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=type(self).__name__)
        self.nesterov = check_bool(nesterov, "nesterov", owner=type(self).__name__)
        self._slot_names = ("velocity",) if self.momentum else ()

    def _update(self, p, g, slots, buf, lr):
        if not self.momentum:
            np.multiply(g, lr, out=buf)
            p -= buf
            return
        v = slots["velocity"]
        v *= self.momentum
        np.multiply(g, lr, out=buf)
        v -= buf
        if self.nesterov:
            # p += momentum * v - lr * g, with buf holding lr * g
            p -= buf
            np.multiply(v, self.momentum, out=buf)
            p += buf
        else:
            p += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
