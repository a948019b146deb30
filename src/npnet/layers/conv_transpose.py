r"""2-D transposed convolution in NHWC layout: the gradient of a convolution, run forward.

A convolution with stride :math:`s` maps a large image to a small one; its transpose maps
the small one back to the large shape, each input pixel *scattering* a copy of the kernel,
scaled by the pixel, into the output (upsampling with learned weights).

Output size along one spatial axis, with input size :math:`i`, kernel :math:`k`, stride
:math:`s`, dilation :math:`d`, effective kernel :math:`k_e = d (k - 1) + 1` and
``output_padding`` :math:`p_o` (Keras' formulas):

- ``padding="valid"``: :math:`o = (i - 1) s + k_e + p_o`, with
  :math:`p_o = \max(k_e, s) - k_e` when ``output_padding`` is None.
- ``padding="same"``: :math:`o = i s` when ``output_padding`` is None, else
  :math:`o = (i - 1) s + (k_e \bmod 2) + p_o`.

The scatter fills the *full* image of size :math:`f = (i - 1) s + k_e`; the output is
the window :math:`[c, c + o)` of it, zero beyond :math:`f`. For ``"valid"`` :math:`c = 0`;
for ``"same"`` :math:`c = k_e - 1 - \min(\lceil q / 2 \rceil, k_e - 1)` with the total
padding :math:`q = s + k_e - 2` (no ``output_padding``) or
:math:`q = k_e + (k_e \bmod 2) - 2 + p_o`, as Keras' JAX and NumPy backends compute it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import check_choice, check_data_format, check_int, check_tuple
from ._taps import col2im, im2col
from .activation import _Activated
from .base import InputSpec, Layer, weight_options_config
from .core import _set_named_weight_options

__all__ = ["Conv2DTranspose", "conv_transpose_geometry"]

_LAYOUT = "(batch, height, width, channels)"


def conv_transpose_geometry(size: int, kernel: int, stride: int, padding: str, output_padding: int | None = None,
                            dilation: int = 1) -> tuple[int, int]:
    """Output length and the crop :math:`c` along one axis (see the module docstring)."""
    eff = dilation * (kernel - 1) + 1
    if padding == "valid":
        extra = max(eff, stride) - eff if output_padding is None else output_padding
        return (size - 1) * stride + eff + extra, 0
    if output_padding is None:
        total, out = stride + eff - 2, size * stride
    else:
        total, out = eff + eff % 2 - 2 + output_padding, (size - 1) * stride + eff % 2 + output_padding
    before = min(total // 2 + total % 2, eff - 1)
    return out, eff - 1 - before


class Conv2DTranspose(_Activated, Layer):
    r"""2-D transposed convolution ("deconvolution") over NHWC batches.

    Input ``(batch, height, width, in_channels)``; kernel
    ``(kh, kw, filters, in_channels)`` as in Keras; output
    ``(batch, out_height, out_width, filters)`` with the sizes of the module docstring.

    It is the adjoint of :class:`Conv2D` with the same kernel: each input pixel
    :math:`x_{n,i,j}` adds :math:`K_{a,b} x_{n,i,j}` into the full image at
    :math:`(i s + a d,\ j s + b d)`,

    .. math::
        F_{n,\, i s + a d,\, j s + b d,\, f} \mathrel{+}= \sum_c K_{a,b,f,c}\, x_{n,i,j,c},
        \qquad z = F_{[c_h, c_h + o_h),\, [c_w, c_w + o_w)} + b,
        \qquad y = \mathrm{activation}(z).

    Forward (col2im, the backward of Conv2D's input): one GEMM
    ``cols = X K^T`` of shape ``(batch * h * w, kh * kw * filters)``, then one strided add
    per kernel offset scatters ``cols`` into the full image, which is cropped.

    Backward (a convolution, Conv2D's forward): ``dZ`` is placed back into a zero full
    image, whose receptive fields are gathered into ``dcols`` (im2col), then

    .. math::
        \frac{\partial L}{\partial K} = d\mathrm{cols}^\top X, \quad
        \frac{\partial L}{\partial b} = \sum dZ, \quad
        \frac{\partial L}{\partial x} = d\mathrm{cols}\, K

    with ``K`` reshaped to ``(kh * kw * filters, in_channels)`` and ``X`` to
    ``(batch * h * w, in_channels)``. The cache of a call is the input and the full
    image's shape and crop.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {"valid", "same"}
    output_padding : int, (int, int) or None
        Extra rows and columns at the end of the output; each must be smaller than its
        stride. None infers the sizes of the module docstring.
    data_format : {None, "channels_last"}
        Only ``channels_last`` is supported.
    dilation_rate : int or (int, int), default 1
        ``strides > 1`` together with ``dilation_rate > 1`` is refused, as in Keras.
    activation : str, function, activation layer or None
        As in :class:`npnet.layers.Dense`.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or Initializer
    kernel_regularizer, bias_regularizer, activity_regularizer : str or Regularizer, optional
    kernel_constraint, bias_constraint : str or Constraint, optional
        As in :class:`npnet.layers.Conv2D`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> up = npnet.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
    >>> up(np.zeros((2, 7, 7, 8), dtype="float32")).shape
    (2, 14, 14, 4)
    >>> up.params["kernel"].shape
    (3, 3, 4, 8)
    """

    _build_spec = InputSpec(ndim=4, layout=_LAYOUT)

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 output_padding: Any = None, data_format: str | None = None, dilation_rate: Any = 1,
                 activation: str | None = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.filters = check_int(filters, "filters", minimum=1, owner=owner)
        self.kernel_size = check_tuple(kernel_size, "kernel_size", 2, owner=owner)
        self.strides = check_tuple(strides, "strides", 2, owner=owner)
        self.padding = check_choice(padding, "padding", ["valid", "same"], owner=owner)
        self.output_padding = (None if output_padding is None
                               else check_tuple(output_padding, "output_padding", 2, minimum=0, owner=owner))
        if self.output_padding is not None and any(p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"{owner}: `output_padding` must be smaller than `strides` along each axis, "
                             f"received output_padding={self.output_padding} and strides={self.strides}")
        self.data_format = check_data_format(data_format, _LAYOUT, owner=owner)
        self.dilation_rate = check_tuple(dilation_rate, "dilation_rate", 2, owner=owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: `strides` > 1 together with `dilation_rate` > 1 is not supported "
                             f"(as in Keras), received strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        _set_named_weight_options(self, owner, {"kernel_initializer": kernel_initializer,
                                                "bias_initializer": bias_initializer})
        self._set_affine(activation, use_bias, kernel_initializer, bias_initializer)
        _set_named_weight_options(self, owner, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                                  bias_constraint=bias_constraint)

    def _geometry(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """Output size, crop and full-image size (large enough for the scatter and the output)."""
        out, crop, full = [], [], []
        for size, k, s, d, p in zip((h, w), self.kernel_size, self.strides, self.dilation_rate,
                                    self.output_padding or (None, None)):
            o, c = conv_transpose_geometry(size, k, s, self.padding, p, d)
            out.append(o)
            crop.append(c)
            full.append(max((size - 1) * s + d * (k - 1) + 1, c + o))
        return (out[0], out[1]), (crop[0], crop[1]), (full[0], full[1])

    def _check_size(self, h: int, w: int) -> None:
        (oh, ow), _, _ = self._geometry(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self._owner}: an input of size ({h}, {w}) gives an empty output ({oh}, {ow}) with "
                             f"padding='same' and output_padding={self.output_padding}")

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner}: expected input of rank 4 {_LAYOUT}, received shape {tuple(input_shape)}")
        h, w, c = input_shape[1:]
        if h is not None and w is not None:
            self._check_size(h, w)
        kh, kw = self.kernel_size
        self.add_weight("kernel", (kh, kw, self.filters, c), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(ndim=4, axes={-1: c}, layout=_LAYOUT)
        super().build(input_shape)

    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Pre-activation output ``z`` and the cache ``(x, full shape, crop)``."""
        x = self._enter(x)
        n, h, w, c = x.shape
        self._check_size(h, w)
        (oh, ow), (ch, cw), (fh, fw) = self._geometry(h, w)
        (kh, kw), f = self.kernel_size, self.filters
        kernel = self.params["kernel"].reshape(kh * kw * f, c)
        cols = self._new_array("cols", (n * h * w, kh * kw * f), np.result_type(x, kernel))
        np.matmul(x.reshape(n * h * w, c), kernel.T, out=cols)
        full = self._new_array("full", (n, fh, fw, f), cols.dtype)
        col2im(cols.reshape(n, h, w, kh, kw, f), self.strides, self.dilation_rate, out=full)
        z = full[:, ch : ch + oh, cw : cw + ow, :]
        if (fh, fw) != (oh, ow):  # a cropped view: copy it into an output array of its own
            y = self._new_array("y", z.shape, z.dtype)
            np.copyto(y, z)
            z = y
        if self.use_bias:
            z += self.params["bias"]
        return z, (x, full.shape, (ch, cw))

    def _linear_backward(self, cache: tuple, dz: np.ndarray) -> np.ndarray | None:
        """Set the kernel and bias gradients from ``dz``; return ``dx`` (or None)."""
        self._require_cache(cache)
        x, full_shape, (ch, cw) = cache
        n, oh, ow, f = dz.shape
        h, w, c = x.shape[1:]
        kh, kw = self.kernel_size
        # dZ back in the full image (zero where the output was cropped or padded), then the
        # receptive field of every input pixel, as a convolution's forward gathers them.
        dfull = self._new_array("dfull", full_shape, dz.dtype)
        dfull.fill(0)
        dfull[:, ch : ch + oh, cw : cw + ow, :] = dz
        dcols = im2col(dfull, self.kernel_size, self.strides, self.dilation_rate, (h, w),
                       out=self._new_array("dcols", (n, h, w, kh, kw, f), dz.dtype))
        dcols = dcols.reshape(n * h * w, kh * kw * f)
        np.matmul(dcols.T, x.reshape(n * h * w, c), out=self.grads["kernel"].reshape(kh * kw * f, c))
        if self.use_bias:
            np.sum(dz.reshape(-1, f), axis=0, out=self.grads["bias"])
        if not self.compute_input_grad:
            return None
        dx = self._new_array("dx", (n * h * w, c), dz.dtype)
        np.matmul(dcols, self.params["kernel"].reshape(kh * kw * f, c), out=dx)
        return dx.reshape(n, h, w, c)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        sizes = []
        for i, size in enumerate((h, w)):
            if size is None:
                sizes.append(None)
                continue
            p = None if self.output_padding is None else self.output_padding[i]
            sizes.append(conv_transpose_geometry(size, self.kernel_size[i], self.strides[i], self.padding, p,
                                                 self.dilation_rate[i])[0])
        return (n, sizes[0], sizes[1], self.filters)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding,
            "output_padding": None if self.output_padding is None else list(self.output_padding),
            "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
            "activation": self.activation, "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            **weight_options_config(self, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                    "kernel_constraint", "bias_constraint"),
        }
