"""ONNX converters of the recurrent layers, through ONNX's RNN, LSTM and GRU operators.

The kernels are stored transposed, ``(1, gates * units, features)``, with the gate blocks
in ONNX's order: npnet's LSTM keeps ``[i, f, c, o]`` (Keras' order), ONNX wants
``[i, o, f, c]``; the GRU order ``[z, r, h]`` is the same in both. A GRU with
``reset_after=True`` (Keras' default) applies the reset gate after the recurrent product:
ONNX's ``linear_before_reset=1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ..layers.activation import Linear, ReLU, Sigmoid, Tanh
from ._graph import ExportContext, register_converter

__all__: list[str] = []

_ACTIVATIONS = {Tanh: "Tanh", Sigmoid: "Sigmoid", ReLU: "Relu"}


def _activation(layer: Any, fn: Any, what: str) -> str:
    act = fn.layer
    name = _ACTIVATIONS.get(type(act)) if act is not None and type(act) is not Linear else None
    if name is None:
        shown = "linear" if act is None or type(act) is Linear else type(act).__name__
        raise ValueError(
            f"export to ONNX: {layer._owner} has {what} {shown!r}, which ONNX's recurrent operators cannot apply "
            f"(they take {sorted(_ACTIVATIONS.values())})")
    return name


def _blocks(a: np.ndarray, order: list[int], n: int) -> np.ndarray:
    """The ``n`` column blocks of ``a`` in ``order``, transposed to ONNX's (1, n * units, rows)."""
    parts = np.split(a, n, axis=-1)
    return np.ascontiguousarray(np.concatenate([parts[i] for i in order], axis=-1).T[None])


def _recurrent(ctx: ExportContext, layer: Any, inputs: list[str], outputs: list[np.ndarray], op: str,
               order: list[int], activations: list[str], biases: tuple[np.ndarray, np.ndarray] | None,
               **attrs: Any) -> list[str]:
    n = len(order)
    x = inputs[0]
    if layer.go_backwards:  # npnet reads the sequence from its end, and returns it in that order
        x = ctx.node("Slice", [x, ctx.const(np.asarray([-1], np.int64), "start"),
                               ctx.const(np.asarray([np.iinfo(np.int64).min], np.int64), "end"),
                               ctx.const(np.asarray([1], np.int64), "axis"),
                               ctx.const(np.asarray([-1], np.int64), "step")], name="reversed")
    xt = ctx.transpose(x, [1, 0, 2], name="time_first")
    w = ctx.weight(layer, "kernel", _blocks(layer.params["kernel"], order, n), "onnx_gates")
    r = ctx.weight(layer, "recurrent_kernel", _blocks(layer.params["recurrent_kernel"], order, n), "onnx_gates")
    args = [xt, w, r]
    if biases is not None:
        b = np.concatenate([np.concatenate([np.split(v, n)[i] for i in order]) for v in biases])
        args.append(ctx.weight(layer, "bias", b[None], "onnx_gates"))
    else:
        args.append("")
    args.append("")  # sequence_lens: every sequence is whole (masks are refused)
    axis0 = ctx.const(np.asarray([0], np.int64), "axis0")
    for s in inputs[1:]:  # initial states (batch, units) -> (1, batch, units)
        args.append(ctx.node("Unsqueeze", [s, axis0], name="initial_state"))
    n_states = len(inputs) - 1 if len(inputs) > 1 else (2 if op == "LSTM" else 1)
    n_out = 1 + n_states
    outs = ctx.node(op, args, n_outputs=n_out, name=op, hidden_size=int(layer.units), activations=activations,
                    **attrs)
    seq, states = outs[0], outs[1:]
    if layer.return_sequences:  # (T, 1, batch, units) -> (batch, T, units)
        y = ctx.transpose(ctx.node("Squeeze", [seq, ctx.const(np.asarray([1], np.int64), "axis1")]), [1, 0, 2],
                          name="sequence")
    else:
        y = ctx.node("Squeeze", [states[0], axis0], name="last")
    if not layer.return_state:
        return [y]
    return [y] + [ctx.node("Squeeze", [s, axis0], name="state") for s in states]


def _gate_bias(layer: Any, width: int) -> np.ndarray:
    return layer.params["bias"] if layer.use_bias else np.zeros(width, dtype=layer.params["kernel"].dtype)


@register_converter(L.SimpleRNN)
def _simple_rnn(ctx, layer, inputs, outputs, options):
    acts = [_activation(layer, layer._act, "activation")]
    bias = (_gate_bias(layer, layer.units), np.zeros(layer.units, layer.params["kernel"].dtype)) \
        if layer.use_bias else None
    return _recurrent(ctx, layer, inputs, outputs, "RNN", [0], acts, bias)


@register_converter(L.LSTM)
def _lstm(ctx, layer, inputs, outputs, options):
    acts = [_activation(layer, layer._rec, "recurrent_activation"), _activation(layer, layer._act, "activation"),
            _activation(layer, layer._act, "activation")]
    u = layer.units
    bias = (_gate_bias(layer, 4 * u), np.zeros(4 * u, layer.params["kernel"].dtype)) if layer.use_bias else None
    return _recurrent(ctx, layer, inputs, outputs, "LSTM", [0, 3, 1, 2], acts, bias)


@register_converter(L.GRU)
def _gru(ctx, layer, inputs, outputs, options):
    acts = [_activation(layer, layer._rec, "recurrent_activation"), _activation(layer, layer._act, "activation")]
    u, dtype = layer.units, layer.params["kernel"].dtype
    if not layer.use_bias:
        bias = None
    elif layer.reset_after:
        bias = (layer.params["bias"][0], layer.params["bias"][1])
    else:
        bias = (layer.params["bias"], np.zeros(3 * u, dtype))
    return _recurrent(ctx, layer, inputs, outputs, "GRU", [0, 1, 2], acts, bias,
                      linear_before_reset=int(layer.reset_after))
