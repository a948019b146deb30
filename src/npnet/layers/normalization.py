"""Batch normalization."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from .. import _parallel
from .. import initializers as _initializers
from .._validation import check_bool, check_float, check_int
from .base import InputSpec, Layer, weight_options_config
from .core import _set_named_weight_options

__all__ = ["BatchNormalization", "LayerNormalization"]


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
    beta_initializer, gamma_initializer : str or Initializer, default "zeros", "ones"
    moving_mean_initializer, moving_variance_initializer : str or Initializer, default "zeros", "ones"
        Initial values of the moving statistics.
    beta_regularizer, gamma_regularizer : str or Regularizer, optional
        Penalties on :math:`\beta` and :math:`\gamma` (see :mod:`npnet.regularizers`).
    beta_constraint, gamma_constraint : str or Constraint, optional
        Projections after each optimizer update (see :mod:`npnet.constraints`).
    renorm : False
        Batch renormalization is not implemented: ``True`` is refused.
    renorm_clipping : dict or None, renorm_momentum : float, default 0.99
        Accepted and saved, as Keras does; without ``renorm`` they have no effect.
    synchronized : False
        Statistics across devices; npnet trains in one process, so ``True`` is refused
        (as Keras refuses it outside its TensorFlow backend).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> bn = npnet.layers.BatchNormalization(moving_variance_initializer="zeros", epsilon=0.25)
    >>> bn(np.array([[1.0], [2.0]]))  # inference: (x - 0) / sqrt(0 + 0.25)
    array([[2.],
           [4.]])
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 moving_mean_initializer: Any = "zeros", moving_variance_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None,
                 beta_constraint: Any = None, gamma_constraint: Any = None, renorm: bool = False,
                 renorm_clipping: dict | None = None, renorm_momentum: float = 0.99, synchronized: bool = False,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.axis = check_int(axis, "axis", owner=owner)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self.center = check_bool(center, "center", owner=type(self).__name__)
        self.scale = check_bool(scale, "scale", owner=type(self).__name__)
        inits = {"beta_initializer": beta_initializer, "gamma_initializer": gamma_initializer,
                 "moving_mean_initializer": moving_mean_initializer,
                 "moving_variance_initializer": moving_variance_initializer}
        _set_named_weight_options(self, owner, inits, beta_regularizer=beta_regularizer,
                                  gamma_regularizer=gamma_regularizer, beta_constraint=beta_constraint,
                                  gamma_constraint=gamma_constraint)
        for arg, value in inits.items():
            setattr(self, arg, _initializers.get(value, owner=f"`{arg}` of {owner}"))
        self.renorm = check_bool(renorm, "renorm", owner=owner)
        if self.renorm:
            raise ValueError(f"{owner}: batch renormalization is not supported: expected renorm=False, "
                             "received renorm=True")
        if renorm_clipping is not None and not isinstance(renorm_clipping, dict):
            raise TypeError(f"{owner}: `renorm_clipping` must be a dict or None, received {renorm_clipping!r}")
        self.renorm_clipping = None if renorm_clipping is None else dict(renorm_clipping)
        self.renorm_momentum = check_float(renorm_momentum, "renorm_momentum", low=0.0, high=1.0, owner=owner)
        self.synchronized = check_bool(synchronized, "synchronized", owner=owner)
        if self.synchronized:
            raise ValueError(f"{owner}: `synchronized=True` (statistics synchronized across devices) is not "
                             "supported; npnet trains in one process: use synchronized=False")

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim < self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self._owner}: `axis` {self.axis} is not a feature axis of input shape {tuple(input_shape)}")
        ax = self.axis % ndim
        size = input_shape[ax]
        if self.scale:
            self.add_weight("gamma", (size,), self.gamma_initializer, regularizer=self.gamma_regularizer,
                            constraint=self.gamma_constraint)
        if self.center:
            self.add_weight("beta", (size,), self.beta_initializer, regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint)
        self.add_weight("moving_mean", (size,), self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", (size,), self.moving_variance_initializer, trainable=False)
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
                **{arg: _initializers.serialize(getattr(self, arg)) for arg in (
                    "beta_initializer", "gamma_initializer", "moving_mean_initializer",
                    "moving_variance_initializer")},
                **weight_options_config(self, "beta_regularizer", "gamma_regularizer", "beta_constraint",
                                        "gamma_constraint"),
                "renorm": self.renorm, "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum, "synchronized": self.synchronized}


class LayerNormalization(Layer):
    r"""Normalize each sample over ``axis``, then scale and shift (Ba et al., 2016).

    Unlike :class:`BatchNormalization`, the statistics are those of one sample, so training
    and inference compute the same thing and there are no moving statistics. With the
    mean :math:`\mu` and biased variance :math:`\sigma^2` of each sample over the
    :math:`m` elements of the normalized axes:

    .. math::
        \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

    ``gamma`` and ``beta`` have the shape of the normalized axes (``(20, 30, 40)`` for
    ``axis=[1, 2, 3]`` on inputs ``(batch, 20, 30, 40)``) and broadcast over the others.

    Backward, with :math:`g = \gamma\, dy` and the means :math:`\langle\cdot\rangle` taken
    per sample over the normalized axes:

    .. math::
        \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
        \left(g - \langle g \rangle - \hat x \langle g\, \hat x \rangle\right), \quad
        \frac{\partial L}{\partial \gamma} = \sum_{\text{other axes}} dy\, \hat x, \quad
        \frac{\partial L}{\partial \beta} = \sum_{\text{other axes}} dy

    With ``rms_scaling=True`` (deprecated in Keras, kept for its saved models) the output is
    :math:`y = \gamma\, u` with :math:`u = x / \sqrt{\sigma^2 + \epsilon}` (the variance, not
    the mean square, as in Keras), there is no ``beta``, and

    .. math::
        \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
        \left(g - \hat x \langle g\, u \rangle\right), \quad
        \frac{\partial L}{\partial \gamma} = \sum_{\text{other axes}} dy\, u

    The cache of a call is ``(xhat, inv, u)`` with ``inv = 1 / sqrt(var + eps)`` per sample
    (``u`` is None without ``rms_scaling``).

    Parameters
    ----------
    axis : int or list of int, default -1
        The axis or axes to normalize over (not the batch axis 0).
    epsilon : float, default 1e-3
        Added to the variance; must be > 0.
    center, scale : bool, default True
        Learn :math:`\beta` / :math:`\gamma`.
    beta_initializer, gamma_initializer : str or Initializer, default "zeros", "ones"
    beta_regularizer, gamma_regularizer : str or Regularizer, optional
        Penalties on :math:`\beta` and :math:`\gamma` (see :mod:`npnet.regularizers`).
    beta_constraint, gamma_constraint : str or Constraint, optional
        Projections after each optimizer update (see :mod:`npnet.constraints`).
    rms_scaling : bool, default False
        Keras' deprecated variant above; warns, as Keras does.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> layer = npnet.layers.LayerNormalization()
    >>> y = layer(np.array([[1.0, 2.0, 3.0]], dtype="float32"))
    >>> np.round(y, 4)
    array([[-1.2238,  0.    ,  1.2238]], dtype=float32)
    >>> layer = npnet.layers.LayerNormalization(axis=[1, 2])
    >>> layer.build((None, 4, 5, 6))
    >>> layer.params["gamma"].shape
    (4, 5)
    """

    supports_masking = True

    def __init__(self, axis: int | list[int] | tuple[int, ...] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, rms_scaling: bool = False,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise ValueError(f"{owner}: `axis` must name at least one axis, received {axis!r}")
            self.axis: int | list[int] = [check_int(a, "axis", owner=owner) for a in axis]
        elif isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"{owner}: `axis` must be an int or a list of ints, received {axis!r}")
        else:
            self.axis = int(axis)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self.center = check_bool(center, "center", owner=owner)
        self.scale = check_bool(scale, "scale", owner=owner)
        self.rms_scaling = check_bool(rms_scaling, "rms_scaling", owner=owner)
        if self.rms_scaling:
            warnings.warn(f"{owner}: `rms_scaling=True` is deprecated in Keras: it scales by the variance, not "
                          "the root mean square", UserWarning, stacklevel=2)
        _set_named_weight_options(self, owner, {"beta_initializer": beta_initializer,
                                                "gamma_initializer": gamma_initializer},
                                  beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                                  beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer

    def _axes(self, ndim: int, shape: Any) -> tuple[int, ...]:
        """The normalized axes, non-negative and sorted; an error names a bad one."""
        given = self.axis if isinstance(self.axis, list) else [self.axis]
        axes = []
        for a in given:
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ValueError(f"{self._owner}: `axis` {self.axis} must name axes 1 to {ndim - 1} (or -1 to "
                                 f"-{ndim - 1}) of input shape {tuple(shape)}, received axis {a}")
            axes.append(a % ndim)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{self._owner}: `axis` {self.axis} names the same axis twice "
                             f"for input shape {tuple(shape)}")
        return tuple(sorted(axes))

    def build(self, input_shape):
        ndim = len(input_shape)
        axes = self._axes(ndim, input_shape)
        shape = tuple(None if input_shape[a] is None else int(input_shape[a]) for a in axes)
        if self.scale or self.rms_scaling:
            self.add_weight("gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                            constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.add_weight("beta", shape, self.beta_initializer, regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint)
        self._norm_axes = axes
        self._other_axes = tuple(i for i in range(ndim) if i not in axes)
        self._bshape = tuple(input_shape[i] if i in axes else 1 for i in range(ndim))
        self.input_spec = InputSpec(ndim=ndim, axes={a - ndim: input_shape[a] for a in axes
                                                     if input_shape[a] is not None})
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        ax = self._norm_axes
        mean = x.mean(axis=ax, keepdims=True)
        var = np.square(x - mean).mean(axis=ax, keepdims=True)
        inv = (1.0 / np.sqrt(var + self.epsilon)).astype(x.dtype)
        xhat = (x - mean) * inv
        u = x * inv if self.rms_scaling else None
        y = xhat if u is None else u
        if "gamma" in self.params:
            y = y * self.params["gamma"].reshape(self._bshape)
        if "beta" in self.params:
            y = y + self.params["beta"].reshape(self._bshape)
        if y is xhat:
            y = y.copy()  # the output must not alias what the cache keeps
        return y.astype(x.dtype, copy=False), (xhat, inv, u)

    def backward(self, cache, dy):
        self._require_cache(cache)
        xhat, inv, u = cache
        ax, other = self._norm_axes, self._other_axes
        n = xhat if u is None else u
        if "gamma" in self.params:
            self.grads["gamma"][...] = (dy * n).sum(axis=other).reshape(self.grads["gamma"].shape)
        if "beta" in self.params:
            self.grads["beta"][...] = dy.sum(axis=other).reshape(self.grads["beta"].shape)
        if not self.compute_input_grad:
            return None
        g = dy * self.params["gamma"].reshape(self._bshape) if "gamma" in self.params else dy
        dx = g - xhat * (g * n).mean(axis=ax, keepdims=True)
        if u is None:
            dx -= g.mean(axis=ax, keepdims=True)
        dx *= inv
        return dx.astype(dy.dtype, copy=False)

    def compute_output_shape(self, input_shape):
        self._axes(len(input_shape), input_shape)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": _initializers.serialize(self.beta_initializer),
                "gamma_initializer": _initializers.serialize(self.gamma_initializer),
                **weight_options_config(self, "beta_regularizer", "gamma_regularizer", "beta_constraint",
                                        "gamma_constraint")}
