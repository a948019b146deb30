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
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _tape
from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from .._config import floatx, fresh_seed
from .._progress import ProgressBar, resolve_verbose
from .._validation import check_float, check_int
from ..callbacks import Callback, CallbackList, History
from ..layers import base as _base
from ..layers._symbolic import Input, SymbolicTensor
from ..layers.base import Layer
from ._structure import as_arrays, flatten, pack

__all__ = ["Model"]


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


def _cast(a: np.ndarray) -> np.ndarray:
    return a.astype(floatx(), copy=False) if a.dtype.kind != "f" else a


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


class _Head:
    """One model output as the loss sees it: its name, loss, weight and metrics."""

    def __init__(self, name: str, loss: _losses.Loss | None, weight: float, metrics: list[_metrics.Metric]) -> None:
        self.name, self.loss, self.weight, self.metrics = name, loss, weight, metrics


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
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple, dict)):
                inputs = _cast(np.asarray(inputs))
            else:
                inputs = pack(inputs, [_cast(np.asarray(a)) for a in flatten(inputs)])
            if self._build_shapes is None:
                self._build_shapes = _shapes_of(inputs)
        return super().__call__(inputs, training=training, **kwargs)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                metrics: Any = None) -> None:
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
            Names such as ``"accuracy"`` or metric objects. With several outputs: a list
            applied to every output, a list of lists in output order, or a dict keyed by
            output name.

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
        if metrics is not None:
            _check_nested(metrics, "metrics", lambda v: _metrics.get(v))
        if loss_weights is not None:
            _check_nested(loss_weights, "loss_weights",
                          lambda v: check_float(v, "loss_weights", low=0.0, owner="compile"))
        self.optimizer = opt
        self._compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics}
        self._heads = None
        self.compiled = True
        names = self._known_output_names()
        if names is not None:
            self._heads = self._make_heads(names)

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
        raw_metrics = args["metrics"]
        if raw_metrics is None:
            metric_lists: list[Any] = [[] for _ in names]
        elif isinstance(raw_metrics, dict):
            metric_lists = per_output(raw_metrics, "metrics")
        elif isinstance(raw_metrics, (list, tuple)) and raw_metrics and all(
                isinstance(m, (list, tuple)) for m in raw_metrics):
            if len(raw_metrics) != n:
                raise ValueError(f"compile: `metrics` has {len(raw_metrics)} lists for {n} outputs {names}")
            metric_lists = list(raw_metrics)
        else:
            metric_lists = [raw_metrics] * n
        heads = []
        for name, loss, w, ms in zip(names, losses, weights, metric_lists):
            loss_obj = None if loss is None else copy.deepcopy(_losses.get(loss))
            if ms is None:
                ms = []
            if isinstance(ms, (str, _metrics.Metric)):
                ms = [ms]
            metric_objs = [copy.deepcopy(_metrics.get(m)) for m in ms]
            heads.append(_Head(name, loss_obj, 1.0 if w is None else float(w), metric_objs))
        if all(h.loss is None for h in heads):
            raise ValueError(f"compile: no output has a loss; outputs: {names}")
        keys = self._log_keys(heads)
        if len(set(keys)) != len(keys):
            raise ValueError(f"compile: metric names must be unique, received {keys}")
        return heads

    def _log_keys(self, heads: list[_Head]) -> list[str]:
        if len(heads) == 1:
            return ["loss"] + [m.name for m in heads[0].metrics]
        keys = ["loss"] + [f"{h.name}_loss" for h in heads if h.loss is not None]
        return keys + [f"{h.name}_{m.name}" for h in heads for m in h.metrics]

    @property
    def loss(self) -> Any:
        """The compiled loss (one per output for a model with several outputs)."""
        if self._heads is None:
            return self._compile_args.get("loss")
        losses = [h.loss for h in self._heads]
        return losses[0] if len(losses) == 1 else losses

    @property
    def metrics(self) -> list[_metrics.Metric]:
        """The compiled metric objects, every output's."""
        return [m for h in self._heads or [] for m in h.metrics]

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

    # ------------------------------------------------------------------ one pass
    def _loss(self, outs: list[np.ndarray], ys: list[np.ndarray | None], tape: _tape.Tape | None,
              grads: bool) -> tuple[float, dict[str, float], dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Total loss, per-output losses, and (with ``grads``) the gradients that seed the backward pass."""
        heads = self._heads or []
        if len(outs) != len(heads):
            raise ValueError(f"{self._owner}: the model returned {len(outs)} outputs, compile() set up {len(heads)}")
        total = 0.0
        parts: dict[str, float] = {}
        seeds: dict[int, np.ndarray] = {}
        fused: dict[int, np.ndarray] = {}
        for head, out, y, found in zip(heads, outs, ys, _fusions(heads, outs, tape)):
            loss = head.loss
            if loss is None:
                continue
            if grads and tape is not None and tape.strict and not tape.knows(out):
                raise ValueError(
                    f"{self._owner}: output {head.name!r} was computed outside npnet's layers (for example with "
                    "NumPy operators at the end of call()), so the backward pass cannot reach the model from "
                    "its loss; compute it with a layer")
            value = None
            if found is not None:
                index, logits = found
                value = loss._forward_logits(y, logits)  # type: ignore[attr-defined]
                if grads:
                    fused[index] = _scaled(loss.backward(), head.weight)
            if value is None:
                value = loss.forward(y, out)
                if grads:
                    g = _scaled(loss.backward(), head.weight)
                    seeds[id(out)] = seeds[id(out)] + g if id(out) in seeds else g
            parts[head.name] = float(value)
            total += head.weight * float(value)
        return total, parts, seeds, fused

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
                    grads: list[np.ndarray], owners: list[Layer], buffers: dict | None) -> tuple[float, dict, list]:
        """Forward with a tape, loss, backward along the tape, one optimizer update."""
        tape = _tape.Tape()
        run = _tape.Run(training=True, tape=tape, buffers=buffers)
        with _tape.running(run):
            for a in flatten(xs):
                tape.add_source(a)
            outs = flatten(self(xs, training=True))
            total, parts, seeds, fused = self._loss(outs, ys, tape, grads=True)
            _, visited = tape.backward(seeds, fused)
        for layer, g in zip(owners, grads):
            if id(layer) not in visited:
                g.fill(0)  # not reached this step (an untaken branch): no gradient
        self.optimizer.step(params, grads)
        return total, parts, outs

    # ------------------------------------------------------------------ training
    def fit(self, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1, verbose: Any = "auto",
            callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: Any = None,
            initial_epoch: int = 0, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
            ) -> History:
        """Train for ``epochs`` epochs of mini-batch gradient descent.

        Parameters
        ----------
        x : array, list of arrays or dict of arrays
            Inputs; any numeric dtype. Each batch is cast to :func:`npnet.floatx`, so
            ``uint8`` images can stay ``uint8`` in memory. A model with several inputs
            takes a list in input order or a dict keyed by input name.
        y : array, list or dict
            Targets: class ids for sparse losses, one-hot rows, or values. A model with
            several outputs takes a list in output order or a dict keyed by output name.
        batch_size : int, default 32
        epochs : int, default 1
            Index of the last epoch (training runs ``initial_epoch .. epochs - 1``).
        verbose : {"auto", 0, 1, 2}
            1 draws a progress bar per epoch on a terminal and one line per epoch
            otherwise; 2 writes one line per epoch; 0 is silent.
        callbacks : list of Callback, optional
        validation_split : float in [0, 1)
            Fraction of the training data held out for validation. When the model has one
            output and ``y`` holds class ids, the slice is *stratified* and drawn at random
            with ``seed``. (Keras takes the last rows instead, which on class-sorted data
            leaves the validation set with only the last classes.) Otherwise: the last rows.
        validation_data : tuple (x_val, y_val), optional
            Overrides ``validation_split``.
        shuffle : bool, default True
            Shuffle the training samples before each epoch.
        seed : int or Generator, optional
            Seed of shuffling, the validation split, augmentation and layers with
            randomness but no seed of their own (Dropout), and of initial weights when
            the model is built here. The same seed gives bit-identical runs.
        initial_epoch : int, default 0
            Epoch at which to start (for resuming a run).
        augment : callable, optional
            ``augment(x_batch, rng) -> x_batch``, applied to each training batch after
            the cast to floatx (see :mod:`npnet.data`); models with one input only.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, each metric and ``val_*`` to per-epoch
            values; with several outputs also ``<output>_loss`` and ``<output>_<metric>``.
        """
        self._require_compiled("fit")
        owner = "fit"
        batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        epochs = check_int(epochs, "epochs", minimum=0, owner=owner)
        initial_epoch = check_int(initial_epoch, "initial_epoch", minimum=0, owner=owner)
        validation_split = check_float(validation_split, "validation_split", low=0.0, high=1.0,
                                       high_inclusive=False, owner=owner)
        verbose = resolve_verbose(verbose, owner)
        if augment is not None and not callable(augment):
            raise TypeError(f"fit: `augment` must be callable as augment(x_batch, rng), received {augment!r}")
        self._check_fittable()
        root = _root_seed(seed)
        rng = np.random.default_rng([root, 0])
        structure, xs, heads, ys = self._data(x, y, owner, np.random.default_rng([root, 1]))
        if augment is not None and len(xs) != 1:
            raise ValueError(f"fit: `augment` works on models with one input; this one takes {len(xs)}")

        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: `validation_data` must be a tuple (x_val, y_val)")
            val_structure, xs_val = self._input_arrays(validation_data[0], owner)
            ys_val: list | None = self._target_arrays(validation_data[1], heads, owner, "validation_data[1]")
            self._check_samples(xs_val, ys_val, owner)  # type: ignore[arg-type]
            self._check_targets(ys_val, val_structure, xs_val)  # type: ignore[arg-type]
        elif validation_split > 0:
            n_all = xs[0].shape[0]
            y0 = ys[0] if len(ys) == 1 else None
            if y0 is not None and y0.ndim == 1 and y0.dtype.kind in "iub":
                tr, va = _stratified_split(y0, validation_split, rng)
            else:
                cut = int(round(n_all * (1 - validation_split)))
                tr, va = np.arange(cut), np.arange(cut, n_all)
            if tr.size == 0 or va.size == 0:
                raise ValueError(
                    f"fit: validation_split={validation_split} leaves {tr.size} training and {va.size} "
                    f"validation samples out of {n_all}"
                )
            val_structure = structure
            xs_val, ys_val = [a[va] for a in xs], [None if a is None else a[va] for a in ys]
            xs, ys = [a[tr] for a in xs], [None if a is None else a[tr] for a in ys]
        else:
            xs_val, ys_val = None, None  # type: ignore[assignment]

        params, grads, owners = self._trainable_arrays()
        builds = _base.BUILDS[0]
        dtype = np.dtype(floatx())
        n = xs[0].shape[0]
        steps = -(-n // batch_size)
        keys = self._log_keys(heads)

        history = History()
        cbs = CallbackList(list(callbacks or []) + [history], model=self,
                           params={"epochs": epochs, "steps": steps, "verbose": verbose})
        self.history = history
        self.stop_training = False
        cbs.on_train_begin()
        logs: dict[str, float] = {}
        # While training, every layer call hands out the same output arrays batch after
        # batch (see Layer._new_array); they are freed when fit returns.
        buffers: dict = {}
        gathers = [_BatchGather(a, batch_size, dtype) for a in xs]
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", file=sys.stdout, flush=True)
            bar = ProgressBar(steps, verbose)
            # One stream per epoch, derived from (seed, epoch): a run resumed with
            # initial_epoch=k sees the same shuffles, masks and augmentations.
            erng = np.random.default_rng([root, 2, epoch])
            for layer in self._flatten_layers():
                layer._seed_from(erng, epoch)
            order = erng.permutation(n) if shuffle else None
            for m in self.metrics:
                m.reset()
            totals = {k: 0.0 for k in ["loss"] + [h.name for h in heads]}
            seen = 0
            batch_logs: dict[str, float] = {}
            for step in range(steps):
                cbs.on_train_batch_begin(step)
                lo, hi = step * batch_size, min((step + 1) * batch_size, n)
                idx = slice(lo, hi) if order is None else order[lo:hi]
                xb = [gather(idx) for gather in gathers]
                yb = [None if a is None else a[idx] for a in ys]
                if augment is not None:
                    xb = [np.asarray(augment(xb[0], erng), dtype=dtype)]
                value, parts, outs = self._train_step(pack(structure, xb), yb, params, grads, owners, buffers)
                if _base.BUILDS[0] != builds:  # some layer was built during the step
                    self._check_no_new_weights(owners)
                    builds = _base.BUILDS[0]
                seen += hi - lo
                totals["loss"] += value * (hi - lo)
                for k, v in parts.items():
                    totals[k] += v * (hi - lo)
                self._update_metrics(heads, yb, outs)
                batch_logs = self._logs(heads, totals, seen)
                cbs.on_train_batch_end(step, {**batch_logs, "batch_loss": value})
                bar.update(step + 1, batch_logs)
                if self.stop_training and not np.isfinite(value):
                    break
            logs = {k: batch_logs[k] for k in keys if k in batch_logs}
            if xs_val is not None and ys_val is not None:
                val = self._evaluate_arrays(val_structure, xs_val, ys_val, batch_size, buffers=buffers)
                logs.update({f"val_{k}": v for k, v in val.items()})
            cbs.on_epoch_end(epoch, logs)
            bar.finish({k: v for k, v in logs.items() if isinstance(v, float)})
            if self.stop_training:
                break
        buffers.clear()
        cbs.on_train_end(logs)
        return history

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

    def _check_targets(self, ys: list[np.ndarray | None], structure: Any, xs: list[np.ndarray]) -> None:
        heads = self._heads or []
        if not any(h.loss is not None for h in heads):
            return
        first = pack(structure, [_cast(a[:1]) for a in xs])
        outs = flatten(self(first))
        for h, y, out in zip(heads, ys, outs):
            if h.loss is not None and y is not None:
                h.loss.check_targets(y, int(out.shape[-1]))

    def _update_metrics(self, heads: list[_Head], ys: list[np.ndarray | None], outs: list[np.ndarray]) -> None:
        for h, y, out in zip(heads, ys, outs):
            if y is not None:
                for m in h.metrics:
                    m.update(y, out)

    def _logs(self, heads: list[_Head], totals: dict[str, float], seen: int) -> dict[str, float]:
        logs = {"loss": totals["loss"] / seen}
        if len(heads) == 1:
            logs.update({m.name: m.result() for m in heads[0].metrics})
            return logs
        for h in heads:
            if h.loss is not None:
                logs[f"{h.name}_loss"] = totals[h.name] / seen
        for h in heads:
            logs.update({f"{h.name}_{m.name}": m.result() for m in h.metrics})
        return logs

    # ------------------------------------------------------------------ inference
    def _evaluate_arrays(self, structure: Any, xs: list[np.ndarray], ys: list[np.ndarray | None], batch_size: int,
                         cbs: CallbackList | None = None, bar: ProgressBar | None = None,
                         buffers: dict | None = None) -> dict[str, float]:
        heads = self._heads or []
        dtype = np.dtype(floatx())
        for m in self.metrics:
            m.reset()
        totals = {k: 0.0 for k in ["loss"] + [h.name for h in heads]}
        n = xs[0].shape[0]
        steps = -(-n // batch_size)
        logs: dict[str, float] = {}
        for step in range(steps):
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            lo, hi = step * batch_size, min((step + 1) * batch_size, n)
            xb = pack(structure, [a[lo:hi].astype(dtype, copy=False) for a in xs])
            yb = [None if a is None else a[lo:hi] for a in ys]
            tape = _tape.Tape(strict=False)
            run = _tape.Run(training=False, tape=tape, buffers=buffers)
            with _tape.running(run):
                outs = flatten(self(xb, training=False))
                value, parts, _, _ = self._loss(outs, yb, tape, grads=False)
            totals["loss"] += value * (hi - lo)
            for k, v in parts.items():
                totals[k] += v * (hi - lo)
            self._update_metrics(heads, yb, outs)
            logs = self._logs(heads, totals, hi)
            if cbs is not None:
                cbs.on_test_batch_end(step, logs)
            if bar is not None:
                bar.update(step + 1, logs)
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int = 32, verbose: Any = "auto",
                 return_dict: bool = False, callbacks: Sequence[Callback] | None = None) -> Any:
        """Loss and metrics on ``(x, y)`` in inference mode.

        Returns
        -------
        float, list or dict
            The loss alone if there are no metrics and one output, else
            ``[loss, *others]`` in the order of the logs; with ``return_dict=True`` a
            dict keyed by name.
        """
        self._require_compiled("evaluate")
        owner = "evaluate"
        batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        verbose = resolve_verbose(verbose, owner)
        structure, xs, heads, ys = self._data(x, y, owner)
        cbs = CallbackList(callbacks, model=self)
        cbs.on_test_begin()
        bar = ProgressBar(-(-xs[0].shape[0] // batch_size), verbose)
        result = self._evaluate_arrays(structure, xs, ys, batch_size, cbs, bar)
        bar.finish(result)
        cbs.on_test_end(result)
        return _result(result, return_dict)

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> Any:
        """One gradient update on one batch, as in Keras: forward, loss, backward along
        the tape, one optimizer step. Metrics are computed on this batch alone.

        Returns
        -------
        float, list or dict
            As :meth:`evaluate`: the loss, ``[loss, *others]``, or a dict.
        """
        self._require_compiled("train_on_batch")
        owner = "train_on_batch"
        self._check_fittable()
        structure, xs, heads, ys = self._data(x, y, owner)
        params, grads, owners = self._trainable_arrays()
        xb = pack(structure, [_cast(a) for a in xs])
        value, parts, outs = self._train_step(xb, ys, params, grads, owners, None)
        for m in self.metrics:
            m.reset()
        self._update_metrics(heads, ys, outs)
        n = xs[0].shape[0]
        totals = {"loss": value * n, **{k: v * n for k, v in parts.items()}}
        logs = self._logs(heads, {k: totals.get(k, 0.0) for k in ["loss"] + [h.name for h in heads]}, n)
        return _result(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> Any:
        """Loss and metrics of one batch in inference mode (see :meth:`evaluate`)."""
        _, xs = self._input_arrays(x, "test_on_batch")
        return self.evaluate(x, y, batch_size=xs[0].shape[0], verbose=0, return_dict=return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for one batch in inference mode."""
        structure, xs = self._input_arrays(x, "predict_on_batch")
        self._prepare(structure, xs, None)
        return self(pack(structure, [_cast(a) for a in xs]), training=False)

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = "auto",
                callbacks: Sequence[Callback] | None = None) -> Any:
        """Model outputs for ``x`` in inference mode, computed in batches.

        Safe to call from several threads at once on one model.

        Returns
        -------
        ndarray of shape (n, ...), or a list or dict of them
            For a classifier ending in softmax, class probabilities. A model with
            several outputs returns them in the structure its ``call`` returns.
        """
        owner = "predict"
        batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        verbose = resolve_verbose(verbose, owner)
        structure, xs = self._input_arrays(x, owner)
        self._prepare(structure, xs, None)
        dtype = np.dtype(floatx())
        n = xs[0].shape[0]
        steps = -(-n // batch_size)
        cbs = CallbackList(callbacks, model=self)
        cbs.on_predict_begin()
        bar = ProgressBar(steps, verbose)
        parts: list[list[np.ndarray]] = []
        out_structure: Any = None
        for step in range(steps):
            cbs.on_predict_batch_begin(step)
            xb = pack(structure, [a[step * batch_size:(step + 1) * batch_size].astype(dtype, copy=False) for a in xs])
            out = self(xb, training=False)
            out_structure = out
            parts.append(flatten(out))
            cbs.on_predict_batch_end(step, {})
            bar.update(step + 1, {})
        bar.finish({})
        cbs.on_predict_end()
        joined = [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]
        return pack(out_structure, joined)

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print a table of layers, output shapes and parameter counts (and, for a
        functional model, what each layer is connected to)."""
        from ._summary import summary

        summary(self, print_fn or print)

    # ------------------------------------------------------------------ saving
    def save(self, filepath: str | os.PathLike, include_optimizer: bool = True) -> None:
        """Save architecture, weights, compile settings and optimizer state to one file.

        See :func:`npnet.saving.save_model`.
        """
        from ..saving import save_model

        save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Save only the weights (see :func:`npnet.saving.save_weights`)."""
        from ..saving import save_weights

        save_weights(self, filepath)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Load weights saved by :meth:`save_weights` or :meth:`save` into this model,
        matched by layer path and weight name."""
        from ..saving import load_weights

        load_weights(self, filepath)

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
