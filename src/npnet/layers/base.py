"""The layer contract every npnet layer follows.

There are two kinds of layer.

A **primitive** layer writes its math by hand. :meth:`Layer.forward` turns a batch ``x``
into ``y = f(x)`` and returns ``(y, cache)``: the output and the few arrays its derivative
needs. :meth:`Layer.backward` takes that cache and ``dy`` (the gradient of the loss with
respect to ``y``) and returns ``dx``; along the way it *sets* (never adds to)
``self.grads[k]`` for every parameter ``self.params[k]``. The cache belongs to the call,
not to the layer, so one layer can be called several times in one pass (a shared layer)
and by several threads at once.

A **composite** layer (and every model) defines :meth:`Layer.call` out of other layers,
in ordinary Python. It never writes a backward: while a model trains, each primitive call
is recorded on a tape, and the backward pass walks the tape in reverse (see
:mod:`npnet._tape`).

Rules:

- ``__init__`` validates its arguments and stores each one unchanged under its own name,
  so :meth:`get_config` can give them back.
- ``build(input_shape)`` creates the parameters. Shapes include the batch dimension,
  which may be ``None``: a Dense layer fed ``(None, 4096)`` builds a ``(4096, units)``
  kernel. A layer builds on its first call.
- ``forward`` keeps only what ``backward`` needs, and ``backward`` reads only that cache.
- Call a layer, ``layer(x)``, to use it: on an array it computes the output, on a
  symbolic tensor from :func:`npnet.Input` it records a node of a functional model.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import _masks, _tape
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._config import floatx
from .._nest import flatten as _flatten
from .._validation import check_array_like, check_bool, check_int

__all__ = ["Layer", "InputSpec", "register_layer", "get_layer_class", "layer_classes"]


def _as_input(value: Any, owner: str) -> np.ndarray:
    """An input that is not yet an array, as one; an arbitrary object is refused before
    NumPy walks it element by element."""
    if not isinstance(value, (list, tuple)):
        check_array_like(value, "inputs", owner, "an array or a list of arrays")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # a ragged list and the like
        raise ValueError(f"{owner}: `inputs` could not be converted to an array: {exc}") from None

_REGISTRY: dict[str, type[Layer]] = {}
_NAME_COUNTS: dict[str, int] = {}
_NAME_LOCK = threading.Lock()
# Building creates the weights; two threads calling an unbuilt layer at once must not both
# build it. One lock per layer being built (id -> [lock, users]), so that a slow build in one
# thread (a model being loaded) never holds up the building of other layers elsewhere.
_BUILD_LOCKS: dict[int, list[Any]] = {}
_BUILD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _build_lock(layer: Any) -> Iterator[None]:
    """Hold the build lock of ``layer`` (re-entrant: a build may call the layer again)."""
    key = id(layer)
    with _BUILD_LOCKS_GUARD:
        entry = _BUILD_LOCKS.get(key)
        if entry is None:
            entry = _BUILD_LOCKS[key] = [threading.RLock(), 0]
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _BUILD_LOCKS_GUARD:
            entry[1] -= 1
            if not entry[1]:
                del _BUILD_LOCKS[key]


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Register a layer or model class so configs and saved models can name it.

    npnet's own layers are registered already. Register your own layer and model classes
    before calling :func:`npnet.load_model` on a file that uses them; loading never
    imports anything named in a file.

    Parameters
    ----------
    cls : type
        A subclass of :class:`Layer` (models included). Usable as a decorator.

    Returns
    -------
    type
        ``cls`` itself.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer: expected a subclass of npnet.layers.Layer, received {cls!r}")
    existing = _REGISTRY.get(cls.__name__)
    if existing is not None and existing is not cls and existing.__module__.startswith("npnet."):
        raise ValueError(
            f"register_layer: the name {cls.__name__!r} belongs to npnet's own layer {existing.__module__}.{cls.__name__}"
        )
    _REGISTRY[cls.__name__] = cls
    return cls


def get_layer_class(name: str) -> type[Layer]:
    """Look up a registered layer class by its class name, or raise listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown layer class {name!r}; known layers: {sorted(_REGISTRY)}. "
            "Register your own classes with npnet.register_layer"
        ) from None


def layer_classes() -> dict[str, type[Layer]]:
    """Return a copy of the registry: class name to layer class."""
    return dict(_REGISTRY)


def _snake(name: str) -> str:
    # Keras' rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, ReLU -> re_lu.
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _unique_name(prefix: str) -> str:
    with _NAME_LOCK:
        n = _NAME_COUNTS.get(prefix, 0)
        _NAME_COUNTS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


