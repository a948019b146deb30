"""ONNX converters of the recurrent layers, through ONNX's RNN, LSTM and GRU operators.

The kernels are stored transposed, ``(1, gates * units, features)``, with the gate blocks
in ONNX's order: npnet's LSTM keeps ``[i, f, c, o]`` (Keras' order), ONNX wants
``[i, o, f, c]``; the GRU order ``[z, r, h]`` is the same in both. A GRU with
``reset_after=True`` (Keras' default) applies the reset gate after the recurrent product:
ONNX's ``linear_before_reset=1``.

A call with a mask, or with an activation those operators cannot apply, is written as an
ONNX ``Scan`` instead: its body is one step of the cell, with the same formula as the
layer's ``_scan``, the activations converted like any layer's, and at a masked step the
previous state carried on (``Where``), as npnet carries it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ..layers.activation import Linear, ReLU, Sigmoid, Tanh
from ._graph import ExportContext, register_converter

__all__: list[str] = []

_ACTIVATIONS = {Tanh: "Tanh", Sigmoid: "Sigmoid", ReLU: "Relu"}


def _native(fn: Any) -> str | None:
    """The name ONNX's recurrent operators give the activation, or None if they have none."""
    act = fn.layer
    return _ACTIVATIONS.get(type(act)) if act is not None and type(act) is not Linear else None


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
    args.append("")  # sequence_lens: every sequence is whole (a masked call takes the Scan path)
    axis0 = ctx.const(np.asarray([0], np.int64), "axis0") if len(inputs) > 1 or not layer.return_sequences \
        or layer.return_state else ""
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


def _needs_scan(layer: Any, options: dict[str, Any], fns: list[Any]) -> bool:
    return _mask_of(options) is not None or any(_native(fn) is None for fn in fns)


def _mask_of(options: dict[str, Any]) -> str | None:
    mask = options.get("mask")
    if isinstance(mask, (list, tuple)):
        mask = mask[0] if mask else None
    return mask


@register_converter(L.SimpleRNN, masks=True)
def _simple_rnn(ctx, layer, inputs, outputs, options):
    if _needs_scan(layer, options, [layer._act]):
        return _scan(ctx, layer, inputs, outputs, options, _simple_rnn_step, 1)
    bias = (_gate_bias(layer, layer.units), np.zeros(layer.units, layer.params["kernel"].dtype)) \
        if layer.use_bias else None
    return _recurrent(ctx, layer, inputs, outputs, "RNN", [0], [_native(layer._act)], bias)


@register_converter(L.LSTM, masks=True)
def _lstm(ctx, layer, inputs, outputs, options):
    if _needs_scan(layer, options, [layer._rec, layer._act]):
        return _scan(ctx, layer, inputs, outputs, options, _lstm_step, 2)
    acts = [_native(layer._rec), _native(layer._act), _native(layer._act)]
    u = layer.units
    bias = (_gate_bias(layer, 4 * u), np.zeros(4 * u, layer.params["kernel"].dtype)) if layer.use_bias else None
    return _recurrent(ctx, layer, inputs, outputs, "LSTM", [0, 3, 1, 2], acts, bias)


@register_converter(L.GRU, masks=True)
def _gru(ctx, layer, inputs, outputs, options):
    if _needs_scan(layer, options, [layer._rec, layer._act]):
        return _scan(ctx, layer, inputs, outputs, options, _gru_step, 1)
    acts = [_native(layer._rec), _native(layer._act)]
    u, dtype = layer.units, layer.params["kernel"].dtype
    if not layer.use_bias:
        bias = None
    elif layer.reset_after:
        bias = (layer.params["bias"][0], layer.params["bias"][1])
    else:
        bias = (layer.params["bias"], np.zeros(3 * u, dtype))
    return _recurrent(ctx, layer, inputs, outputs, "GRU", [0, 1, 2], acts, bias,
                      linear_before_reset=int(layer.reset_after))


