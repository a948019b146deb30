"""Batch normalization."""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int
from .base import InputSpec, Layer

__all__ = ["BatchNormalization"]


class BatchNormalization(Layer):
    r"""Normalize each feature (channel) over the batch, then scale and shift.

    In training, with the batch mean :math:`\mu` and (biased) variance :math:`\sigma^2`
    over every axis but ``axis``:

    .. math::
        \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

    and the moving statistics follow ``moving = momentum * moving + (1 - momentum) * batch``.
    At inference the moving statistics replace the batch ones.

    Backward in training, over the :math:`m` reduced elements:

    .. math::
        \frac{\partial L}{\partial x} = \frac{\gamma}{m \sqrt{\sigma^2 + \epsilon}}
        \left(m\, dy - \sum dy - \hat x \sum dy\, \hat x\right), \quad
        \frac{\partial L}{\partial \gamma} = \sum dy\, \hat x, \quad
        \frac{\partial L}{\partial \beta} = \sum dy

    ``moving_mean`` and ``moving_variance`` are non-trainable state: saved and loaded with
    the model, counted as non-trainable in ``summary()``.

    Parameters
    ----------
    axis : int, default -1
        The feature axis (channels in NHWC).
    momentum : float, default 0.99
    epsilon : float, default 1e-3
    center, scale : bool, default True
        Learn :math:`\beta` / :math:`\gamma`.
    """

    _xhat: np.ndarray | None = None

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.axis = check_int(axis, "axis", owner=owner)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim < self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self._owner}: `axis` {self.axis} is not a feature axis of input shape {tuple(input_shape)}")
        ax = self.axis % ndim
        size = input_shape[ax]
        if self.scale:
            self.add_weight("gamma", (size,), "ones")
        if self.center:
            self.add_weight("beta", (size,), "zeros")
        self.add_weight("moving_mean", (size,), "zeros", trainable=False)
        self.add_weight("moving_variance", (size,), "ones", trainable=False)
        self._ax = ax
        self.input_spec = InputSpec(ndim=ndim, axes={ax: size})
        super().build(input_shape)

    def _shape(self, v: np.ndarray, ndim: int) -> np.ndarray:
        shape = [1] * ndim
        shape[self._ax] = -1
        return v.reshape(shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        nd = x.ndim
        red = tuple(i for i in range(nd) if i != self._ax)
        channels_last = self._ax == nd - 1
        # Work on a (m, channels) view when the feature axis is last (NHWC, dense).
        x2 = x.reshape(-1, x.shape[-1]) if channels_last else None
        if training:
            if channels_last:
                # einsum reduces a tall (m, channels) array faster than .sum(axis=0); the
                # centred copy lives in a buffer reused between batches.
                m = x2.shape[0]
                mean = np.einsum("ij->j", x2) / m
                xc = self._scratch_buffer("xhat", x2.shape, x2.dtype)
                np.subtract(x2, mean, out=xc)
                var = np.einsum("ij,ij->j", xc, xc) / m
            else:
                mean = x.mean(axis=red)
                var = x.var(axis=red)
            mom = self.momentum
            mm, mv = self.state["moving_mean"], self.state["moving_variance"]
            mm *= mom
            mm += (1 - mom) * mean.astype(mm.dtype)
            mv *= mom
            mv += (1 - mom) * var.astype(mv.dtype)
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
            xc = x2 - mean.astype(x.dtype) if channels_last else None
        inv = (1.0 / np.sqrt(var + self.epsilon)).astype(x.dtype)
        if channels_last:
            xc *= inv
            xhat = xc.reshape(x.shape)
        else:
            xhat = (x - self._shape(mean.astype(x.dtype), nd)) * self._shape(inv, nd)
        self._xhat, self._inv, self._training, self._red = xhat, inv, training, red
        y = xhat * self._shape(self.params["gamma"], nd) if self.scale else xhat.copy()
        if self.center:
            y += self._shape(self.params["beta"], nd)
        return y

    def backward(self, dy):
        self._require_forward("_xhat")
        xhat, red, nd = self._xhat, self._red, dy.ndim
        if self._ax == nd - 1:
            d2, x2 = dy.reshape(-1, dy.shape[-1]), xhat.reshape(-1, xhat.shape[-1])
            sum_dy = np.einsum("ij->j", d2)
            sum_dy_xhat = np.einsum("ij,ij->j", d2, x2)
        else:
            sum_dy = dy.sum(axis=red)
            sum_dy_xhat = (dy * xhat).sum(axis=red)
        if self.scale:
            self.grads["gamma"][...] = sum_dy_xhat
        if self.center:
            self.grads["beta"][...] = sum_dy
        if not self.compute_input_grad:
            return None
        gamma = self.params["gamma"] if self.scale else np.ones_like(self._inv)
        scale = self._shape(gamma * self._inv, nd)
        if not self._training:
            return dy * scale
        m = dy.size // sum_dy.size
        dx = xhat * self._shape((sum_dy_xhat / m).astype(dy.dtype), nd)
        np.subtract(dy, dx, out=dx)
        dx -= self._shape((sum_dy / m).astype(dy.dtype), nd)
        dx *= scale
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
