r"""Depthwise and depthwise-separable 2-D convolutions in NHWC layout.

A depthwise convolution filters each input channel on its own, with ``depth_multiplier``
kernels per channel, and never mixes channels. With a padded input :math:`x_p`, stride
:math:`s`, dilation :math:`d` and kernel :math:`K` of shape ``(kh, kw, C, M)``:

.. math::
    z_{n,i,j,\,cM + m} = \sum_{a,b} x_{p;\,n,\, i s_h + a d_h,\, j s_w + b d_w,\, c}\; K_{a,b,c,m}

Output channel :math:`c M + m` is multiplier :math:`m` of input channel :math:`c`, as in
Keras. A separable convolution follows it with a pointwise (1x1) convolution that mixes
the :math:`C M` channels into ``filters``: a GEMM. Output sizes and ``"same"`` padding are
those of :class:`npnet.layers.Conv2D`; unlike Conv2D and as in Keras 3, ``strides > 1``
may go with ``dilation_rate > 1``.

Each output is a sum over kernel offsets of a strided *tap* of the input times one
kernel row (see :mod:`npnet.layers._taps`): ``kh * kw * M`` element-wise products, no
im2col copy. With few weights per output this measures faster than a batched GEMM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import check_choice, check_data_format, check_int, check_tuple
from ._taps import tap
from .activation import _Activated
from .base import InputSpec, Layer, weight_options_config
from .conv import conv_output_size, same_padding
from .core import _set_named_weight_options

__all__ = ["DepthwiseConv2D", "SeparableConv2D", "depthwise_conv2d", "depthwise_conv2d_backward"]

_LAYOUT = "(batch, height, width, channels)"


def depthwise_conv2d(xp: np.ndarray, kernel: np.ndarray, strides: tuple[int, ...], dilation: tuple[int, ...],
                     out: np.ndarray) -> np.ndarray:
    """Fill ``out`` of shape ``(n, oh, ow, C, M)`` with the depthwise convolution of the
    padded NHWC batch ``xp`` by ``kernel`` ``(kh, kw, C, M)`` and return it."""
    kh, kw, _, multiplier = kernel.shape
    out_hw = out.shape[1:3]
    tmp = np.empty(out.shape[:4], dtype=out.dtype)
    for m in range(multiplier):
        acc = out[..., m]
        for a in range(kh):
            for b in range(kw):
                taps = tap(xp, a, b, strides, dilation, out_hw)
                if a == b == 0:
                    np.multiply(taps, kernel[a, b, :, m], out=acc)
                else:
                    np.multiply(taps, kernel[a, b, :, m], out=tmp)
                    acc += tmp
    return out


def depthwise_conv2d_backward(xp: np.ndarray, dz: np.ndarray, kernel: np.ndarray, strides: tuple[int, ...],
                              dilation: tuple[int, ...], dkernel: np.ndarray, dxp: np.ndarray | None) -> None:
    r"""Gradients of :func:`depthwise_conv2d` from ``dz`` ``(n, oh, ow, C, M)``.

    .. math::
        \frac{\partial L}{\partial K_{a,b,c,m}} = \sum_{n,i,j} \mathrm{tap}_{ab}(x_p)_{n,i,j,c}\, dz_{n,i,j,c,m},
        \qquad \mathrm{tap}_{ab}(dx_p) \mathrel{+}= dz_{\cdot,m}\, K_{a,b,\cdot,m}

    Sets ``dkernel`` (shape of ``kernel``) and, unless ``dxp`` is None, fills ``dxp``
    (shape of ``xp``) with the gradient of the padded input.
    """
    kh, kw, _, multiplier = kernel.shape
    out_hw = dz.shape[1:3]
    if dxp is not None:
        dxp.fill(0)
        tmp = np.empty(dz.shape[:4], dtype=dz.dtype)
    for m in range(multiplier):
        dm = dz[..., m] if multiplier == 1 else np.ascontiguousarray(dz[..., m])
        for a in range(kh):
            for b in range(kw):
                np.einsum("nijc,nijc->c", tap(xp, a, b, strides, dilation, out_hw), dm, out=dkernel[a, b, :, m])
                if dxp is not None:
                    np.multiply(dm, kernel[a, b, :, m], out=tmp)
                    tap(dxp, a, b, strides, dilation, out_hw)[...] += tmp


class _DepthwiseBase(_Activated, Layer):
    """Arguments, geometry, padding and the depthwise kernel shared by the two layers."""

    _build_spec = InputSpec(ndim=4, layout=_LAYOUT)
    #: The parameter name of the depthwise kernel (Keras: "kernel" in DepthwiseConv2D).
    _depthwise_key = "depthwise_kernel"
    # set from the constructor arguments by _set_named_weight_options
    depthwise_regularizer: Any
    depthwise_constraint: Any

    def _set_depthwise(self, kernel_size: Any, strides: Any, padding: str, depth_multiplier: int,
                       data_format: str | None, dilation_rate: Any, activation: Any, use_bias: bool,
                       depthwise_initializer: Any, bias_initializer: Any) -> None:
        owner = type(self).__name__
        self.kernel_size = check_tuple(kernel_size, "kernel_size", 2, owner=owner)
        self.strides = check_tuple(strides, "strides", 2, owner=owner)
        self.padding = check_choice(padding, "padding", ["valid", "same"], owner=owner)
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier", minimum=1, owner=owner)
        self.data_format = check_data_format(data_format, _LAYOUT, owner=owner)
        self.dilation_rate = check_tuple(dilation_rate, "dilation_rate", 2, owner=owner)
        _set_named_weight_options(self, owner, {"depthwise_initializer": depthwise_initializer,
                                                "bias_initializer": bias_initializer})
        self._set_affine(activation, use_bias, depthwise_initializer, bias_initializer)
        self.depthwise_initializer = self.__dict__.pop("kernel_initializer")

    def _geometry(self, h: int, w: int) -> tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]:
        """Output size and the zeros ((top, bottom), (left, right)) added to the input."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        pads = ((same_padding(h, kh, sh, dh), same_padding(w, kw, sw, dw)) if self.padding == "same"
                else ((0, 0), (0, 0)))
        return (conv_output_size(h, kh, sh, self.padding, dh), conv_output_size(w, kw, sw, self.padding, dw)), pads

    def _check_size(self, h: int, w: int) -> None:
        (oh, ow), _ = self._geometry(h, w)
        if oh < 1 or ow < 1:
            eff = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
            raise ValueError(f"{self._owner}: kernel of effective size {eff} is larger than the input ({h}, {w}) "
                             "with padding='valid'")

    def _build_depthwise(self, input_shape: Any) -> int:
        """Check the input shape, create the depthwise kernel; return the channel count."""
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner}: expected input of rank 4 {_LAYOUT}, received shape {tuple(input_shape)}")
        h, w, c = input_shape[1:]
        if h is not None and w is not None:
            self._check_size(h, w)
        kh, kw = self.kernel_size
        self.add_weight(self._depthwise_key, (kh, kw, c, self.depth_multiplier), self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.input_spec = InputSpec(ndim=4, axes={-1: c}, layout=_LAYOUT)
        return c

    def _depthwise(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The depthwise output ``(n, oh, ow, C, M)``, the padded input and the padding."""
        x = self._enter(x)
        n, h, w, c = x.shape
        self._check_size(h, w)
        (oh, ow), ((pt, pb), (pl, pr)) = self._geometry(h, w)
        xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if pt + pb + pl + pr else x
        kernel = self.params[self._depthwise_key]
        out = self._new_array("depthwise", (n, oh, ow, c, self.depth_multiplier), np.result_type(xp, kernel))
        return depthwise_conv2d(xp, kernel, self.strides, self.dilation_rate, out), xp, ((pt, pb), (pl, pr))

    def _depthwise_backward(self, xp: np.ndarray, pads: tuple, dz: np.ndarray) -> np.ndarray | None:
        """Set the depthwise kernel's gradient from ``dz`` ``(n, oh, ow, C, M)``; return ``dx`` (or None)."""
        dxp = self._new_array("dx", xp.shape, dz.dtype) if self.compute_input_grad else None
        depthwise_conv2d_backward(xp, dz, self.params[self._depthwise_key], self.strides, self.dilation_rate,
                                  self.grads[self._depthwise_key], dxp)
        if dxp is None:
            return None
        (pt, pb), (pl, pr) = pads
        return dxp[:, pt : xp.shape[1] - pb, pl : xp.shape[2] - pr, :]

    def _output_hw(self, input_shape: Any) -> tuple[int | None, int | None]:
        h, w = input_shape[1:3]
        if h is None or w is None:
            (oh, ow), _ = self._geometry(h or 1, w or 1)
            return (None if h is None else oh, None if w is None else ow)
        return self._geometry(h, w)[0]

    def _depthwise_config(self) -> dict[str, Any]:
        return {
            **super().get_config(), "kernel_size": list(self.kernel_size), "strides": list(self.strides),
            "padding": self.padding, "depth_multiplier": self.depth_multiplier, "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate), "activation": self.activation, "use_bias": self.use_bias,
            "depthwise_initializer": _initializers.serialize(self.depthwise_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
        }


class DepthwiseConv2D(_DepthwiseBase):
    r"""Depthwise 2-D convolution: each input channel filtered on its own.

    Input ``(batch, height, width, C)``; kernel ``(kh, kw, C, depth_multiplier)`` named
    ``"kernel"`` as in Keras; bias ``(C * depth_multiplier,)``; output
    ``(batch, out_height, out_width, C * depth_multiplier)``, channel :math:`c M + m`
    being multiplier :math:`m` of input channel :math:`c` (see the module docstring).

    Forward: for every kernel offset :math:`(a, b)` and multiplier :math:`m`, the tap of
    the padded input times :math:`K_{a,b,\cdot,m}` is added into output channels
    :math:`\cdot M + m`. Backward (:func:`depthwise_conv2d_backward`): the kernel gradient
    of each offset is a sum over the batch and the positions of the tap times ``dZ``; the
    input gradient adds ``dZ`` times the kernel row back into each tap.
    The cache of a call is the padded input and the padding.

    Parameters
    ----------
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {"valid", "same"}
    depth_multiplier : int, default 1
        Output channels per input channel.
    data_format : {None, "channels_last"}
        Only ``channels_last`` is supported.
    dilation_rate : int or (int, int), default 1
    activation : str, function, activation layer or None
        As in :class:`npnet.layers.Dense`.
    use_bias : bool, default True
    depthwise_initializer, bias_initializer : str or Initializer
    depthwise_regularizer, bias_regularizer, activity_regularizer : str or Regularizer, optional
    depthwise_constraint, bias_constraint : str or Constraint, optional

    Examples
    --------
    >>> import numpy as np, npnet
    >>> dw = npnet.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> dw(np.zeros((2, 8, 8, 3), dtype="float32")).shape
    (2, 8, 8, 6)
    >>> dw.params["kernel"].shape
    (3, 3, 3, 2)
    """

    _depthwise_key = "kernel"

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid", depth_multiplier: int = 1,
                 data_format: str | None = None, dilation_rate: Any = 1, activation: str | None = None,
                 use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 depthwise_constraint: Any = None, bias_constraint: Any = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self._set_depthwise(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, activation,
                            use_bias, depthwise_initializer, bias_initializer)
        _set_named_weight_options(self, type(self).__name__, depthwise_regularizer=depthwise_regularizer,
                                  bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
                                  depthwise_constraint=depthwise_constraint, bias_constraint=bias_constraint)

    def build(self, input_shape):
        c = self._build_depthwise(input_shape)
        if self.use_bias:
            self.add_weight("bias", (c * self.depth_multiplier,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        super().build(input_shape)

    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Pre-activation output ``z`` and the cache ``(padded input, pads)``."""
        z5, xp, pads = self._depthwise(x)
        n, oh, ow, c, m = z5.shape
        z = z5.reshape(n, oh, ow, c * m)
        if self.use_bias:
            z += self.params["bias"]
        return z, (xp, pads)

    def _linear_backward(self, cache: tuple, dz: np.ndarray) -> np.ndarray | None:
        """Set the kernel and bias gradients from ``dz``; return ``dx`` (or None)."""
        self._require_cache(cache)
        xp, pads = cache
        n, oh, ow, cm = dz.shape
        if self.use_bias:
            np.sum(dz.reshape(-1, cm), axis=0, out=self.grads["bias"])
        return self._depthwise_backward(xp, pads, dz.reshape(n, oh, ow, cm // self.depth_multiplier,
                                                             self.depth_multiplier))

    def compute_output_shape(self, input_shape):
        c = input_shape[3]
        return (input_shape[0], *self._output_hw(input_shape), None if c is None else c * self.depth_multiplier)

    def get_config(self):
        return {**self._depthwise_config(),
                **weight_options_config(self, "depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                                        "depthwise_constraint", "bias_constraint")}


class SeparableConv2D(_DepthwiseBase):
    r"""Depthwise-separable 2-D convolution: a depthwise convolution, then a pointwise
    (1x1) convolution that mixes its channels into ``filters``.

    Input ``(batch, height, width, C)``; ``depthwise_kernel`` ``(kh, kw, C, M)`` with
    :math:`M` = ``depth_multiplier``; ``pointwise_kernel`` ``(1, 1, C M, filters)``;
    bias ``(filters,)``; output ``(batch, out_height, out_width, filters)``. With
    :math:`u` the depthwise output of :class:`DepthwiseConv2D` (no bias there) reshaped
    to ``(batch * oh * ow, C M)`` and :math:`P` the pointwise kernel as ``(C M, filters)``:

    .. math::
        z = u P + b, \qquad y = \mathrm{activation}(z), \qquad
        \frac{\partial L}{\partial P} = u^\top dZ, \quad
        \frac{\partial L}{\partial b} = \sum dZ, \quad
        du = dZ P^\top

    and ``du`` goes through the depthwise backward (:func:`depthwise_conv2d_backward`),
    the same code as DepthwiseConv2D's. One primitive layer, so the depthwise output
    lives only in this call's cache. The cache holds the padded input, the padding and
    :math:`u`.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {"valid", "same"}
    data_format : {None, "channels_last"}
        Only ``channels_last`` is supported.
    dilation_rate : int or (int, int), default 1
    depth_multiplier : int, default 1
    activation : str, function, activation layer or None
        As in :class:`npnet.layers.Dense`.
    use_bias : bool, default True
    depthwise_initializer, pointwise_initializer, bias_initializer : str or Initializer
    depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer : str or Regularizer, optional
    depthwise_constraint, pointwise_constraint, bias_constraint : str or Constraint, optional

    Examples
    --------
    >>> import numpy as np, npnet
    >>> sep = npnet.layers.SeparableConv2D(16, 3, strides=2, padding="same", depth_multiplier=2)
    >>> sep(np.zeros((2, 8, 8, 3), dtype="float32")).shape
    (2, 4, 4, 16)
    >>> [w.shape for w in sep.get_weights()]
    [(3, 3, 3, 2), (1, 1, 6, 16), (16,)]
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, depth_multiplier: int = 1,
                 activation: str | None = None, use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None, pointwise_constraint: Any = None,
                 bias_constraint: Any = None, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.filters = check_int(filters, "filters", minimum=1, owner=owner)
        self._set_depthwise(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, activation,
                            use_bias, depthwise_initializer, bias_initializer)
        _set_named_weight_options(self, owner, {"pointwise_initializer": pointwise_initializer})
        self.pointwise_initializer = pointwise_initializer
        _set_named_weight_options(self, owner, depthwise_regularizer=depthwise_regularizer,
                                  pointwise_regularizer=pointwise_regularizer, bias_regularizer=bias_regularizer,
                                  activity_regularizer=activity_regularizer, depthwise_constraint=depthwise_constraint,
                                  pointwise_constraint=pointwise_constraint, bias_constraint=bias_constraint)

    def build(self, input_shape):
        c = self._build_depthwise(input_shape)
        self.add_weight("pointwise_kernel", (1, 1, c * self.depth_multiplier, self.filters),
                        self.pointwise_initializer, regularizer=self.pointwise_regularizer,
                        constraint=self.pointwise_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        super().build(input_shape)

    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Pre-activation output ``z`` and the cache ``(padded input, pads, u)``."""
        u5, xp, pads = self._depthwise(x)
        n, oh, ow, c, m = u5.shape
        u = u5.reshape(n * oh * ow, c * m)
        pointwise = self.params["pointwise_kernel"].reshape(c * m, self.filters)
        z = self._new_array("y", (n * oh * ow, self.filters), np.result_type(u, pointwise))
        np.matmul(u, pointwise, out=z)
        if self.use_bias:
            z += self.params["bias"]
        return z.reshape(n, oh, ow, self.filters), (xp, pads, u)

    def _linear_backward(self, cache: tuple, dz: np.ndarray) -> np.ndarray | None:
        """Set the three gradients from ``dz``; return ``dx`` (or None)."""
        self._require_cache(cache)
        xp, pads, u = cache
        n, oh, ow, f = dz.shape
        cm = u.shape[1]
        d2 = dz.reshape(n * oh * ow, f)
        np.matmul(u.T, d2, out=self.grads["pointwise_kernel"].reshape(cm, f))
        if self.use_bias:
            np.sum(d2, axis=0, out=self.grads["bias"])
        du = self._new_array("du", (n * oh * ow, cm), dz.dtype)
        np.matmul(d2, self.params["pointwise_kernel"].reshape(cm, f).T, out=du)
        return self._depthwise_backward(xp, pads, du.reshape(n, oh, ow, cm // self.depth_multiplier,
                                                             self.depth_multiplier))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._output_hw(input_shape), self.filters)

    def get_config(self):
        config = self._depthwise_config()
        return {**config, "filters": self.filters,
                "pointwise_initializer": _initializers.serialize(self.pointwise_initializer),
                **weight_options_config(self, "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
                                        "activity_regularizer", "depthwise_constraint", "pointwise_constraint",
                                        "bias_constraint")}
