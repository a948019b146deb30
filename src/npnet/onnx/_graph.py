"""The graph being written: ONNX nodes, initializers and the shapes seen while tracing.

A converter receives an :class:`ExportContext` and adds nodes to it with :meth:`node`;
constants and weights become initializers with :meth:`const` and :meth:`weight`. Every
value in the graph has a unique name; :meth:`shape` gives the shape it had while the
model was traced and :meth:`dynamic_axes` the axes whose size varies (the batch axis,
and the axes a model input leaves as ``None``).

The ``onnx`` package is imported only when a graph is written, never when npnet is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["ExportContext", "register_converter", "register_mask_converter", "converter_for", "mask_converter_for",
           "converters"]

#: layer class -> converter (see register_converter)
_CONVERTERS: dict[type, Callable[..., Any]] = {}
#: layer classes whose converter reads the call's mask
_MASK_AWARE: set[type] = set()
#: layer class -> mask converter (see register_mask_converter)
_MASK_CONVERTERS: dict[type, Callable[..., Any]] = {}


def register_converter(layer_class: type, masks: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the ONNX converter of a layer class (a decorator).

    A converter is a function ``converter(ctx, layer, inputs, outputs, options)``:

    - ``ctx``: the :class:`ExportContext` to add nodes to;
    - ``layer``: the layer called;
    - ``inputs``: the names of the ONNX values the call reads, one per input array;
    - ``outputs``: the arrays the call returned while the model was traced (their
      shapes and dtypes; the values are those of a placeholder batch);
    - ``options``: the keyword arguments the call passed to ``forward`` (its ``mask``,
      call options such as ``use_causal_mask``).

    It returns the name of the ONNX value it computed, or a list of names for a layer
    with several outputs. It runs in inference mode: Dropout is the identity, and
    BatchNormalization uses its moving statistics.

    Parameters
    ----------
    layer_class : type
        A primitive layer class (one with ``forward`` and ``backward``). Subclasses
        use the converter of their nearest registered base class.
    masks : bool, default False
        Whether the converter handles a call with a mask. Without it, a call that
        receives a mask is refused, rather than exported without its mask.

    Examples
    --------
    >>> import npnet
    >>> class Double(npnet.layers.Layer):
    ...     def forward(self, x, training=False):
    ...         return self._enter(x) * 2.0, ()
    ...     def backward(self, cache, dy):
    ...         return dy * 2.0
    >>> @npnet.onnx.register_converter(Double)
    ... def _double(ctx, layer, inputs, outputs, options):
    ...     return ctx.node("Mul", [inputs[0], ctx.const(2.0)], name=layer.name)
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_converter: expected a layer class, received {layer_class!r}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"register_converter: expected a function, received {fn!r}")
        _CONVERTERS[layer_class] = fn
        if masks:
            _MASK_AWARE.add(layer_class)
        else:
            _MASK_AWARE.discard(layer_class)
        return fn

    return decorate


def register_mask_converter(layer_class: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register how the graph computes the masks a layer class makes (a decorator).

    Only a layer whose ``compute_mask`` returns a new mask needs one (``Embedding`` with
    ``mask_zero=True``, ``Masking``, the merge layers). A mask passed on unchanged is the
    same array as its input's mask, and the exporter reuses that mask's ONNX value.

    A mask converter is a function ``mask_converter(ctx, layer, inputs, masks, outputs)``:
    ``inputs`` are the names of the ONNX values the call reads, ``masks`` the names of
    their masks (None where an input has none), ``outputs`` the traced output arrays. It
    returns the name of a boolean ONNX value of the mask's shape (``(batch, time)``), or a
    list with one name (or None) per output. The exporter calls it only when a later
    layer reads the mask.

    Parameters
    ----------
    layer_class : type
        A primitive layer class; subclasses use the mask converter of their nearest
        registered base class.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> class PadIsNegative(npnet.layers.Layer):
    ...     def forward(self, x, training=False):
    ...         return self._enter(x), ()
    ...     def backward(self, cache, dy):
    ...         return dy
    ...     def compute_mask(self, inputs, mask=None):
    ...         return np.asarray(inputs)[..., 0] >= 0
    >>> @npnet.onnx.register_mask_converter(PadIsNegative)
    ... def _pad_mask(ctx, layer, inputs, masks, outputs):
    ...     first = ctx.node("Gather", [inputs[0], ctx.const(np.asarray(0, np.int64))], axis=-1)
    ...     return ctx.node("GreaterOrEqual", [first, ctx.const(0.0)])
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_mask_converter: expected a layer class, received {layer_class!r}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"register_mask_converter: expected a function, received {fn!r}")
        _MASK_CONVERTERS[layer_class] = fn
        return fn

    return decorate


def mask_converter_for(layer: Any) -> Callable[..., Any] | None:
    """The mask converter of the nearest registered class of ``layer``, or None."""
    for klass in type(layer).__mro__:
        fn = _MASK_CONVERTERS.get(klass)
        if fn is not None:
            return fn
    return None


def _overrides(layer: Any, base: type) -> type | None:
    """The class between ``type(layer)`` and ``base`` that redefines ``forward`` (its
    computation is then no longer the one ``base``'s converter writes), or None."""
    for klass in type(layer).__mro__:
        if klass is base:
            return None
        if "forward" in klass.__dict__:
            return klass
    return None


def converter_for(layer: Any) -> tuple[Callable[..., Any], bool] | None:
    """``(converter, handles masks)`` of the nearest registered class of ``layer``; None
    when there is none, or when a subclass in between redefines ``forward``."""
    for klass in type(layer).__mro__:
        fn = _CONVERTERS.get(klass)
        if fn is not None:
            return None if _overrides(layer, klass) is not None else (fn, klass in _MASK_AWARE)
    return None


def converters() -> dict[str, Callable[..., Any]]:
    """Class name to converter, for every registered layer class."""
    return {klass.__name__: fn for klass, fn in _CONVERTERS.items()}


class ExportContext:
    """The ONNX graph under construction, handed to every converter.

    Attributes
    ----------
    opset : int
        The opset version of the default ONNX domain the graph is written for.
    dtype : numpy dtype
        The float type of the model (:func:`npnet.floatx` when it was traced).
    """

    def __init__(self, opset: int, dtype: Any) -> None:
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.opset = int(opset)
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dynamic: dict[str, frozenset[int]] = {}
        self._dtypes: dict[str, np.dtype] = {}
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}
        self._weights: dict[tuple[int, str, str], str] = {}
        self._scope: list[str] = []
        #: id(traced array) -> its varying axes (set by the exporter)
        self.array_dynamic: dict[int, frozenset[int]] = {}

    # ------------------------------------------------------------------ names
    def reserve(self, name: str) -> None:
        """Mark ``name`` as taken (graph inputs and outputs)."""
        self._used.add(name)

    def fresh(self, base: str) -> str:
        """A value or node name not used yet, built from ``base``."""
        name, n = base, 1
        while name in self._used:
            name, n = f"{base}_{n}", n + 1
        self._used.add(name)
        return name

    def _prefixed(self, base: str) -> str:
        return f"{self._scope[-1]}/{base}" if self._scope else base

    # ------------------------------------------------------------------ shapes seen while tracing
    def set_shape(self, name: str, shape: Sequence[int], dynamic: frozenset[int] | set[int] = frozenset(),
                  dtype: Any = None) -> None:
        self._shapes[name] = tuple(int(s) for s in shape)
        self._dynamic[name] = frozenset(dynamic)
        if dtype is not None:
            self._dtypes[name] = np.dtype(dtype)

    def set_shape_like(self, name: str, array: np.ndarray) -> None:
        """Record that ``name`` has the shape, dtype and varying axes of the traced ``array``."""
        self.set_shape(name, array.shape, self.array_dynamic.get(id(array), frozenset()), array.dtype)

    def dtype_of(self, name: str) -> np.dtype:
        """The dtype the value ``name`` had while the model was traced (the model's float
        type when it is not known)."""
        return self._dtypes.get(name, self.dtype)

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape the value ``name`` had while the model was traced."""
        try:
            return self._shapes[name]
        except KeyError:
            raise KeyError(f"export to ONNX: the shape of {name!r} is not known") from None

    def dynamic_axes(self, name: str) -> frozenset[int]:
        """Axes of ``name`` whose size varies with the input (the batch axis, a ``None``
        length); their traced size must not be written into the graph."""
        return self._dynamic.get(name, frozenset())

    def require_static(self, layer: Any, name: str, axes: Sequence[int], why: str) -> None:
        """Refuse to export when an axis the converter needs fixed varies."""
        nd = len(self.shape(name))
        bad = sorted(a % nd for a in axes if a % nd in self.dynamic_axes(name))
        if bad:
            raise ValueError(
                f"export to ONNX: {layer._owner} needs a fixed size on axes {bad} of its input ({why}), but they "
                "vary with the input; give those axes a size in npnet.Input(shape=...)")

    def reshape_target(self, layer: Any, name: str, dims: Sequence[int | None]) -> str:
        """A Reshape target for ``dims`` (None: a varying size, kept as -1 or the batch axis 0)."""
        varying = [i for i, d in enumerate(dims) if d is None and i != 0]
        if len(varying) > 1:
            raise ValueError(
                f"export to ONNX: {layer._owner} reshapes to {tuple(dims)} with more than one varying size; give "
                "those axes a size in npnet.Input(shape=...)")
        target = [0 if i == 0 and d is None else (-1 if d is None else int(d)) for i, d in enumerate(dims)]
        return self.const(np.asarray(target, dtype=np.int64), f"{name}_shape")

    # ------------------------------------------------------------------ building
    def node(self, op_type: str, inputs: Sequence[str], n_outputs: int = 1, name: str | None = None,
             **attributes: Any) -> Any:
        """Add an ONNX node; return its output name (or list of names when ``n_outputs > 1``).

        Parameters
        ----------
        op_type : str
            An operator of the default ONNX domain (``"MatMul"``, ``"Conv"``, ...).
        inputs : list of str
            Names of existing values ("" for an omitted optional input).
        n_outputs : int, default 1
        name : str, optional
            Base of the output names (default: the operator, in the current layer's scope).
        **attributes
            The node's attributes.
        """
        base = self._prefixed(name or op_type)
        outs = [self.fresh(base if n_outputs == 1 else f"{base}_{i}") for i in range(n_outputs)]
        node_name = self.fresh(f"{base}__node")
        self.nodes.append(self._helper.make_node(op_type, list(inputs), outs, name=node_name, **attributes))
        return outs[0] if n_outputs == 1 else outs

    def const(self, value: Any, name: str | None = None, dtype: Any = None) -> str:
        """An initializer holding ``value`` (a float scalar takes the model's dtype); equal
        constants are stored once."""
        arr = np.asarray(value, dtype=dtype if dtype is not None else (
            self.dtype if not isinstance(value, np.ndarray) and np.asarray(value).dtype.kind == "f" else None))
        key = (arr.dtype.str, arr.tobytes(), arr.shape)
        found = self._consts.get(key)
        if found is not None:
            return found
        out = self.fresh(self._prefixed(name or "const"))
        self.initializers.append(self._numpy_helper.from_array(np.array(arr, order="C", copy=None), out))
        self._consts[key] = out
        return out

    def weight(self, layer: Any, key: str, array: np.ndarray, transform: str = "") -> str:
        """An initializer holding a weight of ``layer`` (or a rearrangement of it, named by
        ``transform``), stored once however often the layer is called."""
        k = (id(layer), key, transform)
        found = self._weights.get(k)
        if found is not None:
            return found
        out = self.fresh(f"{layer.name}/{key}")
        self.initializers.append(self._numpy_helper.from_array(np.array(array, order="C", copy=None), out))
        self._weights[k] = out
        return out

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool, name: str | None = None) -> str:
        """``ReduceMean``/``ReduceMax``/``ReduceSum`` over ``axes``, for the graph's opset (the
        axes moved from an attribute to an input in opset 18, 13 for ReduceSum)."""
        axes = [int(a) for a in axes]
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if as_input:
            return self.node(op_type, [x, self.const(np.asarray(axes, dtype=np.int64), "axes")], name=name,
                             keepdims=int(keepdims))
        return self.node(op_type, [x], name=name, axes=axes, keepdims=int(keepdims))

    def tensor_type(self, dtype: Any) -> int:
        """The ONNX element type of a NumPy dtype (for ``Cast``)."""
        return int(self._helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    @contextlib.contextmanager
    def subgraph(self) -> Iterator[list[Any]]:
        """Collect the nodes added inside the ``with`` block in a list of their own (the
        body of a ``Scan`` or ``Loop``), instead of the graph. Values and initializers of the
        graph stay visible to them, as ONNX lets a subgraph read its outer scope."""
        saved, self.nodes = self.nodes, []
        body = self.nodes
        try:
            yield body
        finally:
            self.nodes = saved

    def transpose(self, x: str, perm: Sequence[int], name: str | None = None) -> str:
        return self.node("Transpose", [x], name=name or "Transpose", perm=[int(p) for p in perm])

    def convert(self, layer: Any, inputs: list[str], outputs: list[np.ndarray], options: dict[str, Any]) -> list[str]:
        """Run the converter of ``layer`` (for a layer applied inside another, such as the
        activation of a Dense layer); raise a clear error when there is none."""
        found = converter_for(layer)
        base = next((k for k in type(layer).__mro__ if k in _CONVERTERS), None)
        if found is None and base is not None:
            raise ValueError(
                f"export to ONNX: {layer._owner} redefines forward() of "
                f"{base.__name__}, so {base.__name__}'s converter would export the wrong computation; register "
                "a converter for it with npnet.onnx.register_converter")
        if found is None:
            known = sorted(converters())
            raise ValueError(
                f"export to ONNX: no converter for {layer._owner} (class {type(layer).__module__}."
                f"{type(layer).__qualname__}); layers that export: {known}. Register one with "
                "npnet.onnx.register_converter")
        fn, mask_aware = found
        mask = options.get("mask")
        has_mask = any(m is not None for m in mask) if isinstance(mask, (list, tuple)) else mask is not None
        if has_mask and not mask_aware:
            raise ValueError(
                f"export to ONNX: {layer._owner} is called with a mask, and its converter does not export masks "
                "yet; the export would ignore the mask")
        self._scope.append(layer.name)
        try:
            result = fn(self, layer, list(inputs), list(outputs), dict(options))
        finally:
            self._scope.pop()
        names = [result] if isinstance(result, str) else list(result)
        if len(names) != len(outputs):
            raise RuntimeError(
                f"export to ONNX: the converter of {layer._owner} returned {len(names)} values for "
                f"{len(outputs)} outputs")
        return names
