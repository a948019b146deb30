"""ONNX converters of the resizing layers: UpSampling1D/2D, ZeroPadding1D/2D, Cropping2D.

Nearest upsampling repeats each step (pixel): the graph inserts an axis of size 1 after
each resized axis, tiles it ``size`` times and folds it back, so the repeats come out in
npnet's order and any input size works. Padding is ``Pad`` with zeros; cropping is a
``Slice`` whose ends count from the end of each axis. A layer that leaves its input as it
is (size 1, no padding, no cropping) adds no node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ._graph import ExportContext, register_converter

__all__: list[str] = []

_END = np.iinfo(np.int64).max


def _i64(ctx: ExportContext, values: Any, name: str) -> str:
    return ctx.const(np.asarray(values, dtype=np.int64), name)


def _repeat(ctx: ExportContext, x: str, factors: list[int]) -> str:
    """Repeat each entry of the axes 1 .. len(factors) of ``x`` ``factors[i]`` times."""
    if all(f == 1 for f in factors):
        return x
    nd = len(ctx.shape(x))
    axes = [2 * i + 2 for i in range(len(factors))]  # the new axis after each resized one
    expanded = ctx.node("Unsqueeze", [x, _i64(ctx, axes, "axes")])
    reps = [1] * (nd + len(factors))
    for a, f in zip(axes, factors):
        reps[a] = f
    tiled = ctx.node("Tile", [expanded, _i64(ctx, reps, "repeats")])
    scale = [1] + list(factors) + [1] * (nd - 1 - len(factors))
    target = ctx.node("Mul", [ctx.node("Shape", [x]), _i64(ctx, scale, "scale")], name="shape")
    return ctx.node("Reshape", [tiled, target], name="repeated")


@register_converter(L.UpSampling1D)
def _upsampling1d(ctx, layer, inputs, outputs, options):
    return _repeat(ctx, inputs[0], [int(layer.size)])


@register_converter(L.UpSampling2D)
def _upsampling2d(ctx, layer, inputs, outputs, options):
    if layer.interpolation != "nearest":  # the layer itself has nearest only today
        raise ValueError(f"export to ONNX: {layer._owner} has interpolation {layer.interpolation!r}; "
                         "only 'nearest' exports")
    return _repeat(ctx, inputs[0], [int(s) for s in layer.size])


def _pad(ctx: ExportContext, x: str, pairs: list[tuple[int, int]]) -> str:
    if not any(b or e for b, e in pairs):
        return x
    nd = len(ctx.shape(x))
    before = [0] + [p[0] for p in pairs] + [0] * (nd - 1 - len(pairs))
    after = [0] + [p[1] for p in pairs] + [0] * (nd - 1 - len(pairs))
    return ctx.node("Pad", [x, _i64(ctx, before + after, "pads")], name="padded", mode="constant")


@register_converter(L.ZeroPadding1D)
def _zero_padding1d(ctx, layer, inputs, outputs, options):
    return _pad(ctx, inputs[0], [tuple(layer.padding)])


@register_converter(L.ZeroPadding2D)
def _zero_padding2d(ctx, layer, inputs, outputs, options):
    return _pad(ctx, inputs[0], [tuple(p) for p in layer.padding])


@register_converter(L.Cropping2D)
def _cropping2d(ctx, layer, inputs, outputs, options):
    (top, bottom), (left, right) = layer.cropping
    if not (top or bottom or left or right):
        return inputs[0]
    starts = _i64(ctx, [top, left], "starts")
    ends = _i64(ctx, [-bottom if bottom else _END, -right if right else _END], "ends")
    return ctx.node("Slice", [inputs[0], starts, ends, _i64(ctx, [1, 2], "axes")], name="cropped")
