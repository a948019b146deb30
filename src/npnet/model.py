"""``Sequential``: a stack of layers with Keras' ``compile`` / ``fit`` / ``evaluate`` /
``predict`` / ``summary`` / ``save``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._config import floatx
from ._progress import ProgressBar, resolve_verbose
from ._validation import as_array, check_float, check_int, check_seed
from .callbacks import Callback, CallbackList, History
from .layers.activation import Sigmoid, Softmax
from .layers.base import Layer, _unique_name, get_layer_class
from .layers.core import Activation, Dense, Input

__all__ = ["Sequential"]


@contextmanager
def _reusing_outputs(layers: Sequence[Layer]) -> Iterator[None]:
    """Let ``layers`` reuse their output arrays between batches (see ``Layer._new_array``),
    then give the memory back."""
    for layer in layers:
        layer._reuse_outputs = True
    try:
        yield
    finally:
        for layer in layers:
            layer._reuse_outputs = False
            scratch = layer.__dict__.get("_scratch", {})
            for key in [k for k in scratch if k.startswith("out:")]:
                del scratch[key]


def _root_seed(seed: Any) -> int:
    """An integer root for all of fit's random streams."""
    if seed is None:
        return int(np.random.default_rng().integers(2**63))  # fresh OS entropy
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


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list, optional
        Layers in order; the first element may be :class:`npnet.Input` to fix the
        input shape, so the model builds at once.
    name : str, optional
    seed : int, optional
        Seed for weight initialization of layers whose initializers have no seed of
        their own: the same seed gives bit-identical initial weights.

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
                 seed: int | None = None) -> None:
        self.name = name if name is not None else _unique_name("sequential")
        self.seed = check_seed(seed, owner="Sequential")
        self._weight_rng = None if seed is None else np.random.default_rng(seed)
        self.layers: list[Layer] = []
        self._input_shape: tuple | None = None
        self.built = False
        # Set by compile(); typed loosely so that the training code needs no None checks.
        self.optimizer: Any = None
        self.loss: Any = None
        self.metrics: list[_metrics.Metric] = []
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    def add(self, layer: Any) -> None:
        """Append a layer (or an :class:`Input`, only as the first element)."""
        if isinstance(layer, Input):
            if self.layers or self._input_shape is not None:
                raise ValueError("Sequential: npnet.Input must be the first element of the model")
            self._input_shape = (None,) + layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected an npnet layer, received {layer!r}")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"Sequential.add: the model already has a layer named {layer.name!r}; names must be unique")
        if any(existing is layer for existing in self.layers):
            raise ValueError(f"Sequential.add: layer {layer.name!r} is already in the model")
        self.layers.append(layer)
        self.built = False
        if self._input_shape is not None:
            self.build(self._input_shape)

    def build(self, input_shape: Sequence[Any], rng: np.random.Generator | None = None) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        shape = tuple(input_shape)
        if shape and shape[0] is not None:
            shape = (None,) + shape[1:]
        self._input_shape = shape
        rng = self._weight_rng if self._weight_rng is not None else rng
        for layer in self.layers:
            if not layer.built:
                layer._init_rng = rng
                try:
                    layer.build(shape)
                finally:
                    layer._init_rng = None
            shape = layer.compute_output_shape(shape)
        # A layer must return dx only if some earlier layer has parameters to train.
        needed = False
        for layer in self.layers:
            layer.compute_input_grad = needed
            needed = needed or bool(layer.params)
        self.built = bool(self.layers)

    @property
    def input_shape(self) -> tuple | None:
        """Input shape with the batch axis as None, once known."""
        return self._input_shape

    @property
    def output_shape(self) -> tuple | None:
        """Output shape with the batch axis as None, once the model is built."""
        if self._input_shape is None:
            return None
        shape = self._input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(
                f"Sequential '{self.name}': {what} needs a built model; call fit(), "
                "build(input_shape), or start the model with npnet.Input(shape=...)"
            )

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | None = None) -> None:
        """Configure training.

        Parameters
        ----------
        optimizer : str or Optimizer
            ``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"`` or an instance.
        loss : str or Loss
            ``"sparse_categorical_crossentropy"``, ``"categorical_crossentropy"``,
            ``"binary_crossentropy"``, ``"mse"``, ``"mae"`` or an instance.
        metrics : list, optional
            Names such as ``"accuracy"`` or metric objects.

        Notes
        -----
        A final softmax (a ``Softmax`` layer, ``Activation("softmax")`` or
        ``Dense(..., activation="softmax")``) followed by a cross-entropy loss is fused:
        the loss is computed from the logits with a stable log-softmax and the gradient
        with respect to the logits is :math:`(p - y) / n`. A final sigmoid with binary
        cross-entropy is fused the same way.
        """
        if loss is None:
            raise ValueError("compile: `loss` is required, for example loss='sparse_categorical_crossentropy'")
        self.optimizer = _optimizers.get(optimizer)
        self.loss = _losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, _metrics.Metric)):
            metrics = [metrics]
        self.metrics = [_metrics.get(m) for m in metrics]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"compile: metric names must be unique, received {names}")
        self.compiled = True

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"Sequential '{self.name}': call compile(optimizer, loss) before {what}()")

    # ------------------------------------------------------------------ forward/backward
    def _fused(self) -> bool:
        loss, last = self.loss, self.layers[-1]
        if loss is None or getattr(loss, "from_logits", True) or not getattr(loss, "fusable", False):
            return False
        act = last._act if isinstance(last, (Dense, Activation)) else last
        if isinstance(loss, _losses._CrossentropyBase):
            return isinstance(act, Softmax) and act.axis == -1
        if isinstance(loss, _losses.BinaryCrossentropy):
            return isinstance(act, Sigmoid)
        return False

    def _forward(self, x: np.ndarray, training: bool, fused: bool) -> np.ndarray:
        h = x
        for layer in self.layers[:-1]:
            h = layer.forward(h, training)
        last = self.layers[-1]
        if not fused:
            return last.forward(h, training)
        if isinstance(last, Dense):
            return last._linear(h)
        if isinstance(last, Activation):
            last._enter(h)
            return h
        return last._enter(h)

    def _loss(self, y: np.ndarray, out: np.ndarray, fused: bool) -> tuple[float, np.ndarray]:
        if fused:
            value = self.loss._forward_logits(y, out)
            return value, self.loss._prediction_from_logits()
        return self.loss.forward(y, out), out

    def _backward(self, fused: bool) -> np.ndarray | None:
        d = self.loss.backward()
        last = self.layers[-1]
        if fused:
            if isinstance(last, Dense):
                d = last._linear_backward(d)
        else:
            d = last.backward(d)
        for layer in reversed(self.layers[:-1]):
            if d is None:
                break
            d = layer.backward(d)
        return d

    def _train_step(self, xb: np.ndarray, yb: np.ndarray, fused: bool, params: list[np.ndarray],
                    grads: list[np.ndarray]) -> tuple[float, np.ndarray]:
        """Forward, loss, backward and one optimizer update on a batch; the loss and predictions."""
        out = self._forward(xb, True, fused)
        value, pred = self._loss(yb, out, fused)
        self._backward(fused)
        self.optimizer.step(params, grads)
        return value, pred

    def _trainable(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        params, grads = [], []
        for layer in self.layers:
            if layer.trainable:
                for k in layer.params:
                    params.append(layer.params[k])
                    grads.append(layer.grads[k])
        return params, grads

    # ------------------------------------------------------------------ data checks
    def _check_xy(self, x: Any, y: Any, owner: str, x_name: str = "x", y_name: str = "y") -> tuple[np.ndarray, np.ndarray]:
        x = as_array(x, x_name, owner=owner)
        if y is None:
            raise ValueError(f"{owner}: `{y_name}` is required")
        y = as_array(y, y_name, owner=owner)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{owner}: `{x_name}` and `{y_name}` must have the same number of samples, "
                f"received {x.shape[0]} and {y.shape[0]}"
            )
        return x, y

    def _check_input(self, x: np.ndarray) -> None:
        if self._input_shape is not None and self.layers:
            expected = self._input_shape[1:]
            if tuple(x.shape[1:]) != tuple(expected):
                first = self.layers[0]
                raise ValueError(
                    f"{type(first).__name__} '{first.name}' (first layer of '{self.name}'): expected input "
                    f"of shape (batch, {', '.join(map(str, expected))}), received shape {x.shape}"
                )

    def _n_outputs(self) -> int:
        shape: Any = self.output_shape  # the model is built by now
        return int(shape[-1])

    # ------------------------------------------------------------------ training
    def fit(self, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1, verbose: Any = "auto",
            callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: Any = None,
            initial_epoch: int = 0, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
            ) -> History:
        """Train for ``epochs`` epochs of mini-batch gradient descent.

        Parameters
        ----------
        x : array of shape (n, ...)
            Inputs; any numeric dtype. Each batch is cast to :func:`npnet.floatx`, so
            ``uint8`` images can stay ``uint8`` in memory.
        y : array of shape (n,) or (n, outputs)
            Targets: class ids for sparse losses, one-hot rows, or values.
        batch_size : int, default 32
        epochs : int, default 1
            Index of the last epoch (training runs ``initial_epoch .. epochs - 1``).
        verbose : {"auto", 0, 1, 2}
            1 draws a progress bar per epoch on a terminal and one line per epoch
            otherwise; 2 writes one line per epoch; 0 is silent.
        callbacks : list of Callback, optional
        validation_split : float in [0, 1)
            Fraction of the training data held out for validation. When ``y`` holds
            class ids, the slice is *stratified* and drawn at random with ``seed``.
            (Keras takes the last rows instead, which on class-sorted data leaves the
            validation set with only the last classes.) Other targets: the last rows.
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
            the cast to floatx (see :mod:`npnet.data`).

        Returns
        -------
        History
            ``history.history`` maps ``loss``, each metric and ``val_*`` to per-epoch values.
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
        x, y = self._check_xy(x, y, owner)
        if not self.layers:
            raise ValueError(f"Sequential '{self.name}': the model has no layers")
        root = _root_seed(seed)
        rng = np.random.default_rng([root, 0])
        if not self.built:
            self._check_input(x)
            self.build((None,) + x.shape[1:], rng=np.random.default_rng([root, 1]))
        self._check_input(x)
        self.loss.check_targets(y, self._n_outputs())

        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: `validation_data` must be a tuple (x_val, y_val)")
            x_val, y_val = self._check_xy(*validation_data, owner, "validation_data[0]", "validation_data[1]")
            self._check_input(x_val)
            self.loss.check_targets(y_val, self._n_outputs())
        elif validation_split > 0:
            if y.ndim == 1 and y.dtype.kind in "iub":
                tr, va = _stratified_split(y, validation_split, rng)
            else:
                cut = int(round(x.shape[0] * (1 - validation_split)))
                tr, va = np.arange(cut), np.arange(cut, x.shape[0])
            if tr.size == 0 or va.size == 0:
                raise ValueError(
                    f"fit: validation_split={validation_split} leaves {tr.size} training and {va.size} "
                    f"validation samples out of {x.shape[0]}"
                )
            x, x_val, y, y_val = x[tr], x[va], y[tr], y[va]
        else:
            x_val = y_val = None  # type: ignore[assignment]

        params, grads = self._trainable()
        fused = self._fused()
        dtype = np.dtype(floatx())
        n = x.shape[0]
        steps = -(-n // batch_size)

        history = History()
        cbs = CallbackList(list(callbacks or []) + [history], model=self,
                           params={"epochs": epochs, "steps": steps, "verbose": verbose})
        self.history = history
        self.stop_training = False
        cbs.on_train_begin()
        logs: dict[str, float] = {}
        # While training, every layer but the last hands out the same output arrays batch
        # after batch (see Layer._new_array); they are fresh again once fit returns.
        with _reusing_outputs(self.layers[:-1]):
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}", file=sys.stdout, flush=True)
                bar = ProgressBar(steps, verbose)
                # One stream per epoch, derived from (seed, epoch): a run resumed with
                # initial_epoch=k sees the same shuffles, masks and augmentations.
                erng = np.random.default_rng([root, 2, epoch])
                for layer in self.layers:
                    layer._seed_from(erng, epoch)
                order = erng.permutation(n) if shuffle else None
                for m in self.metrics:
                    m.reset()
                total, seen = 0.0, 0
                for step in range(steps):
                    cbs.on_train_batch_begin(step)
                    lo, hi = step * batch_size, min((step + 1) * batch_size, n)
                    if order is None:
                        xb, yb = x[lo:hi], y[lo:hi]
                    else:
                        idx = order[lo:hi]
                        xb, yb = x[idx], y[idx]
                    xb = xb.astype(dtype, copy=False)
                    if augment is not None:
                        xb = np.asarray(augment(xb, erng), dtype=dtype)
                    value, pred = self._train_step(xb, yb, fused, params, grads)
                    total += value * (hi - lo)
                    seen += hi - lo
                    for m in self.metrics:
                        m.update(yb, pred)
                    batch_logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
                    cbs.on_train_batch_end(step, {**batch_logs, "batch_loss": value})
                    bar.update(step + 1, batch_logs)
                    if self.stop_training and not np.isfinite(value):
                        break
                logs = dict(batch_logs)
                if x_val is not None and y_val is not None:
                    val = self._evaluate_arrays(x_val, y_val, batch_size, fused)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                cbs.on_epoch_end(epoch, logs)
                bar.finish({k: v for k, v in logs.items() if isinstance(v, float)})
                if self.stop_training:
                    break
        cbs.on_train_end(logs)
        return history

    # ------------------------------------------------------------------ inference
    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int, fused: bool,
                         cbs: CallbackList | None = None, bar: ProgressBar | None = None) -> dict[str, float]:
        dtype = np.dtype(floatx())
        for m in self.metrics:
            m.reset()
        total = 0.0
        n = x.shape[0]
        steps = -(-n // batch_size)
        for step in range(steps):
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            lo, hi = step * batch_size, min((step + 1) * batch_size, n)
            xb, yb = x[lo:hi].astype(dtype, copy=False), y[lo:hi]
            out = self._forward(xb, False, fused)
            value, pred = self._loss(yb, out, fused)
            total += value * (hi - lo)
            for m in self.metrics:
                m.update(yb, pred)
            logs = {"loss": total / hi, **{m.name: m.result() for m in self.metrics}}
            if cbs is not None:
                cbs.on_test_batch_end(step, logs)
            if bar is not None:
                bar.update(step + 1, logs)
        return {"loss": total / n, **{m.name: m.result() for m in self.metrics}}

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int = 32, verbose: Any = "auto",
                 return_dict: bool = False, callbacks: Sequence[Callback] | None = None) -> Any:
        """Loss and metrics on ``(x, y)`` in inference mode.

        Returns
        -------
        float, list or dict
            The loss alone if there are no metrics, else ``[loss, *metrics]``; with
            ``return_dict=True`` a dict keyed by name.
        """
        self._require_compiled("evaluate")
        owner = "evaluate"
        batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        verbose = resolve_verbose(verbose, owner)
        x, y = self._check_xy(x, y, owner)
        self._require_built("evaluate")
        self._check_input(x)
        self.loss.check_targets(y, self._n_outputs())
        cbs = CallbackList(callbacks, model=self)
        cbs.on_test_begin()
        bar = ProgressBar(-(-x.shape[0] // batch_size), verbose)
        result = self._evaluate_arrays(x, y, batch_size, self._fused(), cbs, bar)
        bar.finish(result)
        cbs.on_test_end(result)
        if return_dict:
            return result
        values = list(result.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = "auto",
                callbacks: Sequence[Callback] | None = None) -> np.ndarray:
        """Model outputs for ``x`` in inference mode, computed in batches.

        Returns
        -------
        ndarray of shape (n, ...)
            For a classifier ending in softmax, class probabilities.
        """
        owner = "predict"
        batch_size = check_int(batch_size, "batch_size", minimum=1, owner=owner)
        verbose = resolve_verbose(verbose, owner)
        self._require_built("predict")
        x = as_array(x, "x", owner=owner)
        self._check_input(x)
        dtype = np.dtype(floatx())
        n = x.shape[0]
        steps = -(-n // batch_size)
        cbs = CallbackList(callbacks, model=self)
        cbs.on_predict_begin()
        bar = ProgressBar(steps, verbose)
        outs = []
        for step in range(steps):
            cbs.on_predict_batch_begin(step)
            xb = x[step * batch_size:(step + 1) * batch_size].astype(dtype, copy=False)
            outs.append(self._forward(xb, False, False))
            cbs.on_predict_batch_end(step, {})
            bar.update(step + 1, {})
        bar.finish({})
        cbs.on_predict_end()
        return np.concatenate(outs, axis=0)

    # ------------------------------------------------------------------ weights
    def count_params(self) -> int:
        """Number of parameter elements, trainable and not."""
        return sum(layer.count_params() + layer.count_state() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every layer's weights, in layer order."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set all weights from a list shaped like :meth:`get_weights` (copied in place)."""
        self._require_built("set_weights")
        weights = list(weights)
        counts = [len(layer._weight_items()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(f"Sequential '{self.name}': expected {sum(counts)} weight arrays, received {len(weights)}")
        start = 0
        for layer, k in zip(self.layers, counts):
            layer.set_weights(weights[start:start + k])
            start += k

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print a table of layers, output shapes and parameter counts."""
        print_fn = print_fn or print
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = self._input_shape
        trainable = non_trainable = 0
        for layer in self.layers:
            if shape is not None:
                shape = layer.compute_output_shape(shape)
            shape_text = str(shape) if shape is not None else "?"
            n_train = layer.count_params() if layer.built else 0
            n_state = layer.count_state() if layer.built else 0
            if layer.trainable:
                trainable += n_train
                non_trainable += n_state
            else:
                non_trainable += n_train + n_state
            count = f"{n_train + n_state:,}" if layer.built else "0 (unbuilt)"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape_text, count))
        widths = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
        total_w = sum(widths)
        lines = [f'Model: "{self.name}"', "=" * total_w]
        for i, row in enumerate(rows):
            lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            lines.append("=" * total_w if i == 0 else "-" * total_w if i < len(rows) - 1 else "=" * total_w)
        if len(rows) == 1:
            lines.append("=" * total_w)
        lines += [
            f"Total params: {trainable + non_trainable:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {non_trainable:,}",
        ]
        print_fn("\n".join(lines))

    # ------------------------------------------------------------------ config and saving
    def get_config(self) -> dict[str, Any]:
        """JSON-safe description of the architecture."""
        return {
            "name": self.name,
            "seed": self.seed,
            "input_shape": None if self._input_shape is None else list(self._input_shape[1:]),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Sequential:
        """Rebuild an (untrained) model from :meth:`get_config`."""
        layers: list[Any] = []
        if config.get("input_shape") is not None:
            layers.append(Input(shape=tuple(config["input_shape"])))
        for entry in config["layers"]:
            name = entry["class_name"]
            klass: Any = (custom_objects or {}).get(name) or get_layer_class(name)
            layers.append(klass.from_config(entry["config"]))
        return cls(layers, name=config.get("name"), seed=config.get("seed"))

    def save(self, filepath: str | os.PathLike, include_optimizer: bool = True) -> None:
        """Save architecture, weights, compile settings and optimizer state to one file.

        See :func:`npnet.saving.save_model`.
        """
        from .saving import save_model

        save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Save only the weights (see :func:`npnet.saving.save_weights`)."""
        from .saving import save_weights

        save_weights(self, filepath)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Load weights saved by :meth:`save_weights` or :meth:`save` into this model."""
        from .saving import load_weights

        load_weights(self, filepath)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={len(self.layers)} built={self.built}>"
