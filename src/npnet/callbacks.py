"""Callbacks: hooks into ``fit`` with Keras' names and arguments.

A callback gets ``set_model(model)`` before training and then the hooks below. It
resets its own state in ``on_train_begin``, so one instance can serve several ``fit``
calls. Setting ``model.stop_training = True`` ends training after the current epoch.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ._validation import check_choice, check_float, check_int

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
]


class Callback:
    """Base class; every hook does nothing by default.

    Attributes
    ----------
    model : Sequential
        Set by :meth:`set_model` before ``on_train_begin``.
    params : dict
        ``epochs``, ``steps`` and ``verbose`` of the current ``fit``.
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_begin(self, logs: dict | None = None) -> None: ...
    def on_test_end(self, logs: dict | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_begin(self, logs: dict | None = None) -> None: ...
    def on_predict_end(self, logs: dict | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList(Callback):
    """Forward every hook to each callback of a list, in order."""

    def __init__(self, callbacks: Iterable[Callback] | None = None, model: Any = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.callbacks = []
        for cb in callbacks or []:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: `callbacks` must hold npnet.callbacks.Callback objects, received {cb!r}")
            self.callbacks.append(cb)
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)


def _make_dispatch(hook: str) -> Callable:
    def dispatch(self: CallbackList, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    dispatch.__name__ = hook
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
        self.verbose = verbose
        self.baseline = None if baseline is None else check_float(baseline, "baseline", owner=owner)
        self.restore_best_weights = bool(restore_best_weights)
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


class ModelCheckpoint(_Monitoring):
    """Save the model (or its weights) at the end of epochs.

    Parameters
    ----------
    filepath : str or path
        May hold ``str.format`` fields filled from ``epoch`` (1-based) and the logs:
        ``"ckpt-{epoch:02d}-{val_loss:.4f}.npnet"``.
    monitor : str, default "val_loss"
    save_best_only : bool, default False
        Save only when the monitored value improves on the best so far.
    save_weights_only : bool, default False
        Save with ``save_weights`` rather than ``save``.
    mode : {"auto", "min", "max"}
    verbose : int, default 0
    initial_value_threshold : float, optional
        With ``save_best_only``, a value the first saved epoch must beat.

    Every file is written atomically: a crash mid-write leaves the previous file intact.
    """

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, 0.0)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.initial_value_threshold = initial_value_threshold
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = self._worst() if self.initial_value_threshold is None else float(self.initial_value_threshold)

    def _path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"ModelCheckpoint: cannot fill `filepath` {self.filepath!r} from epoch and logs "
                f"{sorted(logs)}: {exc}"
            ) from None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.save_best_only:
            current = self._get(logs)
            if current is None or not self._better(current, self.best):
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}")
            self.best = current
        path = self._path(epoch, logs)
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
        self.verbose = verbose
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
        self.verbose = verbose

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
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
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
