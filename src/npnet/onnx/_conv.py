"""ONNX converters of convolutions and pooling.

npnet works in channels-last layout (NHWC, and ``(batch, steps, channels)``); ONNX's
Conv and pooling operators work channels-first. Each converter transposes in and out
(onnxruntime removes the transposes that cancel), and the kernels are stored in ONNX's
``(filters, channels, *kernel)`` order.

Padding follows Keras: ``"same"`` puts :math:`\\lfloor p/2 \\rfloor` zeros before and the
rest after (ONNX's ``SAME_UPPER``), ``"causal"`` puts :math:`d (k - 1)` zeros before, and
an average over a window that reaches into the padding counts only the real cells
(``count_include_pad=0``). Where the padding depends on a varying length (``"same"``
with a stride above 1), the graph pads with ``auto_pad="SAME_UPPER"``, which computes
the same split at run time, or, with a dilation (which onnxruntime's ``auto_pad`` refuses),
works the zeros out from the input's shape and pads with ``Pad``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ..layers.conv import same_padding
from ._converters import _activate
from ._graph import ExportContext, register_converter

__all__: list[str] = []


def _to_channels_first(ctx: ExportContext, x: str, nd: int) -> str:
    return ctx.transpose(x, [0, nd - 1] + list(range(1, nd - 1)), name="to_channels_first")


def _to_channels_last(ctx: ExportContext, y: str, nd: int) -> str:
    return ctx.transpose(y, [0] + list(range(2, nd)) + [1], name="to_channels_last")


def _padding(ctx: ExportContext, layer: Any, x: str, padding: str, kernel: tuple, strides: tuple,
             dilation: tuple, pooling: bool = False) -> tuple[str, dict[str, Any]]:
    """``(x, pad attributes)`` for the spatial axes 1.. of channels-last input ``x``; ``x``
    comes back padded where the padding is worked out by nodes of the graph (for pooling
    always, as onnxruntime's pooling refuses ``auto_pad`` when a window is smaller than
    its stride)."""
    shape, varying = ctx.shape(x), ctx.dynamic_axes(x)
    spatial = list(range(1, len(shape) - 1))
    if padding == "valid":
        return x, {}
    if padding == "causal":
        before = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return x, {"pads": before + [0] * len(before)}
    # "same": the split depends on the size only with a stride above 1.
    if any(a in varying and s > 1 for a, s in zip(spatial, strides)):
        if pooling or any(d > 1 for d in dilation):  # onnxruntime's auto_pad refuses dilation
            return _same_pad_at_run_time(ctx, x, spatial, kernel, strides, dilation), {}
        return x, {"auto_pad": "SAME_UPPER"}
    pairs = [same_padding(shape[a] if a not in varying else 1, k, s, d)
             if s > 1 else ((d * (k - 1)) // 2, d * (k - 1) - (d * (k - 1)) // 2)
             for a, k, s, d in zip(spatial, kernel, strides, dilation)]
    return x, {"pads": [p[0] for p in pairs] + [p[1] for p in pairs]}


def _same_pad_at_run_time(ctx: ExportContext, x: str, spatial: list[int], kernel: tuple, strides: tuple,
                          dilation: tuple) -> str:
    """Zero-pad channels-last ``x`` as ``"same"`` does, from its size at run time:
    :math:`o = \\lceil i / s \\rceil`, :math:`p = \\max((o - 1) s + k_e - i, 0)`,
    :math:`\\lfloor p / 2 \\rfloor` zeros before and the rest after."""
    i64 = np.int64
    size = ctx.node("Gather", [ctx.node("Shape", [x]), ctx.const(np.asarray(spatial, i64), "spatial_axes")],
                    axis=0, name="size")
    s = ctx.const(np.asarray(strides, i64), "strides")
    eff = ctx.const(np.asarray([d * (k - 1) + 1 for k, d in zip(kernel, dilation)], i64), "effective_kernel")
    one, two = ctx.const(np.asarray(1, i64)), ctx.const(np.asarray(2, i64))
    out = ctx.node("Div", [ctx.node("Sub", [ctx.node("Add", [size, s]), one]), s], name="out_size")
    need = ctx.node("Sub", [ctx.node("Add", [ctx.node("Mul", [ctx.node("Sub", [out, one]), s]), eff]), size])
    total = ctx.node("Max", [need, ctx.const(np.asarray(0, i64))], name="total_pad")
    before = ctx.node("Div", [total, two], name="pad_before")
    after = ctx.node("Sub", [total, before], name="pad_after")
    zero = ctx.const(np.zeros(1, i64))
    pads = ctx.node("Concat", [zero, before, zero, zero, after, zero], axis=0, name="pads")
    return ctx.node("Pad", [x, pads], mode="constant", name="same_pad")


def _conv(ctx: ExportContext, layer: Any, inputs: list[str], outputs: list[np.ndarray]) -> str:
    x = inputs[0]
    nd = len(ctx.shape(x))
    kernel = layer.params["kernel"]  # (*kernel, channels, filters)
    perm = (nd - 1, nd - 2) + tuple(range(nd - 2))
    w = ctx.weight(layer, "kernel", np.transpose(kernel, perm), "channels_first")
    xp, pads = _padding(ctx, layer, x, layer.padding, layer.kernel_size, layer.strides, layer.dilation_rate)
    args = [_to_channels_first(ctx, xp, nd), w]
    if layer.use_bias:
        args.append(ctx.weight(layer, "bias", layer.params["bias"]))
    y = ctx.node("Conv", args, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), group=int(getattr(layer, "groups", 1)), **pads)
    return _activate(ctx, layer, _to_channels_last(ctx, y, nd), outputs)


@register_converter(L.Conv2D)
def _conv2d(ctx, layer, inputs, outputs, options):
    return _conv(ctx, layer, inputs, outputs)


@register_converter(L.Conv1D)
def _conv1d(ctx, layer, inputs, outputs, options):
    return _conv(ctx, layer, inputs, outputs)


def _pool(op: str) -> Any:
    def convert(ctx, layer, inputs, outputs, options):
        x = inputs[0]
        nd = len(ctx.shape(x))
        pool_size, strides, ones = layer.pool_size, layer.strides, (1,) * len(layer.pool_size)
        xp, attrs = _padding(ctx, layer, x, layer.padding, pool_size, strides, ones, pooling=True)
        kw = dict(kernel_shape=list(pool_size), strides=list(strides))
        if xp == x:  # padded by the operator (or not at all): it leaves the padding out
            if op == "AveragePool":
                attrs["count_include_pad"] = 0
            return _to_channels_last(ctx, ctx.node(op, [_to_channels_first(ctx, x, nd)], **kw, **attrs), nd)
        # Padded in the graph, with zeros. A maximum over the real cells needs -inf in the
        # padding; an average divides by the share of real cells, the same pooling of a
        # tensor of ones padded the same way (1 on real cells, 0 on padding).
        dtype = outputs[0].dtype
        real = _same_pad_at_run_time(
            ctx, ctx.node("ConstantOfShape", [ctx.node("Shape", [x])], value=_filled(ctx, np.bool_ if op == "MaxPool"
                                                                                     else dtype, 1)),
            list(range(1, nd - 1)), pool_size, strides, ones)
        if op == "MaxPool":
            xp = ctx.node("Where", [real, xp, ctx.const(np.asarray(-np.inf, dtype), "minus_infinity")], name="padded")
            return _to_channels_last(ctx, ctx.node(op, [_to_channels_first(ctx, xp, nd)], **kw), nd)
        total = ctx.node(op, [_to_channels_first(ctx, xp, nd)], **kw, count_include_pad=1)
        share = ctx.node(op, [_to_channels_first(ctx, real, nd)], **kw, count_include_pad=1)
        return _to_channels_last(ctx, ctx.node("Div", [total, share], name="average"), nd)

    return convert


def _filled(ctx: ExportContext, dtype: Any, value: Any) -> Any:
    """A one-element tensor of ``dtype`` holding ``value`` (``ConstantOfShape``'s fill)."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray([value], dtype=dtype), "fill")


for _klass, _op in ((L.MaxPooling1D, "MaxPool"), (L.MaxPooling2D, "MaxPool"), (L.AveragePooling1D, "AveragePool"),
                    (L.AveragePooling2D, "AveragePool")):
    register_converter(_klass)(_pool(_op))


@register_converter(L.GlobalAveragePooling2D)
def _global_average2d(ctx, layer, inputs, outputs, options):
    return ctx.reduce("ReduceMean", inputs[0], [1, 2], keepdims=layer.keepdims)


@register_converter(L.GlobalMaxPooling2D)
def _global_max2d(ctx, layer, inputs, outputs, options):
    return ctx.reduce("ReduceMax", inputs[0], [1, 2], keepdims=layer.keepdims)


@register_converter(L.GlobalAveragePooling1D, masks=True)
def _global_average1d(ctx, layer, inputs, outputs, options):
    mask = options.get("mask")
    if mask is None:
        return ctx.reduce("ReduceMean", inputs[0], [1], keepdims=layer.keepdims)
    # The mean over the real steps, as forward: weights m / max(count, 1), then a batched
    # product (batch, 1, time) x (batch, time, features).
    m = ctx.node("Cast", [mask], name="mask", to=ctx.tensor_type(outputs[0].dtype))
    count = ctx.node("Max", [ctx.reduce("ReduceSum", m, [1], keepdims=True, name="count"),
                             ctx.const(np.asarray(1.0, dtype=outputs[0].dtype))])
    weights = ctx.node("Div", [m, count], name="weights")
    axis1 = ctx.const(np.asarray([1], np.int64), "axis1")
    y = ctx.node("MatMul", [ctx.node("Unsqueeze", [weights, axis1]), inputs[0]])
    return y if layer.keepdims else ctx.node("Squeeze", [y, axis1], name="mean")


@register_converter(L.GlobalMaxPooling1D)
def _global_max1d(ctx, layer, inputs, outputs, options):
    return ctx.reduce("ReduceMax", inputs[0], [1], keepdims=layer.keepdims)


# ---------------------------------------------------------------- transposed, depthwise and separable
@register_converter(L.Conv2DTranspose)
def _conv_transpose(ctx, layer, inputs, outputs, options):
    # npnet scatters every input pixel into the full image of size f = (i - 1) s + k_e and
    # keeps its window [c, c + o), zero beyond f (see npnet.layers.conv_transpose). ONNX's
    # ConvTranspose computes the same full image, then drops pads[begin] = c and
    # pads[end] = f - c - o; a negative end becomes output_padding (zeros at the end).
    # c and f - c - o do not depend on the input size, so varying sizes export too.
    from ..layers.conv_transpose import conv_transpose_geometry

    x = inputs[0]
    begin, end, extra = [], [], []
    for k, s, d, p in zip(layer.kernel_size, layer.strides, layer.dilation_rate, layer.output_padding or (None, None)):
        size = 4  # any size: the pads do not depend on it
        o, c = conv_transpose_geometry(size, k, s, layer.padding, p, d)
        f = (size - 1) * s + d * (k - 1) + 1
        begin.append(c)
        end.append(max(f - c - o, 0))
        extra.append(max(o + c - f, 0))
    w = ctx.weight(layer, "kernel", np.transpose(layer.params["kernel"], (3, 2, 0, 1)), "channels_first")
    args = [_to_channels_first(ctx, x, 4), w]
    if layer.use_bias:
        args.append(ctx.weight(layer, "bias", layer.params["bias"]))
    y = ctx.node("ConvTranspose", args, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), pads=begin + end, output_padding=extra)
    return _activate(ctx, layer, _to_channels_last(ctx, y, 4), outputs)


