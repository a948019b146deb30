"""Callbacks replayed on scripted logs: the exact epoch they stop at, the learning rate
they set, the files they write."""

import csv
import io
import math
import sys
import warnings

import numpy as np
import pytest

import npnet
from npnet.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


class FakeModel:
    """Just enough of a model for callbacks: weights are a counter we can read back."""

    def __init__(self):
        self.stop_training = False
        self.optimizer = npnet.SGD(learning_rate=1.0)
        self.weights_version = 0
        self.saved = []

    def get_weights(self):
        return [np.array(self.weights_version)]

    def set_weights(self, w):
        self.weights_version = int(w[0])

    def save(self, path):
        self.saved.append(("model", path))

    def save_weights(self, path):
        self.saved.append(("weights", path))


def replay(cb, values, key="val_loss", model=None):
    """Run epochs with logs {key: value}; return the last epoch that ran and the model."""
    model = model or FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    last = None
    for epoch, v in enumerate(values):
        model.weights_version = epoch
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {key: v})
        last = epoch
        if model.stop_training:
            break
    cb.on_train_end()
    return last, model


def test_early_stopping_stops_after_patience():
    # best at epoch 1 (0.5); epochs 2, 3 do not improve -> stop at epoch 3 with patience 2
    last, _ = replay(EarlyStopping(patience=2), [1.0, 0.5, 0.6, 0.55, 0.1])
    assert last == 3


def test_early_stopping_patience_zero_stops_at_first_non_improvement():
    last, _ = replay(EarlyStopping(), [3.0, 2.0, 2.5, 1.0])
    assert last == 2


def test_early_stopping_min_delta_and_max_mode():
    # gains of 0.02 are below min_delta = 0.05: epoch 1 counts as no improvement
    values = [0.5, 0.52, 0.54, 0.9]
    last, _ = replay(EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1), values, key="val_accuracy")
    assert last == 1
    last, _ = replay(EarlyStopping(monitor="val_accuracy", patience=1), values, key="val_accuracy")
    assert last == 3


def test_early_stopping_restores_best_even_without_stopping():
    cb = EarlyStopping(patience=10, restore_best_weights=True)
    last, model = replay(cb, [1.0, 0.3, 0.4, 0.5])
    assert last == 3  # never stopped
    assert model.weights_version == 1 and cb.best_epoch == 1


def test_early_stopping_restores_best_when_stopping():
    cb = EarlyStopping(patience=1, restore_best_weights=True)
    last, model = replay(cb, [1.0, 0.3, 0.4, 0.5, 0.1])
    assert last == 2 and model.weights_version == 1 and cb.stopped_epoch == 2


def test_early_stopping_baseline_and_start_from_epoch():
    # As Keras: an epoch that improves on the best but not on the baseline does not reset
    # the wait; so with baseline 0.2 and patience 2, the first non-improving epoch stops.
    last, _ = replay(EarlyStopping(patience=2, baseline=0.2), [0.9, 0.95, 0.97, 0.1])
    assert last == 1
    last, _ = replay(EarlyStopping(patience=2), [0.9, 0.95, 0.97, 0.1])
    assert last == 2
    # epochs before start_from_epoch are ignored
    last, _ = replay(EarlyStopping(patience=0, start_from_epoch=3), [1.0, 2.0, 3.0, 1.0, 2.0, 0.5])
    assert last == 4


def test_early_stopping_is_reusable_across_fits():
    cb = EarlyStopping(patience=1)
    assert replay(cb, [1.0, 2.0, 3.0])[0] == 1
    assert replay(cb, [5.0, 4.0, 3.0, 2.0])[0] == 3  # state was reset: runs to the end


def test_missing_monitor_warns_and_lists_keys():
    cb = EarlyStopping(monitor="val_acc")
    with pytest.warns(RuntimeWarning, match=r"monitor 'val_acc' is not in the logs; available keys: \['val_loss'\]"):
        replay(cb, [1.0, 2.0])


def test_bad_mode_raises():
    with pytest.raises(ValueError, match=r"EarlyStopping: `mode` must be one of \['auto', 'min', 'max'\], received 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: `factor` must be in \(0, 1\)"):
        ReduceLROnPlateau(factor=1.0)


def test_auto_mode_maximises_accuracy():
    assert EarlyStopping(monitor="val_accuracy")._mode == "max"
    assert EarlyStopping(monitor="val_loss")._mode == "min"


def test_reduce_lr_on_plateau_schedule():
    cb = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.2, min_delta=0.0)
    model = FakeModel()
    lrs = []
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, v in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": v}
        cb.on_epoch_end(epoch, logs)
        lrs.append(model.optimizer.learning_rate)
        assert "learning_rate" in logs
    # Keras' rule: after 2 flat epochs -> 0.5 (epoch 2). The cooldown epoch (3) resets the wait, but
    # the counter is already 0 when it is tested, so epoch 3 counts: 0.25 at epoch 4, then the
    # floor 0.2 at epoch 6, after which nothing changes.
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]


