"""Functional models: a graph of layer calls between symbolic inputs and outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_seed
from ..layers._symbolic import InputLayer, Node, SymbolicTensor
from ..layers.base import Layer, _unique_name
from ._structure import as_arrays, fits, flatten, pack
from .model import Model
from .sequential import _layer_from

__all__ = ["Functional"]


def _map(structure: Any, fn: Any) -> Any:
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map(v, fn) for v in structure)
    if isinstance(structure, dict):
        return {k: _map(v, fn) for k, v in structure.items()}
    return fn(structure)


class Functional(Model):
    """A model defined by calling layers on symbolic tensors.

    Create it with ``npnet.Model(inputs, outputs)``. The model runs its layer calls
    ("nodes") in a topological order; a layer called several times (a shared layer)
    has one node per call, and a tensor used by several layers feeds each of them.

    Parameters
    ----------
    inputs : SymbolicTensor, list or dict
        Tensors returned by :func:`npnet.Input`.
    outputs : SymbolicTensor, list or dict
        Tensors computed from ``inputs``. With a dict, its keys name the outputs;
        otherwise each output is named after the layer that produces it.
    name : str, optional
    seed : int, optional
        Draw every weight again from its initializer with this seed, so the same seed
        gives bit-identical initial weights.
    trainable : bool, default True

    Examples
    --------
    >>> import npnet
    >>> a, b = npnet.Input(shape=(3,), name="a"), npnet.Input(shape=(3,), name="b")
    >>> shared = npnet.layers.Dense(4, name="shared")
    >>> merged = npnet.layers.concatenate([shared(a), shared(b)], name="joined")
    >>> model = npnet.Model([a, b], npnet.layers.Dense(1, name="score")(merged))
    >>> [layer.name for layer in model.layers]
    ['a', 'b', 'shared', 'joined', 'score']
    """

    _graph_from_config = True

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, seed: int | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name if name is not None else _unique_name("functional"), trainable=trainable)
        owner = self._owner
        self.seed = check_seed(seed, owner="Model")
        in_list, out_list = flatten(inputs), flatten(outputs)
        for what, tensors in (("inputs", in_list), ("outputs", out_list)):
            if not tensors:
                raise ValueError(f"{owner}: `{what}` is empty")
            for t in tensors:
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(
                        f"{owner}: `{what}` must hold symbolic tensors (from npnet.Input and layer calls), "
                        f"received {type(t).__name__}")
        for t in in_list:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(
                    f"{owner}: every input must come from npnet.Input; {t.name!r} is the output of layer "
                    f"{t.node.layer.name!r}")
        if len({id(t) for t in in_list}) != len(in_list):
            raise ValueError(f"{owner}: the same input tensor appears twice in `inputs`")
        input_ids = {id(t) for t in in_list}
        self._nodes = self._topological(out_list, input_ids)
        reached = {id(t) for node in self._nodes for t in node.inputs} | {id(t) for t in out_list}
        for t in in_list:
            if id(t) not in reached:
                raise ValueError(f"{owner}: input {t.name!r} is not connected to any output")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._in_list, self._out_list = in_list, out_list
        layers: list[Layer] = [t.node.layer for t in in_list]
        listed = {id(layer) for layer in layers}
        for node in self._nodes:
            if id(node.layer) not in listed:
                listed.add(id(node.layer))
                layers.append(node.layer)
        names: dict[str, Layer] = {}
        for layer in layers:
            if layer.name in names:
                raise ValueError(
                    f"{owner}: two different layers are named {layer.name!r}; layer names in a model must be unique")
            names[layer.name] = layer
        self._graph_layers = layers
        self.built = True
        self._build_shapes = pack(inputs, [t.shape for t in in_list])
        if seed is not None:
            self._reinitialize(np.random.default_rng(seed))

    def _topological(self, outputs: list[SymbolicTensor], input_ids: set[int]) -> list[Node]:
        """Nodes between the inputs and ``outputs``, each after the nodes that feed it."""
        order: list[Node] = []
        done: set[int] = set()
        for out in outputs:
            stack: list[tuple[SymbolicTensor, bool]] = [(out, False)]
            while stack:
                tensor, expanded = stack.pop()
                node = tensor.node
                if id(tensor) in input_ids or id(node) in done:
                    continue
                if isinstance(node.layer, InputLayer):
                    raise ValueError(
                        f"{self._owner}: output {out.name!r} depends on input {tensor.name!r}, which is not among "
                        "the model's inputs (a tensor from another graph?)")
                if expanded:
                    done.add(id(node))
                    order.append(node)
                    continue
                stack.append((tensor, True))
                for t in reversed(node.inputs):
                    stack.append((t, False))
        return order

    # ------------------------------------------------------------------ structure
    def _children(self) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self._graph_layers]

    @property
    def inputs(self) -> list[SymbolicTensor]:
        """The symbolic input tensors, in order."""
        return list(self._in_list)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        """The symbolic output tensors, in order."""
        return list(self._out_list)

    @property
    def input_names(self) -> list[str]:
        if isinstance(self._inputs_struct, dict):
            return [str(k) for k in self._inputs_struct]
        return [t.node.layer.name for t in self._in_list]

    @property
    def output_names(self) -> list[str]:
        if isinstance(self._outputs_struct, dict):
            return [str(k) for k in self._outputs_struct]
        names: list[str] = []
        for t in self._out_list:
            base = t.node.layer.name
            name = base if len(t.node.outputs) == 1 else f"{base}_{t.index}"
            n = 1
            while name in names:  # the same tensor given twice as an output
                name, n = f"{base}_{n}", n + 1
            names.append(name)
        return names

    def _known_output_names(self) -> list[str] | None:
        return self.output_names

    def _output_names(self, outputs: Any) -> list[str]:
        return self.output_names

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = pack(self._outputs_struct, [t.shape for t in self._out_list])
        return shapes

    # ------------------------------------------------------------------ running
    def _match(self, inputs: Any, what: str = "inputs") -> list[Any]:
        """The given inputs as a list in the order of ``self.inputs``."""
        names = self.input_names
        n = len(names)
        if isinstance(inputs, dict):
            missing = [k for k in names if k not in inputs]
            extra = sorted(set(map(str, inputs)) - set(names))
            if missing or extra:
                raise ValueError(
                    f"{self._owner}: {what} as a dict must have the keys {names}; missing {missing}, unknown {extra}")
            return [inputs[k] for k in names]
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != n:
                raise ValueError(f"{self._owner}: expected {n} inputs {names}, received {len(inputs)}")
            return list(inputs)
        if n != 1:
            raise ValueError(f"{self._owner}: expected {n} inputs {names}, received one; give a list or a dict")
        return [inputs]

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        args = self._match(inputs)
        values: dict[int, Any] = {}
        for t, a in zip(self._in_list, args):
            if not isinstance(a, SymbolicTensor):
                expected = tuple(t.shape[1:])
                shape = tuple(np.shape(a)[1:])
                if not fits(shape, expected):
                    raise ValueError(
                        f"{self._owner}: input {t.name!r} expects shape (batch, {', '.join(map(str, expected))}), "
                        f"received shape {np.shape(a)}")
            values[id(t)] = a
        for node in self._nodes:
            x = _map(node.in_structure, lambda t: values[id(t)])  # type: ignore[attr-defined]
            # a node called with an explicit `training` always runs so (Keras' rule)
            out = node.layer(x, **node.kwargs) if "training" in node.kwargs else \
                node.layer(x, training=training, **node.kwargs)
            for t, o in zip(node.outputs, flatten(out)):
                values[id(t)] = o
        return pack(self._outputs_struct, [values[id(t)] for t in self._out_list])

    def _input_arrays(self, x: Any, owner: str) -> tuple[Any, list[np.ndarray]]:
        n = len(self._in_list)
        if isinstance(x, dict) or (isinstance(x, (list, tuple)) and n > 1):
            matched = self._match(x if isinstance(x, dict) else list(x), "`x`")
        elif isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            matched = [x[0]]
        else:
            matched = [x]
        names = self.input_names
        arrays = [as_arrays(a, f"x[{name!r}]" if n > 1 else "x", owner)[1][0] for a, name in zip(matched, names)]
        if len({a.shape[0] for a in arrays}) > 1:
            raise ValueError(
                f"{owner}: every input must have the same number of samples, received {[a.shape[0] for a in arrays]}")
        for t, a in zip(self._in_list, arrays):
            expected = tuple(t.shape[1:])
            if not fits(tuple(a.shape[1:]), expected):
                raise ValueError(
                    f"{owner}: input {t.name!r} of '{self.name}' expects shape (batch, "
                    f"{', '.join(map(str, expected))}), received shape {a.shape}")
        structure = list(arrays) if n > 1 else arrays[0]
        return structure, arrays

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The graph as JSON: every layer's config, then every call ("node") with the
        tensors it reads, named by ``[layer name, call index, output index]``."""
        counts: dict[int, int] = {}
        node_index: dict[int, int] = {}
        for node in self._nodes:
            node_index[id(node)] = counts.get(id(node.layer), 0)
            counts[id(node.layer)] = node_index[id(node)] + 1

        def ref(t: SymbolicTensor) -> dict[str, Any]:
            ni = 0 if isinstance(t.node.layer, InputLayer) else node_index[id(t.node)]
            return {"tensor": [t.node.layer.name, ni, t.index]}

        def encode(structure: Any) -> Any:
            if isinstance(structure, (list, tuple)):
                return [encode(v) for v in structure]
            if isinstance(structure, dict):
                return {"dict": {str(k): encode(v) for k, v in structure.items()}}
            return ref(structure)

        return {
            "name": self.name,
            "trainable": self.trainable,
            "seed": self.seed,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self._graph_layers],
            "nodes": [{"layer": node.layer.name, "args": encode(node.in_structure),  # type: ignore[attr-defined]
                       "kwargs": node.kwargs} for node in self._nodes],
            "inputs": encode(self._inputs_struct),
            "outputs": encode(self._outputs_struct),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Functional:
        """Rebuild the graph from :meth:`get_config` (untrained weights)."""
        layers: dict[str, Layer] = {}
        for entry in config["layers"]:
            layer = _layer_from(entry, custom_objects)
            if layer.name in layers:
                raise ValueError(f"Functional.from_config: two layers are named {layer.name!r}")
            layers[layer.name] = layer
        produced: dict[tuple[str, int], list[SymbolicTensor]] = {}
        for name, layer in layers.items():
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = [layer.output]
        counts: dict[str, int] = {}

        def decode(value: Any) -> Any:
            if isinstance(value, list):
                return [decode(v) for v in value]
            if isinstance(value, dict) and set(value) == {"tensor"}:
                lname, ni, ti = value["tensor"]
                try:
                    return produced[(lname, ni)][ti]
                except (KeyError, IndexError, TypeError):
                    raise ValueError(f"Functional.from_config: no tensor {value['tensor']!r}") from None
            if isinstance(value, dict) and set(value) == {"dict"}:
                return {k: decode(v) for k, v in value["dict"].items()}
            raise ValueError(f"Functional.from_config: malformed tensor reference {value!r}")

        for node in config["nodes"]:
            lname = node["layer"]
            if lname not in layers:
                raise ValueError(f"Functional.from_config: a node calls unknown layer {lname!r}")
            kwargs = node.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise ValueError(f"Functional.from_config: malformed kwargs for layer {lname!r}")
            out = layers[lname](decode(node["args"]), **kwargs)
            ni = counts.get(lname, 0)
            counts[lname] = ni + 1
            produced[(lname, ni)] = flatten(out)
        return cls(decode(config["inputs"]), decode(config["outputs"]), name=config.get("name"),
                   trainable=config.get("trainable", True))