# ---------------------------------------------------------------- the general path: Scan
class _Step:
    """Builds one step of a cell inside the Scan body: values are (batch, width) rows."""

    def __init__(self, ctx: ExportContext, layer: Any) -> None:
        self.ctx, self.layer = ctx, layer
        self.dtype = layer.params["kernel"].dtype

    def _row(self, name: str, width: int) -> str:
        self.ctx.set_shape(name, (2, width), {0}, self.dtype)
        return name

    def node(self, op: str, ins: list[str], width: int, name: str | None = None) -> str:
        return self._row(self.ctx.node(op, ins, name=name), width)

    def apply(self, fn: Any, z: str, width: int) -> str:
        """The activation ``fn`` (an npnet activation wrapper) of ``z``, as its layer converts."""
        if fn.layer is None or type(fn.layer) is Linear:
            return z
        dummy = np.zeros((2, width), self.dtype)
        return self._row(self.ctx.convert(fn.layer, [z], [dummy], {})[0], width)

    def split(self, a: str, widths: list[int]) -> list[str]:
        sizes = self.ctx.const(np.asarray(widths, np.int64), "split")
        parts = self.ctx.node("Split", [a, sizes], n_outputs=len(widths), name="gates", axis=1)
        return [self._row(p, w) for p, w in zip(parts, widths)]

    def weight(self, key: str, array: np.ndarray, transform: str = "") -> str:
        return self.ctx.weight(self.layer, key, array, transform)


def _simple_rnn_step(st: _Step, x: str, states: list[str]) -> list[str]:
    # a = xw_t + h_{t-1} U; h_t = phi(a)
    u = st.layer.units
    rec = st.node("MatMul", [states[0], st.weight("recurrent_kernel", st.layer.params["recurrent_kernel"])], u)
    return [st.apply(st.layer._act, st.node("Add", [x, rec], u), u)]


def _lstm_step(st: _Step, x: str, states: list[str]) -> list[str]:
    # [i, f, g, o] = xw_t + h_{t-1} U; c_t = sigma(f) c_{t-1} + sigma(i) phi(g); h_t = sigma(o) phi(c_t)
    u = st.layer.units
    h, c = states
    rec = st.node("MatMul", [h, st.weight("recurrent_kernel", st.layer.params["recurrent_kernel"])], 4 * u)
    i, f, g, o = st.split(st.node("Add", [x, rec], 4 * u), [u] * 4)
    i, f, o = (st.apply(st.layer._rec, v, u) for v in (i, f, o))
    g = st.apply(st.layer._act, g, u)
    c_new = st.node("Add", [st.node("Mul", [f, c], u), st.node("Mul", [i, g], u)], u, name="cell")
    h_new = st.node("Mul", [o, st.apply(st.layer._act, c_new, u)], u, name="hidden")
    return [h_new, c_new]


def _gru_step(st: _Step, x: str, states: list[str]) -> list[str]:
    # z, r from xw_t + h_{t-1} U (z and r blocks); the candidate h~ with the reset gate
    # after the recurrent product (reset_after) or before it; h_t = h~ + z (h_{t-1} - h~)
    layer, u = st.layer, st.layer.units
    (h,) = states
    rk = layer.params["recurrent_kernel"]
    xz, xr, xh = st.split(x, [u, u, u])
    if layer.reset_after:
        rec = st.node("MatMul", [h, st.weight("recurrent_kernel", rk)], 3 * u)
        if layer.use_bias:
            rec = st.node("Add", [rec, st.weight("bias", layer.params["bias"][1], "recurrent")], 3 * u)
        rz, rr, rh = st.split(rec, [u, u, u])
    else:
        rec = st.node("MatMul", [h, st.weight("recurrent_kernel", np.ascontiguousarray(rk[:, :2 * u]), "zr")],
                      2 * u)
        rz, rr = st.split(rec, [u, u])
    z = st.apply(layer._rec, st.node("Add", [xz, rz], u), u)
    r = st.apply(layer._rec, st.node("Add", [xr, rr], u), u)
    if layer.reset_after:
        hh = st.node("Add", [xh, st.node("Mul", [r, rh], u)], u)
    else:
        held = st.node("Mul", [r, h], u)
        candidate = st.weight("recurrent_kernel", np.ascontiguousarray(rk[:, 2 * u:]), "candidate")
        hh = st.node("Add", [xh, st.node("MatMul", [held, candidate], u)], u)
    hh = st.apply(layer._act, hh, u)
    h_new = st.node("Add", [st.node("Mul", [st.node("Sub", [h, hh], u), z], u), hh], u, name="hidden")
    return [h_new]


