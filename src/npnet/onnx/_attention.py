"""ONNX converter of :class:`npnet.layers.MultiHeadAttention`.

The graph writes the inference formula of ``MultiHeadAttention.forward`` with the same
operations in the same order: the three projections (``MatMul`` + ``Add``, the query
scaled by :math:`1/\\sqrt{d}` after its bias), the scores :math:`Q K^\\top` per head, the
masked softmax (masked scores set to :math:`-10^9` before ``Softmax``, masked
probabilities set to 0 after it, so a query step with nothing to attend to gets zero
weights and no NaN), :math:`P V` per head and the output projection. Dropout is the
identity at inference.

Masks are combined as ``MultiHeadAttention._combined_mask`` combines them: the query
mask ``(batch, T, 1)``, the value and key masks ``(batch, 1, S)``, the causal mask and
the sliding window ``(1, T, S)`` (computed in the graph from the sequence lengths, so
they follow a varying length), and ``attention_mask`` ``(batch or 1, T, S)`` or
``(T, S)``, joined with ``And``. An explicit mask takes the place of the mask attached to
its input, as in ``forward``; a mask that is not boolean counts as True where nonzero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ..layers.attention import _MASK_ARGS, _MASKED_SCORE
from ._graph import ExportContext, register_converter

__all__: list[str] = []


def _i64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _project(ctx: ExportContext, layer: Any, x: str, what: str, depth: int) -> str:
    """``x @ kernel + bias`` of ``(batch, steps, features)``, as ``(batch, steps, heads, depth)``."""
    w = layer.params[f"{what}_kernel"]
    y = ctx.node("MatMul", [x, ctx.weight(layer, f"{what}_kernel", w.reshape(w.shape[0], -1), "flat")],
                 name=what)
    if layer.use_bias:
        y = ctx.node("Add", [y, ctx.weight(layer, f"{what}_bias", layer.params[f"{what}_bias"].reshape(-1), "flat")],
                     name=what)
    return ctx.node("Reshape", [y, ctx.const(_i64([0, 0, layer.num_heads, depth]), "heads_shape")], name=what)


def _as_bool(ctx: ExportContext, name: str) -> str:
    """A mask as booleans (True where nonzero, as ``astype(bool)``)."""
    if ctx.dtype_of(name) == np.bool_:
        return name
    return ctx.node("Cast", [name], name="mask_bool", to=ctx.tensor_type(np.bool_))


def _length(ctx: ExportContext, x: str, what: str) -> str:
    """The number of steps (axis 1) of ``x``, an int64 scalar."""
    return ctx.node("Gather", [ctx.node("Shape", [x]), ctx.const(_i64(1), "axis1")], name=f"{what}_steps", axis=0)


def _positions(ctx: ExportContext, layer: Any, query: str, value: str) -> tuple[str, str]:
    """Query positions ``(T, 1)`` and key positions ``(1, S)``, int64, from the lengths in the graph."""
    zero, one = ctx.const(_i64(0), "zero"), ctx.const(_i64(1), "one")
    i = ctx.node("Range", [zero, _length(ctx, query, "query"), one], name="query_positions")
    j = ctx.node("Range", [zero, _length(ctx, value, "key"), one], name="key_positions")
    i = ctx.node("Unsqueeze", [i, ctx.const(_i64([1]), "axes")], name="query_positions")
    j = ctx.node("Unsqueeze", [j, ctx.const(_i64([0]), "axes")], name="key_positions")
    return i, j


def _combined_mask(ctx: ExportContext, layer: Any, query: str, value: str, masks: dict[str, Any],
                   use_causal_mask: bool) -> str | None:
    """The graph of ``MultiHeadAttention._combined_mask``: a boolean value that broadcasts
    to ``(batch, T, S)``, or None when no mask applies."""
    parts = []
    for arg in ("query_mask", "value_mask", "key_mask"):
        m = masks.get(arg)
        if m is None:
            continue
        axis = 2 if arg == "query_mask" else 1
        parts.append(ctx.node("Unsqueeze", [_as_bool(ctx, m), ctx.const(_i64([axis]), "axes")], name=arg))
    if use_causal_mask or layer.sliding_window is not None:
        i, j = _positions(ctx, layer, query, value)
        if use_causal_mask:
            parts.append(ctx.node("GreaterOrEqual", [i, j], name="causal_mask"))
        if layer.sliding_window is not None:
            distance = ctx.node("Abs", [ctx.node("Sub", [i, j])], name="distance")
            window = ctx.const(_i64(layer.sliding_window), "sliding_window")
            parts.append(ctx.node("Less", [distance, window], name="sliding_window_mask"))
    m = masks.get("attention_mask")
    if m is not None:
        # (forward has checked its shape) a (T, S) or (1, T, S) mask broadcasts over the batch
        parts.append(_as_bool(ctx, m))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = ctx.node("And", [out, p], name="mask")
    return out


@register_converter(L.MultiHeadAttention, masks=True)
def _multi_head_attention(ctx: ExportContext, layer: Any, inputs: list[str], outputs: list[np.ndarray],
                          options: dict[str, Any]) -> Any:
    # the masks as forward gathers them (it has checked their names and shapes while tracing):
    # the mask inputs named in mask_args, the mask options, then the masks attached to the inputs
    names = [n for n in (options.get("mask_args") or "").split(",") if n]
    masks: dict[str, Any] = {n: options.get(n) for n in _MASK_ARGS}
    for n, m in zip(names, inputs[3:]):
        masks[n] = m
    attached = options.get("mask")
    attached = list(attached) if isinstance(attached, (list, tuple)) else []
    for n, m in zip(_MASK_ARGS[:3], attached[:3]):
        if masks[n] is None:
            masks[n] = m
    query, value, key = inputs[:3]
    h, kd, vd = layer.num_heads, layer.key_dim, layer.value_dim
    dtype = outputs[0].dtype

    q = _project(ctx, layer, query, "query", kd)
    q = ctx.node("Mul", [q, ctx.const(np.asarray(1.0 / np.sqrt(kd), dtype=dtype), "scale")], name="query")
    q = ctx.transpose(q, [0, 2, 1, 3], name="query")  # (b, h, T, d)
    k = ctx.transpose(_project(ctx, layer, key, "key", kd), [0, 2, 3, 1], name="key")  # (b, h, d, S)
    v = ctx.transpose(_project(ctx, layer, value, "value", vd), [0, 2, 1, 3], name="value")  # (b, h, S, e)
    scores = ctx.node("MatMul", [q, k], name="scores")  # (b, h, T, S)

    mask = _combined_mask(ctx, layer, query, value, masks, bool(options.get("use_causal_mask", False)))
    if mask is None:
        p = ctx.node("Softmax", [scores], name="probabilities", axis=-1)
    else:
        mask = ctx.node("Unsqueeze", [mask, ctx.const(_i64([-3]), "axes")], name="mask")  # (b|1, 1, T, S)
        masked = ctx.const(np.asarray(_MASKED_SCORE, dtype=dtype), "masked_score")
        scores = ctx.node("Where", [mask, scores, masked], name="scores")
        p = ctx.node("Softmax", [scores], name="probabilities", axis=-1)
        p = ctx.node("Where", [mask, p, ctx.const(np.asarray(0, dtype=dtype), "zero")], name="probabilities")

    c = ctx.transpose(ctx.node("MatMul", [p, v], name="context"), [0, 2, 1, 3], name="context")  # (b, T, h, e)
    c = ctx.node("Reshape", [c, ctx.const(_i64([0, 0, h * vd]), "context_shape")], name="context")
    wo = layer.params["output_kernel"]
    y = ctx.node("MatMul", [c, ctx.weight(layer, "output_kernel", wo.reshape(h * vd, -1), "flat")], name="output")
    if layer.use_bias:
        y = ctx.node("Add", [y, ctx.weight(layer, "output_bias", layer.params["output_bias"].reshape(-1), "flat")],
                     name="output")
    if wo.ndim != 3:
        y = ctx.node("Reshape", [y, ctx.const(_i64((0, 0) + wo.shape[2:]), "output_shape")], name="output")
    if options.get("return_attention_scores"):
        return [y, p]
    return y
