"""Adam and AdamW, with the optional AMSGrad variant."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import check_bool, check_float
from .base import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), in Keras' form with :math:`\hat\epsilon`.

    At step :math:`t` (1 on the first update):

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        p \leftarrow p - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \frac{m}{\sqrt{v} + \epsilon}

    With ``amsgrad=True`` (Reddi et al.) the denominator uses the running maximum
    :math:`\hat v \leftarrow \max(\hat v, v)` in place of :math:`v`.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    beta_1, beta_2 : float, defaults 0.9 and 0.999
        In [0, 1).
    epsilon : float, default 1e-7
    amsgrad : bool, default False
    **kwargs
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (see :class:`Optimizer`).

    Notes
    -----
    Slots: ``m``, ``v``, and ``v_hat`` with AMSGrad.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.Adam(learning_rate=0.1).step([p], [np.array([0.5], np.float32)])
    >>> p  # the first step moves by about the learning rate
    array([0.9], dtype=float32)
    """

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_float(beta_1, "beta_1", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.beta_2 = check_float(beta_2, "beta_2", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self.amsgrad = check_bool(amsgrad, "amsgrad", owner=owner)
        self._slot_names = ("m", "v", "v_hat") if self.amsgrad else ("m", "v")
        self._nonnegative_slots = ("v", "v_hat")

    def _prepare(self, lr):
        t = self.iterations + 1
        self._alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def _update(self, p, g, slots, buf, lr):
        m, v = slots["m"], slots["v"]
        # m = b1 * m + (1 - b1) * g, written as m = b1 * (m - g) + g: no temporaries.
        m -= g
        m *= self.beta_1
        m += g
        # v = b2 * v + (1 - b2) * g^2, written as Keras does, v += (g^2 - v) * (1 - b2): the
        # form b2 * (v - g^2) + g^2 would lose three digits to cancellation while v << g^2.
        np.multiply(g, g, out=buf)
        buf -= v
        buf *= 1.0 - self.beta_2
        v += buf
        if self.amsgrad:
            v = np.maximum(slots["v_hat"], v, out=slots["v_hat"])
        np.sqrt(v, out=buf)
        buf += self.epsilon
        np.divide(m, buf, out=buf)
        buf *= self._alpha
        p -= buf

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), as Keras' ``AdamW``.

    Before the Adam update, :math:`p \leftarrow p - \eta \lambda p` with
    :math:`\lambda` = ``weight_decay``.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    weight_decay : float, default 0.004
        Required: ``None`` is refused, as in Keras.
    beta_1, beta_2, epsilon, amsgrad
        As :class:`Adam`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> p = np.array([1.0], np.float32)
    >>> npnet.AdamW(learning_rate=0.1, weight_decay=0.5).step([p], [np.array([0.5], np.float32)])
    >>> p  # 1 - 0.1 * 0.5, then the Adam step of about 0.1
    array([0.85], dtype=float32)
    """

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        if weight_decay is None:
            raise ValueError("AdamW: `weight_decay` must be a number, received None")
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, **kwargs)
