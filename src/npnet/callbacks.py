"""Callbacks: hooks into ``fit`` with Keras' names and arguments.

A callback gets ``set_model(model)`` before training and then the hooks below. It
resets its own state in ``on_train_begin``, so one instance can serve several ``fit``
calls. Setting ``model.stop_training = True`` ends training after the current epoch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterable
from typing import IO, Any

import numpy as np

from ._progress import ProgressBar
from ._validation import check_bool, check_choice, check_float, check_int, check_path, check_verbose

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "CSVLogger",
    "TerminateOnNaN",
    "LambdaCallback",
    "ProgbarLogger",
    "BackupAndRestore",
]


class Callback:
    """Base class; every hook does nothing by default.

    As in Keras, ``on_batch_begin`` and ``on_batch_end`` are aliases of the training-batch
    hooks: the base :meth:`on_train_batch_begin` calls :meth:`on_batch_begin` and
    :meth:`on_train_batch_end` calls :meth:`on_batch_end`, so a callback that overrides only
    ``on_batch_end`` runs after every training batch. Inside ``fit``, ``evaluate`` and
    ``predict`` every hook receives a dict as ``logs`` (empty when there is nothing to
    report), never None.

    Attributes
    ----------
    model : Model
        Set by :meth:`set_model` before ``on_train_begin``.
    params : dict
        ``epochs``, ``steps`` and ``verbose`` of the current ``fit``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> class CountBatches(npnet.callbacks.Callback):
    ...     def on_train_begin(self, logs=None):
    ...         self.batches = 0
    ...     def on_batch_end(self, batch, logs=None):
    ...         self.batches += 1
    >>> model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)], seed=0)
    >>> model.compile("sgd", "mse")
    >>> counter = CountBatches()
    >>> _ = model.fit(np.zeros((10, 2)), np.zeros((10, 1)), batch_size=4, epochs=2,
    ...               callbacks=[counter], verbose=0)
    >>> counter.batches
    6
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Alias of :meth:`on_train_batch_begin`, kept for compatibility."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Alias of :meth:`on_train_batch_end`, kept for compatibility."""

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before each training batch; by default calls :meth:`on_batch_begin`."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after each training batch; by default calls :meth:`on_batch_end`."""
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: dict | None = None) -> None: ...
    def on_test_end(self, logs: dict | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_begin(self, logs: dict | None = None) -> None: ...
    def on_predict_end(self, logs: dict | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]
_INDEXED_HOOKS = {name for name in _HOOKS if "batch" in name or "epoch" in name}


class CallbackList(Callback):
    """Forward every hook to each callback of a list, in order (Keras' ``CallbackList``).

    Parameters
    ----------
    callbacks : list of Callback, optional
    add_history : bool, default False
        Append a :class:`History` unless the list already holds one; it becomes
        ``model.history``.
    add_progbar : bool, default False
        Append a :class:`ProgbarLogger` unless the list already holds one.
    model : Model, optional
        Handed to every callback with ``set_model``.
    params : dict, optional
        Handed to every callback with ``set_params``; keyword arguments (``epochs=``,
        ``steps=``, ``verbose=``) are added to it, as Keras takes them.

    Every hook receives ``logs`` as a dict: None becomes ``{}``. One copy of the caller's
    dict is shared by the callbacks of one hook call, so a value a callback adds (such as
    ``learning_rate``) is seen by the callbacks after it, and the caller's dict is left as
    it was.
    """

    def __init__(self, callbacks: Iterable[Callback] | None = None, add_history: bool = False,
                 add_progbar: bool = False, model: Any = None, params: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__()
        self.callbacks: list[Callback] = []
        self.callbacks.extend(check_callbacks(callbacks, "CallbackList"))
        add_history = check_bool(add_history, "add_history", owner="CallbackList")
        add_progbar = check_bool(add_progbar, "add_progbar", owner="CallbackList")
        self._history: Any = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar: Any = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        if model is not None:
            if not hasattr(model, "get_weights"):
                raise TypeError(f"CallbackList: `model` must be an npnet model or None, received {model!r}")
            self.set_model(model)
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"CallbackList: `params` must be a dict or None, received {params!r}")
        merged = {**(params or {}), **kwargs}
        if merged:
            self.set_params(merged)

    def set_model(self, model):
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)


