"""``export``: trace a model, convert each primitive call, write and check the ONNX file."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._config import floatx
from .._nest import pack
from .._validation import check_int
from . import _attention, _conv, _converters, _recurrent, _reshaping  # noqa: F401  (register npnet's converters)
from ._graph import ExportContext, mask_converter_for
from ._trace import trace

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

#: The opset written when none is chosen: opset 18, which every onnxruntime release since
#: 1.14 (February 2023) runs.
DEFAULT_OPSET = 18
#: The lowest opset the converters can express (Squeeze, Unsqueeze and ReduceSum take
#: their axes as inputs, and Softmax works on one axis, from opset 13).
MIN_OPSET = 13
_MIN_ONNX = (1, 15)
_EXTRA = 'pip install "npnet[onnx]"'


def _require_onnx() -> Any:
    """The ``onnx`` module, or an ImportError naming the extra that installs it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"export to ONNX needs the onnx package, which is not installed: {_EXTRA}") from exc
    try:
        version = tuple(int(p) for p in onnx.__version__.split(".")[:2])
    except ValueError:
        version = _MIN_ONNX
    if version < _MIN_ONNX:
        raise ImportError(
            f"export to ONNX needs onnx >= {'.'.join(map(str, _MIN_ONNX))}, found {onnx.__version__}: {_EXTRA}")
    return onnx


def _check_opset(opset: Any, onnx: Any) -> int:
    latest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return min(DEFAULT_OPSET, latest)
    opset = check_int(opset, "opset", owner="export")
    if opset < MIN_OPSET:
        raise ValueError(
            f"export: opset {opset} cannot express npnet's layers; the converters need opset >= {MIN_OPSET} "
            f"(default {DEFAULT_OPSET})")
    if opset > latest:
        raise ValueError(
            f"export: opset {opset} is newer than the installed onnx package knows (up to {latest}); "
            "choose a lower opset or upgrade onnx")
    return opset


def _is_shape(value: Any) -> bool:
    return isinstance(value, tuple) and all(d is None or isinstance(d, (int, np.integer)) for d in value)


def _shape_leaves(value: Any) -> list[tuple]:
    if _is_shape(value):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _shape_leaves(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _shape_leaves(v)]
    raise TypeError(f"export: unexpected input shape {value!r}")


def _pack_shapes(value: Any, leaves: Any) -> Any:
    if _is_shape(value):
        return next(leaves)
    if isinstance(value, (list, tuple)):
        return [_pack_shapes(v, leaves) for v in value]
    if isinstance(value, dict):
        return {k: _pack_shapes(v, leaves) for k, v in value.items()}
    raise TypeError(f"export: unexpected input shape {value!r}")


def _signature(model: Any) -> tuple[Any, list[tuple], list[str], int | None]:
    """(input structure with placeholder leaves, input shapes, input names, fixed batch size)."""
    from ..models.functional import Functional
    from ..models.sequential import Sequential

    owner = f"{type(model).__name__} '{model.name}'"
    if isinstance(model, Functional):
        tensors = model.inputs
        shapes = [tuple(t.shape) for t in tensors]
        structure = pack(model._inputs_struct, list(range(len(tensors))))
        batches = {t.shape[0] for t in tensors}
        batch = batches.pop() if len(batches) == 1 else None
        return structure, shapes, list(model.input_names), batch
    if isinstance(model, Sequential):
        if model.input_shape is None or not model.built:
            raise ValueError(
                f"export: {owner} is not built; start it with npnet.Input(shape=...), call build(input_shape), "
                "or call it on data first")
        return 0, [tuple(model.input_shape)], ["input"], None
    built = getattr(model, "_build_shapes", None)
    if built is None:
        raise ValueError(f"export: {owner} has not been called yet, so its inputs are unknown; call it on a batch "
                         "(or predict) first")
    shapes = _shape_leaves(built)
    structure = _pack_shapes(built, iter(range(len(shapes))))
    if isinstance(built, dict):
        names = [str(k) for k in built]
    elif len(shapes) == 1:
        names = ["input"]
    else:
        names = [f"input_{i}" for i in range(len(shapes))]
    return structure, shapes, names, None


def _check_names(names: Any, n: int, what: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"export: `{what}` must be a list of {n} strings, received {names!r}")
    names = list(names)
    if len(names) != n or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"export: `{what}` must hold {n} non-empty strings (one per model input), received {names!r}")
    if len(set(names)) != n:
        raise ValueError(f"export: `{what}` must be unique, received {names!r}")
    return names


