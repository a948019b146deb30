"""``model.summary()``: one row per layer, Keras' columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..layers._symbolic import InputLayer
from ..layers.base import Layer


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return str(tuple(shape))


def _layer_output_shape(layer: Layer) -> Any:
    if isinstance(layer, InputLayer):
        return layer.output.shape
    if layer._is_composite() or not layer.built or layer.input_shape is None:
        return None
    try:
        return layer.compute_output_shape(layer.input_shape)
    except Exception:
        return None


def summary(model: Any, print_fn: Callable[[str], Any]) -> None:
    from .functional import Functional
    from .sequential import Sequential, _output_shape

    graph = isinstance(model, Functional)
    header = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if graph else [])
    rows = [header]
    if isinstance(model, Sequential):
        shape = model.input_shape
        for layer in model.layers:
            if shape is not None and model.built:
                shape = _output_shape(layer, shape)
            count = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            rows.append([f"{layer.name} ({type(layer).__name__})", _shape_text(shape if model.built else None), count])
    elif graph:
        shapes: dict[int, Any] = {}
        inbound: dict[int, list[str]] = {}
        index: dict[int, int] = {}
        for node in model._nodes:
            ni = index.get(id(node.layer), 0)
            index[id(node.layer)] = ni + 1
            if id(node.layer) not in shapes:
                outs = [t.shape for t in node.outputs]
                shapes[id(node.layer)] = outs[0] if len(outs) == 1 else outs
            refs = []
            for t in node.inputs:
                src = 0 if isinstance(t.node.layer, InputLayer) else _node_index(model, t.node)
                refs.append(f"{t.node.layer.name}[{src}][{t.index}]")
            inbound.setdefault(id(node.layer), []).extend(refs)
        for layer in model.layers:
            shape = layer.output.shape if isinstance(layer, InputLayer) else shapes.get(id(layer))
            connected = ", ".join(inbound.get(id(layer), [])) or "-"
            rows.append([f"{layer.name} ({type(layer).__name__})", _shape_text(shape), f"{layer.count_params():,}",
                         connected])
    else:
        for layer in model.layers:
            rows.append([f"{layer.name} ({type(layer).__name__})", _shape_text(_layer_output_shape(layer)),
                         f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"])
    trainable = sum(w.size for w in model.trainable_weights)
    non_trainable = sum(w.size for w in model.non_trainable_weights)
    widths = [max(len(r[i]) for r in rows) + 3 for i in range(len(header))]
    total_w = sum(widths)
    lines = [f'Model: "{model.name}"', "=" * total_w]
    for i, row in enumerate(rows):
        lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines.append("=" * total_w if i == 0 else "-" * total_w if i < len(rows) - 1 else "=" * total_w)
    if len(rows) == 1:
        lines.append("=" * total_w)
    lines += [
        f"Total params: {trainable + non_trainable:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {non_trainable:,}",
    ]
    print_fn("\n".join(lines))


def _node_index(model: Any, node: Any) -> int:
    i = 0
    for other in model._nodes:
        if other is node:
            return i
        if other.layer is node.layer:
            i += 1
    return 0