class InputSpec:
    """What a built layer accepts: a rank (exact or minimum) and fixed sizes on some axes.

    Parameters
    ----------
    ndim : int, optional
        Exact rank including the batch axis.
    min_ndim : int, optional
        Minimum rank including the batch axis.
    axes : dict of int to int, optional
        Axis index (negative counts from the end) to required size.
    layout : str, optional
        Human-readable layout used in messages, e.g. ``"(batch, height, width, channels)"``.
    sample_shape : tuple of int, optional
        The exact shape of one sample (everything but the batch axis).
    """

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None,
                 axes: dict[int, int] | None = None, layout: str | None = None,
                 sample_shape: tuple[int, ...] | None = None) -> None:
        owner = "InputSpec"
        for value, what in ((ndim, "ndim"), (min_ndim, "min_ndim")):
            if value is not None:
                check_int(value, what, minimum=0, owner=owner)
        if axes is not None and not (isinstance(axes, dict) and all(
                isinstance(k, (int, np.integer)) and isinstance(v, (int, np.integer))
                and not isinstance(k, bool) and not isinstance(v, bool) for k, v in axes.items())):
            raise TypeError(f"{owner}: `axes` must be a dict of axis to size (ints) or None, received {axes!r}")
        if layout is not None and not isinstance(layout, str):
            raise TypeError(f"{owner}: `layout` must be a string or None, received {layout!r}")
        if sample_shape is not None:
            if isinstance(sample_shape, (str, bytes)) or not hasattr(sample_shape, "__iter__") or any(
                    s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0)
                    for s in sample_shape):
                raise TypeError(f"{owner}: `sample_shape` must be a tuple of ints >= 0 (or None) or None, "
                                f"received {sample_shape!r}")
        self.ndim, self.min_ndim, self.axes, self.layout = ndim, min_ndim, dict(axes or {}), layout
        self.sample_shape = None if sample_shape is None else tuple(sample_shape)


_AXIS_WORDS = {-1: "last dimension", -2: "second-to-last dimension", 1: "dimension 1"}
_CALL_ARGS: dict[type, frozenset[str]] = {}


def _call_args(cls: Any) -> frozenset[str]:
    """Names ``cls.call`` accepts (``training`` is passed only where it is accepted, as in Keras)."""
    names = _CALL_ARGS.get(cls)
    if names is None:
        params = inspect.signature(cls.call).parameters.values()
        names = frozenset(p.name for p in params) | (
            frozenset({"*"}) if any(p.kind is p.VAR_KEYWORD for p in params) else frozenset())
        _CALL_ARGS[cls] = names
    return names


_FORWARD_ARGS: dict[type, frozenset[str]] = {}


def _forward_args(cls: Any) -> frozenset[str]:
    """Keyword arguments ``cls.forward`` accepts beyond ``x`` and ``training`` (``mask`` and
    a primitive's own call options, such as ``use_causal_mask``)."""
    names = _FORWARD_ARGS.get(cls)
    if names is None:
        params = list(inspect.signature(cls.forward).parameters.values())[1:]  # after self
        names = frozenset(p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        _FORWARD_ARGS[cls] = names
    return names


def _shapes(value: Any) -> Any:
    """Shapes of arrays or symbolic tensors, batch axis None, in the same structure."""
    if isinstance(value, (list, tuple)):
        return [_shapes(v) for v in value]
    if isinstance(value, dict):
        return {k: _shapes(v) for k, v in value.items()}
    shape = value.shape if hasattr(value, "shape") else np.shape(value)
    return (None,) + tuple(shape)[1:]


#: Counts every layer build, so that fit notices a layer first built during training.
BUILDS = [0]


def _walk(value: Any, path: str) -> Iterator[tuple[str, Layer]]:
    """Layers held in ``value``: itself, or inside lists, tuples and dicts (with their paths)."""
    if isinstance(value, Layer):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}/{i}")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}/{k}")



#: Keras' base-layer keyword arguments, taken by every layer's constructor: the input
#: shape of a Sequential model's first layer, and the dtype policy (npnet has one float
#: type, :func:`npnet.floatx`).
_BASE_ARGUMENTS = ("input_shape", "input_dim", "dtype", "autocast")


def _accept_base_arguments(cls: type) -> None:
    """Let ``cls.__init__`` take Keras' base-layer arguments its own signature does not name:
    they are taken off before it runs and applied after it (by the outermost constructor)."""
    init = cls.__dict__["__init__"]
    if getattr(init, "_takes_base_arguments", False):
        return
    named = set(inspect.signature(init).parameters)
    extra = tuple(k for k in _BASE_ARGUMENTS if k not in named)
    if not extra:
        return

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base = {k: kwargs.pop(k) for k in extra if k in kwargs}
        init(self, *args, **kwargs)
        if base:
            self._apply_base_arguments(base)

    __init__._takes_base_arguments = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


