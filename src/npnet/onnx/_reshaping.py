"""ONNX converters of the resizing layers: UpSampling1D, UpSampling2D, ZeroPadding1D,
ZeroPadding2D and Cropping2D.

All work channels-last, as the layers do, on any size along the axes an input leaves
``None``:

- upsampling copies each step (pixel) ``size`` times: an ``Unsqueeze`` before each
  repeated axis, an ``Expand`` to the copies and a ``Reshape`` that merges them, the
  target being the input's shape (``Shape``) times the factors. The values are copies, so
  they match npnet exactly;
- zero padding is ``Pad`` with constant zeros;
- cropping is ``Slice``, its ends counted from the end of each axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ._graph import ExportContext, register_converter

__all__: list[str] = []

_I64 = np.int64


def _repeat(ctx: ExportContext, x: str, factors: dict[int, int]) -> str:
    """Repeat every index of axis ``a`` of ``x`` ``factors[a]`` times in place
    (``np.repeat`` along each axis, as nearest-neighbour upsampling)."""
    factors = {a: r for a, r in factors.items() if r > 1}
    if not factors:
        return x
    rank = len(ctx.shape(x))
    # a new axis of length 1 after each repeated axis, broadcast to the copies
    new_axes = sorted(a + 1 + sum(1 for b in factors if b < a) for a in factors)
    u = ctx.node("Unsqueeze", [x, ctx.const(np.asarray(new_axes, _I64), "axes")])
    copies = [1] * (rank + len(factors))
    for a in sorted(factors):
        copies[a + 1 + sum(1 for b in factors if b < a)] = factors[a]
    e = ctx.node("Expand", [u, ctx.const(np.asarray(copies, _I64), "copies")])
    scale = ctx.const(np.asarray([factors.get(a, 1) for a in range(rank)], _I64), "factors")
    target = ctx.node("Mul", [ctx.node("Shape", [x]), scale], name="out_shape")
    return ctx.node("Reshape", [e, target], name="Repeat")


@register_converter(L.UpSampling1D)
def _upsampling1d(ctx, layer, inputs, outputs, options):
    return _repeat(ctx, inputs[0], {1: layer.size})


@register_converter(L.UpSampling2D)
def _upsampling2d(ctx, layer, inputs, outputs, options):
    if layer.interpolation != "nearest":  # the layer accepts nothing else today
        raise ValueError(f"export to ONNX: {layer._owner} has interpolation {layer.interpolation!r}; only "
                         "'nearest' exports")
    return _repeat(ctx, inputs[0], {1: layer.size[0], 2: layer.size[1]})


def _pad(ctx: ExportContext, x: str, pairs: list[tuple[int, int]]) -> str:
    """Zeros (before, after) along each axis of ``x``."""
    if not any(b or a for b, a in pairs):
        return x
    pads = np.asarray([b for b, _ in pairs] + [a for _, a in pairs], _I64)
    return ctx.node("Pad", [x, ctx.const(pads, "pads")], mode="constant")


@register_converter(L.ZeroPadding1D)
def _zero_padding1d(ctx, layer, inputs, outputs, options):
    return _pad(ctx, inputs[0], [(0, 0), tuple(layer.padding), (0, 0)])


@register_converter(L.ZeroPadding2D)
def _zero_padding2d(ctx, layer, inputs, outputs, options):
    return _pad(ctx, inputs[0], [(0, 0), *layer.padding, (0, 0)])


@register_converter(L.Cropping2D)
def _cropping2d(ctx, layer, inputs, outputs, options):
    (top, bottom), (left, right) = layer.cropping
    if not (top or bottom or left or right):
        return inputs[0]
    last = np.iinfo(_I64).max  # "to the end" of an axis of any size
    starts = np.asarray([top, left], _I64)
    ends = np.asarray([-bottom if bottom else last, -right if right else last], _I64)
    return ctx.node("Slice", [inputs[0], ctx.const(starts, "starts"), ctx.const(ends, "ends"),
                              ctx.const(np.asarray([1, 2], _I64), "axes")], name="Crop")