def _dims(shape: tuple[int, ...], dynamic: frozenset[int], batch: Any, prefix: str | None) -> list[Any]:
    out: list[Any] = []
    for i, s in enumerate(shape):
        if i == 0 and 0 in dynamic:
            out.append(batch)
        elif i in dynamic:
            out.append(f"{prefix}_dim{i}" if prefix is not None else None)
        else:
            out.append(int(s))
    return out


class _Masks:
    """The ONNX values of the masks, computed when a layer first reads them.

    A mask passed on unchanged is the same array as the mask it came from, and maps to the
    same value. A new mask is computed by the mask converter of the call that made it
    (its producer), from that call's inputs and their masks; its nodes are added when a
    later call reads it, after everything they depend on.
    """

    def __init__(self, ctx: ExportContext, tr: Any, values: dict[int, str]) -> None:
        self.ctx, self.tr, self.values = ctx, tr, values
        self.names: dict[int, str] = {}

    def name(self, mask: np.ndarray, reader: Any) -> str:
        found = self.names.get(id(mask))
        if found is not None:
            return found
        where = self.tr.producers.get(id(mask))
        if where is None:
            raise ValueError(
                f"export to ONNX: {reader._owner} reads a mask that no npnet layer call made (a composite "
                "layer's compute_mask, or a mask given as a NumPy array), which an ONNX graph cannot reproduce")
        i, _ = where
        e = self.tr.entries[i]
        fn = mask_converter_for(e.layer)
        if fn is None:
            raise ValueError(
                f"export to ONNX: {reader._owner} reads a mask attached to the output of {e.layer._owner}, "
                "which has no mask converter. A layer whose compute_mask makes a new mask needs one "
                "(npnet.onnx.register_mask_converter); a mask made by a composite layer's compute_mask cannot "
                "be exported")
        ins = [self.values[id(a)] for a in e.inputs]
        in_masks = [None if m is None else self.name(m, e.layer) for m in self.tr.input_masks[i]]
        self.ctx._scope.append(e.layer.name)
        try:
            result = fn(self.ctx, e.layer, ins, in_masks, list(e.outputs))
        finally:
            self.ctx._scope.pop()
        results = [result] if result is None or isinstance(result, str) else list(result)
        if len(results) != len(e.outputs):
            raise RuntimeError(
                f"export to ONNX: the mask converter of {e.layer._owner} returned {len(results)} masks for "
                f"{len(e.outputs)} outputs")
        for m, n in zip(self.tr.output_masks[i], results):
            if m is not None and n is not None and id(m) not in self.names:
                self.names[id(m)] = n
                self.ctx.set_shape(n, m.shape, self.tr.dynamic.get(id(m), frozenset()), np.bool_)
        if id(mask) not in self.names:
            raise RuntimeError(f"export to ONNX: the mask converter of {e.layer._owner} gave no mask")
        return self.names[id(mask)]

    def option(self, e: Any, key: str, value: Any) -> Any:
        """A call option with every array replaced by the name of its ONNX value."""
        if isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
            return [self.option(e, key, v) for v in value]
        if not isinstance(value, np.ndarray):
            return value
        if id(value) in self.values:
            return self.values[id(value)]
        if id(value) in self.names or id(value) in self.tr.producers:
            return self.name(value, e.layer)
        raise ValueError(
            f"export to ONNX: {e.layer._owner} is called with `{key}=` an array that no npnet layer computed "
            "(a NumPy array fixed inside call()), which an ONNX graph cannot take as an input; make it a "
            "model input or the output of a layer")


