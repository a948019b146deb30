r"""1-D convolution over ``(batch, steps, channels)`` sequences, by im2col and one GEMM.

Output length, with input length :math:`i`, kernel :math:`k`, stride :math:`s`,
dilation :math:`d` and effective kernel :math:`k_e = d (k - 1) + 1` (Keras' formulas):

- ``padding="valid"``: :math:`o = \lfloor (i - k_e) / s \rfloor + 1`, no padding.
- ``padding="same"``: :math:`o = \lceil i / s \rceil`, with
  :math:`p = \max((o - 1) s + k_e - i, 0)` zeros split as :math:`\lfloor p/2 \rfloor`
  before and the rest after.
- ``padding="causal"``: :math:`d (k - 1)` zeros before the sequence and none after, so
  :math:`o = \lceil i / s \rceil` and output step :math:`t` reads only inputs
  :math:`\le t s`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import check_choice, check_data_format, check_int, check_tuple
from .activation import _Activated
from .base import InputSpec, Layer, weight_options_config
from .conv import conv_output_size, same_padding
from .core import _refuse_unsupported, _set_named_weight_options

__all__ = ["Conv1D"]

_LAYOUT = "(batch, steps, channels)"


class Conv1D(_Activated, Layer):
    r"""1-D convolution (cross-correlation, as in Keras and PyTorch) over sequences.

    Input ``(batch, steps, in_channels)``; kernel ``(kernel_size, in_channels, filters)``;
    output ``(batch, out_steps, filters)`` with the lengths of the module docstring.
    With :math:`x_p` the padded input,

    .. math::
        z_{n,t,f} = b_f + \sum_{i=0}^{k-1} \sum_{c} x_{p;\,n,\,t s + i d,\,c}\, K_{i,c,f},
        \qquad y = \mathrm{activation}(z).

    Forward: the receptive fields are gathered into ``cols`` of shape
    ``(batch * out_steps, kernel_size * in_channels)`` (im2col, through
    ``sliding_window_view``), then ``z = cols @ K + b`` is one GEMM.

    Backward, with ``dZ`` reshaped to ``(batch * out_steps, filters)``:

    .. math::
        \frac{\partial L}{\partial K} = \mathrm{cols}^\top dZ, \quad
        \frac{\partial L}{\partial b} = \sum dZ, \quad
        d\mathrm{cols} = dZ K^\top

    and ``dx`` scatters ``dcols`` back with one strided add per kernel offset
    :math:`i` (into steps :math:`i d, i d + s, \dots` of the padded input), then drops
    the padding.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int,)
    strides : int or (int,), default 1
        ``strides > 1`` together with ``dilation_rate > 1`` is refused, as in Keras.
    padding : {"valid", "same", "causal"}
    data_format : {None, "channels_last"}
        Only ``channels_last`` is supported.
    dilation_rate : int or (int,), default 1
    groups : int, default 1
        Only 1 is supported.
    activation : str, function, activation layer or None
        As in :class:`npnet.layers.Dense`.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or Initializer
    kernel_regularizer, bias_regularizer, activity_regularizer : str or Regularizer, optional
    kernel_constraint, bias_constraint : str or Constraint, optional
        As in :class:`npnet.layers.Conv2D`.
    lora_rank, lora_alpha : None
        Keras' LoRA options: only None is accepted.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> conv = npnet.layers.Conv1D(4, 3, padding="causal", dilation_rate=2)
    >>> conv(np.zeros((2, 10, 3), dtype="float32")).shape
    (2, 10, 4)
    >>> conv.params["kernel"].shape
    (3, 3, 4)
    """

    _build_spec = InputSpec(ndim=3, layout=_LAYOUT)

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
        self.kernel_size = check_tuple(kernel_size, "kernel_size", 1, owner=owner)
        self.strides = check_tuple(strides, "strides", 1, owner=owner)
        self.padding = check_choice(padding, "padding", ["valid", "same", "causal"], owner=owner)
        self.data_format = check_data_format(data_format, _LAYOUT, owner=owner)
        self.groups = check_int(groups, "groups", minimum=1, owner=owner)
        if self.groups != 1:
            raise ValueError(f"{owner}: grouped convolution is not supported: expected groups=1, "
                             f"received groups={self.groups}")
        self.dilation_rate = check_tuple(dilation_rate, "dilation_rate", 1, owner=owner)
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise ValueError(f"{owner}: `strides` > 1 together with `dilation_rate` > 1 is not supported "
                             f"(as in Keras), received strides={self.strides[0]} and "
                             f"dilation_rate={self.dilation_rate[0]}")
        _set_named_weight_options(self, owner, {"kernel_initializer": kernel_initializer,
                                                "bias_initializer": bias_initializer})
        self._set_affine(activation, use_bias, kernel_initializer, bias_initializer)
        _set_named_weight_options(self, owner, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                                  bias_constraint=bias_constraint)

    def _geometry(self, steps: int) -> tuple[int, tuple[int, int]]:
        """Output length and the zeros (before, after) added to the sequence."""
        (k,), (s,), (d,) = self.kernel_size, self.strides, self.dilation_rate
        if self.padding == "same":
            pads = same_padding(steps, k, s, d)
        elif self.padding == "causal":
            pads = (d * (k - 1), 0)
        else:
            pads = (0, 0)
        return conv_output_size(steps + sum(pads), k, s, "valid", d), pads

    def _too_short(self, steps: int) -> ValueError:
        eff = self.dilation_rate[0] * (self.kernel_size[0] - 1) + 1
        return ValueError(f"{self._owner}: kernel of effective size {eff} is larger than the input length "
                          f"{steps} with padding='valid'")

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self._owner}: expected input of rank 3 {_LAYOUT}, received shape {tuple(input_shape)}")
        steps, c = input_shape[1:]
        if steps is not None and self._geometry(steps)[0] < 1:
            raise self._too_short(steps)
        self.add_weight("kernel", (self.kernel_size[0], c, self.filters), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(ndim=3, axes={-1: c}, layout=_LAYOUT)
        super().build(input_shape)

    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Pre-activation output ``z`` and the cache ``(cols, padded shape, pads)``."""
        x = self._enter(x)
        n, steps, c = x.shape
        o, (before, after) = self._geometry(steps)
        if o < 1:
            raise self._too_short(steps)
        xp = np.pad(x, ((0, 0), (before, after), (0, 0))) if before + after else x
        (k,), (s,), (d,) = self.kernel_size, self.strides, self.dilation_rate
        win = np.lib.stride_tricks.sliding_window_view(xp, d * (k - 1) + 1, axis=1)  # (n, L, c, k_e)
        win = win[:, : (o - 1) * s + 1 : s, :, ::d]  # (n, o, c, k)
        cols = self._new_array("cols", (n, o, k, c), x.dtype)
        np.copyto(cols, win.transpose(0, 1, 3, 2))  # the kernel's (k, c) order
        cols = cols.reshape(n * o, k * c)
        kernel = self.params["kernel"].reshape(k * c, self.filters)
        z = self._new_array("y", (n * o, self.filters), np.result_type(cols, kernel))
        np.matmul(cols, kernel, out=z)
        if self.use_bias:
            z += self.params["bias"]
        return z.reshape(n, o, self.filters), (cols, xp.shape, (before, after))

    def _linear_backward(self, cache: tuple, dz: np.ndarray) -> np.ndarray | None:
        """Set the kernel and bias gradients from ``dz``; return ``dx`` (or None)."""
        self._require_cache(cache)
        cols, xshape, (before, after) = cache
        n, o, f = dz.shape
        (k,), (s,), (d,) = self.kernel_size, self.strides, self.dilation_rate
        c = xshape[-1]
        d2 = dz.reshape(n * o, f)
        np.matmul(cols.T, d2, out=self.grads["kernel"].reshape(k * c, f))
        if self.use_bias:
            np.sum(d2, axis=0, out=self.grads["bias"])
        if not self.compute_input_grad:
            return None
        dcols = (d2 @ self.params["kernel"].reshape(k * c, f).T).reshape(n, o, k, c)
        dxp = self._new_array("dx", xshape, dz.dtype)
        dxp.fill(0)
        for i in range(k):
            dxp[:, i * d : i * d + (o - 1) * s + 1 : s, :] += dcols[:, :, i, :]
        return dxp[:, before : xshape[1] - after, :]

    def compute_output_shape(self, input_shape):
        n, steps, _ = input_shape
        out = None if steps is None else self._geometry(steps)[0]
        return (n, out, self.filters)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate), "groups": self.groups,
            "activation": self.activation, "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            **weight_options_config(self, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                    "kernel_constraint", "bias_constraint"),
        }