def _make_dispatch(hook: str) -> Callable:
    if hook in _INDEXED_HOOKS:
        def dispatch(self: CallbackList, index: int, logs: dict | None = None) -> None:
            logs = {} if logs is None else dict(logs)
            for cb in self.callbacks:
                getattr(cb, hook)(index, logs)
    else:
        def dispatch(self: CallbackList, logs: dict | None = None) -> None:  # type: ignore[misc]
            logs = {} if logs is None else dict(logs)
            for cb in self.callbacks:
                getattr(cb, hook)(logs)

    dispatch.__name__ = hook
    dispatch.__doc__ = f"Call ``{hook}`` of every callback, in order."
    return dispatch


for _hook in _HOOKS:
    setattr(CallbackList, _hook, _make_dispatch(_hook))


class History(Callback):
    """Records the per-epoch logs; ``fit`` always attaches one and returns it.

    Attributes
    ----------
    history : dict of str to list of float
        ``loss``, each metric and their ``val_`` counterparts, one entry per epoch.
    epoch : list of int
        The epoch indices that ran.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _resolve_mode(mode: str, monitor: str, owner: str) -> str:
    check_choice(mode, "mode", ["auto", "min", "max"], owner=owner)
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if ("acc" in name or name.endswith("auc") or name.startswith("auc")) else "min"


class _Monitoring(Callback):
    """Shared monitor handling: mode, comparison with min_delta, warning on a missing key."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{owner}: `monitor` must be a metric name such as 'val_loss', received {monitor!r}")
        self.monitor = monitor
        self.mode = mode
        self._mode = _resolve_mode(mode, monitor, owner)
        self.min_delta = abs(check_float(min_delta, "min_delta", owner=owner))

    def _better(self, current: float, reference: float) -> bool:
        if self._mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def _worst(self) -> float:
        return math.inf if self._mode == "min" else -math.inf

    def _get(self, logs: dict | None) -> float | None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__}: monitor {self.monitor!r} is not in the logs; "
                f"available keys: {sorted(logs)}",
                RuntimeWarning,
                stacklevel=3,
            )
        elif np.ndim(value) != 0:
            raise ValueError(
                f"{type(self).__name__}: monitor {self.monitor!r} has one value per class "
                f"({np.shape(value)}), and a callback needs one number to compare; monitor a scalar, for example "
                "F1Score(average='macro') instead of average=None")
        return value


class EarlyStopping(_Monitoring):
    """Stop training when a monitored value has stopped improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float, default 0
        An improvement must beat the best value by more than this.
    patience : int, default 0
        Epochs without improvement after which training stops.
    verbose : int, default 0
    mode : {"auto", "min", "max"}
        "auto" maximises names containing "acc" or "auc" and minimises the rest.
    baseline : float, optional
        Training stops if the value does not beat the baseline within ``patience`` epochs.
    restore_best_weights : bool, default False
        At the end of training, load the weights of the best epoch. This happens whether
        or not patience ran out.
    start_from_epoch : int, default 0
        Epochs to wait before monitoring starts (a warm-up).

    Attributes
    ----------
    stopped_epoch : int
        The epoch at which training was stopped (0 if it was not).
    best_epoch : int
        The epoch with the best monitored value.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        owner = type(self).__name__
        self.patience = check_int(patience, "patience", minimum=0, owner=owner)
        self.verbose = check_verbose(verbose, owner=type(self).__name__)
        self.baseline = None if baseline is None else check_float(baseline, "baseline", owner=owner)
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights", owner=owner)
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", minimum=0, owner=owner)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._worst()
        self.best_weights: list[np.ndarray] | None = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._get(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def check_callbacks(callbacks: Any, owner: str) -> list[Callback]:
    """``callbacks`` as a list, or a TypeError naming the argument (a lone callback, not in a list, too)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        raise TypeError(f"{owner}: `callbacks` must be a list of callbacks, received a single "
                        f"{type(callbacks).__name__}; pass it in a list: callbacks=[{type(callbacks).__name__}(...)]")
    if isinstance(callbacks, (str, bytes, dict, np.ndarray)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"{owner}: `callbacks` must be a list of npnet.callbacks.Callback objects, received "
                        f"{callbacks!r} of type {type(callbacks).__name__}")
    out = list(callbacks)
    for cb in out:
        if not isinstance(cb, Callback):
            raise TypeError(f"{owner}: `callbacks` must hold npnet.callbacks.Callback objects, received {cb!r}")
    return out


