"""2-D convolution in NHWC layout (Keras' ``channels_last``), by im2col and one GEMM.

Output size along one spatial axis, with input size :math:`i`, kernel :math:`k`,
stride :math:`s`, dilation :math:`d` and effective kernel :math:`k_e = d (k - 1) + 1`
(Keras' formulas):

- ``padding="valid"``: :math:`o = \\lfloor (i - k_e) / s \\rfloor + 1`, no padding.
- ``padding="same"``: :math:`o = \\lceil i / s \\rceil`, with
  :math:`p = \\max((o - 1) s + k_e - i, 0)` zeros split as :math:`\\lfloor p/2 \\rfloor`
  before and the rest after.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import check_choice, check_data_format, check_int, check_tuple
from .activation import _Activated
from .base import InputSpec, Layer, weight_options_config
from .core import _refuse_unsupported, _set_named_weight_options

__all__ = ["Conv2D", "conv_output_size", "same_padding"]

_LAYOUT = "(batch, height, width, channels)"
# Rows of dcols computed at a time in the input gradient (about 4 MB for 288 columns).
_COL2IM_ROWS = 4096


def conv_output_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Output length along one axis (see the module docstring for the formulas)."""
    eff = dilation * (kernel - 1) + 1
    if padding == "same":
        return -(-size // stride)
    return (size - eff) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Zeros (before, after) that ``padding="same"`` adds along one axis."""
    eff = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _windows(xp: np.ndarray, kernel: tuple[int, ...], strides: tuple[int, ...], dilation: tuple[int, ...],
             out_hw: tuple[int, int]) -> np.ndarray:
    """View of shape (n, oh, ow, C, kh, kw) over a padded NHWC batch (no copy)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilation, out_hw
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(1, 2))
    return win[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, ::dh, ::dw]