def _scan(ctx: ExportContext, layer: Any, inputs: list[str], outputs: list[np.ndarray], options: dict[str, Any],
          step: Any, n_states: int) -> list[str]:
    from onnx import TensorProto, helper

    dtype = layer.params["kernel"].dtype
    elem = ctx.tensor_type(dtype)
    u = layer.units
    x = inputs[0]
    # 1. the input projection of every step at once, time first: (T, batch, k units)
    xt = ctx.transpose(x, [1, 0, 2], name="time_first")
    xw = ctx.node("MatMul", [xt, ctx.weight(layer, "kernel", layer.params["kernel"])], name="input_projection")
    if layer.use_bias:
        bias = layer.params["bias"][0] if isinstance(layer, L.GRU) and layer.reset_after else layer.params["bias"]
        xw = ctx.node("Add", [xw, ctx.weight(layer, "bias", np.ascontiguousarray(bias), "input")])
    # 2. the initial states: given, or zeros (batch, units)
    if len(inputs) > 1:
        initial = list(inputs[1:])
    else:
        batch = ctx.node("Slice", [ctx.node("Shape", [x]), ctx.const(np.asarray([0], np.int64), "start"),
                                   ctx.const(np.asarray([1], np.int64), "end")], name="batch")
        shape = ctx.node("Concat", [batch, ctx.const(np.asarray([u], np.int64), "units")], axis=0)
        zeros = ctx.node("ConstantOfShape", [shape], name="zeros",
                         value=helper.make_tensor("zero", elem, [1], [0.0]))
        initial = [zeros] * n_states
    mask = _mask_of(options)
    scans = [xw]
    if mask is not None:  # (batch, T) -> (T, batch, 1)
        keep = ctx.transpose(mask, [1, 0], name="mask_time_first")
        scans.append(ctx.node("Unsqueeze", [keep, ctx.const(np.asarray([2], np.int64), "axis2")], name="keep"))
    # 3. the body: states and one step's slices in, new states and the step's output out
    width = layer.params["kernel"].shape[1]
    body_states = [ctx.fresh(f"{layer.name}/state_in") for _ in range(n_states)]
    body_x = ctx.fresh(f"{layer.name}/step_input")
    body_keep = ctx.fresh(f"{layer.name}/step_keep") if mask is not None else None
    st = _Step(ctx, layer)
    for b in body_states:
        st._row(b, u)
    st._row(body_x, width)
    with ctx.subgraph() as body_nodes:
        new = step(st, body_x, body_states)
        if body_keep is not None:  # a masked step carries the previous states on
            new = [st.node("Where", [body_keep, n, old], u, name="carried") for n, old in zip(new, body_states)]
        state_out = [ctx.node("Identity", [n], name="state_out") for n in new]
        step_out = ctx.node("Identity", [new[0]], name="step_output")
    row = [None, u]
    body_inputs = [helper.make_tensor_value_info(b, elem, row) for b in body_states]
    body_inputs.append(helper.make_tensor_value_info(body_x, elem, [None, width]))
    if body_keep is not None:
        body_inputs.append(helper.make_tensor_value_info(body_keep, TensorProto.BOOL, [None, 1]))
    body_outputs = [helper.make_tensor_value_info(n, elem, row) for n in state_out + [step_out]]
    body = helper.make_graph(body_nodes, ctx.fresh(f"{layer.name}/step"), body_inputs, body_outputs)
    direction = 1 if layer.go_backwards else 0  # npnet returns the steps in the order it reads them
    outs = ctx.node("Scan", initial + scans, n_outputs=n_states + 1, name="Scan", body=body,
                    num_scan_inputs=len(scans), scan_input_directions=[direction] * len(scans))
    finals, seq = outs[:n_states], outs[n_states]
    y = ctx.transpose(seq, [1, 0, 2], name="sequence") if layer.return_sequences else \
        ctx.node("Identity", [finals[0]], name="last")
    return [y] + list(finals) if layer.return_state else [y]