def export(model: Any, filepath: str | os.PathLike, opset: int | None = None, input_names: Any = None,
           dynamic_batch: bool = True) -> Any:
    """Write ``model`` as an ONNX file for inference, and return the ONNX model.

    The model runs once (twice, with two batch sizes) in inference mode on placeholder
    batches, and every primitive layer call it makes becomes a few ONNX nodes: Sequential,
    functional and subclassed models, shared layers and several inputs and outputs all
    export the same way. Dropout is dropped, BatchNormalization uses its moving
    statistics. Weights are stored as initializers, unchanged (float32 by default). The
    graph passes ``onnx.checker.check_model(..., full_check=True)`` before it is written.

    Needs the ``onnx`` package: ``pip install "npnet[onnx]"``.

    Parameters
    ----------
    model : npnet.Model
        A built model (a functional model, a Sequential model started with
        :func:`npnet.Input`, or any model called on data once).
    filepath : str or path-like
        Where to write the ``.onnx`` file.
    opset : int, optional
        The ONNX opset to write, from ``MIN_OPSET`` (13) to the newest the installed
        ``onnx`` knows; default ``DEFAULT_OPSET`` (18).
    input_names : list of str, optional
        Names of the graph inputs, in the model's input order. By default the model's own:
        a functional model's input names (or dict keys), ``"input"`` for a Sequential model.
        The outputs take the model's output names (a functional model's output names, the
        last layer's name for a Sequential model).
    dynamic_batch : bool, default True
        Whether the batch axis is a symbolic dimension ``"batch"``. With False it is fixed
        to the inputs' ``batch_size`` (from :func:`npnet.Input`) or 1.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ImportError
        If ``onnx`` is not installed.
    ValueError
        For a layer that has no converter (the message names it), an opset out of range,
        or a model whose calls depend on the batch size.

    Examples
    --------
    >>> import numpy as np, npnet, tempfile, os
    >>> model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.layers.Dense(3, activation="softmax", name="probs")])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> proto = npnet.onnx.export(model, path)
    >>> [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    (['input'], ['probs'])
    """
    onnx = _require_onnx()
    from onnx import helper

    from ..models.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"export: expected an npnet model, received {type(model).__name__}")
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"export: `filepath` must be a path, received {filepath!r}")
    opset = _check_opset(opset, onnx)
    if not isinstance(dynamic_batch, (bool, np.bool_)):
        raise TypeError(f"export: `dynamic_batch` must be True or False, received {dynamic_batch!r}")
    structure, shapes, names, fixed = _signature(model)
    if input_names is not None:
        names = _check_names(input_names, len(shapes), "input_names")
    batch_size = None if dynamic_batch else (fixed or 1)
    dtype = np.dtype(floatx())
    tr = trace(model, structure, shapes, batch_size, dtype)

    ctx = ExportContext(opset, dtype)
    ctx.array_dynamic = tr.dynamic
    for name in names:
        ctx.reserve(name)
    out_names = [str(n) for n in model._output_names(tr.output_structure)]
    if len(out_names) != len(tr.outputs):
        out_names = [f"output_{i}" for i in range(len(tr.outputs))]
    final: list[str] = []
    for n in out_names:
        final.append(ctx.fresh(n) if n in final or n in names else n)
        ctx.reserve(final[-1])

    values: dict[int, str] = {}
    batch_dim: Any = "batch" if dynamic_batch else batch_size
    graph_inputs = []
    for a, name in zip(tr.inputs, names):
        values[id(a)] = name
        dyn = tr.dynamic[id(a)]
        ctx.set_shape(name, a.shape, dyn)
        graph_inputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), _dims(a.shape, dyn, batch_dim, name)))
    masks = _Masks(ctx, tr, values)
    for e in tr.entries:
        ins = [values[id(a)] for a in e.inputs]
        options = {k: masks.option(e, k, v) for k, v in e.options.items()}
        outs = ctx.convert(e.layer, ins, e.outputs, options)
        for o, n in zip(e.outputs, outs):
            values[id(o)] = n
            ctx.set_shape_like(n, o)

    # Give the outputs their names: rename the value where it is a node's own output, else
    # (a model input, a value already given out) add an Identity.
    produced = {o for node in ctx.nodes for o in node.output}
    renamed: dict[str, str] = {}
    graph_outputs = []
    for a, name in zip(tr.outputs, final):
        internal = values[id(a)]
        if internal in produced and internal not in renamed:
            for node in ctx.nodes:
                node.output[:] = [name if v == internal else v for v in node.output]
                node.input[:] = [name if v == internal else v for v in node.input]
            renamed[internal] = name
        else:
            source = renamed.get(internal, internal)
            ctx.nodes.append(helper.make_node("Identity", [source], [name], name=ctx.fresh(f"{name}/Identity")))
        dyn = tr.dynamic.get(id(a), frozenset())
        graph_outputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), _dims(a.shape, dyn, batch_dim, None)))

    from .. import __version__

    graph = helper.make_graph(ctx.nodes, model.name, graph_inputs, graph_outputs, ctx.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="npnet", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    proto.doc_string = f"{type(model).__name__} '{model.name}' exported by npnet {__version__}"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, os.fspath(filepath))
    return proto