class Conv2D(_Activated, Layer):
    r"""2-D convolution (cross-correlation, as in Keras and PyTorch) over NHWC batches.

    Input ``(batch, height, width, in_channels)``; kernel
    ``(kh, kw, in_channels // groups, filters)``; output
    ``(batch, out_height, out_width, filters)`` with the sizes of the module docstring.

    With ``groups`` = :math:`g > 1` (grouped convolution, as in Keras) the input channels
    are split into :math:`g` consecutive groups of :math:`C/g` and the filters into
    :math:`g` groups of :math:`F/g`; filter group :math:`j` sees input group :math:`j`
    only, so with :math:`c_j` the channels of group :math:`j(f)` of filter :math:`f`:

    .. math::
        z_{n,y,x,f} = b_f + \sum_{i,k} \sum_{r < C/g} x_{p;\,n,\,y s_h + i d_h,\,x s_w + k d_w,\,
        (C/g)\,j(f) + r}\, K_{i,k,r,f}, \qquad j(f) = \lfloor f / (F/g) \rfloor.

    Forward: the receptive fields are gathered into a matrix ``cols`` of shape
    ``(batch * oh * ow, kh * kw * in_channels)`` (im2col, through
    ``sliding_window_view``), then ``y = cols @ K + b`` is one GEMM.

    With groups, ``cols`` and ``K`` are cut into :math:`g` blocks (columns of input group
    :math:`j`, filters of group :math:`j`) and the GEMM becomes one batched product over
    the groups.

    Backward, with ``dY`` reshaped to ``(batch * oh * ow, filters)`` (per group when
    :math:`g > 1`):

    .. math::
        \frac{\partial L}{\partial K} = \mathrm{cols}^\top dY, \quad
        \frac{\partial L}{\partial b} = \sum dY, \quad
        d\mathrm{cols} = dY K^\top

    and ``dx`` scatters ``dcols`` back with one strided add per kernel offset (no
    ``np.add.at``). ``dcols`` is computed a few images at a time, so each block is still
    in the CPU cache when it is scattered.

    The cache of a call holds ``cols``, the padded input shape and the padding (plus the
    pre-activation output and the activation's cache, see ``_Activated``).

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {"valid", "same"}
    data_format : {None, "channels_last"}
        Only ``channels_last`` (NHWC) is supported; ``"channels_first"`` is refused.
    dilation_rate : int or (int, int), default 1
    groups : int, default 1
        Number of channel groups; the input channels and ``filters`` must both be
        divisible by it.
    activation : str, function, activation layer or None
        As in :class:`npnet.layers.Dense`.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or Initializer
    kernel_regularizer, bias_regularizer : str or Regularizer, optional
        Weight penalties added to the training loss (see :mod:`npnet.regularizers`).
    activity_regularizer : str or Regularizer, optional
        Penalty on the output, divided by the batch size.
    kernel_constraint, bias_constraint : str or Constraint, optional
        Projections applied after each optimizer update (see :mod:`npnet.constraints`);
        ``MaxNorm(axis=(0, 1, 2))`` bounds the norm of each filter.
    lora_rank, lora_alpha : None
        Keras' LoRA options: only None is accepted.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> conv = npnet.layers.Conv2D(8, 3, padding="same")
    >>> conv(np.zeros((2, 28, 28, 1), dtype="float32")).shape
    (2, 28, 28, 8)
    >>> grouped = npnet.layers.Conv2D(6, 3, groups=2)
    >>> grouped(np.zeros((1, 5, 5, 4), dtype="float32")).shape
    (1, 3, 3, 6)
    >>> grouped.params["kernel"].shape
    (3, 3, 2, 6)
    """

    _build_spec = InputSpec(ndim=4, layout=_LAYOUT)

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1,
                 activation: str | None = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
                 lora_rank: int | None = None, lora_alpha: float | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        _refuse_unsupported(owner, lora_rank=lora_rank, lora_alpha=lora_alpha)
        self.filters = check_int(filters, "filters", minimum=1, owner=owner)
        self.kernel_size = check_tuple(kernel_size, "kernel_size", 2, owner=owner)
        self.strides = check_tuple(strides, "strides", 2, owner=owner)
        self.padding = check_choice(padding, "padding", ["valid", "same"], owner=owner)
        self.data_format = check_data_format(data_format, _LAYOUT, owner=owner)
        self.dilation_rate = check_tuple(dilation_rate, "dilation_rate", 2, owner=owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: `strides` > 1 together with `dilation_rate` > 1 is not supported (as in Keras)")
        self.groups = check_int(groups, "groups", minimum=1, owner=owner)
        if self.filters % self.groups:
            raise ValueError(f"{owner}: `filters` must be divisible by `groups`, received filters={self.filters} "
                             f"and groups={self.groups}")
        _set_named_weight_options(self, owner, {"kernel_initializer": kernel_initializer,
                                                "bias_initializer": bias_initializer})
        self._set_affine(activation, use_bias, kernel_initializer, bias_initializer)
        _set_named_weight_options(self, owner, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                                  bias_constraint=bias_constraint)

    def _geometry(self, h: int, w: int) -> tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        if self.padding == "same":
            pads = (same_padding(h, kh, sh, dh), same_padding(w, kw, sw, dw))
        else:
            pads = ((0, 0), (0, 0))
        out = (conv_output_size(h, kh, sh, self.padding, dh), conv_output_size(w, kw, sw, self.padding, dw))
        return out, pads

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner}: expected input of rank 4 {_LAYOUT}, received shape {tuple(input_shape)}")
        h, w, c = input_shape[1:]
        (oh, ow), _ = self._geometry(1 << 30 if h is None else h, 1 << 30 if w is None else w)  # None: varies
        if oh < 1 or ow < 1:
            eff = [d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]
            raise ValueError(
                f"{self._owner}: kernel of effective size {tuple(eff)} is larger than the input ({h}, {w}) "
                f"with padding='valid'"
            )
        if c % self.groups:
            raise ValueError(f"{self._owner}: the input's {c} channels must be divisible by `groups`={self.groups} "
                             f"(input shape {tuple(input_shape)})")
        kh, kw = self.kernel_size
        self.add_weight("kernel", (kh, kw, c // self.groups, self.filters), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(ndim=4, axes={-1: c}, layout=_LAYOUT)
        super().build(input_shape)

    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Pre-activation output ``z`` and the cache ``(cols, padded shape, pads)``."""
        x = self._enter(x)
        n, h, w, c = x.shape
        (oh, ow), ((pt, pb), (pl, pr)) = self._geometry(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self._owner}: input of size ({h}, {w}) is smaller than the kernel")
        xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if pt + pb + pl + pr else x
        kh, kw = self.kernel_size
        win = _windows(xp, self.kernel_size, self.strides, self.dilation_rate, (oh, ow))
        # (n, oh, ow, C, kh, kw) -> (n, oh, ow, kh, kw, C): the kernel's (kh, kw, C) order,
        # copied into an array that fit reuses batch after batch (a fresh multi-megabyte
        # array per step costs more in page faults than the copy itself).
        cols = self._new_array("cols", (n, oh, ow, kh, kw, c), x.dtype)
        if c >= 8:
            np.copyto(cols, win.transpose(0, 1, 2, 4, 5, 3))
        else:  # few channels: one strided copy per kernel offset is faster
            for i in range(kh):
                for j in range(kw):
                    np.copyto(cols[:, :, :, i, j, :], win[..., i, j])
        cols = cols.reshape(n * oh * ow, kh * kw * c)
        if self.groups == 1:
            kernel = self.params["kernel"].reshape(kh * kw * c, self.filters)
            y = self._new_array("y", (n * oh * ow, self.filters), np.result_type(cols, kernel))
            np.matmul(cols, kernel, out=y)
        else:  # one product per group: (g, rows, kh*kw*C/g) @ (g, kh*kw*C/g, F/g)
            yg = np.matmul(self._group_cols(cols), self._group_kernel())
            y = yg.transpose(1, 0, 2).reshape(n * oh * ow, self.filters)
        if self.use_bias:
            y += self.params["bias"]
        return y.reshape(n, oh, ow, self.filters), (cols, xp.shape, ((pt, pb), (pl, pr)))

    def _group_cols(self, cols: np.ndarray) -> np.ndarray:
        """``cols`` (rows, kh*kw*C) as ``(g, rows, kh*kw*C/g)``: group j's columns, in the
        kernel's (kh, kw, C/g) order."""
        g, (kh, kw) = self.groups, self.kernel_size
        rows, width = cols.shape
        cg = width // (kh * kw * g)
        return cols.reshape(rows, kh * kw, g, cg).transpose(2, 0, 1, 3).reshape(g, rows, kh * kw * cg)

    def _group_kernel(self) -> np.ndarray:
        """The kernel (kh, kw, C/g, F) as ``(g, kh*kw*C/g, F/g)``."""
        g, kernel = self.groups, self.params["kernel"]
        return kernel.reshape(-1, g, self.filters // g).transpose(1, 0, 2)

    def _dcols(self, d2: np.ndarray, out: np.ndarray) -> None:
        """``out = dY K^T`` (per group for a grouped convolution), in the layout of ``cols``."""
        kh, kw = self.kernel_size
        if self.groups == 1:
            np.matmul(d2, self.params["kernel"].reshape(-1, self.filters).T, out=out)
            return
        g, rows = self.groups, d2.shape[0]
        dg = np.matmul(d2.reshape(rows, g, self.filters // g).transpose(1, 0, 2),
                       self._group_kernel().transpose(0, 2, 1))  # (g, rows, kh*kw*C/g)
        out.reshape(rows, kh * kw, g, -1)[...] = dg.reshape(g, rows, kh * kw, -1).transpose(1, 2, 0, 3)

    def _linear_backward(self, cache: tuple, dz: np.ndarray) -> np.ndarray | None:
        """Set the kernel and bias gradients from ``dz``; return ``dx`` (or None)."""
        self._require_cache(cache)
        cols, xshape, pads = cache
        n, oh, ow, f = dz.shape
        kh, kw = self.kernel_size
        c = xshape[-1]
        d2 = dz.reshape(n * oh * ow, f)
        if self.groups == 1:
            np.matmul(cols.T, d2, out=self.grads["kernel"].reshape(kh * kw * c, f))
        else:  # per group: cols_j^T dY_j, back to (kh, kw, C/g, F)
            g = self.groups
            dk = np.matmul(self._group_cols(cols).transpose(0, 2, 1), d2.reshape(-1, g, f // g).transpose(1, 0, 2))
            self.grads["kernel"].reshape(-1, g, f // g)[...] = dk.transpose(1, 0, 2)
        if self.use_bias:
            np.sum(d2, axis=0, out=self.grads["bias"])
        if not self.compute_input_grad:
            return None
        # dx: a few images at a time, dcols = dY K^T is one product whose result stays in
        # the cache while each kernel offset's share is added into its strided window of dx.
        dxp = self._new_array("dx", xshape, dz.dtype)
        per = max(1, _COL2IM_ROWS // (oh * ow))
        part = self._new_array("dcols", (min(per, n) * oh * ow, kh * kw * c), dz.dtype)
        (sh, sw), (dh, dw) = self.strides, self.dilation_rate
        for a in range(0, n, per):
            b = min(a + per, n)
            dcols = part[: (b - a) * oh * ow]
            self._dcols(d2[a * oh * ow : b * oh * ow], dcols)
            d6 = dcols.reshape(b - a, oh, ow, kh, kw, c)
            dxa = dxp[a:b]
            dxa.fill(0)
            for i in range(kh):
                for j in range(kw):
                    r0, c0 = i * dh, j * dw
                    dxa[:, r0 : r0 + (oh - 1) * sh + 1 : sh, c0 : c0 + (ow - 1) * sw + 1 : sw, :] += d6[:, :, :, i, j, :]
        (pt, pb), (pl, pr) = pads
        return dxp[:, pt : dxp.shape[1] - pb, pl : dxp.shape[2] - pr, :]

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        (oh, ow), _ = self._geometry(1 if h is None else h, 1 if w is None else w)
        return (n, None if h is None else oh, None if w is None else ow, self.filters)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate), "groups": self.groups, "activation": self.activation, "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            **weight_options_config(self, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                    "kernel_constraint", "bias_constraint"),
        }