class Layer:
    """Base class of all layers, primitive and composite, and of models.

    Parameters
    ----------
    name : str, optional
        Unique name shown in ``summary()`` and in error messages; by default the class
        name in snake case with a counter (``dense``, ``dense_1``, ...).
    trainable : bool
        If False, the optimizer leaves this layer's parameters (and those of every layer
        inside it) alone.

    Attributes
    ----------
    params : dict of str to ndarray
        Trainable parameters, created by :meth:`build`.
    grads : dict of str to ndarray
        Gradients with the same keys and shapes, set by :meth:`backward`.
    state : dict of str to ndarray
        Non-trainable arrays (for example batch-norm moving statistics).
    built : bool
        Whether :meth:`build` has run.
    """

    #: Whether ``backward`` must return ``dx``. The tape turns it off for a call whose
    #: inputs need no gradient (the first layer of a model).
    compute_input_grad: bool = True
    #: Rank requirements checked on the first batch, before ``build`` (subclasses set it).
    _build_spec: InputSpec | None = None
    #: Whether the layer takes a list of inputs (merge layers).
    _multi_input: bool = False
    #: Whether the layer passes on a mask (see :meth:`compute_mask`). A layer that does
    #: not drops the mask of its input, with a warning, as in Keras.
    supports_masking: bool = False

    def __init__(self, name: str | None = None, trainable: bool = True, **kwargs: Any) -> None:
        base = {k: kwargs.pop(k) for k in _BASE_ARGUMENTS if k in kwargs}
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise TypeError(
                f"{type(self).__name__}: `name` must be a non-empty string without '/', received {name!r}")
        self.name = name if name is not None else _unique_name(_snake(type(self).__name__))
        self._trainable = check_bool(trainable, "trainable", owner=type(self).__name__)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.built = False
        self.input_shape: Any = None
        self.input_spec: InputSpec | None = None
        self._init_rng: np.random.Generator | None = None
        if base:
            self._apply_base_arguments(base)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("npnet.") and not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls
        if "__init__" in cls.__dict__:
            _accept_base_arguments(cls)
        # As in Keras, a layer that defines its own compute_mask supports masking (unless
        # the class says otherwise).
        if "compute_mask" in cls.__dict__ and "supports_masking" not in cls.__dict__:
            cls.supports_masking = True

    def _apply_base_arguments(self, base: dict[str, Any]) -> None:
        """Keras' base-layer arguments every layer takes (see ``_BASE_ARGUMENTS``)."""
        owner = type(self).__name__
        dtype = base.get("dtype")
        if dtype is not None:
            try:
                same = np.dtype(dtype) == np.dtype(floatx())
            except TypeError:
                same = False
            if not same:
                raise ValueError(
                    f"{owner}: `dtype` {dtype!r} is not supported: every layer computes in npnet.floatx() "
                    f"({floatx()!r}); set it with npnet.set_floatx, or pass dtype=None")
        if "autocast" in base and not check_bool(base["autocast"], "autocast", owner=owner):
            raise ValueError(f"{owner}: `autocast=False` is not supported: npnet casts every input to "
                             f"npnet.floatx() ({floatx()!r})")
        shape = base.get("input_shape")
        if base.get("input_dim") is not None:
            shape = (check_int(base["input_dim"], "input_dim", minimum=1, owner=owner),)
        if shape is not None:
            if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
                shape = (shape,)
            if not isinstance(shape, (tuple, list)) or not all(
                    d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1)
                    for d in shape):
                raise TypeError(f"{owner}: `input_shape` must be a tuple of sizes (ints >= 1 or None) without the "
                                f"batch axis, received {shape!r}")
            warnings.warn(
                f"{owner}: `input_shape`/`input_dim` on a layer is Keras' older style; a Sequential model uses it "
                "for its input, but npnet.Input(shape=...) as the model's first element is the way to say it",
                UserWarning, stacklevel=3)
            self._input_shape_arg = tuple(None if d is None else int(d) for d in shape)

    # ------------------------------------------------------------------ naming
    @property
    def _owner(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"

    # ------------------------------------------------------------------ kinds
    @classmethod
    def _is_composite(cls) -> bool:
        """A composite layer defines ``call``; a primitive defines ``forward``/``backward``."""
        return cls.call is not Layer.call

    @property
    def trainable(self) -> bool:
        """Whether ``fit`` updates this layer's parameters. Setting it sets it on every
        layer inside, as in Keras."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = check_bool(value, "trainable", owner=self._owner)
        for _, layer in self._children():
            layer.trainable = value

    # ------------------------------------------------------------------ calling
    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """Apply the layer.

        On arrays it computes the output (inference unless ``training=True``, or unless it
        runs inside a model that trains). On symbolic tensors from :func:`npnet.Input` it
        records a node of a functional model and returns symbolic outputs.
        """
        if type(inputs) is not np.ndarray:  # the common case, an array, needs no look inside
            from . import _symbolic

            if _symbolic.any_symbolic(inputs):
                # an explicit `training` is kept in the node, as Keras keeps it
                return _symbolic.symbolic_call(self, inputs, kwargs if training is None
                                               else {**kwargs, "training": check_bool(training, "training",
                                                                                      owner=self._owner)})
        run = _tape.current()
        if training is None:
            training = run.training if run is not None else False
        training = bool(training)
        if self._is_composite():
            self._build_composite(inputs)
            accepted = _call_args(type(self))
            if "training" in accepted or "*" in accepted:
                kwargs["training"] = training
            in_mask = kwargs.get("mask")
            if in_mask is None:
                in_mask = _masks.mask_of(inputs)
                if "mask" in accepted:
                    kwargs["mask"] = in_mask
            # Layers called inside without an explicit `training` take this call's, as in Keras.
            if run is None:
                with _tape.running(_tape.Run(training=training)) as inner:
                    out = self.call(inputs, **kwargs)
                    if self.__dict__.get("_activity_regularizer") is not None:
                        self._regularize_activity(out, inner)
            else:
                outer, run.training = run.training, training
                try:
                    out = self.call(inputs, **kwargs)
                finally:
                    run.training = outer
                if self.__dict__.get("_activity_regularizer") is not None:
                    self._regularize_activity(out, run)
            self.built = True
            if self.supports_masking:
                self._attach_composite_mask(inputs, in_mask, out)
            return out
        if kwargs:
            unknown = sorted(set(kwargs) - _forward_args(type(self)))
            if unknown:
                raise TypeError(f"{self._owner}: unexpected call arguments {unknown}")
        out = self._call_primitive(inputs, training, run, kwargs)
        if self.__dict__.get("_activity_regularizer") is not None:
            self._regularize_activity(out, run)
        return out

    def _build_composite(self, inputs: Any) -> None:
        """Run a composite layer's own ``build(input_shape)`` once, before its first call,
        when its class defines one (the Keras pattern of creating inner layers there)."""
        if self.built or getattr(type(self).build, "__module__", "npnet.").startswith("npnet."):
            return
        with _build_lock(self):
            if not self.built:
                self.build(_shapes(inputs))
                self.built = True

    def _check_arity(self, inputs: Any) -> bool:
        multi = isinstance(inputs, (list, tuple))
        if multi and not self._multi_input:
            raise TypeError(
                f"{self._owner}: expected a single input tensor, received a list of {len(inputs)}; "
                "merge them first, for example with npnet.layers.Concatenate()")
        if not multi and self._multi_input:
            raise TypeError(f"{self._owner}: expected a list of input tensors, received one {type(inputs).__name__}")
        return multi

    def _call_primitive(self, inputs: Any, training: bool, run: _tape.Run | None,
                        kwargs: dict[str, Any] | None = None) -> Any:
        multi = self._check_arity(inputs)
        xs = [a if isinstance(a, np.ndarray) else _as_input(a, self._owner) for a in (inputs if multi else [inputs])]
        for a in xs:
            if a.dtype.kind not in "biuf":
                raise TypeError(f"{self._owner}: `inputs` must hold real numbers, received an array of dtype {a.dtype}")
        x: Any = xs if multi else xs[0]
        kwargs = kwargs or {}
        if "mask" in kwargs and kwargs["mask"] is not None:
            mask: Any = kwargs["mask"]
        else:
            masks = [_masks.get_mask(a) for a in (inputs if multi else [inputs])]
            mask = masks if multi else masks[0]
            if "mask" in _forward_args(type(self)):
                kwargs = {**kwargs, "mask": mask}
        tape = run.tape if run is not None else None
        if tape is not None and tape.strict:
            for a in xs:
                if not tape.knows(a):
                    raise ValueError(
                        f"{self._owner}: while training, its input must be a model input or the output of "
                        "another layer; it received an array computed outside npnet's layers (for example "
                        "with NumPy operators inside call()), which the backward pass cannot follow. Use "
                        "layers such as npnet.layers.Add, Multiply or Concatenate for that arithmetic")
        if run is None:
            return self._attach_mask(x, mask, self._forward_checked(x, training, kwargs)[0])
        slot = run.next_slot(self)
        outer, run.slot = run.slot, slot
        try:
            y, cache = self._forward_checked(x, training, kwargs)
        finally:
            run.slot = outer
        if tape is None:
            return self._attach_mask(x, mask, y)
        multi_out = isinstance(y, (list, tuple))
        ys = list(y) if multi_out else [y]
        for i, o in enumerate(ys):
            # An output that is one of the inputs (an identity) gets its own array object,
            # so that every recorded array has exactly one producer.
            if tape.knows(o) or any(o is p for p in ys[:i]):
                ys[i] = o.view()
        tape.record(_tape.Entry(self, xs, ys, cache, slot, multi, multi_out, kwargs, training=bool(training)))
        return self._attach_mask(x, mask, ys if multi_out else ys[0])

    def _attach_mask(self, x: Any, mask: Any, y: Any) -> Any:
        """Attach the output mask of this call to ``y`` (Keras' mask propagation)."""
        has_mask = any(m is not None for m in mask) if isinstance(mask, list) else mask is not None
        if self.supports_masking:
            out_mask = (self.compute_mask(x, mask) if has_mask or type(self).compute_mask is not Layer.compute_mask
                        else None)
            # An output array kept between batches must not keep an earlier batch's mask.
            if out_mask is not None or _masks.any_masks():
                if isinstance(y, (list, tuple)):
                    out_masks = out_mask if isinstance(out_mask, (list, tuple)) else [out_mask]
                    for o, m in zip(y, out_masks):
                        _masks.set_mask(o, m)
                else:
                    _masks.set_mask(y, out_mask[0] if isinstance(out_mask, (list, tuple)) else out_mask)
        elif has_mask and not self.__dict__.get("_mask_warned"):
            self.__dict__["_mask_warned"] = True
            warnings.warn(
                f"{self._owner} received an input with a mask, but does not support masking: "
                "layers after it will not see the mask", stacklevel=3)
        return y

    def _attach_composite_mask(self, inputs: Any, mask: Any, out: Any) -> None:
        """A composite that supports masking: outputs that no inner layer gave a mask get
        ``compute_mask(inputs, mask)`` (Keras' ``_set_mask_metadata``)."""
        outs = _flatten(out)
        if all(_masks.get_mask(o) is not None for o in outs):
            return
        out_mask = self.compute_mask(inputs, mask)
        if out_mask is None:
            return
        masks = out_mask if isinstance(out_mask, (list, tuple)) else [out_mask]
        for o, m in zip(outs, masks):
            if _masks.get_mask(o) is None and m is not None:
                _masks.set_mask(o, m)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of this layer's output, given its input and the input's mask.

        A layer that supports masking and keeps the time axis returns ``mask`` unchanged
        (the default); a layer that makes a mask (``Embedding(mask_zero=True)``,
        ``Masking``) computes it from ``inputs``; a layer that removes the time axis
        returns None.

        Parameters
        ----------
        inputs : ndarray or list of ndarray
        mask : ndarray of bool of shape (batch, time), list of them, or None

        Returns
        -------
        ndarray of bool, list of them, or None
        """
        return mask

    def _forward_checked(self, x: Any, training: bool, kwargs: dict[str, Any] | None = None) -> tuple[Any, Any]:
        result = self.forward(x, training, **kwargs) if kwargs else self.forward(x, training)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                f"{self._owner}: forward() must return a pair (output, cache), received {type(result).__name__}; "
                "since npnet 0.2 the cache belongs to the call (see the 'Write your own layer' guide)")
        return result

    # ------------------------------------------------------------------ building
    def build(self, input_shape: Any) -> None:
        """Create the parameters for inputs of ``input_shape`` (batch axis included)."""
        self.input_shape = tuple(input_shape) if not self._multi_input else [tuple(s) for s in input_shape]
        self.built = True

    def _build_from(self, input_shape: Any) -> None:
        """Build under the lock, with the generator of the current run when the layer has none."""
        with _build_lock(self):
            if self.built:
                return
            own = self._init_rng
            if own is None:
                self._init_rng = _tape.init_rng()
            try:
                self.build(input_shape)
            finally:
                self._init_rng = own
            BUILDS[0] += 1

    def add_weight(self, name: str, shape: tuple[int, ...], initializer: Any = "zeros",
                   trainable: bool = True, regularizer: Any = None, constraint: Any = None) -> np.ndarray:
        """Create a parameter (``trainable=True``) or a state array and register it.

        The array has the default float type :func:`npnet.floatx`. Its gradient buffer
        ``self.grads[name]`` is created alongside. A ``regularizer`` (see
        :mod:`npnet.regularizers`) adds its penalty to the training loss; a
        ``constraint`` (see :mod:`npnet.constraints`) projects the weight after each
        optimizer update.
        """
        if any(d is None for d in shape):
            raise ValueError(
                f"{self._owner}: cannot create weight {name!r} of shape {tuple(shape)}: a size it depends on is "
                "unknown (None); give that axis a size in npnet.Input(shape=...)")
        init = _initializers.get(initializer, owner=self._owner)
        reg = _regularizers.get(regularizer, owner=self._owner)
        con = _constraints.get(constraint, owner=self._owner)
        if con is not None:
            con.check(tuple(shape), f"{self._owner} weight {name!r}")
        if reg is not None:
            self.__dict__.setdefault("_regularizers", {})[name] = reg
        if con is not None:
            self.__dict__.setdefault("_constraints", {})[name] = con
        if _tape.skipping_init():
            # Loading a saved file: a zero-size placeholder stands in until the loader
            # has checked the stored arrays and puts real ones in place, so a tampered
            # config with huge shapes fails cleanly without allocating anything.
            value = np.broadcast_to(np.zeros((), dtype=floatx()), tuple(shape))
        else:
            value = init(shape, dtype=floatx(), rng=self._init_rng)
        if trainable:
            self.params[name] = value
            self.grads[name] = np.zeros_like(value) if not _tape.skipping_init() else value
        else:
            self.state[name] = value
        self.__dict__.setdefault("_initializers", {})[name] = init
        return value

    def _reinitialize(self, rng: np.random.Generator | None) -> None:
        """Draw every weight again from its initializer, in place (``Model(..., seed=...)``)."""
        inits = self.__dict__.get("_initializers", {})
        for key, arr in list(self.params.items()) + list(self.state.items()):
            if key in inits and arr.flags.writeable:
                arr[...] = inits[key](arr.shape, dtype=arr.dtype, rng=rng)
        for _, layer in self._children():
            layer._reinitialize(rng)

    def _enter(self, x: np.ndarray) -> np.ndarray:
        """Build on the first call, then check ``x`` against the input spec."""
        if isinstance(x, (list, tuple)):
            self._check_arity(x)
        if not isinstance(x, np.ndarray):
            x = _as_input(x, self._owner)
        if not self.built:
            self._check_build_spec(x.shape)
            self._build_from((None,) + tuple(x.shape[1:]))
        self._check_spec(x.shape)
        return x

    def _check_build_spec(self, shape: tuple) -> None:
        spec = self.input_spec if self.input_spec is not None else self._build_spec
        if spec is not None:
            saved, self.input_spec = self.input_spec, spec
            try:
                self._check_spec(shape)
            finally:
                self.input_spec = saved

    def _check_spec(self, shape: tuple) -> None:
        spec = self.input_spec
        if spec is None:
            return
        layout = f" {spec.layout}" if spec.layout else ""
        if spec.ndim is not None and len(shape) != spec.ndim:
            raise ValueError(
                f"{self._owner}: expected input of rank {spec.ndim}{layout}, received shape {tuple(shape)}"
            )
        if spec.min_ndim is not None and len(shape) < spec.min_ndim:
            raise ValueError(
                f"{self._owner}: expected input of rank >= {spec.min_ndim}{layout}, received shape {tuple(shape)}"
            )
        if spec.sample_shape is not None and (len(shape) - 1 != len(spec.sample_shape) or any(
                want is not None and got != want for got, want in zip(shape[1:], spec.sample_shape))):
            expected = ", ".join(str(s) for s in ("batch",) + spec.sample_shape)
            raise ValueError(
                f"{self._owner}: expected input of shape ({expected}), received shape {tuple(shape)}"
            )
        for axis, size in spec.axes.items():
            if shape[axis] != size:
                word = _AXIS_WORDS.get(axis, f"dimension {axis}")
                raise ValueError(
                    f"{self._owner}: expected input with {word} {size}, received shape {tuple(shape)}"
                )

    def _require_cache(self, cache: Any) -> None:
        if cache is None:
            raise RuntimeError(
                f"{self._owner}: backward() needs the cache returned by forward(); "
                "call y, cache = layer.forward(x, training=True) first"
            )

    # ------------------------------------------------------------------ computation
    def call(self, inputs: Any, training: bool = False) -> Any:
        """A composite layer's computation, out of other layers (override it; no backward needed)."""
        raise NotImplementedError

    def forward(self, x: np.ndarray, training: bool = False) -> tuple[Any, Any]:
        """A primitive layer's computation: return ``(y, cache)`` for a batch ``x``."""
        raise NotImplementedError(
            f"{self._owner}: a layer defines either call() (out of other layers) or forward() and backward()")

    def backward(self, cache: Any, dy: np.ndarray) -> Any:
        """Given the cache of one forward call and ``dL/dy``, set ``self.grads`` and return ``dL/dx``."""
        raise NotImplementedError(f"{self._owner}: backward() is not implemented")

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shape for ``input_shape`` (batch axis included, may be ``None``)."""
        return tuple(input_shape)

    # Loss fusion: a primitive whose last step is a softmax or sigmoid tells the model so,
    # and the model then computes the loss from the logits (see Model.compile).
    def _fusion(self, cache: Any, inputs: list[np.ndarray]) -> tuple[str, np.ndarray] | None:
        """``(kind, logits)`` if this call ends in a softmax over the last axis ("softmax")
        or a sigmoid ("sigmoid"), else None."""
        return None

    def _backward_from_logits(self, cache: Any, dz: np.ndarray) -> Any:
        """Backward of this call from the gradient with respect to its logits."""
        raise NotImplementedError

    # ------------------------------------------------------------------ nested layers
    def _children(self) -> list[tuple[str, Layer]]:
        """The layers directly inside this one, each with the name its weights are saved
        under: the attribute path for a composite (``"blocks/0"``), the layer name for
        Sequential and functional models. Primitives have none."""
        if not self._is_composite():
            return []
        found: list[tuple[str, Layer]] = []
        seen = {id(self)}
        for key, value in vars(self).items():
            for path, layer in _walk(value, key):
                if id(layer) not in seen:
                    seen.add(id(layer))
                    found.append((path, layer))
        return found

    def _flatten_layers(self) -> list[Layer]:
        """Every layer inside, depth first, each once (self excluded)."""
        out: list[Layer] = []
        seen: set[int] = set()

        def visit(layer: Layer) -> None:
            for _, child in layer._children():
                if id(child) not in seen:
                    seen.add(id(child))
                    out.append(child)
                    visit(child)

        visit(self)
        return out

    # ------------------------------------------------------------------ weights
    def _weight_entries(self, prefix: str = "", structural: bool = False) -> list[tuple[str, Layer, str]]:
        """``(path, layer, key)`` for every weight: own parameters, own state, then each
        inner layer's, each weight once.

        A path names the layers that hold the weight (``"block/dense_3/kernel"``). With
        ``structural=True`` each layer is named instead by its class and its rank among
        the layers of that class in its container (``"block/dense_1/kernel"``), which stays
        the same when layers get other automatic names in another model instance.
        """
        out: list[tuple[str, Layer, str]] = []
        seen: set[tuple[int, str]] = set()

        def visit(layer: Layer, pre: str) -> None:
            for key in list(layer.params) + list(layer.state):
                if (id(layer), key) not in seen:
                    seen.add((id(layer), key))
                    out.append((pre + key, layer, key))
            counts: dict[str, int] = {}
            for path, child in layer._children():
                if structural:
                    kind = _snake(type(child).__name__)
                    n = counts.get(kind, 0)
                    counts[kind] = n + 1
                    path = kind if n == 0 else f"{kind}_{n}"
                visit(child, f"{pre}{path}/")

        visit(self, prefix)
        return out

    def _trainable_entries(self) -> list[tuple[Layer, str]]:
        """``(layer, key)`` of every parameter ``fit`` updates: none inside a frozen layer."""
        out: list[tuple[Layer, str]] = []
        seen: set[int] = set()

        def visit(layer: Layer) -> None:
            if not layer.trainable or id(layer) in seen:
                return
            seen.add(id(layer))
            out.extend((layer, k) for k in layer.params)
            for _, child in layer._children():
                visit(child)

        visit(self)
        return out

    @staticmethod
    def _array(layer: Layer, key: str) -> np.ndarray:
        return layer.params[key] if key in layer.params else layer.state[key]

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array (live, not copies): trainable first, as in Keras."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        """The parameters ``fit`` updates (live arrays)."""
        return [layer.params[k] for layer, k in self._trainable_entries()]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        """State arrays, and the parameters of frozen layers (live arrays)."""
        trainable = {(id(layer), k) for layer, k in self._trainable_entries()}
        return [self._array(layer, k) for _, layer, k in self._weight_entries() if (id(layer), k) not in trainable]

    def count_params(self) -> int:
        """Number of weight elements, trainable and not (as Keras counts them)."""
        return int(sum(self._array(layer, k).size for _, layer, k in self._weight_entries()))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight: for each layer its parameters, then its state arrays."""
        return [self._array(layer, k).copy() for _, layer, k in self._weight_entries()]

    def set_weights(self, weights: Iterable[np.ndarray]) -> None:
        """Copy ``weights`` (same order and shapes as :meth:`get_weights`) into the layer in place."""
        weights = list(weights)
        entries = self._weight_entries()
        if len(weights) != len(entries):
            raise ValueError(f"{self._owner}: expected {len(entries)} weight arrays, received {len(weights)}")
        checked = []
        for (_, layer, key), value in zip(entries, weights):
            value = np.asarray(value)
            target = self._array(layer, key)
            if value.shape != target.shape:
                raise ValueError(
                    f"{layer._owner}: weight {key!r} expected shape {target.shape}, received {value.shape}"
                )
            checked.append((target, value))
        for target, value in checked:
            np.copyto(target, value, casting="same_kind")

    # ------------------------------------------------------------------ penalties and constraints
    @property
    def activity_regularizer(self) -> _regularizers.Regularizer | None:
        """A penalty on the output of every call, divided by its batch size (Keras'
        rule): :math:`R(y) / n`. Settable on any layer, by name or object."""
        return self.__dict__.get("_activity_regularizer")

    @activity_regularizer.setter
    def activity_regularizer(self, value: Any) -> None:
        self._activity_regularizer = _regularizers.get(value, owner=self._owner)

    def _regularize_activity(self, out: Any, run: _tape.Run | None) -> None:
        """Compute this call's activity penalties; record them on the tape, and here for :attr:`losses`."""
        reg = self.activity_regularizer
        if reg is None:
            return
        tape = None if run is None else run.tape
        values = []
        for y in _flatten(out):
            if not isinstance(y, np.ndarray):
                continue
            # Keras divides by the batch size (and a batch of none gives 0, not NaN).
            scale = 1.0 if y.ndim == 0 else (1.0 / y.shape[0] if y.shape[0] else 0.0)
            value = float(reg(y)) * scale
            values.append(value)
            if tape is not None:
                tape.add_penalty(y, reg, scale, value)
        serial = run.serial if run is not None else _tape.new_serial()
        kept = self.__dict__.get("_activity_losses")
        if kept is not None and kept[0] == serial:
            kept[1].extend(values)
        else:
            self._activity_losses = (serial, values)

    def _weight_penalties(self) -> list[tuple[Layer, str, _regularizers.Regularizer]]:
        """``(layer, key, regularizer)`` of every regularized trainable weight, each once."""
        out = []
        for layer, key in self._trainable_entries():
            reg = layer.__dict__.get("_regularizers", {}).get(key)
            if reg is not None:
                out.append((layer, key, reg))
        return out

    @property
    def losses(self) -> list[float]:
        """The current penalties, as in Keras: the activity penalties of this layer and the
        layers inside it from their latest pass, then one weight penalty per regularized
        trainable weight, computed from the weights now."""
        kept = [layer.__dict__["_activity_losses"] for layer in [self, *self._flatten_layers()]
                if "_activity_losses" in layer.__dict__]
        latest = max((serial for serial, _ in kept), default=None)
        out = [v for serial, values in kept if serial == latest for v in values]
        return out + [reg(layer.params[key]) for layer, key, reg in self._weight_penalties()]

    def _penalty(self, tape: _tape.Tape | None, grads: bool) -> tuple[float, dict[int, np.ndarray]]:
        """The sum of the penalties of the pass recorded on ``tape`` and of the weights, and
        (with ``grads``) the activity gradients that seed the backward pass. The weight
        penalties' gradients are left to ``tape.backward``, which adds each once."""
        total = 0.0
        seeds: dict[int, np.ndarray] = {}
        for array, reg, scale, value in [] if tape is None else tape.penalties:
            total += value
            if grads:
                g = _regularizers.gradient_of(reg, array, f"{self._owner} activity penalty")
                if scale != 1.0:
                    g = g * np.asarray(scale, dtype=g.dtype)
                seeds[id(array)] = seeds[id(array)] + g if id(array) in seeds else g
        terms = self._weight_penalties()
        total += sum(float(reg(layer.params[key])) for layer, key, reg in terms)
        if grads and tape is not None:
            tape.weight_penalties = terms
        return total, seeds

    def _apply_constraints(self) -> None:
        """Project every constrained trainable weight in place (after an optimizer update)."""
        for layer, key in self._trainable_entries():
            con = layer.__dict__.get("_constraints", {}).get(key)
            if con is not None:
                _constraints.apply(con, layer.params[key], f"{layer._owner} weight {key!r}")

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe; ``type(self).from_config(cfg)`` rebuilds the layer."""
        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = _regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Create a layer from the output of :meth:`get_config`."""
        config = dict(config)
        activity = None
        if "activity_regularizer" in config and "activity_regularizer" not in inspect.signature(cls).parameters:
            activity = config.pop("activity_regularizer")  # set on the layer, not a constructor argument
        layer = cls(**config)
        if activity is not None:
            layer.activity_regularizer = activity
        return layer

    # ------------------------------------------------------------------ kept arrays
    def _new_array(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialized array for a result of this call (an output, ``dx``, or a big
        intermediate such as the im2col matrix).

        Normally a fresh array. While ``fit`` trains, the same array serves this call of
        the layer batch after batch: every consumer is done with it before the next
        step, and reusing it spares the page faults of a fresh multi-megabyte array.
        Arrays are kept per call, so a layer called twice in one pass gets two sets.
        """
        run = _tape.current()
        buf = None if run is None else run.buffer(self, key, shape, dtype)
        return np.empty(shape, dtype=dtype) if buf is None else buf

    # ------------------------------------------------------------------ randomness
    def _seed_from(self, rng: np.random.Generator, epoch: int) -> None:
        """Hook called by ``fit`` at the start of each epoch: layers with randomness take a
        stream derived from their own seed and ``epoch``, or from ``rng`` without a seed."""


def set_weight_options(layer: Layer, owner: str, **options: Any) -> None:
    """Store regularizer and constraint arguments (``kernel_regularizer=``, ``bias_constraint=``,
    ``activity_regularizer=``, ...) on ``layer`` as objects, each under its own name."""
    for name, value in options.items():
        if name == "activity_regularizer":
            layer.activity_regularizer = _regularizers.get(value, owner=owner)
        elif name.endswith("_regularizer"):
            setattr(layer, name, _regularizers.get(value, owner=owner))
        else:
            setattr(layer, name, _constraints.get(value, owner=owner))


def weight_options_config(layer: Layer, *names: str) -> dict[str, Any]:
    """The serialized regularizers and constraints ``names`` of ``layer``, for its config."""
    return {name: (_regularizers.serialize(getattr(layer, name)) if name.endswith("_regularizer")
                   else _constraints.serialize(getattr(layer, name))) for name in names}


class _FixedRank:
    """Mixin of a layer that takes inputs of one rank, ``_ndim``, laid out as ``_layout``:
    the rank is checked on the first batch (through ``_build_spec``), by ``build`` and by
    :meth:`_check_rank`, with one message."""

    _ndim: int = 4
    _layout: str = "(batch, height, width, channels)"
    input_spec: InputSpec | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._build_spec = InputSpec(ndim=cls._ndim, layout=cls._layout)  # type: ignore[attr-defined]

    def _check_rank(self, shape: Any) -> None:
        if len(shape) != self._ndim:
            raise ValueError(f"{self._owner}: expected input of rank {self._ndim} {self._layout}, "  # type: ignore[attr-defined]
                             f"received shape {tuple(shape)}")

    def build(self, input_shape: Any) -> None:
        self._check_rank(input_shape)
        self.input_spec = InputSpec(ndim=self._ndim, layout=self._layout)
        super().build(input_shape)  # type: ignore[misc]
