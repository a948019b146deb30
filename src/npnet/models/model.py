"""``Model``: the training API (``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``save``)
shared by every kind of model.

There are three ways to make a model, and one implementation trains them all:

- ``npnet.Sequential([...])``: a stack of layers;
- ``npnet.Model(inputs, outputs)``: a functional model, a graph of layer calls;
- a subclass of ``npnet.Model`` whose ``call`` uses layers created in ``__init__``.

A model is a composite layer: its ``call`` is ordinary Python. While it trains, every
primitive layer call is recorded on a tape, and the backward pass walks the tape in
reverse (see :mod:`npnet._tape`), so no model needs a backward of its own.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _interrupts, _masks, _tape
from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from .._config import floatx, fresh_seed
from .._progress import ProgressBar, resolve_verbose
from .._validation import check_array_like, check_finite, check_float, check_int
from ..callbacks import Callback, CallbackList, History, check_callbacks
from ..layers import base as _base
from ..layers._symbolic import Input, SymbolicTensor
from ..layers.base import Layer
from ..utils._dataset import PyDataset
from ._data import Source, Stream, check_class_weight, class_weight_array, is_source, sample_weight_arrays, unpack
from ._structure import as_arrays, flatten, pack

__all__ = ["Model"]

#: id of each model being trained (fit or train_on_batch) -> the thread training it.
_TRAINING: dict[int, int] = {}
_TRAINING_LOCK = threading.Lock()


def _trains_alone(method: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse to train a model that is training already (in another thread, or from a
    callback of its own ``fit``): two updates at once would interleave their writes to
    the same weights and optimizer slots."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = id(self)
        with _TRAINING_LOCK:
            other = _TRAINING.get(key)
            if other is None:
                _TRAINING[key] = threading.get_ident()
        if other is not None:
            where = "this thread, from inside its own training" if other == threading.get_ident() \
                else "another thread"
            raise RuntimeError(
                f"{method.__name__}: model {self.name!r} is already training in {where}; a model trains in one "
                "thread at a time (predict and evaluate may run alongside). Wait for the other fit to return, "
                "or train a copy (npnet.models.clone_model)")
        try:
            return method(self, *args, **kwargs)
        finally:
            with _TRAINING_LOCK:
                del _TRAINING[key]

    return wrapper


def _root_seed(seed: Any) -> int:
    """An integer root for all of fit's random streams."""
    if seed is None:
        return fresh_seed()  # OS entropy, or the stream of npnet.utils.set_random_seed
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    value: int = check_int(seed, "seed", minimum=0, owner="fit")
    return value


