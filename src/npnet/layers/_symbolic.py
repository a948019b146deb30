"""Symbolic tensors: what :func:`npnet.Input` returns and what calling a layer on one gives.

A symbolic tensor has a shape (batch axis ``None``), a dtype and a name, but no values.
Calling a layer on symbolic tensors builds the layer, checks the shapes (a mismatch
raises at that line, naming the layer), and records a :class:`Node`: the layer and the
tensors that went in. A functional model is the set of nodes between its inputs and
outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._config import floatx
from .._nest import flatten
from .base import Layer

__all__ = ["SymbolicTensor", "Node", "InputLayer", "Input", "any_symbolic", "symbolic_call"]


class Node:
    """One symbolic call of a layer: ``outputs = layer(inputs)``."""

    def __init__(self, layer: Layer, inputs: list[SymbolicTensor], multi_in: bool, kwargs: dict[str, Any]) -> None:
        self.layer, self.inputs, self.multi_in, self.kwargs = layer, inputs, multi_in, kwargs
        self.outputs: list[SymbolicTensor] = []
        self.multi_out = False


class SymbolicTensor:
    """A placeholder for the arrays that will flow through a functional model.

    Attributes
    ----------
    shape : tuple
        With ``None`` for the batch axis: ``(None, 64, 64, 1)``.
    dtype : str
    name : str
    """

    def __init__(self, shape: tuple, dtype: str, name: str, node: Node, index: int) -> None:
        self.shape, self.dtype, self.name = tuple(shape), dtype, name
        self.node, self.index = node, index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype} name={self.name!r}>"

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            f"symbolic tensor {self.name!r} has no values: it stands for the data of a functional model. "
            "Build a model with npnet.Model(inputs, outputs) and call it on arrays")

    def _no_arithmetic(self, *args: Any) -> Any:
        raise TypeError(
            f"symbolic tensor {self.name!r}: arithmetic on symbolic tensors is not recorded; use merge layers "
            "such as npnet.layers.Add, Subtract or Multiply")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _no_arithmetic
    __matmul__ = __rmatmul__ = __neg__ = __pow__ = __getitem__ = _no_arithmetic

    def __bool__(self) -> bool:
        raise TypeError(f"symbolic tensor {self.name!r} has no truth value: it holds no data")


class InputLayer(Layer):
    """The layer behind :func:`npnet.Input`: it holds the shape of a model input.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample, without the batch axis.
    batch_size : int, optional
    dtype : str, optional
        Default :func:`npnet.floatx`.
    name : str, optional
    """

    def __init__(self, shape: Any = None, batch_size: int | None = None, dtype: str | None = None,
                 name: str | None = None, batch_shape: Any = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("Input: give `shape` or `batch_shape`, not both")
            try:
                batch_shape = tuple(batch_shape)
            except TypeError:
                raise TypeError(f"Input: `batch_shape` must be a tuple, received {batch_shape!r}") from None
            if not batch_shape:
                raise ValueError("Input: `batch_shape` must include the batch axis")
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise TypeError("Input: `shape` is required, for example Input(shape=(64, 64, 1))")
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            shape = tuple(shape)
        except TypeError:
            raise TypeError(f"Input: `shape` must be a tuple of positive ints, received {shape!r}") from None
        if not shape or any(s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0)
                            for s in shape):
            raise ValueError(
                f"Input: `shape` must be a non-empty tuple of positive ints (None for a size that varies, such "
                f"as the length of a sequence), received {shape!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"Input: `batch_size` must be a positive int or None, received {batch_size!r}")
        self.sample_shape = tuple(None if s is None else int(s) for s in shape)
        self.batch_size = None if batch_size is None else int(batch_size)
        try:
            dt = np.dtype(dtype or floatx())
        except (TypeError, ValueError):
            raise TypeError(f"Input: `dtype` must be a NumPy type name such as 'float32', received {dtype!r}") from None
        if dt.kind not in "biuf":
            raise ValueError(f"Input: `dtype` must be a numeric type, received {dtype!r}")
        self.dtype = str(dt)
        self.built = True
        node = Node(self, [], False, {})
        self.output = SymbolicTensor((self.batch_size,) + self.sample_shape, self.dtype, self.name, node, 0)
        node.outputs = [self.output]

    def forward(self, x, training=False):
        return x, ()

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy

    def compute_output_shape(self, input_shape):
        return (None,) + self.sample_shape

    def get_config(self):
        return {"name": self.name, "shape": list(self.sample_shape), "batch_size": self.batch_size, "dtype": self.dtype}


def Input(shape: Any = None, batch_size: int | None = None, dtype: str | None = None, name: str | None = None,
          batch_shape: Any = None) -> SymbolicTensor:
    """A symbolic model input: the start of a functional model, or the first element of
    a ``Sequential``.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample, without the batch axis: ``(4096,)`` or ``(64, 64, 1)``.
    batch_size : int, optional
        Fixed batch size (rarely needed).
    dtype : str, optional
        Default :func:`npnet.floatx`.
    name : str, optional
        The input's name: ``fit``, ``evaluate`` and ``predict`` accept a dict keyed by it.
    batch_shape : tuple, optional
        The shape with the batch axis, instead of ``shape``.

    Returns
    -------
    SymbolicTensor
        With ``.shape == (None, *shape)``.

    Examples
    --------
    >>> import npnet
    >>> x = npnet.Input(shape=(64, 64, 1), name="image")
    >>> x.shape, x.name
    ((None, 64, 64, 1), 'image')
    >>> y = npnet.layers.Flatten()(x)
    >>> y.shape
    (None, 4096)
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape).output