def _check_save_freq(save_freq: Any, owner: str) -> str | int:
    """``"epoch"`` or a positive number of batches."""
    if isinstance(save_freq, str) and save_freq == "epoch":
        return "epoch"
    if isinstance(save_freq, (int, np.integer)) and not isinstance(save_freq, bool) and save_freq >= 1:
        return int(save_freq)
    raise ValueError(
        f"{owner}: `save_freq` must be 'epoch' or a positive number of batches, received {save_freq!r}")


class ModelCheckpoint(_Monitoring):
    """Save the model (or its weights) at the end of every epoch, or every ``save_freq`` batches.

    Parameters
    ----------
    filepath : str or path
        May hold ``str.format`` fields filled from ``epoch`` (1-based), ``batch`` (1-based
        within the epoch; only for saves made every ``save_freq`` batches) and the logs:
        ``"ckpt-{epoch:02d}-{val_loss:.4f}.npnet"``. Missing parent folders are created.
    monitor : str, default "val_loss"
    verbose : int, default 0
        1 prints a line each time the callback saves (or decides not to).
    save_best_only : bool, default False
        Save only when the monitored value improves on the best so far. When the monitored
        key is not in the logs, the model is saved anyway, with a warning (as in Keras).
    save_weights_only : bool, default False
        Save with ``save_weights`` rather than ``save``.
    mode : {"auto", "min", "max"}
    save_freq : "epoch" or int, default "epoch"
        ``"epoch"`` saves after each epoch; an integer ``n`` saves after every ``n``
        training batches, counted across epochs (``n=3`` with 4 batches per epoch saves
        after batch 3 of epoch 1, batch 2 of epoch 2, batch 1 of epoch 3, ...). A batch save reads the
        batch logs: running averages over the epoch so far, without ``val_`` keys.
    initial_value_threshold : float, optional
        With ``save_best_only``, a value the first saved epoch must beat.

    Every file is written atomically: a crash mid-write leaves the previous file intact.

    Examples
    --------
    >>> import os, tempfile, numpy as np, npnet
    >>> model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)], seed=0)
    >>> model.compile("sgd", "mse")
    >>> folder = tempfile.mkdtemp()
    >>> ckpt = npnet.callbacks.ModelCheckpoint(os.path.join(folder, "ckpt", "e{epoch}-b{batch}.npnet"),
    ...                                        save_freq=3)
    >>> _ = model.fit(np.zeros((16, 2)), np.zeros((16, 1)), batch_size=4, epochs=2,
    ...               callbacks=[ckpt], verbose=0)
    >>> sorted(os.listdir(os.path.join(folder, "ckpt")))
    ['e1-b3.npnet', 'e2-b2.npnet']
    """

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, 0.0)
        self.filepath = check_path(filepath, "filepath", owner="ModelCheckpoint")
        self.verbose = check_verbose(verbose, owner=type(self).__name__)
        self.save_best_only = check_bool(save_best_only, "save_best_only", owner="ModelCheckpoint")
        self.save_weights_only = check_bool(save_weights_only, "save_weights_only", owner="ModelCheckpoint")
        self.save_freq = _check_save_freq(save_freq, "ModelCheckpoint")
        self.initial_value_threshold = (
            None if initial_value_threshold is None
            else check_float(initial_value_threshold, "initial_value_threshold", owner="ModelCheckpoint"))
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = self._worst() if self.initial_value_threshold is None else float(self.initial_value_threshold)
        self._batches_since_save = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch: int, batch: int | None, logs: dict) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"ModelCheckpoint: cannot fill `filepath` {self.filepath!r} from {sorted(fields)}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def _save(self, epoch: int, batch: int | None, logs: dict | None) -> None:
        logs = dict(logs or {})
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"ModelCheckpoint: monitor {self.monitor!r} is not in the logs, so the model is saved "
                    f"without comparison; available keys: {sorted(logs)}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            elif np.ndim(current) != 0:
                self._get(logs)  # raises: one value per class is not something to compare
            elif self._better(current, self.best):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                          f"saving model to {path}")
                self.best = current
            else:
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(_Monitoring):
    """Multiply the learning rate by ``factor`` when the monitored value stops improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
    factor : float in (0, 1), default 0.1
    patience : int, default 10
        Epochs without improvement before the rate is reduced.
    verbose : int, default 0
    mode : {"auto", "min", "max"}
    min_delta : float, default 1e-4
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again.
    min_lr : float, default 0
        The rate never goes below this.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        owner = type(self).__name__
        self.factor = check_float(factor, "factor", low=0.0, high=1.0, low_inclusive=False,
                                  high_inclusive=False, owner=owner)
        self.patience = check_int(patience, "patience", minimum=0, owner=owner)
        self.verbose = check_verbose(verbose, owner=type(self).__name__)
        self.cooldown = check_int(cooldown, "cooldown", minimum=0, owner=owner)
        self.min_lr = check_float(min_lr, "min_lr", low=0.0, owner=owner)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = self._worst()
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
        current = self._get(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.learning_rate
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:g}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from ``schedule(epoch, lr)``.

    ``schedule`` takes the 0-based epoch index and the current rate and returns the new
    rate; a one-argument ``schedule(epoch)`` works too.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: `schedule` must be callable, received {schedule!r}")
        self.schedule = schedule
        self.verbose = check_verbose(verbose, owner=type(self).__name__)

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        try:
            new = self.schedule(epoch, lr)
        except TypeError:
            new = self.schedule(epoch)
        new = check_float(new, "schedule(epoch) result", low=0.0, owner="LearningRateScheduler")
        self.model.optimizer.learning_rate = new
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new:g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class CSVLogger(Callback):
    """Write one row per epoch (``epoch`` then the log keys in sorted order) to a CSV file.

    Parameters
    ----------
    filename : str or path
    separator : str, default ","
    append : bool, default False
        Append to an existing file (without repeating its header) instead of overwriting it.
    """

    def __init__(self, filename: Any, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        owner = "CSVLogger"
        self.filename = check_path(filename, "filename", owner=owner)
        if not isinstance(separator, str) or len(separator) != 1:
            raise (TypeError if not isinstance(separator, str) else ValueError)(
                f"{owner}: `separator` must be a one-character string such as ',' or ';', received {separator!r}")
        if separator in "\r\n" or separator == '"':
            raise ValueError(f"{owner}: `separator` cannot be a quote or a line break, received {separator!r}")
        self.separator = separator
        self.append = check_bool(append, "append", owner=owner)
        self._file = None
        self._writer = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._header_needed = not (self.append and exists)
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self._writer = None
        self._keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if self._header_needed:
                self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [logs.get(k, "NA") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """Build a callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Accepts any hook name of :class:`Callback` as a keyword.
    """

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        super().__init__()
        for name, fn in hooks.items():
            if name not in _HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; known hooks: {sorted(_HOOKS)}")
            if not callable(fn):
                raise TypeError(f"LambdaCallback: `{name}` must be callable, received {fn!r}")
            setattr(self, name, fn)


class ProgbarLogger(Callback):
    """Print the progress of ``fit``: ``Epoch i/n``, then a bar per epoch.

    ``fit`` adds one by itself when ``verbose`` is not 0, as Keras does; if the
    ``callbacks`` list already holds a ProgbarLogger, ``fit`` uses that one and draws no
    other. The ``verbose`` of ``fit`` chooses the form: 1 redraws a bar in place on a
    terminal (at most ten times a second) and writes one line per epoch elsewhere; 2
    writes one line per epoch; 0 prints nothing. The bar shows the running means of the
    loss and metrics; the final line of an epoch adds the validation values.

    ``evaluate`` and ``predict`` draw their own bar; this callback draws only inside
    ``fit``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)], seed=0)
    >>> model.compile("sgd", "mse")
    >>> _ = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=4, verbose=2,
    ...               callbacks=[npnet.callbacks.ProgbarLogger()])  # doctest: +ELLIPSIS
    Epoch 1/1
    2/2 - ...ms/step - loss: 0.0000
    """

    def __init__(self) -> None:
        super().__init__()
        self.verbose = 1
        self.epochs = 1
        self.target: int | None = None
        self.seen = 0
        self.progbar: ProgressBar | None = None

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        self.seen = 0
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=sys.stdout, flush=True)
        self.progbar = ProgressBar(self.target or 0, self.verbose)

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        if self.progbar is not None and self.progbar.target:  # a generator's length is known at the end
            self.progbar.update(self.seen, {k: v for k, v in (logs or {}).items() if k != "batch_loss"})

    def on_epoch_end(self, epoch, logs=None):
        if self.progbar is None:
            return
        if not self.target:
            self.progbar.target = self.seen
        self.progbar.finish({k: v for k, v in (logs or {}).items() if isinstance(v, (float, np.ndarray))})
        self.progbar = None


class BackupAndRestore(Callback):
    """Back up the training state, so that a killed ``fit`` started again resumes where it stopped.

    At the end of every epoch (or every ``save_freq`` batches) the callback writes the
    weights, the optimizer state (step count, slots and learning rate), the epoch and
    batch reached, ``fit``'s seed and the state of the random streams of the current
    epoch into ``backup_dir``. When ``fit`` starts with this callback and a backup is
    there, it loads it and ``fit`` continues from that point, with the seed of the
    interrupted run (even if that run drew its seed at random, ``seed=None``).

    Resuming is exact: npnet derives every shuffle, validation split, augmentation and
    dropout mask from ``(seed, epoch)``, and the backup holds everything else that
    changes during training, so the resumed run ends with weights bit-identical to those
    of a run that was never interrupted. Only the running loss and metrics of a partially
    done epoch restart from the resumed batch, and other callbacks start afresh (the
    counters of ``EarlyStopping`` or ``ReduceLROnPlateau``, for example).

    Parameters
    ----------
    backup_dir : str or path
        Folder for the backup, used by this callback alone. Created if missing.
    save_freq : "epoch" or int, default "epoch"
        ``"epoch"``: back up after every epoch. An integer ``n``: back up after every
        ``n`` training batches, counted across epochs; a run killed mid-epoch then
        resumes mid-epoch, at the batch after the last backup.
    double_checkpoint : bool, default False
        Keep the previous backup too, and restore it if the latest cannot be read.
    delete_checkpoint : bool, default True
        Delete the backup when ``fit`` ends normally (also when a callback stopped it).
        A ``fit`` that raised or was stopped by Ctrl-C, or a process that was killed,
        leaves it in place.

    Every file is written atomically (to a temporary file that is then renamed), and the
    small state file that names the current backup is written last: a kill at any moment
    leaves the previous backup whole.

    Examples
    --------
    >>> import os, tempfile, numpy as np, npnet
    >>> backup = os.path.join(tempfile.mkdtemp(), "backup")
    >>> x, y = np.zeros((8, 2)), np.zeros((8, 1))
    >>> model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)], seed=0)
    >>> model.compile("sgd", "mse")
    >>> class Crash(npnet.callbacks.Callback):
    ...     def on_epoch_begin(self, epoch, logs=None):
    ...         if epoch == 2:
    ...             raise RuntimeError("interrupted")
    >>> try:
    ...     model.fit(x, y, epochs=5, verbose=0,
    ...               callbacks=[npnet.callbacks.BackupAndRestore(backup), Crash()])
    ... except RuntimeError:
    ...     pass
    >>> history = model.fit(x, y, epochs=5, verbose=0, callbacks=[npnet.callbacks.BackupAndRestore(backup)])
    >>> history.epoch  # epochs 0 and 1 were backed up; the run resumes at epoch 2
    [2, 3, 4]
    >>> os.path.exists(backup)
    False
    """

    _STATE_FILE = "training_state.json"
    _FORMAT = "npnet.backup"
    _FORMAT_VERSION = 1

    def __init__(self, backup_dir: Any, save_freq: str | int = "epoch", double_checkpoint: bool = False,
                 delete_checkpoint: bool = True) -> None:
        super().__init__()
        owner = "BackupAndRestore"
        if backup_dir is None or isinstance(backup_dir, str) and not backup_dir:
            raise ValueError(f"{owner}: `backup_dir` must be a folder path, received {backup_dir!r}")
        try:
            self.backup_dir = os.fspath(backup_dir)
        except TypeError:
            raise TypeError(f"{owner}: `backup_dir` must be a str or path, received {backup_dir!r}") from None
        self.save_freq = _check_save_freq(save_freq, owner)
        self.double_checkpoint = check_bool(double_checkpoint, "double_checkpoint", owner=owner)
        self.delete_checkpoint = check_bool(delete_checkpoint, "delete_checkpoint", owner=owner)
        self._entries: list[dict[str, Any]] = []
        self._generation = 0
        self._pending_rngs: dict[str, Any] | None = None
        self._pending_lr: float | None = None
        self._resumed_steps: int | None = None
        self._batches_since_save = 0
        self._save_at_epoch_end = False
        self._epoch = 0

    # ---------------------------------------------------------------- files
    def _file(self, name: str) -> str:
        return os.path.join(self.backup_dir, name)

    def _write_atomic(self, name: str, write: Callable[[IO[bytes]], Any]) -> None:
        from .saving import _atomic_write_file

        _atomic_write_file(self._file(name), write, "BackupAndRestore")

    def _own_files(self) -> list[str]:
        """Files of this callback in ``backup_dir`` (backups, the state file, leftovers of a
        write cut short); never anything else."""
        if not os.path.isdir(self.backup_dir):
            return []
        return [name for name in os.listdir(self.backup_dir)
                if name == self._STATE_FILE or _BACKUP_NAME.fullmatch(name) or _BACKUP_TEMP.fullmatch(name)
                or (name.startswith((".backup-", ".npnet-")) and name.endswith(".tmp"))]

    # ---------------------------------------------------------------- saving
    def _save(self, epoch: int, step: int) -> None:
        model = self.model
        seed = getattr(model, "_fit_seed", None)
        if not isinstance(seed, int):
            raise RuntimeError("BackupAndRestore: fit did not record its seed (model._fit_seed); "
                               "this callback works only inside Model.fit")
        os.makedirs(self.backup_dir, exist_ok=True)
        gen = self._generation + 1
        weights = f"weights-{gen}.npnet"
        model.save_weights(self._file(weights))
        optimizer: dict[str, Any] | None = None
        opt = model.optimizer
        if opt is not None and getattr(opt, "_shapes", None) is not None:
            state = opt.get_state()
            arrays = {f"{slot}/{i:05d}": a for slot, values in state["slots"].items() for i, a in enumerate(values)}
            optimizer = {"file": f"optimizer-{gen}.npz", "iterations": int(state["iterations"]),
                         "slots": {slot: len(values) for slot, values in state["slots"].items()},
                         "learning_rate": None if callable(opt._learning_rate) else float(opt.learning_rate)}
            self._write_atomic(optimizer["file"], lambda f: np.savez(f, **arrays))
        entry: dict[str, Any] = {"epoch": epoch, "step": step, "steps": self.params.get("steps"), "seed": seed,
                 "weights": weights, "optimizer": optimizer,
                 "rngs": {k: g.bit_generator.state for k, g in _random_streams(model).items()} if step else None}
        entries = [entry] + self._entries[:1] if self.double_checkpoint else [entry]
        header = {"format": self._FORMAT, "format_version": self._FORMAT_VERSION, "checkpoints": entries}
        text = json.dumps(header, indent=1).encode("utf-8")
        self._write_atomic(self._STATE_FILE, lambda f: f.write(text))
        self._entries, self._generation = entries, gen
        keep = {self._STATE_FILE} | {e["weights"] for e in entries} | {
            e["optimizer"]["file"] for e in entries if e["optimizer"]}
        for name in self._own_files():
            if name not in keep:
                os.remove(self._file(name))

    # ---------------------------------------------------------------- restoring
    def _resume_state(self, model: Any) -> dict[str, int] | None:
        """Load the backup into ``model`` and return where ``fit`` resumes:
        ``{"epoch", "step", "seed"}``, or None when there is no backup. ``fit`` calls this
        before it derives its random streams."""
        self._entries, self._generation = [], 0
        self._pending_rngs, self._pending_lr, self._resumed_steps = None, None, None
        path = self._file(self._STATE_FILE)
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as f:
                header = json.loads(f.read().decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != self._FORMAT:
                raise ValueError(f"{path!r} is not a backup state file")
            if header.get("format_version") != self._FORMAT_VERSION:
                raise ValueError(f"{path!r} has format version {header.get('format_version')!r}, "
                                 f"expected {self._FORMAT_VERSION}")
            entries = header.get("checkpoints")
            if not isinstance(entries, list) or not entries:
                raise ValueError(f"{path!r} lists no backup")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise self._corrupt(exc) from None
        errors: list[str] = []
        for entry in entries:
            try:
                resume = self._restore(model, entry)
            except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if errors:
                warnings.warn(f"BackupAndRestore: the latest backup in {self.backup_dir!r} cannot be read "
                              f"({errors[0]}); restored the previous one", RuntimeWarning, stacklevel=3)
            self._entries = entries
            self._generation = max(_generation_of(e) for e in entries)
            return resume
        raise self._corrupt(errors[0])

    def _corrupt(self, reason: Any) -> ValueError:
        return ValueError(
            f"BackupAndRestore: the backup in {self.backup_dir!r} is corrupt and cannot be restored ({reason}). "
            "Delete the folder to start training afresh")

    def _restore(self, model: Any, entry: Any) -> dict[str, int]:
        if not isinstance(entry, dict):
            raise ValueError("malformed backup entry")
        where: dict[str, int] = {}
        for key in ("epoch", "step", "seed"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"invalid {key} {value!r} in the state file")
            where[key] = value
        model.load_weights(self._file(str(entry["weights"])))
        optimizer = entry.get("optimizer")
        if optimizer is not None:
            slots: dict[str, list[np.ndarray]] = {}
            with np.load(self._file(str(optimizer["file"])), allow_pickle=False) as data:
                for slot, count in optimizer["slots"].items():
                    slots[slot] = [data[f"{slot}/{i:05d}"] for i in range(count)]
            opt = model.optimizer
            opt.set_state({"iterations": int(optimizer["iterations"]), "slots": slots}, model.trainable_weights)
            if optimizer.get("learning_rate") is not None and not callable(opt._learning_rate):
                opt.learning_rate = optimizer["learning_rate"]
        # Mid-epoch, the epoch's on_epoch_begin hooks run a second time (a LearningRateScheduler
        # would apply its step twice): the rate and the random streams are put back at the
        # first batch, after them.
        self._pending_rngs = entry.get("rngs") if where["step"] else None
        self._pending_lr = optimizer.get("learning_rate") if where["step"] and optimizer else None
        self._resumed_steps = entry.get("steps")
        return where

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._batches_since_save = 0
        self._save_at_epoch_end = False
        steps = self.params.get("steps")
        if self._pending_rngs is not None and self._resumed_steps != steps:
            raise ValueError(
                f"BackupAndRestore: the backup in {self.backup_dir!r} was made with {self._resumed_steps} batches "
                f"per epoch, this fit has {steps}; resume with the same data and batch_size, or delete the folder")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._pending_lr is not None:
            self.model.optimizer.learning_rate = self._pending_lr
            self._pending_lr = None
        if self._pending_rngs is not None:
            streams = _random_streams(self.model)
            if set(streams) != set(self._pending_rngs):
                raise ValueError(
                    f"BackupAndRestore: the backup in {self.backup_dir!r} holds the random streams "
                    f"{sorted(self._pending_rngs)}, the model has {sorted(streams)}")
            for key, g in streams.items():
                g.bit_generator.state = self._pending_rngs[key]
            self._pending_rngs = None

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            if batch + 1 >= (self.params.get("steps") or 0):
                self._save_at_epoch_end = True  # the epoch's last batch: back up once the epoch is over
            else:
                self._save(self._epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch" or self._save_at_epoch_end:
            self._save_at_epoch_end = False
            self._save(epoch + 1, 0)

    def on_train_end(self, logs=None):
        # A fit stopped by Ctrl-C keeps its backup, to be resumed.
        if not self.delete_checkpoint or getattr(self.model, "_interrupted", False):
            return
        for name in self._own_files():
            os.remove(self._file(name))
        self._entries, self._generation = [], 0
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)


_BACKUP_NAME = re.compile(r"(weights-[0-9]+\.npnet|optimizer-[0-9]+\.npz)")
# Temporary files of the backup's files (see npnet.saving._atomic_write_file).
_BACKUP_TEMP = re.compile(r"\.(weights-[0-9]+\.npnet|optimizer-[0-9]+\.npz|training_state\.json)"
                          r"\.npnet-tmp-[0-9]+-[0-9a-f]{8}")


def _generation_of(entry: dict[str, Any]) -> int:
    match = re.fullmatch(r"weights-([0-9]+)\.npnet", str(entry.get("weights")))
    return int(match.group(1)) if match else 0


def _random_streams(model: Any) -> dict[str, np.random.Generator]:
    """The random streams ``fit`` moves through during an epoch: the epoch's generator
    (shuffling and augmentation) and the ``_rng`` of every layer that draws its own
    (Dropout), keyed by position and class."""
    streams: dict[str, np.random.Generator] = {}
    fit_rng = getattr(model, "_epoch_rng", None)
    if isinstance(fit_rng, np.random.Generator):
        streams["fit"] = fit_rng
    for i, layer in enumerate(model._flatten_layers()):
        g = getattr(layer, "_rng", None)
        if isinstance(g, np.random.Generator):
            streams[f"{i}/{type(layer).__name__}"] = g  # names differ between instances; positions do not
    return streams
