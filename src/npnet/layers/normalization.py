"""Batch normalization."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _parallel
from .._validation import check_float, check_int
from .base import InputSpec, Layer, weight_options_config
from .core import _set_named_weight_options

__all__ = ["BatchNormalization"]


def _wide_rows(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Channels-last data as rows of ``k`` whole pixels: shape ``(m / k, k * channels)``.

    NumPy broadcasts a per-channel vector fastest along long rows, so the per-channel
    vectors are tiled ``k`` times to match (k is the largest power of two up to 64
    that divides the pixel count m).
    """
    c = a.shape[-1]
    m = a.size // c
    k = 1
    while k < 64 and m % (2 * k) == 0:
        k *= 2
    return a.reshape(m // k, k * c), k


def _fold(parts: list[np.ndarray], k: int) -> np.ndarray:
    """Add up per-chunk sums over wide rows, then the ``k`` pixels of a row, per channel."""
    return _parallel.total(parts).reshape(k, -1).sum(axis=0)


class BatchNormalization(Layer):
    r"""Normalize each feature (channel) over the batch, then scale and shift.

    In training, with the batch mean :math:`\mu` and (biased) variance :math:`\sigma^2`
    over every axis but ``axis``:

    .. math::
        \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

    and the moving statistics follow ``moving = momentum * moving + (1 - momentum) * batch``.
    At inference the moving statistics replace the batch ones.

    A frozen layer (``trainable=False``, set on the layer or on a layer or model that holds
    it) runs in inference mode even when called with ``training=True``, as Keras does: it
    normalizes with the moving statistics and leaves them unchanged, so a pretrained base
    can be frozen and a new head trained on top of it. Its backward is then the gradient
    of the fixed affine map :math:`y = x \cdot \gamma / \sqrt{\sigma^2_{moving} + \epsilon} + \text{shift}`,
    :math:`\partial L / \partial x = dy \cdot \gamma / \sqrt{\sigma^2_{moving} + \epsilon}`.
    Setting ``trainable = True`` again restores the training behaviour.

    Backward in training, over the :math:`m` reduced elements:

    .. math::
        \frac{\partial L}{\partial x} = \frac{\gamma}{m \sqrt{\sigma^2 + \epsilon}}
        \left(m\, dy - \sum dy - \hat x \sum dy\, \hat x\right), \quad
        \frac{\partial L}{\partial \gamma} = \sum dy\, \hat x, \quad
        \frac{\partial L}{\partial \beta} = \sum dy

    Forward computes ``y = x * scale + shift`` with per-feature ``scale = gamma / sqrt(var + eps)``
    and ``shift = beta - mean * scale``. The cache of a call is
    ``(x, mean, inv, scale, training, red)``: ``x`` itself, the statistics used
    (``inv = 1 / sqrt(var + eps)``), the mode and the reduced axes; backward rebuilds
    :math:`\hat x` from them. Channels-last inputs are processed in
    cache-sized chunks of whole pixels on npnet's threads (:func:`npnet.set_num_threads`).

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
    beta_regularizer, gamma_regularizer : str or Regularizer, optional
        Penalties on :math:`\beta` and :math:`\gamma` (see :mod:`npnet.regularizers`).
    beta_constraint, gamma_constraint : str or Constraint, optional
        Projections after each optimizer update (see :mod:`npnet.constraints`).
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_regularizer: Any = None, gamma_regularizer: Any = None,
                 beta_constraint: Any = None, gamma_constraint: Any = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.axis = check_int(axis, "axis", owner=owner)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self.center, self.scale = bool(center), bool(scale)
        _set_named_weight_options(self, owner, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                                  beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim < self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self._owner}: `axis` {self.axis} is not a feature axis of input shape {tuple(input_shape)}")
        ax = self.axis % ndim
        size = input_shape[ax]
        if self.scale:
            self.add_weight("gamma", (size,), "ones", regularizer=self.gamma_regularizer,
                            constraint=self.gamma_constraint)
        if self.center:
            self.add_weight("beta", (size,), "zeros", regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint)
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
        # A frozen layer (trainable=False, or inside a frozen layer or model) runs in
        # inference mode even in training, as in Keras: fine-tuning keeps its statistics.
        training = bool(training) and self.trainable
        if training:
            mean, var = self._batch_moments(x, red)
            mom = self.momentum
            mm, mv = self.state["moving_mean"], self.state["moving_variance"]
            mm *= mom
            mm += (1 - mom) * mean.astype(mm.dtype)
            mv *= mom
            mv += (1 - mom) * var.astype(mv.dtype)
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
        mean = mean.astype(x.dtype)
        inv = (1.0 / np.sqrt(var.astype(np.float64) + self.epsilon)).astype(x.dtype)
        gamma = self.params["gamma"] if self.scale else np.ones_like(inv)
        scale = (gamma * inv).astype(x.dtype)  # y = x * scale + shift
        shift = -mean * scale
        if self.center:
            shift += self.params["beta"]
        # backward reads x, the statistics used, and the mode
        cache = (x, mean, inv, scale, training, red)
        if self._ax == nd - 1:
            xw, k = _wide_rows(x)
            y = self._new_array("y", x.shape, x.dtype)
            yw, scale_w, shift_w = y.reshape(xw.shape), np.tile(scale, k), np.tile(shift, k)

            def part(a: int, b: int) -> None:
                np.multiply(xw[a:b], scale_w, out=yw[a:b])
                yw[a:b] += shift_w

            _parallel.run(part, len(xw), xw.size)
            return y, cache
        return x * self._shape(scale, nd) + self._shape(shift, nd), cache

    def _batch_moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Batch mean and biased variance per feature (two passes: the mean, then the
        mean squared deviation from it)."""
        if self._ax != x.ndim - 1:
            return x.mean(axis=red), x.var(axis=red)
        # Wide rows reduced chunk by chunk (einsum reduces a tall array faster than
        # .sum(axis=0)); each chunk's centred copy stays in the cache.
        xw, k = _wide_rows(x)
        c = x.shape[-1]
        m = x.size // c
        mean = _fold(_parallel.run(lambda a, b: np.einsum("ij->j", xw[a:b]), len(xw), xw.size), k) / m
        mean_w = np.tile(mean, k)

        def squares(a: int, b: int) -> np.ndarray:
            xc = xw[a:b] - mean_w
            return np.einsum("ij,ij->j", xc, xc)

        return mean, _fold(_parallel.run(squares, len(xw), xw.size), k) / m

    def backward(self, cache, dy):
        self._require_cache(cache)
        x, mean, inv, scale, training, red = cache
        nd = dy.ndim
        if self._ax != nd - 1:
            xhat = (x - self._shape(mean, nd)) * self._shape(inv, nd)
            sum_dy, sum_dy_xhat = dy.sum(axis=red), (dy * xhat).sum(axis=red)
            self._set_grads(sum_dy, sum_dy_xhat)
            if not self.compute_input_grad:
                return None
            if not training:
                return dy * self._shape(scale, nd)
            m = dy.size // sum_dy.size
            dx = dy - xhat * self._shape((sum_dy_xhat / m).astype(dy.dtype), nd)
            dx -= self._shape((sum_dy / m).astype(dy.dtype), nd)
            dx *= self._shape(scale, nd)
            return dx
        dw, k = _wide_rows(dy)
        xw = x.reshape(dw.shape)
        m = dy.size // dy.shape[-1]
        mean_w = np.tile(mean, k)

        def sums(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            return np.einsum("ij->j", dw[a:b]), np.einsum("ij,ij->j", dw[a:b], xw[a:b] - mean_w)

        parts = _parallel.run(sums, len(dw), dw.size)
        sum_dy = _fold([p[0] for p in parts], k)
        sum_dy_xhat = _fold([p[1] for p in parts], k) * inv
        self._set_grads(sum_dy, sum_dy_xhat)
        if not self.compute_input_grad:
            return None
        dx = self._new_array("dx", dy.shape, dy.dtype)
        dxw, scale_w = dx.reshape(dw.shape), np.tile(scale, k)
        if training:
            # dx = scale * (dy - xhat * sum(dy xhat) / m - sum(dy) / m)
            #    = dy * scale - x * q + (mean * q - scale * sum(dy) / m),  q = scale * inv * sum(dy xhat) / m
            q = (scale * inv * sum_dy_xhat / m).astype(dy.dtype)
            q_w, r_w = np.tile(q, k), np.tile((mean * q - scale * sum_dy / m).astype(dy.dtype), k)
        else:
            q_w = r_w = None

        def part(a: int, b: int) -> None:
            out = dxw[a:b]
            if q_w is None:
                np.multiply(dw[a:b], scale_w, out=out)
                return
            np.multiply(xw[a:b], q_w, out=out)
            np.subtract(dw[a:b] * scale_w, out, out=out)
            out += r_w

        _parallel.run(part, len(dw), dw.size)
        return dx

    def _set_grads(self, sum_dy: np.ndarray, sum_dy_xhat: np.ndarray) -> None:
        if self.scale:
            self.grads["gamma"][...] = sum_dy_xhat
        if self.center:
            self.grads["beta"][...] = sum_dy

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **weight_options_config(self, "beta_regularizer", "gamma_regularizer", "beta_constraint",
                                        "gamma_constraint")}
