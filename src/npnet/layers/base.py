"""The layer contract every npnet layer follows.

A layer turns a batch ``x`` into ``y = f(x)`` in :meth:`Layer.forward` and, given the
gradient of the loss with respect to ``y`` (``dy``), returns the gradient with respect
to ``x`` (``dx``) in :meth:`Layer.backward`. Along the way ``backward`` *sets* (never adds
to) ``self.grads[k]`` for every parameter ``self.params[k]``.

Rules:

- ``__init__`` validates its arguments and stores each one unchanged under its own name,
  so :meth:`get_config` can give them back.
- ``build(input_shape)`` creates the parameters. Shapes include the batch dimension,
  which may be ``None``: a Dense layer fed ``(None, 4096)`` builds a ``(4096, units)``
  kernel. ``forward`` calls ``build`` on its first batch.
- ``forward`` keeps only what ``backward`` needs (the "cache"), and ``backward`` reads
  only that cache.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._config import floatx

__all__ = ["Layer", "InputSpec", "register_layer", "get_layer_class", "layer_classes"]

_REGISTRY: dict[str, type[Layer]] = {}
_NAME_COUNTS: dict[str, int] = {}
_SKIP_INIT = [False]


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Register a layer class so configs and saved models can name it.

    npnet's own layers are registered already. Register your own layer classes before
    calling :func:`npnet.load_model` on a file that uses them; loading never imports
    anything named in a file.

    Parameters
    ----------
    cls : type
        A subclass of :class:`Layer`. Usable as a decorator.

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
        self.ndim, self.min_ndim, self.axes, self.layout = ndim, min_ndim, dict(axes or {}), layout
        self.sample_shape = None if sample_shape is None else tuple(sample_shape)


_AXIS_WORDS = {-1: "last dimension", -2: "second-to-last dimension", 1: "dimension 1"}


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique name shown in ``summary()`` and in error messages; by default the class
        name in snake case with a counter (``dense``, ``dense_1``, ...).
    trainable : bool
        If False, the optimizer leaves this layer's parameters alone.

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

    #: Whether ``backward`` must return ``dx``. Sequential turns it off for its first layer.
    compute_input_grad: bool = True
    #: Rank requirements checked on the first batch, before ``build`` (subclasses set it).
    _build_spec: InputSpec | None = None
    #: Set while ``Sequential.fit`` trains; see :meth:`_new_array`.
    _reuse_outputs: bool = False

    def __init__(self, name: str | None = None, trainable: bool = True) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{type(self).__name__}: `name` must be a non-empty string, received {name!r}")
        self.name = name if name is not None else _unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.built = False
        self.input_shape: tuple | None = None
        self.input_spec: InputSpec | None = None
        self._init_rng: np.random.Generator | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("npnet.") and not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    # ------------------------------------------------------------------ naming
    @property
    def _owner(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"

    # ------------------------------------------------------------------ building
    def build(self, input_shape: tuple) -> None:
        """Create the parameters for inputs of ``input_shape`` (batch axis included)."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def add_weight(self, name: str, shape: tuple[int, ...], initializer: Any = "zeros",
                   trainable: bool = True) -> np.ndarray:
        """Create a parameter (``trainable=True``) or a state array and register it.

        The array has the default float type :func:`npnet.floatx`. Its gradient buffer
        ``self.grads[name]`` is created alongside.
        """
        init = _initializers.get(initializer, owner=self._owner)
        if _SKIP_INIT[0]:
            # Loading a saved file: a zero-size placeholder stands in until the loader
            # has checked the stored arrays and puts real ones in place, so a tampered
            # config with huge shapes fails cleanly without allocating anything.
            value = np.broadcast_to(np.zeros((), dtype=floatx()), tuple(shape))
        else:
            value = init(shape, dtype=floatx(), rng=self._init_rng)
        if trainable:
            self.params[name] = value
            self.grads[name] = np.zeros_like(value) if not _SKIP_INIT[0] else value
        else:
            self.state[name] = value
        return value

    def _enter(self, x: np.ndarray) -> np.ndarray:
        """Build on the first call, then check ``x`` against the input spec."""
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if not self.built:
            spec = self.input_spec if self.input_spec is not None else self._build_spec
            if spec is not None:
                saved, self.input_spec = self.input_spec, spec
                try:
                    self._check_spec(x.shape)
                finally:
                    self.input_spec = saved
            self.build((None,) + tuple(x.shape[1:]))
        self._check_spec(x.shape)
        return x

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
        if spec.sample_shape is not None and tuple(shape[1:]) != spec.sample_shape:
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

    def _require_forward(self, *names: str) -> None:
        for n in names:
            if getattr(self, n, None) is None:
                raise RuntimeError(
                    f"{self._owner}: backward() called before forward(); run forward(x, training=True) first"
                )

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Compute the output for a batch ``x`` and keep what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Given ``dL/dy``, set ``self.grads`` and return ``dL/dx``."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Output shape for ``input_shape`` (batch axis included, may be ``None``)."""
        return tuple(input_shape)

    # ------------------------------------------------------------------ weights
    def count_params(self) -> int:
        """Number of trainable parameter elements."""
        return int(sum(p.size for p in self.params.values()))

    def count_state(self) -> int:
        """Number of non-trainable elements (state arrays)."""
        return int(sum(s.size for s in self.state.values()))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters, then the state arrays, in creation order."""
        return [a.copy() for a in list(self.params.values()) + list(self.state.values())]

    def _weight_items(self) -> list[tuple[str, np.ndarray]]:
        return list(self.params.items()) + list(self.state.items())

    def set_weights(self, weights: Iterable[np.ndarray]) -> None:
        """Copy ``weights`` (same order and shapes as :meth:`get_weights`) into the layer in place."""
        weights = list(weights)
        items = self._weight_items()
        if len(weights) != len(items):
            raise ValueError(f"{self._owner}: expected {len(items)} weight arrays, received {len(weights)}")
        for (key, target), value in zip(items, weights):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(
                    f"{self._owner}: weight {key!r} expected shape {target.shape}, received {value.shape}"
                )
            np.copyto(target, value, casting="same_kind")

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe; ``type(self).from_config(cfg)`` rebuilds the layer."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Create a layer from the output of :meth:`get_config`."""
        return cls(**config)

    # ------------------------------------------------------------------ scratch memory
    def _scratch_buffer(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An internal array reused between batches of the same shape.

        Large layers (convolutions, batch norm) keep their biggest intermediate arrays
        here: a fresh multi-megabyte array per step costs more in page faults than the
        arithmetic that fills it. Never return one of these to the caller.
        """
        bufs = self.__dict__.setdefault("_scratch", {})
        buf = bufs.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            buf = bufs[key] = np.empty(shape, dtype=dtype)
        return buf

    def _new_array(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialized array for a result this layer hands on (an output or ``dx``).

        Normally a fresh array. While :meth:`Sequential.fit <npnet.Sequential.fit>` trains,
        it sets ``_reuse_outputs`` and the same array serves batch after batch: every
        consumer is done with it before the next step, and reusing it spares the page
        faults of a fresh multi-megabyte array.
        """
        if self._reuse_outputs:
            return self._scratch_buffer("out:" + key, shape, dtype)
        return np.empty(shape, dtype=dtype)

    def __deepcopy__(self, memo: dict) -> Layer:
        # Scratch buffers are not state: a copy starts without them and hands out fresh arrays.
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for k, v in self.__dict__.items():
            if k != "_reuse_outputs":
                clone.__dict__[k] = {} if k == "_scratch" else copy.deepcopy(v, memo)
        return clone

    # ------------------------------------------------------------------ randomness
    def _seed_from(self, rng: np.random.Generator, epoch: int) -> None:
        """Hook called by ``fit`` at the start of each epoch: layers with randomness take a
        stream derived from their own seed and ``epoch``, or from ``rng`` without a seed."""
