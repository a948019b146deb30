"""``clone_model``: the same architecture with new weights."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .. import optimizers as _optimizers
from .._nest import flatten, pack
from ..layers._symbolic import Input, InputLayer, SymbolicTensor
from ..layers.base import Layer
from .functional import Functional, _map
from .model import Model
from .sequential import Sequential

__all__ = ["clone_model"]


def _default_clone(layer: Layer) -> Layer:
    """A new layer of the same class and config, not built, without the weights."""
    return type(layer).from_config(layer.get_config())


def _checked(clone_function: Callable[[Layer], Layer]) -> Callable[[Layer], Layer]:
    """``clone_function`` with its result checked, called once per layer (a shared layer
    stays shared in the clone)."""
    done: dict[int, Layer] = {}

    def clone(layer: Layer) -> Layer:
        if id(layer) not in done:
            new = clone_function(layer)
            if not isinstance(new, Layer):
                raise TypeError(
                    f"clone_model: `clone_function` must return an npnet layer, received {new!r} for layer "
                    f"{layer.name!r}")
            done[id(layer)] = new
        return done[id(layer)]

    return clone


def _input_tensor(value: Any, where: str = "") -> SymbolicTensor:
    if isinstance(value, SymbolicTensor) and isinstance(value.node.layer, InputLayer):
        return value
    got = (f"the output of layer {value.node.layer.name!r}" if isinstance(value, SymbolicTensor)
           else type(value).__name__)
    raise TypeError(f"clone_model: `input_tensors` must hold tensors from npnet.Input{where}, received {got}")


def _copy_compile(source: Model, target: Model) -> None:
    """Compile ``target`` as ``source`` was, with a fresh optimizer of the same config."""
    if not source.compiled:
        return
    args = copy.deepcopy(source._compile_args)
    target.compile(optimizer=_optimizers.get(_optimizers.serialize(source.optimizer)), **args)


def _clone_sequential(model: Sequential, clone: Callable[[Layer], Layer], input_tensors: Any) -> Sequential:
    layers: list[Any] = []
    if input_tensors is not None:
        tensors = list(input_tensors) if isinstance(input_tensors, (list, tuple)) else [input_tensors]
        if len(tensors) != 1:
            raise ValueError(
                f"clone_model: a Sequential model takes one input tensor in `input_tensors`, received {len(tensors)}")
        layers.append(_input_tensor(tensors[0]))
    elif model.input_shape is not None:
        layers.append(Input(shape=model.input_shape[1:]))
    layers += [clone(layer) for layer in model.layers]
    return Sequential(layers, name=model.name, seed=model.seed, trainable=model.trainable)


def _clone_functional(model: Functional, clone: Callable[[Layer], Layer], input_tensors: Any) -> Functional:
    old_inputs = model.inputs
    if input_tensors is None:
        new_inputs = [Input(batch_shape=t.shape, dtype=t.dtype, name=t.node.layer.name) for t in old_inputs]
    else:
        given = flatten(input_tensors)
        if len(given) != len(old_inputs):
            raise ValueError(
                f"clone_model: `input_tensors` must hold {len(old_inputs)} tensors, one per input of "
                f"{model.name!r} ({model.input_names}), received {len(given)}")
        new_inputs = [_input_tensor(t, f" (for input {old.name!r})") for t, old in zip(given, old_inputs)]
        for t, old in zip(new_inputs, old_inputs):
            if tuple(t.shape[1:]) != tuple(old.shape[1:]):
                raise ValueError(
                    f"clone_model: input {old.name!r} of {model.name!r} has shape {old.shape}, the tensor given for "
                    f"it in `input_tensors` has shape {t.shape}")
    values: dict[int, Any] = {id(old): new for old, new in zip(old_inputs, new_inputs)}
    for node in model._nodes:
        layer = clone(node.layer)
        out = layer(_map(node.in_structure, lambda t: values[id(t)]), **node.kwargs)  # type: ignore[attr-defined]
        for t, o in zip(node.outputs, flatten(out)):
            values[id(t)] = o
    inputs = pack(model._inputs_struct, new_inputs)
    outputs = pack(model._outputs_struct, [values[id(t)] for t in model.outputs])
    cls = type(model) if type(model).__init__ is Functional.__init__ else Functional
    return cls(inputs, outputs, name=model.name, seed=model.seed, trainable=model.trainable)


def _clone_subclassed(model: Model) -> Model:
    cls = type(model)
    try:
        new = cls.from_config(model.get_config())
    except Exception as exc:
        raise ValueError(
            f"clone_model: {cls.__name__} is a subclassed model, cloned as {cls.__name__}.from_config("
            f"model.get_config()), which fails ({type(exc).__name__}: {exc}); give the class a get_config() that "
            "returns its constructor arguments") from None
    if not isinstance(new, Model):
        raise TypeError(f"clone_model: {cls.__name__}.from_config returned {type(new).__name__}, not a model")
    if model.built and model._build_shapes is not None and not new.built:
        new.build(model._build_shapes)
    return new


def clone_model(model: Model, input_tensors: Any = None,
                clone_function: Callable[[Layer], Layer] | None = None) -> Model:
    """A new model with the architecture of ``model`` and newly initialized weights.

    Sequential and functional models are rebuilt layer by layer: each layer is replaced
    by ``clone_function(layer)``, by default a new layer of the same class and config
    (``type(layer).from_config(layer.get_config())``), and the clone calls the new layers
    as the original calls its own. A layer used twice stays shared in the clone. A
    subclassed model is cloned as ``type(model).from_config(model.get_config())``. A
    compiled model's clone is compiled the same way, with a new optimizer of the same
    config. The clone keeps the model's name; weights are not copied (use
    ``clone.set_weights(model.get_weights())`` for that).

    Parameters
    ----------
    model : Model
        A Sequential, functional or subclassed model.
    input_tensors : SymbolicTensor or list or dict of them, optional
        Tensors from :func:`npnet.Input` to build the clone on, one per model input
        (Sequential and functional models only). By default new inputs of the same
        shapes and names.
    clone_function : callable, optional
        ``clone_function(layer) -> layer``, called once for each layer but the inputs
        (Sequential and functional models only): return a new layer, or ``layer`` itself
        to share it (and its weights) with the original.

    Returns
    -------
    Model
        Of the same kind as ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not a model, ``clone_function`` is not callable or returns no
        layer, or ``input_tensors`` holds anything but tensors from :func:`npnet.Input`.
    ValueError
        For ``clone_function`` or ``input_tensors`` with a subclassed model, the wrong
        number of input tensors, or a subclassed model whose ``from_config(get_config())``
        fails.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.layers.Dense(3, name="d")])
    >>> twin = npnet.models.clone_model(model)
    >>> twin.get_layer("d") is model.get_layer("d"), twin.count_params() == model.count_params()
    (False, True)
    >>> bool(np.array_equal(twin.get_weights()[0], model.get_weights()[0]))
    False
    """
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: `model` must be an npnet model, received {type(model).__name__}")
    if clone_function is not None and not callable(clone_function):
        raise TypeError(f"clone_model: `clone_function` must be callable as fn(layer), received {clone_function!r}")
    clone = _checked(clone_function or _default_clone)
    new: Model
    if isinstance(model, Sequential):
        new = _clone_sequential(model, clone, input_tensors)
    elif isinstance(model, Functional):
        new = _clone_functional(model, clone, input_tensors)
    else:
        if clone_function is not None or input_tensors is not None:
            raise ValueError(
                f"clone_model: `clone_function` and `input_tensors` work with Sequential and functional models; "
                f"{type(model).__name__} is a subclassed model, cloned by from_config(get_config()) alone")
        new = _clone_subclassed(model)
    _copy_compile(model, new)
    return new