def _stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``fraction`` of each class in val (at least one per class
    that has two or more samples)."""
    train, val = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        k = int(round(fraction * idx.size))
        if idx.size >= 2:
            k = min(max(k, 1), idx.size - 1)
        else:
            k = 0
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _apply_mask(sample_weight: np.ndarray | None, mask: np.ndarray | None, mean: bool) -> np.ndarray | None:
    """Fold an output's mask into its sample weights, as Keras' ``apply_mask``.

    Masked entries weigh 0. For a loss (``mean=True``) the real ones weigh
    ``total / valid``, so that the loss, a sum over ``total`` entries divided by
    ``total``, is the mean over the ``valid`` real entries; for a metric they weigh 1.
    Sample weights of shape ``(batch,)`` spread over the time axis.
    """
    if mask is None:
        return sample_weight
    dtype = np.dtype(floatx())
    valid = int(mask.sum())
    scale = mask.size / valid if (mean and valid) else 1.0
    weights = np.where(mask, np.asarray(scale, dtype=dtype), np.asarray(0, dtype=dtype))
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=dtype)
        sw = sw.reshape(sw.shape + (1,) * (weights.ndim - sw.ndim)) if sw.ndim < weights.ndim else sw
        weights = weights * sw
    return weights


def _cast(a: np.ndarray) -> np.ndarray:
    return a.astype(floatx(), copy=False) if a.dtype.kind != "f" else a


def _cast_input(value: Any) -> np.ndarray:
    """A model input as floats; an integer input that the current tape knows as a model
    input (integer ids under ``check_gradients``) stays known after the cast."""
    a = np.asarray(value)
    b = _cast(a)
    if b is not a:
        run = _tape.current()
        if run is not None and run.tape is not None and run.tape.knows(a):
            run.tape.add_source(b)
    return b


class _BatchGather:
    """Shuffled batches of one array, gathered into two arrays kept for the whole ``fit``:
    a fresh array per step can cost more in page faults than the copy that fills it."""

    def __init__(self, source: np.ndarray, batch_size: int, dtype: np.dtype) -> None:
        self.source, self.dtype = source, dtype
        rows = min(batch_size, len(source))
        self.raw = np.empty((rows,) + source.shape[1:], source.dtype)
        self.cast = None if source.dtype == dtype else np.empty((rows,) + source.shape[1:], dtype)

    def __call__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, slice):
            return self.source[idx].astype(self.dtype, copy=False)
        raw = self.raw[: len(idx)]
        np.take(self.source, idx, axis=0, out=raw)
        if self.cast is None:
            return raw
        out = self.cast[: len(idx)]
        np.copyto(out, raw, casting="unsafe")
        return out


# One batch as the loops take it: the input structure, the input arrays (floatx), the
# targets and sample weights aligned with the outputs (weights None when not given), and
# the number of samples.
_Batch = tuple[Any, list[np.ndarray], list[np.ndarray | None], list[np.ndarray | None] | None, int]


class _Arrays:
    """An array data set: inputs, targets and sample weights aligned with the outputs, and
    optionally the rows to use, so a validation split of memory-mapped data is never copied."""

    def __init__(self, structure: Any, xs: list[np.ndarray], ys: list[np.ndarray | None],
                 sws: list[np.ndarray | None] | None, rows: np.ndarray | None = None) -> None:
        self.structure, self.xs, self.ys, self.sws, self.rows = structure, xs, ys, sws, rows

    @property
    def n(self) -> int:
        return int(self.xs[0].shape[0]) if self.rows is None else int(self.rows.size)

    def subset(self, rows: Any) -> _Arrays:
        """The data set restricted to ``rows``: a slice gives views, an index array is kept as such."""
        if isinstance(rows, slice):
            return _Arrays(self.structure, [a[rows] for a in self.xs], [None if a is None else a[rows] for a in self.ys],
                           None if self.sws is None else [None if w is None else w[rows] for w in self.sws])
        return _Arrays(self.structure, self.xs, self.ys, self.sws, rows)


def _array_pass(data: _Arrays, batch_size: int, order: np.ndarray | None,
                take: Callable[[Any], list[np.ndarray]], skip: int = 0) -> Iterator[_Batch]:
    """The batches of one pass over ``data``, in ``order`` (a permutation) or in sequence,
    from batch ``skip`` on."""
    n, rows, ys, sws = data.n, data.rows, data.ys, data.sws
    for lo in range(skip * batch_size, n, batch_size):
        hi = min(lo + batch_size, n)
        if order is None:
            idx: Any = slice(lo, hi) if rows is None else rows[lo:hi]
        else:
            idx = order[lo:hi] if rows is None else rows[order[lo:hi]]
        yb = [None if a is None else a[idx] for a in ys]
        swb = None if sws is None else [None if w is None else w[idx] for w in sws]
        yield data.structure, take(idx), yb, swb, hi - lo


def _split(data: _Arrays, fraction: float, rng: np.random.Generator) -> tuple[_Arrays, _Arrays]:
    """``validation_split``: stratified at random for one output of class ids, else the last rows."""
    n_all = data.n
    y0 = data.ys[0] if len(data.ys) == 1 else None
    if y0 is not None and y0.ndim == 1 and y0.dtype.kind in "iub":
        tr, va = _stratified_split(np.asarray(y0), fraction, rng)
        train, val = data.subset(tr), data.subset(va)
    else:
        cut = int(round(n_all * (1 - fraction)))
        tr, va = np.arange(cut), np.arange(cut, n_all)
        train, val = data.subset(slice(0, cut)), data.subset(slice(cut, n_all))
    if tr.size == 0 or va.size == 0:
        raise ValueError(
            f"fit: validation_split={fraction} leaves {tr.size} training and {va.size} "
            f"validation samples out of {n_all}"
        )
    return train, val


def _check_steps(value: Any, name: str, owner: str) -> int | None:
    return None if value is None else check_int(value, name, minimum=1, owner=owner)


def _check_validation_freq(value: Any, owner: str) -> None:
    if isinstance(value, (list, tuple)):
        for v in value:
            check_int(v, "validation_freq", minimum=1, owner=owner)
    elif isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: `validation_freq` must be an int or a list of epochs (counted from 1), "
                        f"received {value!r} of type {type(value).__name__}")
    else:
        check_int(value, "validation_freq", minimum=1, owner=owner)


def _should_eval(epoch: int, validation_freq: Any) -> bool:
    """Keras' rule: validate after epoch ``epoch + 1`` if it is a multiple of an int
    ``validation_freq``, or listed in it."""
    if isinstance(validation_freq, (list, tuple)):
        return epoch + 1 in validation_freq
    return (epoch + 1) % int(validation_freq) == 0


class _Head:
    """One model output as the loss sees it: its name, loss, weight, metrics, and the
    metrics that count each sample with its ``sample_weight`` (``weighted``)."""

    def __init__(self, name: str, loss: _losses.Loss | None, weight: float, metrics: list[_metrics.Metric],
                 weighted: list[_metrics.Metric] | None = None) -> None:
        self.name, self.loss, self.weight, self.metrics = name, loss, weight, metrics
        self.weighted = weighted or []
        # A weighted metric's log name: its own, or weighted_<name> when an unweighted
        # metric of the same output already has that name (Keras' rule).
        taken = {m.name for m in metrics}
        self.weighted_names = [f"weighted_{m.name}" if m.name in taken else m.name for m in self.weighted]

    def named_metrics(self) -> list[tuple[str, _metrics.Metric]]:
        """Every metric with its log name (unprefixed by the output name)."""
        return [(m.name, m) for m in self.metrics] + list(zip(self.weighted_names, self.weighted))


class Model(Layer):
    """A model: layers with a training API. Use it in one of three ways.

    - ``npnet.Model(inputs, outputs, name=None)``: a functional model from symbolic
      tensors (see :class:`npnet.models.Functional`).
    - ``class Net(npnet.Model)``: create layers in ``__init__`` and use them in
      ``call(self, inputs, training=False)``, with ordinary Python. Layers held as
      attributes, or in lists and dicts, are tracked: trained, counted and saved.
    - :class:`npnet.Sequential`, a stack of layers.

    Parameters
    ----------
    name : str, optional
    trainable : bool, default True

    Examples
    --------
    >>> import numpy as np, npnet
    >>> inputs = npnet.Input(shape=(4,))
    >>> h = npnet.layers.Dense(8, activation="relu")(inputs)
    >>> outputs = npnet.layers.Dense(3, activation="softmax")(npnet.layers.add([h, h]))
    >>> model = npnet.Model(inputs, outputs, seed=0)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).normal(size=(30, 4)).astype("float32")
    >>> history = model.fit(x, (x[:, 0] > 0).astype(int), epochs=2, verbose=0, seed=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, trainable: bool = True, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}: a subclass of npnet.Model takes name= and trainable= in "
                f"super().__init__(); received {list(args) + sorted(kwargs)}. For a functional model "
                "call npnet.Model(inputs, outputs) itself")
        super().__init__(name=name, trainable=trainable)
        self._init_training()

    def _init_training(self) -> None:
        self.optimizer: Any = None
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self._compile_args: dict[str, Any] = {}
        self._heads: list[_Head] | None = None
        self._build_shapes: Any = None

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The layers directly inside the model, in order."""
        return [layer for _, layer in self._children()]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer of the model by ``name`` or by ``index`` in :attr:`layers`."""
        if (name is None) == (index is None):
            raise ValueError(f"{self._owner}: get_layer needs exactly one of `name` and `index`")
        layers = self.layers
        if index is not None:
            index = check_int(index, "index", owner="get_layer")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"{self._owner}: get_layer index {index} is out of range for {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self._owner}: no layer named {name!r}; layers: {[layer.name for layer in layers]}")

    def _output_names(self, outputs: Any) -> list[str]:
        """Names of the model's outputs, for the loss and the logs."""
        if isinstance(outputs, dict):
            return [str(k) for k in outputs]
        if isinstance(outputs, (list, tuple)):
            return [f"output_{i}" for i in range(len(flatten(outputs)))]
        return ["output"]

    def build(self, input_shape: Any) -> None:
        """Build the layers for inputs of ``input_shape`` (one shape, or a list of shapes for
        several inputs), by calling the model on symbolic inputs."""
        shapes = input_shape
        if isinstance(shapes, tuple) or (isinstance(shapes, list) and shapes and not isinstance(shapes[0], (list, tuple))):
            structure: Any = Input(shape=tuple(shapes)[1:])
        elif isinstance(shapes, dict):
            structure = {k: Input(shape=tuple(s)[1:], name=str(k)) for k, s in shapes.items()}
        else:
            structure = [Input(shape=tuple(s)[1:]) for s in shapes]
        self(structure)
        self._build_shapes = _shapes_of(structure)
        self.built = True

    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        from ..layers._symbolic import any_symbolic

        if type(inputs) is np.ndarray or not any_symbolic(inputs):
            top = _tape.current() is None  # a call from outside: fit and predict checked their data
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple, dict)):
                check_array_like(inputs, "inputs", self._owner)
                inputs = _cast_input(inputs)
                if top:
                    check_finite(inputs, "inputs", owner=self._owner)
            else:
                leaves = flatten(inputs)
                for a in leaves:
                    check_array_like(a, "inputs", self._owner)
                cast = [_cast_input(a) for a in leaves]
                if top:
                    for i, a in enumerate(cast):
                        check_finite(a, f"inputs[{i}]", owner=self._owner)
                inputs = pack(inputs, cast)
            if self._build_shapes is None:
                self._build_shapes = _shapes_of(inputs)
        return super().__call__(inputs, training=training, **kwargs)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                metrics: Any = None, weighted_metrics: Any = None) -> None:
        """Configure training.

        Parameters
        ----------
        optimizer : str or Optimizer
            ``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"`` or an instance.
        loss : str, Loss, list or dict
            ``"sparse_categorical_crossentropy"``, ``"categorical_crossentropy"``,
            ``"binary_crossentropy"``, ``"mse"``, ``"mae"`` or an instance. For a model
            with several outputs: one loss for all of them, a list in output order, or a
            dict keyed by output name (an output without a loss is not trained against).
        loss_weights : list or dict, optional
            The total loss is :math:`\\sum_k w_k L_k` (default weights 1).
        metrics : list or dict, optional
            Names such as ``"accuracy"`` or metric objects. With several outputs, as in
            Keras: a list with one entry per output in output order (a metric, a list of
            metrics, or None), or a dict keyed by output name. They count every sample
            once, whatever its ``sample_weight``.
        weighted_metrics : list or dict, optional
            Like ``metrics``, but each sample counts with its ``sample_weight`` (or
            ``class_weight``), as in Keras. A weighted metric is logged under its own name,
            or ``weighted_<name>`` when an unweighted metric of the output has that name.

        Notes
        -----
        An output whose last step is a softmax (a ``Softmax`` layer, ``Activation("softmax")``
        or ``Dense(..., activation="softmax")``) compiled with a cross-entropy loss is
        fused: the loss is computed from the logits with a stable log-softmax and the
        gradient with respect to the logits is :math:`(p - y) / n`. A final sigmoid with
        binary cross-entropy is fused the same way.
        """
        if loss is None:
            raise ValueError("compile: `loss` is required, for example loss='sparse_categorical_crossentropy'")
        opt = _optimizers.get(optimizer)
        _check_nested(loss, "loss", lambda v: _losses.get(v))
        for what, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None:
                _check_nested(value, what, lambda v: _not_named_loss(_metrics.get(v)))
        if loss_weights is not None:
            _check_nested(loss_weights, "loss_weights",
                          lambda v: check_float(v, "loss_weights", low=0.0, owner="compile"))
        # A compile that is refused leaves the model as it was.
        saved = (self.optimizer, self._compile_args, self._heads, self.compiled)
        try:
            self.optimizer = opt
            self._compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics,
                                  "weighted_metrics": weighted_metrics}
            self._heads = None
            self.compiled = True
            names = self._known_output_names()
            if names is not None:
                self._heads = self._make_heads(names)
        except Exception:
            self.optimizer, self._compile_args, self._heads, self.compiled = saved
            raise

    def _known_output_names(self) -> list[str] | None:
        """Output names when they are known before the first call (functional, Sequential)."""
        return None

    def _make_heads(self, names: list[str]) -> list[_Head]:
        args = self._compile_args
        n = len(names)

        def per_output(value: Any, what: str) -> list[Any]:
            if isinstance(value, dict):
                unknown = sorted(set(map(str, value)) - set(names))
                if unknown:
                    raise ValueError(f"compile: `{what}` names unknown outputs {unknown}; the outputs are {names}")
                return [value.get(k) for k in names]
            if isinstance(value, (list, tuple)) and what != "metrics":
                if len(value) != n:
                    raise ValueError(f"compile: `{what}` has {len(value)} entries for {n} outputs {names}")
                return list(value)
            return [value] * n

        losses = per_output(args["loss"], "loss")
        weights = per_output(args["loss_weights"], "loss_weights") if args["loss_weights"] is not None else [1.0] * n
        def metric_lists(what: str) -> list[list[_metrics.Metric]]:
            raw = args.get(what)
            if raw is None:
                lists: list[Any] = [[] for _ in names]
            elif isinstance(raw, dict):
                lists = per_output(raw, what)
            elif n > 1 and isinstance(raw, (list, tuple)):
                # As Keras: with several outputs, a list has one entry (a metric, a list of
                # them, or None) per output, in output order.
                if len(raw) != n:
                    raise ValueError(
                        f"compile: the model has {n} outputs {names}, so `{what}` takes one entry per output (a "
                        f"metric, a list of metrics or None) or a dict keyed by output name; received {len(raw)} "
                        f"entries {list(raw)!r}")
                lists = list(raw)
            else:
                lists = [raw] * n
            out = []
            for ms in lists:
                if ms is None:
                    ms = []
                if isinstance(ms, (str, _metrics.Metric)):
                    ms = [ms]
                out.append([copy.deepcopy(_metrics.get(m)) for m in ms])
            return out

        heads = []
        for name, loss, w, ms, wms in zip(names, losses, weights, metric_lists("metrics"),
                                          metric_lists("weighted_metrics")):
            loss_obj = None if loss is None else copy.deepcopy(_losses.get(loss))
            heads.append(_Head(name, loss_obj, 1.0 if w is None else float(w), ms, wms))
        if all(h.loss is None for h in heads):
            raise ValueError(f"compile: no output has a loss; outputs: {names}")
        self._check_log_keys(heads)
        return heads

    def _check_log_keys(self, heads: list[_Head]) -> None:
        """Refuse metrics whose log keys would overwrite the loss or each other."""
        for h in heads:
            for key, _ in h.named_metrics():
                if key == "loss":
                    raise ValueError(
                        f"compile: a metric of output {h.name!r} is named 'loss', the key of the loss in the logs; "
                        "give it another name")
        keys = self._log_keys(heads)
        clashes = sorted({k for k in keys if keys.count(k) > 1})
        clashes += sorted({k for k in keys if k.startswith("val_") and k[4:] in keys})
        if clashes:
            raise ValueError(
                f"compile: the log keys {clashes} would be written twice (metric names clash with a loss, another "
                f"metric or its val_ form); the logs would be {keys}. Give the metrics distinct names")

    def _log_keys(self, heads: list[_Head]) -> list[str]:
        if len(heads) == 1:
            return ["loss"] + [key for key, _ in heads[0].named_metrics()]
        keys = ["loss"] + [f"{h.name}_loss" for h in heads if h.loss is not None]
        return keys + [f"{h.name}_{key}" for h in heads for key, _ in h.named_metrics()]

    @property
    def loss(self) -> Any:
        """The compiled loss (one per output for a model with several outputs)."""
        if self._heads is None:
            return self._compile_args.get("loss")
        losses = [h.loss for h in self._heads]
        return losses[0] if len(losses) == 1 else losses

    @property
    def metrics(self) -> list[_metrics.Metric]:
        """The compiled metric objects, every output's (``metrics``, then ``weighted_metrics``)."""
        return [m for h in self._heads or [] for _, m in h.named_metrics()]

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"{self._owner}: call compile(optimizer, loss) before {what}()")

    # ------------------------------------------------------------------ data
    def _input_arrays(self, x: Any, owner: str) -> tuple[Any, list[np.ndarray]]:
        """Check ``x`` and return its structure and arrays (functional models reorder it)."""
        return as_arrays(x, "x", owner)

    def _target_arrays(self, y: Any, heads: list[_Head], owner: str, name: str = "y") -> list[np.ndarray | None]:
        """Targets aligned with the outputs (None for an output without a loss)."""
        names = [h.name for h in heads]
        if y is None:
            raise ValueError(f"{owner}: `{name}` is required")
        if len(heads) == 1:
            if isinstance(y, dict):
                if list(y) != names:
                    raise ValueError(f"{owner}: `{name}` has keys {sorted(y)}, the model's output is {names}")
                y = y[names[0]]
            return [as_arrays(y, name, owner)[1][0]]
        if isinstance(y, dict):
            unknown = sorted(set(map(str, y)) - set(names))
            if unknown:
                raise ValueError(f"{owner}: `{name}` names unknown outputs {unknown}; the outputs are {names}")
            values = [y.get(k) for k in names]
        elif isinstance(y, (list, tuple)):
            if len(y) != len(names):
                raise ValueError(f"{owner}: `{name}` has {len(y)} arrays for {len(names)} outputs {names}")
            values = list(y)
        else:
            raise ValueError(f"{owner}: the model has {len(names)} outputs {names}; give `{name}` as a list or a dict")
        out: list[np.ndarray | None] = []
        for h, v in zip(heads, values):
            if v is None:
                if h.loss is not None:
                    raise ValueError(f"{owner}: `{name}` has no targets for output {h.name!r}")
                out.append(None)
            else:
                out.append(as_arrays(v, f"{name}[{h.name!r}]", owner)[1][0])
        return out

    def _sample_weights(self, sample_weight: Any, heads: list[_Head], n: int, owner: str,
                        name: str = "sample_weight") -> list[np.ndarray | None] | None:
        """``sample_weight`` as one array of shape (n,) (or None) per output; None if not given."""
        return sample_weight_arrays(sample_weight, [h.name for h in heads], [h.loss is not None for h in heads],
                                    n, owner, name)

    def _class_weights(self, class_weight: Any, sample_weight: Any, heads: list[_Head], structure: Any,
                       xs: list[np.ndarray], owner: str) -> dict[int, float]:
        """Checked ``class_weight``: a single-output model, no ``sample_weight``, known classes."""
        if sample_weight is not None:
            raise ValueError(f"{owner}: give `class_weight` or `sample_weight`, not both (as in Keras); to combine "
                             "them, multiply each sample's class weight into `sample_weight`")
        if len(heads) != 1:
            raise ValueError(f"{owner}: `class_weight` works on models with one output; this one has "
                             f"{[h.name for h in heads]}; give one `sample_weight` array per output instead")
        units = self._output_units(structure, xs)[0]
        return check_class_weight(class_weight, 2 if units == 1 else units, owner)

    def _prepare(self, structure: Any, arrays: list[np.ndarray], rng: np.random.Generator | None) -> None:
        """Build the model from the data if needed, and make the heads once outputs are known."""
        if not self.built:
            first = pack(structure, [_cast(a[:1]) for a in arrays])
            with _tape.running(_tape.Run(init_rng=rng)):
                try:
                    self.build(_shapes_of(first))
                except TypeError:
                    self(first)  # a call() that only runs on arrays: build by running it
            self.built = True
        if self._heads is None and self.compiled:
            first = pack(structure, [_cast(a[:1]) for a in arrays])
            self._heads = self._make_heads(self._output_names(self(first)))

    def _data(self, x: Any, y: Any, owner: str, rng: np.random.Generator | None = None
              ) -> tuple[Any, list[np.ndarray], list[_Head], list[np.ndarray | None]]:
        """Checked inputs and targets: the input structure and arrays, the heads, and the
        targets aligned with them (building the model first if needed)."""
        structure, xs = self._input_arrays(x, owner)
        self._prepare(structure, xs, rng)
        heads = self._heads or []
        ys = self._target_arrays(y, heads, owner)
        self._check_samples(xs, ys, owner)
        self._check_targets(ys, structure, xs)
        return structure, xs, heads, ys

    def _array_data(self, x: Any, y: Any, sample_weight: Any, class_weight: Any, owner: str,
                    rng: np.random.Generator | None = None) -> _Arrays:
        """Arrays ``x``, ``y`` and their weights (``sample_weight`` or ``class_weight``), checked."""
        structure, xs, heads, ys = self._data(x, y, owner, rng)
        if class_weight is not None:
            table = self._class_weights(class_weight, sample_weight, heads, structure, xs, owner)
            y0 = ys[0]
            assert y0 is not None
            return _Arrays(structure, xs, ys, [class_weight_array(y0, table, owner)])
        return _Arrays(structure, xs, ys, self._sample_weights(sample_weight, heads, xs[0].shape[0], owner))

    def _source_data(self, x: Any, y: Any, sample_weight: Any, owner: str, targets: bool,
                     rng: np.random.Generator | None = None) -> tuple[Source, Any, list[np.ndarray]]:
        """A generator or PyDataset ``x``: build the model from its first batch and check it.
        Returns the source and the input structure and arrays of the first batch."""
        kind = "PyDataset" if isinstance(x, PyDataset) else "generator"
        for value, name, what in ((y, "y", "targets"), (sample_weight, "sample_weight", "sample weights")):
            if value is not None:
                raise ValueError(f"{owner}: when `x` is a {kind}, `{name}` must not be given: its batches hold "
                                 f"the {what}, as (x, y, sample_weight)")
        source = Source(x, owner, "`x`")
        bx, by, _ = unpack(source.first(), owner, "`x`")
        structure, xs = self._input_arrays(bx, owner)
        self._prepare(structure, xs, rng)
        if targets:
            if by is None:
                raise ValueError(f"{owner}: the batches of `x` (a {kind}) must be (x, y) or (x, y, sample_weight); "
                                 "the first one has no targets")
            ys = self._target_arrays(by, self._heads or [], owner)
            self._check_samples(xs, ys, owner)
            self._check_targets(ys, structure, xs)
        return source, structure, xs

    def _source_batch(self, data: Any, owner: str, what: str, class_weight: dict[int, float] | None,
                      targets: bool) -> _Batch:
        """One batch of a data source, checked and cast, as the loops take it."""
        x, y, sw = unpack(data, owner, what)
        structure, xs = self._input_arrays(x, owner)
        dtype = np.dtype(floatx())
        xs = [a.astype(dtype, copy=False) for a in xs]
        n = xs[0].shape[0]
        if not targets:
            return structure, xs, [], None, n
        if y is None:
            raise ValueError(f"{owner}: each batch of {what} must be (x, y) or (x, y, sample_weight); "
                             "received one without targets")
        heads = self._heads or []
        ys = self._target_arrays(y, heads, owner)
        self._check_samples(xs, ys, owner)
        if class_weight is None:
            return structure, xs, ys, self._sample_weights(sw, heads, n, owner), n
        if sw is not None:
            raise ValueError(f"{owner}: give `class_weight` or sample weights in the batches of {what}, not both")
        y0 = ys[0]
        assert y0 is not None
        return structure, xs, ys, [class_weight_array(y0, class_weight, owner)], n

    def _array_stream(self, data: _Arrays, batch_size: int, steps: int | None, shuffle: bool, owner: str,
                      what: str, gathers: list[_BatchGather] | None = None) -> Stream:
        """Epochs of batches of arrays; with ``gathers``, the batch arrays are reused from step to step."""
        dtype = np.dtype(floatx())
        xs = data.xs

        def take(idx: Any) -> list[np.ndarray]:
            if gathers is not None:
                return [gather(idx) for gather in gathers]
            return [a[idx].astype(dtype, copy=False) for a in xs]

        def make_pass(rng: np.random.Generator | None, skip: int = 0) -> Iterator[_Batch]:
            order = rng.permutation(data.n) if shuffle and rng is not None else None
            return _array_pass(data, batch_size, order, take, skip)

        return Stream(make_pass, -(-data.n // batch_size), steps, owner, what)

    def _source_stream(self, source: Source, class_weight: dict[int, float] | None, steps: int | None,
                       shuffle: bool, owner: str, targets: bool = True, steps_name: str | None = None) -> Stream:
        """Epochs of batches of a generator or PyDataset."""
        if source.dataset is not None and source.num_batches is None and steps is None:
            what = steps_name or ("steps_per_epoch" if owner == "fit" else "steps")
            raise ValueError(f"{owner}: {source.what} is an endless PyDataset (no __len__); give `{what}`")

        def make_pass(rng: np.random.Generator | None, skip: int = 0) -> Iterator[_Batch]:
            for data in itertools.islice(source.new_pass(rng, shuffle), skip, None):
                yield self._source_batch(data, owner, source.what, class_weight, targets)

        return Stream(make_pass, source.num_batches, steps, owner, source.what)

    # ------------------------------------------------------------------ one pass
    def _loss(self, outs: list[np.ndarray], ys: list[np.ndarray | None], tape: _tape.Tape | None,
              grads: bool, sws: list[np.ndarray | None] | None = None,
              ) -> tuple[float, dict[str, float], dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Total loss, per-output losses, and (with ``grads``) the gradients that seed the backward pass.
        ``sws`` holds each output's sample weights (or None)."""
        heads = self._heads or []
        if len(outs) != len(heads):
            raise ValueError(f"{self._owner}: the model returned {len(outs)} outputs, compile() set up {len(heads)}")
        total = 0.0
        parts: dict[str, float] = {}
        seeds: dict[int, np.ndarray] = {}
        fused: dict[int, np.ndarray] = {}
        for i, (head, out, y, found) in enumerate(zip(heads, outs, ys, _fusions(heads, outs, tape))):
            loss = head.loss
            if loss is None:
                continue
            if grads and tape is not None and tape.strict and not tape.knows(out):
                raise ValueError(
                    f"{self._owner}: output {head.name!r} was computed outside npnet's layers (for example with "
                    "NumPy operators at the end of call()), so the backward pass cannot reach the model from "
                    "its loss; compute it with a layer")
            sw = None if sws is None else sws[i]
            sw = _apply_mask(sw, _masks.get_mask(out), mean=True)
            weighting = {} if sw is None else {"sample_weight": sw}
            value = None
            if found is not None:
                index, logits = found
                value = loss._forward_logits(y, logits, **weighting)  # type: ignore[attr-defined]
                if grads:
                    fused[index] = _scaled(loss.backward(), head.weight)
            if value is None:
                value = loss.forward(y, out, **weighting)
                if grads:
                    g = _scaled(loss.backward(), head.weight)
                    seeds[id(out)] = seeds[id(out)] + g if id(out) in seeds else g
            parts[head.name] = float(value)
            total += head.weight * float(value)
        penalty, extra = self._penalty(tape, grads)  # regularizers: model.losses, as Keras adds them
        for k, g in extra.items():
            seeds[k] = seeds[k] + g if k in seeds else g
        return total + penalty, parts, seeds, fused

    def _fused_outputs(self, x: Any) -> list[bool]:
        """For each output, whether its loss is computed from logits (fused) on input ``x``."""
        self._require_compiled("_fused_outputs")
        structure, xs = self._input_arrays(x, "_fused_outputs")
        self._prepare(structure, xs, None)
        tape = _tape.Tape(strict=False)
        with _tape.running(_tape.Run(tape=tape)):
            outs = flatten(self(pack(structure, [_cast(a) for a in xs])))
        return [found is not None for found in _fusions(self._heads or [], outs, tape)]

    def _trainable_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray], list[Layer]]:
        entries = self._trainable_entries()
        return [layer.params[k] for layer, k in entries], [layer.grads[k] for layer, k in entries], \
            [layer for layer, _ in entries]

    def _train_step(self, xs: Any, ys: list[np.ndarray | None], params: list[np.ndarray],
                    grads: list[np.ndarray], owners: list[Layer], buffers: dict | None,
                    sws: list[np.ndarray | None] | None = None,
                    undo: _interrupts.Undo | None = None) -> tuple[float, dict, list]:
        """Forward with a tape, loss, backward along the tape, one optimizer update.

        The step is all or nothing. Ctrl-C received during it takes effect when it is
        over. An exception raised inside it puts the weights, the layers' state (moving
        statistics) and the optimizer's slots and step count back as they were before it.
        """
        undo = _interrupts.Undo() if undo is None else undo
        opt = self.optimizer
        scalars: dict[str, Any] | None = None
        built = opt._shapes is not None
        with _interrupts.step():
            try:
                for layer in self._flatten_layers():
                    if layer.state:
                        undo.save_slots(layer, layer.state)
                tape = _tape.Tape()
                run = _tape.Run(training=True, tape=tape, buffers=buffers)
                with _tape.running(run):
                    for a in flatten(xs):
                        tape.add_source(a)
                    outs = flatten(self(xs, training=True))
                    total, parts, seeds, fused = self._loss(outs, ys, tape, grads=True, sws=sws)
                    _, visited = tape.backward(seeds, fused)
                for layer, g in zip(owners, grads):
                    if id(layer) not in visited:
                        g.fill(0)  # not reached this step (an untaken branch): no gradient
                scalars = {k: v for k, v in vars(opt).items() if isinstance(v, (bool, int, float))}
                undo.save(params)
                if built:
                    undo.save(a for arrays in opt.slots.values() for a in arrays)
                opt.step(params, grads)
                self._apply_constraints()
            except BaseException:
                undo.restore()
                if scalars is not None:
                    for k, v in scalars.items():
                        setattr(opt, k, v)
                    if not built:  # the optimizer made its slots in this step: as if it never had
                        opt._shapes, opt.slots = None, {}
                raise
            undo.clear()
        return total, parts, outs

    # ------------------------------------------------------------------ training
    @_trains_alone
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: dict | None = None,
            sample_weight: Any = None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int | Sequence[int] = 1, seed: Any = None,
            augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None) -> History:
        """Train for ``epochs`` epochs of mini-batch gradient descent.

        Parameters
        ----------
        x : array, list or dict of arrays, generator, or PyDataset
            Inputs; any numeric dtype, in memory or memory-mapped
            (``np.load(path, mmap_mode="r")``: batches are read from the file as they are
            needed). Each batch is cast to :func:`npnet.floatx`, so ``uint8`` images can
            stay ``uint8``. A model with several inputs takes a list in input order or a
            dict keyed by input name. A generator (or iterator) or an
            :class:`npnet.utils.PyDataset` yields whole batches ``(x, y)`` or
            ``(x, y, sample_weight)``; then ``y`` and ``sample_weight`` are not given.
        y : array, list or dict
            Targets: class ids for sparse losses, one-hot rows, or values. A model with
            several outputs takes a list in output order or a dict keyed by output name.
        batch_size : int, default 32
            Samples per batch for arrays (with ``steps_per_epoch`` and no ``batch_size``:
            enough to cover the data in that many steps). Ignored for a data source,
            whose batches are already made.
        epochs : int, default 1
            Index of the last epoch (training runs ``initial_epoch .. epochs - 1``).
        verbose : {"auto", 0, 1, 2}
            1 draws a progress bar per epoch on a terminal and one line per epoch
            otherwise; 2 writes one line per epoch; 0 is silent.
        callbacks : list of Callback, optional
            The validation pass of each epoch also calls their ``on_test_*`` hooks.
        validation_split : float in [0, 1)
            Fraction of the training data held out for validation (arrays only). When the
            model has one output and ``y`` holds class ids, the slice is *stratified* and
            drawn at random with ``seed``. (Keras takes the last rows instead, which on
            class-sorted data leaves the validation set with only the last classes.)
            Otherwise: the last rows. Memory-mapped data is not copied.
        validation_data : tuple, generator or PyDataset, optional
            ``(x_val, y_val)`` or ``(x_val, y_val, val_sample_weight)``, or a data source
            of such batches. Overrides ``validation_split``.
        shuffle : bool, default True
            Shuffle the training samples before each epoch. For a PyDataset: visit its
            batches in a random order; a generator is never shuffled.
        class_weight : dict, optional
            ``{class id: weight}``: each sample's loss is multiplied by the weight of its
            class (class ids, or the arg-max of one-hot targets; classes left out weigh
            1). Models with one output; not with ``sample_weight`` nor a generator.
        sample_weight : array of shape (n,) or (n, steps), list or dict, optional
            Weight of each sample in the loss, :math:`L = \\sum_i w_i \\ell_i / n`. With
            several outputs: one array for all of them, or one per output (list in output
            order or dict keyed by output name). Compiled ``metrics`` are not weighted.
        initial_epoch : int, default 0
            Epoch at which to start (for resuming a run).
        steps_per_epoch : int, optional
            Batches per epoch. Without it an epoch is one pass over the data (a generator:
            until it is exhausted). With it the batches go on from one epoch to the next;
            when the data runs out, a warning is given and the epoch ends early (a
            generator that has run dry ends training).
        validation_steps : int, optional
            Batches per validation pass (required for an endless validation source).
        validation_batch_size : int, optional
            Batch size of validation arrays (default ``batch_size``).
        validation_freq : int or list of int, default 1
            Validate every ``validation_freq`` epochs, or after the epochs listed
            (counted from 1).
        seed : int or Generator, optional
            Seed of shuffling, the validation split, augmentation and layers with
            randomness but no seed of their own (Dropout), and of initial weights when
            the model is built here. The same seed gives bit-identical runs.
        augment : callable, optional
            ``augment(x_batch, rng) -> x_batch``, applied to each training batch after
            the cast to floatx (see :mod:`npnet.data`); models with one input only.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, each metric and ``val_*`` to per-epoch
            values; with several outputs also ``<output>_loss`` and ``<output>_<metric>``.
            The epoch's loss is the mean of the batch losses weighted by batch size, as
            in Keras.

        Raises
        ------
        KeyboardInterrupt
            On Ctrl-C, as in Keras, after the steps below.
        RuntimeError
            If the model is training already: in another thread, or from a callback of
            its own ``fit``.

        Notes
        -----
        **Ctrl-C** stops training at a step boundary. A Ctrl-C received during a training
        step (forward, backward, optimizer update, constraints) takes effect when the step
        has finished: the weights, the moving statistics and the optimizer's slots and
        step count all include that step, or, for an interruption that comes before the
        step, none of it. An exception raised *inside* a step by code (a
        ``KeyboardInterrupt`` raised in a layer or in the optimizer, a
        ``FloatingPointError`` under ``np.seterr(all="raise")``) undoes the step instead.
        No worker thread is still writing when the exception leaves ``fit``. Then
        ``model.stop_training`` is set, ``on_train_end`` runs (Keras skips it; a
        :class:`~npnet.callbacks.BackupAndRestore` keeps its backup, to be resumed), and
        the ``KeyboardInterrupt`` goes on to the caller. The model can be saved, evaluated
        and trained on from there. This holds when ``fit`` runs in the main thread with
        Python's Ctrl-C handler, or any handler set from Python, in place.

        **Threads.** Inference (``predict``, ``evaluate``, calling the model) may run in
        several threads at once, with the results of running them one after the other. It
        may also run while another thread trains the model, but then it sees the weights
        as they are at that moment, possibly in the middle of an update. Training one
        model from two threads at once is refused.
        """
        self._require_compiled("fit")
        owner = "fit"
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        epochs = check_int(epochs, "epochs", minimum=0, owner=owner)
        initial_epoch = check_int(initial_epoch, "initial_epoch", minimum=0, owner=owner)
        validation_split = check_float(validation_split, "validation_split", low=0.0, high=1.0,
                                       high_inclusive=False, owner=owner)
        steps_per_epoch = _check_steps(steps_per_epoch, "steps_per_epoch", owner)
        validation_steps = _check_steps(validation_steps, "validation_steps", owner)
        if validation_batch_size is not None:
            validation_batch_size = check_int(validation_batch_size, "validation_batch_size", minimum=1, owner=owner)
        _check_validation_freq(validation_freq, owner)
        verbose = resolve_verbose(verbose, owner)
        if augment is not None and not callable(augment):
            raise TypeError(f"fit: `augment` must be callable as augment(x_batch, rng), received {augment!r}")
        self._check_fittable()
        root = _root_seed(seed)
        # Resume hook (BackupAndRestore): a callback with a backup loads it into the model and
        # says where to go on: the seed of the interrupted run, its epoch, batches done in it.
        skip = 0
        callbacks = check_callbacks(callbacks, owner)
        for cb in callbacks:
            resume = getattr(cb, "_resume_state", None)
            state = resume(self) if callable(resume) else None
            if state is not None:
                root, initial_epoch, skip = state["seed"], state["epoch"], state["step"]
        self._fit_seed = root
        rng = np.random.default_rng([root, 0])
        given_batch_size = batch_size
        dtype = np.dtype(floatx())
        source: Source | None = None
        if is_source(x):
            if validation_split:
                raise ValueError("fit: `validation_split` needs arrays; with a generator or PyDataset as `x`, "
                                 "give `validation_data`")
            if class_weight is not None and not isinstance(x, PyDataset):
                raise ValueError("fit: `class_weight` is not supported with a generator (as in Keras); yield "
                                 "(x, y, sample_weight) batches, or use a PyDataset")
            source, structure, xs = self._source_data(x, y, sample_weight, owner, True,
                                                      np.random.default_rng([root, 1]))
            heads = self._heads or []
            table = None
            if class_weight is not None:
                table = self._class_weights(class_weight, None, heads, structure, xs, owner)
            train = self._source_stream(source, table, steps_per_epoch, shuffle, owner)
            n_inputs = len(xs)
            batch_size = batch_size or 32
        else:
            data = self._array_data(x, y, sample_weight, class_weight, owner, np.random.default_rng([root, 1]))
            heads = self._heads or []
            n_inputs = len(data.xs)
            if batch_size is None:
                batch_size = -(-data.n // steps_per_epoch) if steps_per_epoch else 32
        if augment is not None and n_inputs != 1:
            raise ValueError(f"fit: `augment` works on models with one input; this one takes {n_inputs}")

        val_source: Source | None = None
        val_stream: Stream | None = None

        def val_batch_size(n_val: int) -> int:
            # As Keras: validation_batch_size, else batch_size as given, else enough rows to
            # cover the validation data in validation_steps batches, else 32.
            chosen = validation_batch_size or given_batch_size
            if chosen:
                return int(chosen)
            return -(-n_val // validation_steps) if validation_steps else 32

        if validation_data is not None:
            if is_source(validation_data):
                val_source = Source(validation_data, owner, "`validation_data`")
                val_stream = self._source_stream(val_source, None, validation_steps, False, owner,
                                                 steps_name="validation_steps")
                passes = sum(_should_eval(e, validation_freq) for e in range(initial_epoch, epochs))
                if val_source.one_shot and validation_steps is None and passes > 1:
                    raise ValueError(
                        f"fit: a generator in `validation_data` can be read once, but {passes} epochs validate; give "
                        "`validation_steps` (and a generator that yields that many batches per validation), "
                        "or use a PyDataset")
            else:
                val = self._validation_arrays(validation_data, heads, owner)
                val_stream = self._array_stream(val, val_batch_size(val.n), validation_steps, False, owner,
                                                "`validation_data`")
        elif validation_split > 0:
            data, val = _split(data, validation_split, rng)
            if class_weight is not None:
                val.sws = None  # as Keras: class weights weigh the training batches only
            val_stream = self._array_stream(val, val_batch_size(val.n), validation_steps, False, owner,
                                            "the validation split")

        if source is None:
            gathers = [_BatchGather(a, batch_size, dtype) for a in data.xs]
            train = self._array_stream(data, batch_size, steps_per_epoch, shuffle, owner, "`x`", gathers)
        params, grads, owners = self._trainable_arrays()
        builds = _base.BUILDS[0]
        steps = train.steps_per_epoch
        keys = self._log_keys(heads)

        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           epochs=epochs, steps=steps, verbose=verbose)
        history = self.history = cbs._history
        self.stop_training = False
        logs: dict[str, float] = {}
        # While training, every layer call hands out the same output arrays batch after
        # batch (see Layer._new_array); they are freed when fit returns.
        buffers: dict = {}
        undo = _interrupts.Undo()  # copies to undo a failed step, kept between steps
        # Ctrl-C: the step under way finishes, on_train_end runs, KeyboardInterrupt goes on.
        with _interrupts.handling_interrupts():
            try:
                cbs.on_train_begin({})
                for epoch in range(initial_epoch, epochs):
                    if source is not None and source.one_shot and not source.ready():
                        warnings.warn(
                            f"fit: `x` (a {type(x).__name__}) has no batches left, so training stops before epoch "
                            f"{epoch + 1}. A generator is read once: for several epochs give `steps_per_epoch` and "
                            "a generator that yields steps_per_epoch x epochs batches, or use a PyDataset",
                            stacklevel=3)  # fit's caller (fit is wrapped by _trains_alone)
                        break
                    cbs.on_epoch_begin(epoch, {})
                    # One stream per epoch, derived from (seed, epoch): a run resumed with
                    # initial_epoch=k sees the same shuffles, masks and augmentations.
                    erng = self._epoch_rng = np.random.default_rng([root, 2, epoch])
                    for layer in self._flatten_layers():
                        layer._seed_from(erng, epoch)
                    for m in self.metrics:
                        m.reset_state()
                    totals = {k: 0.0 for k in ["loss"] + [h.name for h in heads]}
                    seen = done = 0
                    batch_logs: dict[str, float] = {}
                    if source is not None:
                        source.on_epoch_begin()
                    first = skip if epoch == initial_epoch else 0  # a resumed epoch skips the batches done
                    for step, (structure, xb, yb, swb, size) in enumerate(train.epoch(erng, first), start=first):
                        cbs.on_train_batch_begin(step, {})
                        if augment is not None:
                            xb = [np.asarray(augment(xb[0], erng), dtype=dtype)]
                        value, parts, outs = self._train_step(pack(structure, xb), yb, params, grads, owners,
                                                              buffers, swb, undo)
                        if _base.BUILDS[0] != builds:  # some layer was built during the step
                            self._check_no_new_weights(owners)
                            builds = _base.BUILDS[0]
                        seen += size
                        done = step + 1
                        totals["loss"] += value * size
                        for k, v in parts.items():
                            totals[k] += v * size
                        self._update_metrics(heads, yb, outs, swb)
                        batch_logs = self._logs(heads, totals, seen)
                        cbs.on_train_batch_end(step, {**batch_logs, "batch_loss": value})
                        if self.stop_training:
                            break
                    if source is not None:
                        source.on_epoch_end()
                    if not done:
                        warnings.warn(f"fit: `x` yielded no batches in epoch {epoch + 1}; training stops",
                                      stacklevel=3)
                        break
                    logs = {k: batch_logs[k] for k in keys if k in batch_logs}
                    if val_stream is not None and _should_eval(epoch, validation_freq):
                        val_logs = self._run_test(val_stream, val_source, cbs, None, buffers)
                        logs.update({f"val_{k}": v for k, v in val_logs.items()})
                    cbs.on_epoch_end(epoch, logs)
                    if self.stop_training:
                        break
                buffers.clear()
            except KeyboardInterrupt:
                buffers.clear()
                self.stop_training = True
                self.__dict__["_interrupted"] = True  # BackupAndRestore keeps its backup
                try:
                    cbs.on_train_end(logs)
                finally:
                    self.__dict__["_interrupted"] = False
                raise
        cbs.on_train_end(logs)
        return history

    def _validation_arrays(self, validation_data: Any, heads: list[_Head], owner: str) -> _Arrays:
        """``validation_data`` given as ``(x, y)`` or ``(x, y, sample_weight)`` arrays."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "fit: `validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight), a "
                f"generator or a PyDataset; received {type(validation_data).__name__}"
                + (f" of {len(validation_data)} items" if isinstance(validation_data, (tuple, list)) else ""))
        vx, vy, vsw = (tuple(validation_data) + (None,))[:3]
        structure, xs = self._input_arrays(vx, owner)
        ys = self._target_arrays(vy, heads, owner, "validation_data[1]")
        self._check_samples(xs, ys, owner)
        self._check_targets(ys, structure, xs)
        sws = self._sample_weights(vsw, heads, xs[0].shape[0], owner, "validation_data[2]")
        return _Arrays(structure, xs, ys, sws)

    def _check_fittable(self) -> None:
        pass

    def _check_no_new_weights(self, owners: list[Layer]) -> None:
        """Refuse a layer first built during training (a branch of call() not taken while the
        model was built): the optimizer was set up without its weights, so it would never train."""
        known = {id(layer) for layer in owners}
        new = sorted({layer.name for layer, _ in self._trainable_entries() if id(layer) not in known})
        if new:
            raise RuntimeError(
                f"{self._owner}: layers {new} were first built during training, so the optimizer was set up "
                "without their weights and would never update them. Build every layer before fit: call the "
                "model on data that takes every branch of call(), or build the layers yourself")

    def _check_samples(self, xs: list[np.ndarray], ys: list[np.ndarray | None], owner: str) -> None:
        n = xs[0].shape[0]
        for y in ys:
            if y is not None and y.shape[0] != n:
                raise ValueError(
                    f"{owner}: `x` and `y` must have the same number of samples, received {n} and {y.shape[0]}")

    def _output_units(self, structure: Any, xs: list[np.ndarray]) -> list[int]:
        """The last dimension of each output, from a call on the first sample."""
        first = pack(structure, [_cast(a[:1]) for a in xs])
        return [int(out.shape[-1]) if np.ndim(out) > 1 else 1 for out in flatten(self(first))]

    def _check_targets(self, ys: list[np.ndarray | None], structure: Any, xs: list[np.ndarray]) -> None:
        heads = self._heads or []
        if not any(h.loss is not None for h in heads):
            return
        for h, y, units in zip(heads, ys, self._output_units(structure, xs)):
            if h.loss is not None and y is not None:
                h.loss.check_targets(y, units)

    def _update_metrics(self, heads: list[_Head], ys: list[np.ndarray | None], outs: list[np.ndarray],
                        sws: list[np.ndarray | None] | None = None) -> None:
        """Update the compiled metrics with one batch: ``metrics`` unweighted and
        ``weighted_metrics`` with each output's sample weights, as in Keras."""
        for i, (h, y, out) in enumerate(zip(heads, ys, outs)):
            if y is not None:
                mask = _masks.get_mask(out)
                if mask is None:
                    for m in h.metrics:
                        m.update_state(y, out)
                else:  # masked steps count for nothing, as in Keras
                    for m in h.metrics:
                        m.update_state(y, out, sample_weight=_apply_mask(None, mask, mean=False))
                if h.weighted:
                    sw = _apply_mask(None if sws is None else sws[i], mask, mean=False)
                    for m in h.weighted:
                        m.update_state(y, out, sample_weight=sw)

    def _logs(self, heads: list[_Head], totals: dict[str, float], seen: int) -> dict[str, float]:
        logs = {"loss": totals["loss"] / seen}
        if len(heads) == 1:
            logs.update({key: m.result() for key, m in heads[0].named_metrics()})
            return logs
        for h in heads:
            if h.loss is not None:
                logs[f"{h.name}_loss"] = totals[h.name] / seen
        for h in heads:
            logs.update({f"{h.name}_{key}": m.result() for key, m in h.named_metrics()})
        return logs

    # ------------------------------------------------------------------ inference
    def _run_test(self, stream: Stream, source: Source | None, cbs: CallbackList | None,
                  bar: ProgressBar | None, buffers: dict | None) -> dict[str, float]:
        """One pass of loss and metrics in inference mode (evaluate, and validation in fit)."""
        heads = self._heads or []
        for m in self.metrics:
            m.reset_state()
        totals = {k: 0.0 for k in ["loss"] + [h.name for h in heads]}
        logs: dict[str, float] = {}
        seen = 0
        if cbs is not None:
            cbs.on_test_begin({})
        if source is not None:
            source.on_epoch_begin()
        stream.reset()
        for step, (structure, xb, yb, swb, size) in enumerate(stream.epoch(None)):
            if cbs is not None:
                cbs.on_test_batch_begin(step, {})
            tape = _tape.Tape(strict=False)
            run = _tape.Run(training=False, tape=tape, buffers=buffers)
            with _tape.running(run):
                outs = flatten(self(pack(structure, xb), training=False))
                value, parts, _, _ = self._loss(outs, yb, tape, grads=False, sws=swb)
            seen += size
            totals["loss"] += value * size
            for k, v in parts.items():
                totals[k] += v * size
            self._update_metrics(heads, yb, outs, swb)
            logs = self._logs(heads, totals, seen)
            if cbs is not None:
                cbs.on_test_batch_end(step, logs)
            if bar is not None and bar.target:
                bar.update(step + 1, logs)
            if bar is not None and not stream.steps_per_epoch:
                bar.target = step + 1
        if source is not None:
            source.on_epoch_end()
        if not seen:
            warnings.warn(f"{stream.owner}: {stream.what} yielded no batches; no loss or metrics to report",
                          stacklevel=3)
        if cbs is not None:
            cbs.on_test_end(logs)
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> Any:
        """Loss and metrics on ``(x, y)`` in inference mode.

        Parameters
        ----------
        x, y, sample_weight
            As in :meth:`fit`: arrays (in memory or memory-mapped), or a generator or
            PyDataset of ``(x, y)`` or ``(x, y, sample_weight)`` batches as ``x``.
        batch_size : int, default 32
            For arrays; ignored for a data source.
        steps : int, optional
            Number of batches to evaluate (default: all of them).

        Returns
        -------
        float, list or dict
            The loss alone if there are no metrics and one output, else
            ``[loss, *others]`` in the order of the logs; with ``return_dict=True`` a
            dict keyed by name.
        """
        self._require_compiled("evaluate")
        owner = "evaluate"
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        steps = _check_steps(steps, "steps", owner)
        verbose = resolve_verbose(verbose, owner)
        callbacks = check_callbacks(callbacks, owner)
        source: Source | None = None
        if is_source(x):
            source = self._source_data(x, y, sample_weight, owner, True)[0]
            stream = self._source_stream(source, None, steps, False, owner)
        else:
            data = self._array_data(x, y, sample_weight, None, owner)
            size = batch_size or (-(-data.n // steps) if steps else 32)
            stream = self._array_stream(data, size, steps, False, owner, "`x`")
        cbs = CallbackList(callbacks, model=self,
                           params={"epochs": 1, "steps": stream.steps_per_epoch, "verbose": verbose})
        bar = ProgressBar(stream.steps_per_epoch or 0, verbose)
        result = self._run_test(stream, source, cbs, bar, None)
        bar.finish(result)
        return _result(result, return_dict)

    @_trains_alone
    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: dict | None = None,
                       return_dict: bool = False) -> Any:
        """One gradient update on one batch, as in Keras: forward, loss, backward along
        the tape, one optimizer step. Metrics are computed on this batch alone.

        ``sample_weight`` and ``class_weight`` are as in :meth:`fit`.

        Returns
        -------
        float, list or dict
            As :meth:`evaluate`: the loss, ``[loss, *others]``, or a dict.
        """
        self._require_compiled("train_on_batch")
        owner = "train_on_batch"
        self._check_fittable()
        data = self._array_data(x, y, sample_weight, class_weight, owner)
        heads = self._heads or []
        params, grads, owners = self._trainable_arrays()
        xb = pack(data.structure, [_cast(a) for a in data.xs])
        value, parts, outs = self._train_step(xb, data.ys, params, grads, owners, None, data.sws)
        for m in self.metrics:
            m.reset_state()
        self._update_metrics(heads, data.ys, outs, data.sws)
        n = data.n
        totals = {"loss": value * n, **{k: v * n for k, v in parts.items()}}
        logs = self._logs(heads, {k: totals.get(k, 0.0) for k in ["loss"] + [h.name for h in heads]}, n)
        return _result(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        """Loss and metrics of one batch in inference mode (see :meth:`evaluate`)."""
        _, xs = self._input_arrays(x, "test_on_batch")
        return self.evaluate(x, y, batch_size=xs[0].shape[0], verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for one batch in inference mode."""
        structure, xs = self._input_arrays(x, "predict_on_batch")
        self._prepare(structure, xs, None)
        return self(pack(structure, [_cast(a) for a in xs]), training=False)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Sequence[Callback] | None = None) -> Any:
        """Model outputs for ``x`` in inference mode, computed in batches.

        Safe to call from several threads at once on one model.

        Parameters
        ----------
        x : array, list or dict of arrays, generator, or PyDataset
            Inputs, in memory or memory-mapped; a data source yields batches ``x``,
            ``(x,)`` or ``(x, y, ...)``, whose targets are ignored.
        batch_size : int, default 32
            For arrays; ignored for a data source.
        steps : int, optional
            Number of batches to predict (default: all of them).

        Returns
        -------
        ndarray of shape (n, ...), or a list or dict of them
            For a classifier ending in softmax, class probabilities. A model with
            several outputs returns them in the structure its ``call`` returns.
        """
        owner = "predict"
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        steps = _check_steps(steps, "steps", owner)
        verbose = resolve_verbose(verbose, owner)
        callbacks = check_callbacks(callbacks, owner)
        source: Source | None = None
        if is_source(x):
            source = Source(x, owner, "`x`")
            structure, xs = self._input_arrays(unpack(source.first(), owner, "`x`")[0], owner)
            self._prepare(structure, xs, None)
            stream = self._source_stream(source, None, steps, False, owner, targets=False)
        else:
            structure, xs = self._input_arrays(x, owner)
            self._prepare(structure, xs, None)
            data = _Arrays(structure, xs, [], None)
            size = batch_size or (-(-data.n // steps) if steps else 32)
            stream = self._array_stream(data, size, steps, False, owner, "`x`")
        cbs = CallbackList(callbacks, model=self,
                           params={"epochs": 1, "steps": stream.steps_per_epoch, "verbose": verbose})
        cbs.on_predict_begin({})
        bar = ProgressBar(stream.steps_per_epoch or 0, verbose)
        parts: list[list[np.ndarray]] = []
        out_structure: Any = None
        if source is not None:
            source.on_epoch_begin()
        for step, (in_structure, xb, _, _, _) in enumerate(stream.epoch(None)):
            cbs.on_predict_batch_begin(step, {})
            out = self(pack(in_structure, xb), training=False)
            out_structure = out
            parts.append(flatten(out))
            cbs.on_predict_batch_end(step, {"outputs": out})
            if bar.target:
                bar.update(step + 1, {})
        if source is not None:
            source.on_epoch_end()
        bar.target = bar.target or len(parts)
        bar.finish({})
        cbs.on_predict_end({})
        if not parts:
            raise ValueError("predict: `x` yielded no batches")
        joined = [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]
        return pack(out_structure, joined)

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print a table of layers, output shapes and parameter counts (and, for a
        functional model, what each layer is connected to)."""
        from ._summary import summary

        summary(self, print_fn or print)

    # ------------------------------------------------------------------ saving
    def save(self, filepath: str | os.PathLike, overwrite: bool = True, zipped: bool | None = None, *,
             include_optimizer: bool = True) -> None:
        """Save architecture, weights, compile settings and optimizer state to one file.

        ``overwrite=False`` refuses an existing file (FileExistsError); ``zipped`` may be
        None or True (the file is always a zip); ``include_optimizer`` is keyword only.
        See :func:`npnet.saving.save_model`.
        """
        from ..saving import save_model

        save_model(self, filepath, overwrite, zipped, include_optimizer=include_optimizer)

    def save_weights(self, filepath: str | os.PathLike, overwrite: bool = True) -> None:
        """Save only the weights; ``overwrite=False`` refuses an existing file (see
        :func:`npnet.saving.save_weights`)."""
        from ..saving import save_weights

        save_weights(self, filepath, overwrite)

    def load_weights(self, filepath: str | os.PathLike, skip_mismatch: bool = False) -> None:
        """Load weights saved by :meth:`save_weights` or :meth:`save` into this model,
        matched by layer path and weight name. With ``skip_mismatch=True`` a layer whose
        weights do not match the file is skipped with a warning, as in Keras (see
        :func:`npnet.saving.load_weights`)."""
        from ..saving import load_weights

        load_weights(self, filepath, skip_mismatch)

    def export(self, filepath: str | os.PathLike, format: str = "onnx", opset: int | None = None,
               verbose: Any = None, opset_version: int | None = None) -> None:
        """Export the model for inference outside npnet: an ONNX file (Keras' method name).

        See :func:`npnet.onnx.export`, which this calls with the batch axis dynamic; it
        needs ``pip install "npnet[onnx]"``.

        Parameters
        ----------
        filepath : str or path-like
        format : {"onnx"}
            The only format npnet writes.
        opset : int, optional
            The ONNX opset (default :data:`npnet.onnx.DEFAULT_OPSET`); ``opset_version``
            is Keras' name for it.
        verbose : bool, optional
            Print where the file went.
        """
        if format != "onnx":
            raise ValueError(f"{self._owner}.export: unsupported format {format!r}; npnet exports format='onnx'")
        if opset is not None and opset_version is not None and opset != opset_version:
            raise ValueError(f"{self._owner}.export: `opset` {opset!r} and `opset_version` {opset_version!r} differ; "
                             "give one of them")
        from ..onnx import export

        export(self, filepath, opset=opset if opset is not None else opset_version)
        if verbose:
            print(f"Saved the ONNX model to {os.fspath(filepath)}")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Any:
        """A model from :meth:`get_config`; ``npnet.Model.from_config`` takes a functional
        model's config, as in Keras."""
        if cls is Model:
            from .functional import Functional

            return Functional.from_config(config, custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _not_named_loss(metric: _metrics.Metric) -> None:
    if metric.name == "loss":
        raise ValueError("compile: a metric is named 'loss', the key of the loss in the logs; give it another name")


def _result(logs: dict[str, float], return_dict: bool) -> Any:
    """Keras' return forms: a dict, the loss alone, or a list in the order of the logs."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _shapes_of(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_shapes_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _shapes_of(v) for k, v in value.items()}
    if isinstance(value, SymbolicTensor):
        return tuple(value.shape)
    return (None,) + tuple(np.shape(value)[1:])


def _check_nested(value: Any, what: str, check: Callable[[Any], Any]) -> None:
    """Validate every leaf of a compile argument at once, so mistakes surface in compile()."""
    if isinstance(value, dict):
        for v in value.values():
            _check_nested(v, what, check)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_nested(v, what, check)
    elif value is not None:
        check(value)


def _fusions(heads: list[_Head], outs: list[np.ndarray], tape: _tape.Tape | None) -> list[Any]:
    """For each output, ``(tape index, logits)`` if its loss fuses with its last activation:
    only an output read by one loss and by no layer."""
    uses: dict[int, int] = {}
    for head, out in zip(heads, outs):
        if head.loss is not None:
            uses[id(out)] = uses.get(id(out), 0) + 1
    return [_fusion_for(h.loss, o, tape) if h.loss is not None and uses[id(o)] == 1 else None
            for h, o in zip(heads, outs)]


def _fusion_for(loss: _losses.Loss, out: np.ndarray, tape: _tape.Tape | None) -> tuple[int, np.ndarray] | None:
    """``(tape index, logits)`` when ``out`` comes straight from a call that ends in the
    activation ``loss`` can fuse (a softmax for cross-entropy, a sigmoid for binary
    cross-entropy) and nothing else reads ``out``; else None."""
    kind = _fusion_kind(loss)
    if kind is None or tape is None or tape.consumers.get(id(out), 0):
        return None
    index = tape.producer.get(id(out))
    if index is None:
        return None
    e = tape.entries[index]
    fusion = None if e.multi_out else e.layer._fusion(e.cache, e.inputs)
    if fusion is None or fusion[0] != kind:
        return None
    return index, fusion[1]


def _fusion_kind(loss: _losses.Loss) -> str | None:
    if getattr(loss, "from_logits", True) or not getattr(loss, "fusable", False):
        return None
    if isinstance(loss, _losses._CrossentropyBase):
        return "softmax"
    if isinstance(loss, _losses.BinaryCrossentropy):
        return "sigmoid"
    return None


def _scaled(g: np.ndarray, w: float) -> np.ndarray:
    return g if w == 1.0 else g * np.asarray(w, dtype=g.dtype)
