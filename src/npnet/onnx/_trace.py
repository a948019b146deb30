"""Tracing a model: the primitive calls one inference pass makes, in order.

The model runs twice in inference mode on placeholder batches of different sizes (two
batch sizes, and two lengths for every axis a model input leaves as ``None``), each pass
recorded on a tape. The two tapes must hold the same calls of the same layers; an axis
whose size differs between the passes is a varying ("dynamic") axis of that value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _masks, _tape
from .._nest import flatten, pack

__all__ = ["Trace", "trace"]

#: Placeholder sizes of the two passes: (batch, any other varying axis). Powers of two, so
#: that a model whose varying axis must divide by its strides (a U-Net's skip connections,
#: a Reshape with -1) traces.
_SIZES = ((2, 16), (3, 32))


class Trace:
    """One recorded pass, with the varying axes of every array in it.

    Attributes
    ----------
    inputs : list of ndarray
        The model inputs of the first pass, in the model's input order.
    input_structure : object
        The structure the model takes (one array, a list or a dict).
    entries : list of Entry
        The primitive calls, in order.
    outputs : list of ndarray
        The model outputs, flattened.
    output_structure : object
        The structure the model returned.
    dynamic : dict of int to frozenset of int
        ``id(array)`` to its varying axes, for every input, output, recorded array and mask.
    input_masks, output_masks : list of list
        For each entry, the mask attached to each of its input and output arrays (None
        where there is none).
    producers : dict of int to (int, int)
        ``id(mask)`` to ``(entry index, output index)`` of the first call whose output
        carries that mask: the call whose ``compute_mask`` made it (a mask passed on
        unchanged is the same array, and keeps its first producer).
    """

    def __init__(self, inputs: list[np.ndarray], input_structure: Any, entries: list[Any], outputs: list[np.ndarray],
                 output_structure: Any, dynamic: dict[int, frozenset[int]]) -> None:
        self.inputs, self.input_structure, self.entries = inputs, input_structure, entries
        self.outputs, self.output_structure, self.dynamic = outputs, output_structure, dynamic
        self.input_masks = [[_masks.get_mask(a) for a in e.inputs] for e in entries]
        self.output_masks = [[_masks.get_mask(o) for o in e.outputs] for e in entries]
        self.producers: dict[int, tuple[int, int]] = {}
        for i, ms in enumerate(self.output_masks):
            for j, m in enumerate(ms):
                if m is not None:
                    self.producers.setdefault(id(m), (i, j))


def _placeholders(shapes: list[tuple], batch: int, varying: int, dtype: Any) -> list[np.ndarray]:
    # Zeros: valid ids for an Embedding, and harmless everywhere else.
    return [np.zeros((batch,) + tuple(varying if d is None else int(d) for d in s[1:]), dtype=dtype) for s in shapes]


class _FrozenTape(_tape.Tape):
    """A tape that makes every model input and recorded output read-only while the model
    runs, so that NumPy arithmetic changing one in place inside ``call()`` (``h += x``),
    which no layer call records, raises instead of being left out of the graph."""

    def __init__(self) -> None:
        super().__init__(strict=False)
        self.frozen: list[np.ndarray] = []

    def _freeze(self, a: np.ndarray) -> None:
        if isinstance(a, np.ndarray) and a.flags.writeable:
            a.flags.writeable = False
            self.frozen.append(a)

    def add_source(self, array: np.ndarray) -> None:
        super().add_source(array)
        self._freeze(array)

    def record(self, entry: Any) -> None:
        super().record(entry)
        for o in entry.outputs:
            self._freeze(o)

    def thaw(self) -> None:
        for a in self.frozen:
            a.flags.writeable = True
        self.frozen = []


def _one_pass(model: Any, structure: Any, arrays: list[np.ndarray]) -> tuple[_tape.Tape, Any]:
    tape = _FrozenTape()
    for a in arrays:
        tape.add_source(a)
    try:
        with _tape.running(_tape.Run(training=False, tape=tape)):
            out = model(pack(structure, arrays), training=False)
    except ValueError as exc:
        if "read-only" not in str(exc):
            raise
        raise ValueError(
            f"export to ONNX: {type(model).__name__} '{model.name}' changes an array in place inside call() "
            f"(NumPy arithmetic such as `h += x` on a layer's output or a model input: {exc}), which an ONNX "
            "graph cannot reproduce; use layers such as npnet.layers.Add or Multiply for that arithmetic") \
            from None
    finally:
        tape.thaw()
    return tape, out


def trace(model: Any, structure: Any, shapes: list[tuple], batch_size: int | None, dtype: Any) -> Trace:
    """Trace ``model`` on inputs of ``shapes`` (batch axis first, ``None`` where a size varies)
    packed as ``structure``; ``batch_size`` fixes the batch of the first pass."""
    passes = []
    for i, (batch, varying) in enumerate(_SIZES):
        if batch_size is not None:
            batch = batch_size + i
        arrays = _placeholders(shapes, batch, varying, dtype)
        try:
            tape, out = _one_pass(model, structure, arrays)
        except ValueError as exc:
            if not any(d is None for s in shapes for d in s[1:]) or str(exc).startswith("export to ONNX"):
                raise
            raise ValueError(
                f"export to ONNX: tracing {type(model).__name__} '{model.name}' on placeholder inputs of shapes "
                f"{[a.shape for a in arrays]} (each axis left None in npnet.Input given the size {varying}) "
                f"failed: {exc}. If the model needs other sizes there, give those axes a size in "
                "npnet.Input(shape=...)") from exc
        passes.append((arrays, tape, out))
    (xa, ta, outa), (xb, tb, outb) = passes
    owner = f"{type(model).__name__} '{model.name}'"
    fa, fb = flatten(outa), flatten(outb)
    for o in fa:
        if not isinstance(o, np.ndarray):
            raise TypeError(f"export to ONNX: {owner} returned a {type(o).__name__}, not an array")
    same = len(ta.entries) == len(tb.entries) and all(
        ea.layer is eb.layer and len(ea.inputs) == len(eb.inputs) and len(ea.outputs) == len(eb.outputs)
        for ea, eb in zip(ta.entries, tb.entries))
    if not same or len(fa) != len(fb):
        raise ValueError(
            f"export to ONNX: {owner} makes different layer calls for different batch sizes or input lengths; "
            "an ONNX graph is one fixed sequence of operations")
    dynamic: dict[int, frozenset[int]] = {}

    def note(a: np.ndarray, b: np.ndarray) -> None:
        if a.ndim != b.ndim:
            raise ValueError(
                f"export to ONNX: {owner} computes arrays of different ranks for different batch sizes "
                f"({a.shape} and {b.shape})")
        dynamic[id(a)] = frozenset(i for i, (p, q) in enumerate(zip(a.shape, b.shape)) if p != q)

    for a, b in zip(xa, xb):
        note(a, b)
    for ea, eb in zip(ta.entries, tb.entries):
        for a, b in zip(ea.inputs + ea.outputs, eb.inputs + eb.outputs):
            note(a, b)
    for a, b in zip(fa, fb):
        note(a, b)
    # The masks: attached to the recorded arrays, or passed to forward as options.
    for ea, eb in zip(ta.entries, tb.entries):
        for a, b in zip(ea.inputs + ea.outputs, eb.inputs + eb.outputs):
            ma, mb = _masks.get_mask(a), _masks.get_mask(b)
            if ma is not None and mb is not None:
                note(ma, mb)
        for key, va in ea.options.items():
            vb = eb.options.get(key)
            pairs: Any = zip(va, vb) if isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)) else [(va, vb)]
            for oa, ob in pairs:
                if isinstance(oa, np.ndarray) and isinstance(ob, np.ndarray):
                    note(oa, ob)
    for e in ta.entries:
        if e.training:
            raise ValueError(
                f"export to ONNX: {e.layer._owner} is called with training=True (in a functional model's node, or "
                "inside call()), so predict runs it in training mode, while an ONNX graph is the model in inference "
                "mode; call it without training=True to export it")
    # Every array a call reads must be a model input or the output of an earlier call.
    known = {id(a) for a in xa}
    for e in ta.entries:
        for a in e.inputs:
            if id(a) not in known:
                raise ValueError(
                    f"export to ONNX: {e.layer._owner} receives an array computed outside npnet's layers (for "
                    "example with NumPy operators inside call()), which an ONNX graph cannot reproduce; use "
                    "layers such as npnet.layers.Add, Multiply or Concatenate for that arithmetic")
        known.update(id(o) for o in e.outputs)
    for o in fa:
        if id(o) not in known:
            raise ValueError(
                f"export to ONNX: an output of {owner} is computed outside npnet's layers (for example with "
                "NumPy operators inside call()), which an ONNX graph cannot reproduce; use layers for that "
                "arithmetic")
    return Trace(xa, structure, ta.entries, fa, outa, dynamic)
