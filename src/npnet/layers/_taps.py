r"""Kernel taps: the strided view of an image that one kernel offset reads.

A 2-D convolution with stride :math:`s` and dilation :math:`d` computes output pixel
:math:`(i, j)` from the padded input pixels :math:`(i s + a d,\ j s + b d)`, one for each
kernel offset :math:`(a, b)`. For a fixed offset those pixels, over all outputs, form one
strided slice of the padded input, the *tap* of :math:`(a, b)`. Gathering every tap gives
im2col; adding into every tap gives its adjoint, col2im. Both run as one strided copy
(or add) per kernel offset, never element by element.

These helpers serve the layers of :mod:`npnet.layers.conv_transpose` and
:mod:`npnet.layers.depthwise`.
"""

from __future__ import annotations

import numpy as np

from .conv import _windows

__all__ = ["tap", "im2col", "col2im"]


def tap(image: np.ndarray, a: int, b: int, strides: tuple[int, ...], dilation: tuple[int, ...],
        out_hw: tuple[int, int]) -> np.ndarray:
    """View of shape ``(n, oh, ow, C)`` of an NHWC ``image``: the pixels kernel offset
    ``(a, b)`` reads for every output pixel (no copy; writable if ``image`` is)."""
    (sh, sw), (dh, dw), (oh, ow) = strides, dilation, out_hw
    r, c = a * dh, b * dw
    return image[:, r : r + (oh - 1) * sh + 1 : sh, c : c + (ow - 1) * sw + 1 : sw, :]


def im2col(image: np.ndarray, kernel_hw: tuple[int, ...], strides: tuple[int, ...], dilation: tuple[int, ...],
           out_hw: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """Copy the receptive fields of a padded NHWC ``image`` into ``out`` of shape
    ``(n, oh, ow, kh, kw, C)`` (the order of a ``(kh, kw, C, ...)`` kernel) and return it."""
    kh, kw = kernel_hw
    if image.shape[-1] >= 8:  # many channels: one transposing copy of the window view
        np.copyto(out, _windows(image, kernel_hw, strides, dilation, out_hw).transpose(0, 1, 2, 4, 5, 3))
    else:  # few channels: one strided copy per kernel offset is faster
        for a in range(kh):
            for b in range(kw):
                np.copyto(out[:, :, :, a, b, :], tap(image, a, b, strides, dilation, out_hw))
    return out


def col2im(cols: np.ndarray, strides: tuple[int, ...], dilation: tuple[int, ...], out: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`im2col`: zero ``out`` (a padded NHWC image) and add each
    kernel offset's share of ``cols`` (shape ``(n, oh, ow, kh, kw, C)``) into its tap."""
    _, oh, ow, kh, kw, _ = cols.shape
    out.fill(0)
    for a in range(kh):
        for b in range(kw):
            tap(out, a, b, strides, dilation, (oh, ow))[...] += cols[:, :, :, a, b, :]
    return out