def any_symbolic(value: Any) -> bool:
    """Whether ``value`` (an array, a tensor, or a list or dict of them) holds a symbolic tensor."""
    if isinstance(value, SymbolicTensor):
        return True
    if isinstance(value, (list, tuple, dict)):
        return any(isinstance(v, SymbolicTensor) for v in flatten(value))
    return False


def _shape_of(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_shape_of(v) for v in value]
    return value.shape


def symbolic_call(layer: Layer, inputs: Any, kwargs: dict[str, Any]) -> Any:
    """``layer(inputs)`` on symbolic tensors: build, check shapes, record a node."""
    flat = flatten(inputs)
    if not all(isinstance(t, SymbolicTensor) for t in flat):
        kinds = sorted({type(t).__name__ for t in flat})
        raise TypeError(f"{layer._owner}: cannot mix symbolic tensors and arrays in one call, received {kinds}")
    fixed = kwargs.get("training")  # an explicit training flag: the node always runs so
    kwargs = {k: v for k, v in kwargs.items() if k != "training"}
    if layer._is_composite():
        return _trace_composite(layer, inputs, kwargs, fixed)
    if kwargs.get("mask") is not None:
        raise TypeError(
            f"{layer._owner}: a `mask` argument cannot be recorded in a functional model (received "
            f"{type(kwargs['mask']).__name__}); let an Embedding(mask_zero=True) or a Masking layer make the mask, "
            "and it flows to the layers after it")
    kwargs = {k: v for k, v in kwargs.items() if k != "mask"}
    if kwargs:
        from .base import _forward_args

        unknown = sorted(set(kwargs) - _forward_args(type(layer)))
        if unknown:
            raise TypeError(f"{layer._owner}: unexpected call arguments {unknown}")
    if isinstance(inputs, dict):
        raise TypeError(f"{layer._owner}: expected a tensor or a list of tensors, received a dict")
    multi = layer._check_arity(inputs)
    tensors = list(inputs) if multi else [inputs]
    shapes = [t.shape for t in tensors]
    shape: Any = shapes if multi else shapes[0]
    if not layer.built:
        if multi:
            layer._check_build_shapes(shapes)  # type: ignore[attr-defined]
        else:
            layer._check_build_spec(shape)
        layer._build_from(shape)
    if multi:
        layer._check_shapes(shapes)  # type: ignore[attr-defined]
    else:
        layer._check_spec(shape)
    out_shape = layer.compute_output_shape(shape, **kwargs) if kwargs else layer.compute_output_shape(shape)
    node = Node(layer, tensors, multi, dict(kwargs) if fixed is None else {**kwargs, "training": fixed})
    node.in_structure = inputs  # type: ignore[attr-defined]
    multi_out = isinstance(out_shape, list)
    out_shapes = out_shape if multi_out else [out_shape]
    node.multi_out = multi_out
    node.outputs = [SymbolicTensor(tuple(s), tensors[0].dtype, f"{layer.name}" if not multi_out else f"{layer.name}_{i}",
                                   node, i) for i, s in enumerate(out_shapes)]
    out = list(node.outputs) if multi_out else node.outputs[0]
    node.out_structure = out  # type: ignore[attr-defined]
    return out


def _trace_composite(layer: Layer, inputs: Any, kwargs: dict[str, Any], fixed: bool | None = None) -> Any:
    """A composite on symbolic tensors: run its ``call`` symbolically to learn the output
    shapes (this builds the layers inside), then record one node for the whole composite."""
    from .base import _call_args

    layer._build_composite(inputs)
    accepted = _call_args(type(layer))
    if "training" in accepted or "*" in accepted:
        kwargs = {**kwargs, "training": False}
    traced = layer.call(inputs, **kwargs)
    layer.built = True
    flat_in = flatten(inputs)
    multi_in = not isinstance(inputs, SymbolicTensor)
    node = Node(layer, flat_in, multi_in, {k: v for k, v in kwargs.items() if k != "training"})
    if fixed is not None:
        node.kwargs["training"] = fixed
    node.in_structure = inputs  # type: ignore[attr-defined]

    def rebuild(value: Any, counter: list[int]) -> Any:
        if isinstance(value, SymbolicTensor):
            i = counter[0]
            counter[0] += 1
            t = SymbolicTensor(value.shape, value.dtype, layer.name if i == 0 else f"{layer.name}_{i}", node, i)
            node.outputs.append(t)
            return t
        if isinstance(value, (list, tuple)):
            return type(value)(rebuild(v, counter) for v in value)
        if isinstance(value, dict):
            return {k: rebuild(v, counter) for k, v in value.items()}
        raise TypeError(f"{layer._owner}: call() returned {type(value).__name__}, expected tensors")

    out = rebuild(traced, [0])
    node.multi_out = not isinstance(out, SymbolicTensor)
    node.out_structure = out  # type: ignore[attr-defined]
    return out