def test_learning_rate_scheduler_sets_rate_each_epoch():
    model = FakeModel()
    cb = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr)
    seen = []
    cb.set_model(model)
    for epoch in range(4):
        cb.on_epoch_begin(epoch)
        seen.append(model.optimizer.learning_rate)
    assert seen == [1.0, 0.5, 0.25, 0.125]
    one_arg = LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))
    one_arg.set_model(model)
    one_arg.on_epoch_begin(2)
    assert model.optimizer.learning_rate == pytest.approx(0.3)


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    replay(CSVLogger(path), [0.5, 0.25])
    rows = list(csv.reader(open(path)))
    assert rows == [["epoch", "val_loss"], ["0", "0.5"], ["1", "0.25"]]
    replay(CSVLogger(path, append=True), [0.125])
    rows = list(csv.reader(open(path)))
    assert rows[-1] == ["0", "0.125"] and len(rows) == 4


def test_model_checkpoint_formats_paths_and_saves_best_only(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.npnet"), save_best_only=True)
    _, model = replay(cb, [0.5, 0.7, 0.25])
    assert model.saved == [("model", str(tmp_path / "m-01-0.50.npnet")), ("model", str(tmp_path / "m-03-0.25.npnet"))]
    cb = ModelCheckpoint(str(tmp_path / "w.npnet"), save_weights_only=True)
    _, model = replay(cb, [0.5, 0.7])
    assert model.saved == [("weights", str(tmp_path / "w.npnet"))] * 2
    with pytest.raises(ValueError, match=r"cannot fill `filepath`"):
        replay(ModelCheckpoint(str(tmp_path / "{val_acc}.npnet")), [0.5])


def test_terminate_on_nan_and_lambda():
    model = FakeModel()
    cb = TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    cb.on_train_batch_end(1, {"loss": math.nan})
    assert model.stop_training
    calls = []
    lam = LambdaCallback(on_epoch_end=lambda e, logs: calls.append(e))
    replay(lam, [1.0, 2.0])
    assert calls == [0, 1]
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_finish'"):
        LambdaCallback(on_epoch_finish=print)


def _model(seed=0):
    m = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, activation="relu"),
                          npnet.Dense(3, activation="softmax")], seed=seed)
    m.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_hooks_fire_in_keras_order_during_fit(toy_data):
    x, y = toy_data
    events = []
    hooks = {h: (lambda *a, h=h: events.append(h)) for h in
             ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
              "on_epoch_end", "on_train_end"]}
    _model().fit(x, y, epochs=2, batch_size=150, callbacks=[LambdaCallback(**hooks)], verbose=0)
    assert events == (["on_train_begin"] + (["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 2
                                            + ["on_epoch_end"]) * 2 + ["on_train_end"])


def test_early_stopping_in_real_fit_restores_best_weights(toy_data):
    x, y = toy_data
    model = _model()
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append((logs["val_loss"], model.get_weights())))
    es = EarlyStopping(patience=2, restore_best_weights=True)
    model.fit(x, y, epochs=40, validation_split=0.3, callbacks=[record, es], seed=0, verbose=0)
    best_loss, best_weights = min(snapshots, key=lambda s: s[0])
    assert all(np.array_equal(a, b) for a, b in zip(best_weights, model.get_weights()))
    assert es.best == best_loss


def test_reduce_lr_changes_the_optimizer_in_fit(toy_data):
    x, y = toy_data
    model = _model()
    h = model.fit(x, y, epochs=3, callbacks=[ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10.0)],
                  verbose=0)
    # the logged rate is the one used during the epoch; the cut applies from the next epoch
    assert h.history["learning_rate"] == [0.01, 0.01, 0.005]
    assert model.optimizer.learning_rate == 0.0025


class TtyStream(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_in_place_on_a_terminal_and_is_throttled(toy_data, monkeypatch):
    x, y = toy_data
    stream = TtyStream()
    monkeypatch.setattr(sys, "stdout", stream)
    model = _model()
    x_big, y_big = np.repeat(x, 10, axis=0), np.repeat(y, 10)
    model.fit(x_big, y_big, epochs=1, batch_size=3, verbose=1)  # 1000 steps
    out = stream.getvalue()
    assert "Epoch 1/1" in out
    redraws = out.count("\r")
    assert 1 <= redraws < 200, redraws  # far fewer than 1000 steps
    assert "1000/1000 [==============================]" in out and "ms/step" in out and "accuracy: " in out
    stream.truncate(0)
    stream.seek(0)
    model.evaluate(x, y, verbose=1)
    assert "10/10 [====" in stream.getvalue()


def test_verbose_2_is_one_line_per_epoch(toy_data, capsys):
    x, y = toy_data
    _model().fit(x, y, epochs=3, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("10/10 - ")]
    assert len(lines) == 3


def test_fit_rejects_non_callbacks(toy_data):
    x, y = toy_data
    with pytest.raises(TypeError, match="`callbacks` must hold npnet.callbacks.Callback objects"):
        _model().fit(x, y, callbacks=[print], verbose=0)


def test_no_warning_when_monitor_present(toy_data):
    x, y = toy_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().fit(x, y, epochs=2, validation_split=0.2, callbacks=[EarlyStopping()], verbose=0)
