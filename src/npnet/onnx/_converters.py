"""ONNX converters of npnet's layers: core, activations, normalization, merging, embedding.

Each converter writes the inference formula of its layer's ``forward`` with the same
operations in the same order, so that onnxruntime computes what ``predict`` computes.
Convolutions and pooling are in :mod:`npnet.onnx._conv`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ..layers.wrappers import _FoldTime, _ReverseTime, _UnfoldTime, _ZeroMaskedSteps
from ._graph import ExportContext, register_converter, register_mask_converter

__all__: list[str] = []


def _activate(ctx: ExportContext, layer: Any, z: str, outputs: list[np.ndarray]) -> str:
    """The fused activation of a Dense or convolution layer, applied to its affine output ``z``."""
    if layer._act is None:
        return z
    ctx.set_shape_like(z, outputs[0])
    return ctx.convert(layer._act, [z], outputs, {})[0]


# ---------------------------------------------------------------- core
@register_converter(L.Dense)
def _dense(ctx, layer, inputs, outputs, options):
    z = ctx.node("MatMul", [inputs[0], ctx.weight(layer, "kernel", layer.params["kernel"])])
    if layer.use_bias:
        z = ctx.node("Add", [z, ctx.weight(layer, "bias", layer.params["bias"])])
    return _activate(ctx, layer, z, outputs)


@register_converter(L.Activation)
def _activation(ctx, layer, inputs, outputs, options):
    return ctx.convert(layer._act, inputs, outputs, {})


@register_converter(L.Dropout)
@register_converter(L.SpatialDropout1D)
@register_converter(L.SpatialDropout2D)
def _dropout(ctx, layer, inputs, outputs, options):
    return inputs[0]  # the identity at inference


@register_converter(L.Flatten)
def _flatten(ctx, layer, inputs, outputs, options):
    ctx.require_static(layer, inputs[0], range(1, len(ctx.shape(inputs[0]))), "flattening")
    return ctx.node("Flatten", inputs, axis=1)


@register_converter(L.Reshape)
def _reshape(ctx, layer, inputs, outputs, options):
    # A -1 whose size varies with the input stays -1 (the graph works it out per batch).
    return ctx.node("Reshape", [inputs[0], ctx.reshape_target(layer, "target", (None,) + tuple(layer._target))])


@register_converter(L.Rescaling)
def _rescaling(ctx, layer, inputs, outputs, options):
    dtype = outputs[0].dtype
    y = ctx.node("Mul", [inputs[0], ctx.const(np.asarray(layer.scale, dtype=dtype), "scale")])
    if layer.offset:
        y = ctx.node("Add", [y, ctx.const(np.asarray(layer.offset, dtype=dtype), "offset")])
    return y


# ---------------------------------------------------------------- activations
@register_converter(L.Linear)
def _linear(ctx, layer, inputs, outputs, options):
    return inputs[0]


def _simple(op: str) -> Any:
    def convert(ctx, layer, inputs, outputs, options):
        return ctx.node(op, inputs)

    return convert


register_converter(L.ReLU)(_simple("Relu"))
register_converter(L.Sigmoid)(_simple("Sigmoid"))
register_converter(L.Tanh)(_simple("Tanh"))
register_converter(L.Softplus)(_simple("Softplus"))


@register_converter(L.LeakyReLU)
def _leaky_relu(ctx, layer, inputs, outputs, options):
    return ctx.node("LeakyRelu", inputs, alpha=float(layer.negative_slope))


@register_converter(L.ELU)
def _elu(ctx, layer, inputs, outputs, options):
    return ctx.node("Elu", inputs, alpha=float(layer.alpha))


@register_converter(L.Swish)
def _swish(ctx, layer, inputs, outputs, options):
    return ctx.node("Mul", [inputs[0], ctx.node("Sigmoid", inputs)])


@register_converter(L.Softmax)
def _softmax(ctx, layer, inputs, outputs, options):
    nd = len(ctx.shape(inputs[0]))
    return ctx.node("Softmax", inputs, axis=int(layer.axis % nd))


# ---------------------------------------------------------------- normalization
@register_converter(L.BatchNormalization)
def _batch_norm(ctx, layer, inputs, outputs, options):
    # The inference formula of BatchNormalization.forward, folded as it folds it:
    # y = x * scale + shift with scale = gamma / sqrt(moving_variance + epsilon).
    dtype = outputs[0].dtype
    mean = layer.state["moving_mean"].astype(dtype)
    inv = (1.0 / np.sqrt(layer.state["moving_variance"].astype(np.float64) + layer.epsilon)).astype(dtype)
    gamma = layer.params["gamma"] if layer.scale else np.ones_like(inv)
    scale = (gamma * inv).astype(dtype)
    shift = -mean * scale
    if layer.center:
        shift += layer.params["beta"]
    nd = len(ctx.shape(inputs[0]))
    shape = [1] * nd
    shape[layer._ax] = -1
    y = ctx.node("Mul", [inputs[0], ctx.weight(layer, "scale", scale.reshape(shape), "folded")])
    return ctx.node("Add", [y, ctx.weight(layer, "shift", shift.reshape(shape), "folded")])


@register_converter(L.LayerNormalization)
def _layer_norm(ctx, layer, inputs, outputs, options):
    x = inputs[0]
    axes = list(layer._norm_axes)
    mean = ctx.reduce("ReduceMean", x, axes, keepdims=True, name="mean")
    d = ctx.node("Sub", [x, mean])
    var = ctx.reduce("ReduceMean", ctx.node("Mul", [d, d]), axes, keepdims=True, name="variance")
    root = ctx.node("Sqrt", [ctx.node("Add", [var, ctx.const(np.asarray(layer.epsilon, dtype=outputs[0].dtype))])])
    inv = ctx.node("Div", [ctx.const(np.asarray(1.0, dtype=outputs[0].dtype)), root], name="inv")
    y = ctx.node("Mul", [x if layer.rms_scaling else d, inv])
    if "gamma" in layer.params:
        y = ctx.node("Mul", [y, ctx.weight(layer, "gamma", layer.params["gamma"].reshape(layer._bshape), "broadcast")])
    if "beta" in layer.params:
        y = ctx.node("Add", [y, ctx.weight(layer, "beta", layer.params["beta"].reshape(layer._bshape), "broadcast")])
    return y


# ---------------------------------------------------------------- merging
def _chain(op: str) -> Any:
    def convert(ctx, layer, inputs, outputs, options):
        y = inputs[0]
        for x in inputs[1:]:
            y = ctx.node(op, [y, x])
        return y

    return convert


register_converter(L.Add)(_chain("Add"))
register_converter(L.Subtract)(_chain("Sub"))
register_converter(L.Multiply)(_chain("Mul"))


@register_converter(L.Average)
def _average(ctx, layer, inputs, outputs, options):
    y = _chain("Add")(ctx, layer, inputs, outputs, options)
    return ctx.node("Mul", [y, ctx.const(np.asarray(1.0 / len(inputs), dtype=outputs[0].dtype), "inverse_count")])


@register_converter(L.Maximum)
def _maximum(ctx, layer, inputs, outputs, options):
    return ctx.node("Max", inputs)


@register_converter(L.Minimum)
def _minimum(ctx, layer, inputs, outputs, options):
    return ctx.node("Min", inputs)


@register_converter(L.Concatenate)
def _concatenate(ctx, layer, inputs, outputs, options):
    return ctx.node("Concat", inputs, axis=layer._ax(len(ctx.shape(inputs[0]))))


def _l2_normalize(ctx: ExportContext, x: str, axis: int, dtype: Any) -> str:
    sq = ctx.reduce("ReduceSum", ctx.node("Mul", [x, x]), [axis], keepdims=True, name="sum_of_squares")
    norm = ctx.node("Sqrt", [ctx.node("Max", [sq, ctx.const(np.asarray(1e-12, dtype=dtype), "epsilon")])])
    return ctx.node("Div", [x, norm], name="normalized")


@register_converter(L.Dot)
def _dot(ctx, layer, inputs, outputs, options):
    a, b = inputs
    sa, sb = ctx.shape(a), ctx.shape(b)
    da, db = ctx.dynamic_axes(a), ctx.dynamic_axes(b)
    ax, ay = layer._resolved([sa, sb])
    ctx.require_static(layer, a, [ax], "the contracted axis")
    if layer.normalize:
        a, b = _l2_normalize(ctx, a, ax, outputs[0].dtype), _l2_normalize(ctx, b, ay, outputs[0].dtype)
    d = sa[ax]
    # a: move the contracted axis last, then (batch, P, d); b: move it to 1, then (batch, d, Q).
    pa = [i for i in range(len(sa)) if i != ax] + [ax]
    pb = [0, ay] + [i for i in range(1, len(sb)) if i != ay]
    am = ctx.node("Reshape", [ctx.transpose(a, pa), ctx.const(np.asarray([0, -1, d], dtype=np.int64), "shape")])
    bm = ctx.node("Reshape", [ctx.transpose(b, pb), ctx.const(np.asarray([0, d, -1], dtype=np.int64), "shape")])
    z = ctx.node("MatMul", [am, bm])
    left = [None if i in da else sa[i] for i in pa[1:-1]]
    right = [None if i in db else sb[i] for i in pb[2:]]
    dims = [None] + left + right if left or right else [None, 1]
    return ctx.node("Reshape", [z, ctx.reshape_target(layer, "output", dims)])


# ---------------------------------------------------------------- embedding
@register_converter(L.Embedding)
def _embedding(ctx, layer, inputs, outputs, options):
    from onnx import TensorProto

    ids = ctx.node("Cast", inputs, name="ids", to=TensorProto.INT64)
    return ctx.node("Gather", [ctx.weight(layer, "embeddings", layer.params["embeddings"]), ids], axis=0)


# ---------------------------------------------------------------- masks
def _any_last(ctx: ExportContext, b: str, name: str) -> str:
    """``b.any(axis=-1)`` for a boolean value (ReduceMax takes no booleans before opset 20)."""
    from onnx import TensorProto

    n = ctx.node("Cast", [b], to=TensorProto.INT32)
    return ctx.node("Cast", [ctx.reduce("ReduceMax", n, [-1], keepdims=False)], name=name, to=TensorProto.BOOL)


@register_mask_converter(L.Embedding)
def _embedding_mask(ctx, layer, inputs, masks, outputs):
    # compute_mask: ids != 0 (the ids arrive as floats: an exact comparison with 0)
    zero = ctx.const(np.asarray(0, dtype=ctx.dtype_of(inputs[0])), "zero")
    return ctx.node("Not", [ctx.node("Equal", [inputs[0], zero])], name="mask")


def _masking_keep(ctx: ExportContext, layer: Any, x: str) -> str:
    value = ctx.const(np.asarray(layer.mask_value, dtype=ctx.dtype_of(x)), "mask_value")
    return _any_last(ctx, ctx.node("Not", [ctx.node("Equal", [x, value])]), "keep")


@register_converter(L.Masking)
def _masking(ctx, layer, inputs, outputs, options):
    # forward: x where any feature differs from mask_value, else 0
    keep = ctx.node("Unsqueeze", [_masking_keep(ctx, layer, inputs[0]), ctx.const(np.asarray([-1], np.int64))])
    zero = ctx.const(np.asarray(0, dtype=outputs[0].dtype), "zero")
    return ctx.node("Where", [keep, inputs[0], zero])


@register_mask_converter(L.Masking)
def _masking_mask(ctx, layer, inputs, masks, outputs):
    return _masking_keep(ctx, layer, inputs[0])


def _merge_mask(ctx, layer, inputs, masks, outputs):
    # compute_mask: a step is real where it is real in any input; no mask if one has none
    if any(m is None for m in masks):
        return None
    y = masks[0]
    for m in masks[1:]:
        y = ctx.node("Or", [y, m], name="mask")
    return y


for _klass in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum):
    register_mask_converter(_klass)(_merge_mask)


@register_mask_converter(L.Concatenate)
def _concatenate_mask(ctx, layer, inputs, masks, outputs):
    # compute_mask: each mask spread over its input's axes (True where an input has
    # none), joined along the concatenation axis, then any() over the last axis.
    if all(m is None for m in masks):
        return None
    nd = len(ctx.shape(inputs[0]))
    parts = []
    for x, m in zip(inputs, masks):
        shape = ctx.node("Shape", [x])
        if m is None:
            parts.append(ctx.node("Expand", [ctx.const(np.asarray(True)), shape], name="all_real"))
            continue
        extra = nd - len(ctx.shape(m))
        if extra:
            m = ctx.node("Unsqueeze", [m, ctx.const(np.arange(-extra, 0, dtype=np.int64), "axes")])
        parts.append(ctx.node("Expand", [m, shape], name="spread"))
    joined = ctx.node("Concat", parts, axis=layer._ax(nd))
    return _any_last(ctx, joined, "mask")


# ---------------------------------------------------------------- the wrappers' private primitives
@register_converter(_FoldTime, masks=True)
def _fold_time(ctx, layer, inputs, outputs, options):
    shape = ctx.shape(inputs[0])
    ctx.require_static(layer, inputs[0], range(2, len(shape)), "folding time into the batch")
    return ctx.node("Reshape", [inputs[0], ctx.const(np.asarray((-1,) + shape[2:], np.int64), "shape")],
                    name="folded")


@register_mask_converter(_FoldTime)
def _fold_time_mask(ctx, layer, inputs, masks, outputs):
    m = masks[0]
    if m is None or len(ctx.shape(m)) < 3:
        return None
    rest = ctx.shape(m)[2:]
    ctx.require_static(layer, m, range(2, 2 + len(rest)), "folding a mask")
    return ctx.node("Reshape", [m, ctx.const(np.asarray((-1,) + rest, np.int64), "shape")], name="mask")


@register_converter(_UnfoldTime, masks=True)
def _unfold_time(ctx, layer, inputs, outputs, options):
    y, seq = inputs
    rest = ctx.shape(y)[1:]
    ctx.require_static(layer, y, range(1, 1 + len(rest)), "unfolding time from the batch")
    lead = ctx.node("Slice", [ctx.node("Shape", [seq]), ctx.const(np.asarray([0], np.int64), "start"),
                              ctx.const(np.asarray([2], np.int64), "end")], name="batch_and_time")
    target = ctx.node("Concat", [lead, ctx.const(np.asarray(rest, np.int64), "rest")], axis=0)
    return ctx.node("Reshape", [y, target], name="unfolded")


@register_converter(_ReverseTime, masks=True)
def _reverse_time(ctx, layer, inputs, outputs, options):
    return ctx.node("Slice", [inputs[0], ctx.const(np.asarray([-1], np.int64), "start"),
                              ctx.const(np.asarray([np.iinfo(np.int64).min], np.int64), "end"),
                              ctx.const(np.asarray([1], np.int64), "axis1"),
                              ctx.const(np.asarray([-1], np.int64), "step")], name="reversed")


@register_converter(_ZeroMaskedSteps, masks=True)
def _zero_masked_steps(ctx, layer, inputs, outputs, options):
    mask = options.get("mask")
    if mask is None:
        return inputs[0]
    extra = len(ctx.shape(inputs[0])) - len(ctx.shape(mask))
    keep = ctx.node("Cast", [mask], name="keep", to=ctx.tensor_type(outputs[0].dtype))
    if extra:
        keep = ctx.node("Unsqueeze", [keep, ctx.const(np.arange(-extra, 0, dtype=np.int64), "axes")])
    return ctx.node("Mul", [inputs[0], keep], name="zeroed")