def _depthwise(ctx: ExportContext, layer: Any, x: str, bias: bool) -> str:
    """The depthwise convolution of channels-last ``x``, channels first: a grouped Conv
    with one group per input channel; output channel ``c M + m`` as npnet orders it."""
    kernel = layer.params[layer._depthwise_key]  # (kh, kw, C, M)
    kh, kw, c, m = kernel.shape
    w = ctx.weight(layer, layer._depthwise_key, np.transpose(kernel, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw),
                   "channels_first")
    xp, pads = _padding(ctx, layer, x, layer.padding, layer.kernel_size, layer.strides, layer.dilation_rate)
    args = [_to_channels_first(ctx, xp, 4), w]
    if bias and layer.use_bias:
        args.append(ctx.weight(layer, "bias", layer.params["bias"]))
    return ctx.node("Conv", args, name="depthwise", kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                    dilations=list(layer.dilation_rate), group=int(c), **pads)


@register_converter(L.DepthwiseConv2D)
def _depthwise_conv2d(ctx, layer, inputs, outputs, options):
    y = _depthwise(ctx, layer, inputs[0], bias=True)
    return _activate(ctx, layer, _to_channels_last(ctx, y, 4), outputs)


@register_converter(L.SeparableConv2D)
def _separable_conv2d(ctx, layer, inputs, outputs, options):
    y = _depthwise(ctx, layer, inputs[0], bias=False)
    pointwise = layer.params["pointwise_kernel"]  # (1, 1, C M, filters)
    args = [y, ctx.weight(layer, "pointwise_kernel", np.transpose(pointwise, (3, 2, 0, 1)), "channels_first")]
    if layer.use_bias:
        args.append(ctx.weight(layer, "bias", layer.params["bias"]))
    z = ctx.node("Conv", args, name="pointwise", kernel_shape=[1, 1])
    return _activate(ctx, layer, _to_channels_last(ctx, z, 4), outputs)
