"""``Sequential``: a stack of layers, the simplest model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _tape
from .._validation import check_seed
from ..layers._symbolic import Input, InputLayer, SymbolicTensor
from ..layers.base import Layer, get_layer_class
from ._structure import as_arrays, fits
from .model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers: each layer's output is the next one's input.

    Parameters
    ----------
    layers : list, optional
        Layers in order; the first element may be :func:`npnet.Input` to fix the input
        shape, so the model builds at once. Models and composite layers can be elements.
    name : str, optional
    seed : int, optional
        Seed for weight initialization of layers whose initializers have no seed of
        their own: the same seed gives bit-identical initial weights.
    trainable : bool, default True

    Examples
    --------
    >>> import numpy as np, npnet
    >>> model = npnet.Sequential([
    ...     npnet.Input(shape=(4,)),
    ...     npnet.layers.Dense(8, activation="relu"),
    ...     npnet.layers.Dense(3, activation="softmax"),
    ... ], seed=0)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).normal(size=(30, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype(int)
    >>> history = model.fit(x, y, epochs=2, verbose=0, seed=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']
    >>> model.predict(x, verbose=0).shape
    (30, 3)
    """

    def __init__(self, layers: Iterable[Any] | None = None, name: str | None = None,
                 seed: int | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.seed = check_seed(seed, owner="Sequential")
        self._weight_rng = None if seed is None else np.random.default_rng(seed)
        self._layers: list[Layer] = []
        self._input_shape: tuple | None = None
        # (number of layers, output shape of the stack) after the last build, so that adding
        # a layer to a built model builds that layer alone: linear, not quadratic, in the
        # number of layers.
        self._built_stack: tuple[int, tuple] | None = None
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: `layers` must be a list of layers, received {layers!r} "
                            f"of type {type(layers).__name__}")
        ids: set[int] = set()
        names: set[str] = set()
        for layer in layers or []:
            self._add(layer, (ids, names))

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The layers in order (a copy of the list)."""
        return list(self._layers)

    def _children(self) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self._layers]

    def add(self, layer: Any) -> None:
        """Append a layer (or :func:`npnet.Input`, only as the first element)."""
        self._add(layer, None)

    def _add(self, layer: Any, seen: tuple[set[int], set[str]] | None) -> None:
        """``add``; ``seen`` holds the ids and names of the layers added so far by the
        constructor, which checks uniqueness against them instead of scanning the list."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError(f"{self._owner}: npnet.Input must be the first element of the model")
            self._input_shape = (None,) + layer.sample_shape
            return
        if isinstance(layer, SymbolicTensor):
            raise TypeError(f"{self._owner}.add: expected a layer, received the symbolic tensor {layer.name!r}")
        if not isinstance(layer, Layer):
            raise TypeError(f"{self._owner}.add: expected an npnet layer, received {layer!r}")
        shape_arg = getattr(layer, "_input_shape_arg", None)
        if shape_arg is not None and not self._layers and self._input_shape is None:
            self._input_shape = (None,) + shape_arg  # Keras' older style: Dense(64, input_shape=(784,))
        if (id(layer) in seen[0] if seen is not None else any(existing is layer for existing in self._layers)):
            raise ValueError(f"{self._owner}.add: layer {layer.name!r} is already in the model")
        if (layer.name in seen[1] if seen is not None else any(existing.name == layer.name for existing in self._layers)):
            raise ValueError(f"{self._owner}.add: the model already has a layer named {layer.name!r}; names must be unique")
        if seen is not None:
            seen[0].add(id(layer))
            seen[1].add(layer.name)
        stack = self._built_stack if self.built and self._built_stack is not None else None
        self._layers.append(layer)
        self.built = False
        self._heads = None  # compile's settings are kept; the heads follow the new last layer
        if self._input_shape is None:
            return
        if stack is not None and stack[0] == len(self._layers) - 1:
            # The layers before are built: build the new one on the stack's output shape.
            self._built_stack = (len(self._layers), self._build_layers([layer], stack[1], None))
            self.built = True
            self._build_shapes = self._input_shape
        else:
            self.build(self._input_shape)

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError(f"{self._owner}.pop: the model has no layers")
        layer = self._layers.pop()
        self.built = bool(self._layers) and self._input_shape is not None
        self._built_stack = None
        self._heads = None
        return layer

    def build(self, input_shape: Any = None, rng: np.random.Generator | None = None) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        if input_shape is None:
            input_shape = self._input_shape
        if input_shape is None:
            raise ValueError(f"{self._owner}.build: `input_shape` is required")
        shape = tuple(input_shape)
        if shape and shape[0] is not None:
            shape = (None,) + shape[1:]
        self._input_shape = shape
        shape = self._build_layers(self._layers, shape, rng)
        self.built = bool(self._layers)
        self._built_stack = (len(self._layers), shape) if self._layers else None
        self._build_shapes = self._input_shape

    def _build_layers(self, layers: list[Layer], shape: tuple, rng: np.random.Generator | None) -> tuple:
        """Build ``layers`` in turn from inputs of ``shape``; their output shape."""
        rng = self._weight_rng if self._weight_rng is not None else rng
        with _tape.running(_tape.Run(init_rng=rng if rng is not None else _tape.init_rng())):
            for layer in layers:
                if not layer.built and not layer._is_composite():
                    layer._check_build_spec(shape)
                    layer._build_from(shape)
                shape = _output_shape(layer, shape)
        return shape

    @property
    def input_shape(self) -> tuple | None:  # type: ignore[override]
        """Input shape with the batch axis as None, once known."""
        return self._input_shape

    @input_shape.setter
    def input_shape(self, value: Any) -> None:
        pass  # Layer.__init__ assigns it; the model derives it from its first layer

    @property
    def output_shape(self) -> tuple | None:
        """Output shape with the batch axis as None, once the model is built."""
        if self._input_shape is None or not self.built:
            return None
        return self.compute_output_shape(self._input_shape)

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not self._layers:
            raise ValueError(f"{self._owner}: the model has no layers")
        if not self.built and not isinstance(inputs, SymbolicTensor):
            shape = getattr(inputs, "shape", None)
            if shape is None:
                raise TypeError(f"{self._owner}: expected one input array, received {type(inputs).__name__}")
            self.build((None,) + tuple(shape[1:]))
        h = inputs
        for layer in self._layers:
            h = layer(h, training=training)
        return h

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = _output_shape(layer, shape)
        return shape

    # ------------------------------------------------------------------ data
    def _known_output_names(self) -> list[str] | None:
        return [self._layers[-1].name] if self._layers else None

    def _output_names(self, outputs: Any) -> list[str]:
        return self._known_output_names() or ["output"]

    def _check_fittable(self) -> None:
        if not self._layers:
            raise ValueError(f"{self._owner}: the model has no layers")

    def _input_arrays(self, x: Any, owner: str) -> tuple[Any, list[np.ndarray]]:
        if isinstance(x, (list, tuple, dict)) and not (
                isinstance(x, (list, tuple)) and x and all(isinstance(v, (int, float, bool)) for v in x)):
            raise TypeError(f"{owner}: a Sequential model takes one input array as `x`, received a {type(x).__name__}")
        structure, xs = as_arrays(x, "x", owner)
        if self._input_shape is not None and self._layers:
            expected = self._input_shape[1:]
            if not fits(tuple(xs[0].shape[1:]), tuple(expected)):
                first = self._layers[0]
                raise ValueError(
                    f"{type(first).__name__} '{first.name}' (first layer of '{self.name}'): expected input "
                    f"of shape (batch, {', '.join(map(str, expected))}), received shape {xs[0].shape}"
                )
        return xs[0], xs

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """JSON-safe description of the architecture."""
        return {
            "name": self.name,
            "seed": self.seed,
            "trainable": self.trainable,
            "input_shape": None if self._input_shape is None else list(self._input_shape[1:]),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self._layers],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Sequential:
        """Rebuild an (untrained) model from :meth:`get_config`."""
        layers: list[Any] = []
        if config.get("input_shape") is not None:
            layers.append(Input(shape=tuple(config["input_shape"])))
        for entry in config["layers"]:
            layers.append(_layer_from(entry, custom_objects))
        return cls(layers, name=config.get("name"), seed=config.get("seed"), trainable=config.get("trainable", True))

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={len(self._layers)} built={self.built}>"


def _output_shape(layer: Layer, shape: tuple) -> tuple:
    """``layer``'s output shape for inputs of ``shape``; a composite layer (or model) is
    traced on a symbolic input, which also builds the layers inside it."""
    if layer._is_composite():
        return tuple(layer(Input(shape=shape[1:])).shape)
    return tuple(layer.compute_output_shape(shape))


def _layer_from(entry: dict[str, Any], custom_objects: dict[str, type] | None) -> Layer:
    """A layer from ``{"class_name", "config"}``, looked up in ``custom_objects`` or the registry."""
    name = entry["class_name"]
    klass: Any = (custom_objects or {}).get(name) or get_layer_class(name)
    if issubclass(klass, Sequential) or getattr(klass, "_graph_from_config", False):
        return klass.from_config(entry["config"], custom_objects=custom_objects)
    return klass.from_config(entry["config"])
