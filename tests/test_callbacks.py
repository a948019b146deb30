"""Callbacks replayed on scripted logs: the exact epoch they stop at, the learning rate
they set, the files they write."""

import csv
import io
import math
import os
import re
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


# ---------------------------------------------------------------- Callback base and CallbackList


class Recorder(npnet.callbacks.Callback):
    """Records every hook call with its index and the type of its logs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, name, index, logs):
        self.calls.append((name, index, type(logs).__name__))


for _name in npnet.callbacks.Callback.__dict__:
    if _name.startswith("on_") and _name not in ("on_batch_begin", "on_batch_end"):
        if "batch" in _name or "epoch" in _name:
            setattr(Recorder, _name, lambda self, i, logs=None, _n=_name: self._record(_n, i, logs))
        else:
            setattr(Recorder, _name, lambda self, logs=None, _n=_name: self._record(_n, None, logs))


class BatchEndOnly(npnet.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_batch_begin(self, batch, logs=None):
        self.seen.append(("begin", batch, dict(logs)))

    def on_batch_end(self, batch, logs=None):
        self.seen.append(("end", batch, sorted(logs)))


def test_on_batch_end_alone_runs_after_every_training_batch(toy_data):
    x, y = toy_data
    cb = BatchEndOnly()
    _model().fit(x, y, epochs=2, batch_size=128, callbacks=[cb], verbose=0)  # 3 batches per epoch
    assert [(kind, batch) for kind, batch, _ in cb.seen] == [
        ("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2), ("end", 2)] * 2
    assert cb.seen[0][2] == {}  # a dict, not None
    assert cb.seen[1][2] == ["accuracy", "batch_loss", "loss"]


def test_overriding_the_train_batch_hook_replaces_the_alias(toy_data):
    class Both(BatchEndOnly):
        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(("train_end", batch, None))

    x, y = toy_data
    cb = Both()
    _model().fit(x, y, epochs=1, batch_size=150, callbacks=[cb], verbose=0)
    assert [(kind, batch) for kind, batch, _ in cb.seen] == [("begin", 0), ("train_end", 0), ("begin", 1),
                                                              ("train_end", 1)]


def test_every_hook_gets_a_dict_in_fit_evaluate_and_predict(toy_data):
    x, y = toy_data
    model = _model()
    rec = Recorder()
    model.fit(x, y, epochs=2, batch_size=150, validation_split=0.2, callbacks=[rec], verbose=0)
    model.evaluate(x, y, batch_size=200, callbacks=[rec], verbose=0)
    model.predict(x, batch_size=200, callbacks=[rec], verbose=0)
    assert {kind for _, _, kind in rec.calls} == {"dict"}
    names = [name for name, _, _ in rec.calls]
    validation = ["on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end"]  # 60 rows: one batch
    assert names == (["on_train_begin"] + (["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 2
                                           + validation + ["on_epoch_end"]) * 2 + ["on_train_end"]
                     + ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 2 + ["on_test_end"]
                     + ["on_predict_begin"] + ["on_predict_batch_begin", "on_predict_batch_end"] * 2
                     + ["on_predict_end"])


def test_callback_list_turns_none_into_a_dict_and_copies_logs():
    got = []
    first = LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(extra=1.0))
    second = LambdaCallback(on_epoch_end=lambda epoch, logs: got.append(logs),
                            on_train_begin=lambda logs: got.append(logs))
    cbs = npnet.callbacks.CallbackList([first, second])
    cbs.on_train_begin()
    mine = {"loss": 0.5}
    cbs.on_epoch_end(0, mine)
    assert got == [{}, {"loss": 0.5, "extra": 1.0}]  # later callbacks see what earlier ones added
    assert mine == {"loss": 0.5}  # the caller's dict is untouched


def test_callback_list_adds_history_and_progbar_like_keras():
    model = FakeModel()
    cbs = npnet.callbacks.CallbackList([], add_history=True, add_progbar=True, model=model, epochs=3, steps=4,
                                       verbose=2)
    kinds = [type(cb).__name__ for cb in cbs]
    assert kinds == ["History", "ProgbarLogger"]
    assert model.history is cbs.callbacks[0]
    assert cbs.callbacks[1].params == {"epochs": 3, "steps": 4, "verbose": 2}
    mine = npnet.callbacks.ProgbarLogger()
    cbs = npnet.callbacks.CallbackList([mine], add_history=True, add_progbar=True)
    assert [type(cb).__name__ for cb in cbs] == ["ProgbarLogger", "History"] and cbs.callbacks[0] is mine


# ---------------------------------------------------------------- ProgbarLogger


def test_fit_output_at_verbose_2_is_pinned(toy_data, capsys):
    x, y = toy_data
    _model().fit(x, y, epochs=2, batch_size=64, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    number = r"\d+\.\d{4}"
    epoch_line = (rf"4/4 - \d+s \d+ms/step - loss: {number} - accuracy: {number} - val_loss: {number} "
                  rf"- val_accuracy: {number}")
    assert len(lines) == 4
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(epoch_line, lines[1]) and re.fullmatch(epoch_line, lines[3])


def test_a_progbar_logger_passed_by_the_user_replaces_the_default(toy_data, capsys):
    class Counting(npnet.callbacks.ProgbarLogger):
        epochs_drawn = 0

        def on_epoch_end(self, epoch, logs=None):
            Counting.epochs_drawn += 1
            super().on_epoch_end(epoch, logs)

    x, y = toy_data
    _model().fit(x, y, epochs=3, verbose=2, callbacks=[Counting()])
    lines = capsys.readouterr().out.splitlines()
    assert Counting.epochs_drawn == 3
    assert len([line for line in lines if line.startswith("10/10 - ")]) == 3  # one bar, not two
    assert len([line for line in lines if line.startswith("Epoch ")]) == 3
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[Counting()])
    assert capsys.readouterr().out == ""  # verbose=0 silences it, as in Keras
    assert Counting.epochs_drawn == 5


def test_progress_bar_on_a_terminal_shows_running_means_not_batch_loss(toy_data, monkeypatch):
    stream = TtyStream()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(npnet.callbacks.ProgressBar, "min_interval", 0.0)  # draw every step
    x, y = toy_data
    _model().fit(x, y, epochs=1, batch_size=100, verbose=1)
    frames = stream.getvalue().split("\r")
    assert frames[0] == "Epoch 1/1\n"
    assert [f.split(" [")[0] for f in frames[1:]] == ["1/3", "2/3", "3/3", "3/3"]
    assert "ETA" in frames[1] and "batch_loss" not in stream.getvalue()
    assert frames[-1].startswith("3/3 [==============================] - ") and frames[-1].endswith("\n")


# ---------------------------------------------------------------- ModelCheckpoint every N batches


def test_model_checkpoint_every_n_batches_counts_across_epochs(tmp_path, toy_data):
    x, y = toy_data
    ckpt = ModelCheckpoint(str(tmp_path / "new" / "nested" / "e{epoch}-b{batch:02d}.npnet"), save_freq=3)
    _model().fit(x, y, epochs=3, batch_size=75, callbacks=[ckpt], verbose=0)  # 4 batches per epoch
    # batches 1..12 overall; every third: batch 3 of epoch 1, 2 of epoch 2, 1 and 4 of epoch 3
    assert sorted(os.listdir(tmp_path / "new" / "nested")) == ["e1-b03.npnet", "e2-b02.npnet", "e3-b01.npnet",
                                                               "e3-b04.npnet"]


def test_model_checkpoint_every_batch_saves_that_batchs_weights(tmp_path, toy_data):
    x, y = toy_data
    model = _model()
    weights = {}
    record = LambdaCallback(on_train_batch_end=lambda batch, logs: weights.setdefault(batch, model.get_weights()))
    path = tmp_path / "w-{batch}.npnet"
    model.fit(x, y, epochs=1, batch_size=100, verbose=0,
              callbacks=[ModelCheckpoint(str(path), save_freq=1, save_weights_only=True), record])
    assert sorted(os.listdir(tmp_path)) == ["w-1.npnet", "w-2.npnet", "w-3.npnet"]
    for batch in range(3):
        other = _model(seed=5)
        other.load_weights(tmp_path / f"w-{batch + 1}.npnet")
        assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), weights[batch]))


def test_model_checkpoint_best_only_every_n_batches_monitors_batch_logs(tmp_path, toy_data):
    x, y = toy_data
    losses = []
    record = LambdaCallback(on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]))
    ckpt = ModelCheckpoint(str(tmp_path / "{epoch}-{batch}.npnet"), monitor="loss", save_best_only=True, save_freq=2)
    _model().fit(x, y, epochs=3, batch_size=100, callbacks=[record, ckpt], verbose=0)
    # Keras' rule written out: every second batch, compare the running loss with the best so far
    expected, best = [], math.inf
    for i, loss in enumerate(losses):
        if (i + 1) % 2 == 0 and loss < best:
            best = loss
            expected.append(f"{i // 3 + 1}-{i % 3 + 1}.npnet")
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    assert len(expected) >= 2


def test_model_checkpoint_best_only_saves_with_a_warning_when_monitor_is_missing(tmp_path, toy_data):
    x, y = toy_data
    ckpt = ModelCheckpoint(str(tmp_path / "b{batch}.npnet"), save_best_only=True, save_freq=2)  # val_loss: per epoch only
    with pytest.warns(RuntimeWarning, match=r"ModelCheckpoint: monitor 'val_loss' is not in the logs, so the model is "
                                            r"saved without comparison; available keys: \['accuracy', 'batch_loss', 'loss'\]"):
        _model().fit(x, y, epochs=1, batch_size=100, validation_split=0.2, callbacks=[ckpt], verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["b2.npnet"]  # 240 training samples: 3 batches


def test_model_checkpoint_epoch_saves_create_folders_and_refuse_batch_field(tmp_path, toy_data):
    x, y = toy_data
    _model().fit(x, y, epochs=2, callbacks=[ModelCheckpoint(str(tmp_path / "a" / "b" / "m{epoch}.npnet"))], verbose=0)
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["m1.npnet", "m2.npnet"]
    with pytest.raises(ValueError, match=r"ModelCheckpoint: cannot fill `filepath` '.*m\{batch\}.npnet' from "
                                         r"\['accuracy', 'epoch', 'loss'\]: KeyError: 'batch'"):
        _model().fit(x, y, epochs=1, callbacks=[ModelCheckpoint(str(tmp_path / "m{batch}.npnet"))], verbose=0)


def test_model_checkpoint_verbose_messages(tmp_path, capsys):
    cb = ModelCheckpoint(str(tmp_path / "m.npnet"), save_best_only=True, verbose=1)
    replay(cb, [0.5, 0.7])
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Epoch 1: val_loss improved from inf to 0.50000, saving model to {tmp_path / 'm.npnet'}",
                   "Epoch 2: val_loss did not improve from 0.50000"]
    replay(ModelCheckpoint(str(tmp_path / "m.npnet"), verbose=1), [0.5])
    assert capsys.readouterr().out == f"Epoch 1: saving model to {tmp_path / 'm.npnet'}\n"


@pytest.mark.parametrize("save_freq", [0, -1, "sometimes", "batch", True, 1.5, None])
def test_model_checkpoint_rejects_bad_save_freq(save_freq):
    with pytest.raises(ValueError, match=rf"ModelCheckpoint: `save_freq` must be 'epoch' or a positive number of "
                                         rf"batches, received {re.escape(repr(save_freq))}"):
        ModelCheckpoint("m.npnet", save_freq=save_freq)


def test_model_checkpoint_keras_argument_order():
    cb = ModelCheckpoint("m.npnet", "loss", 1, True, True, "min", 5, 0.3)
    assert (cb.monitor, cb.verbose, cb.save_best_only, cb.save_weights_only, cb.mode, cb.save_freq,
            cb.initial_value_threshold) == ("loss", 1, True, True, "min", 5, 0.3)
    with pytest.raises(TypeError, match=r"ModelCheckpoint: `filepath` must be a str or path, received None"):
        ModelCheckpoint(None)


@pytest.mark.parametrize("make", [
    lambda: npnet.callbacks.EarlyStopping(monitor="f1_score", mode="max"),
    lambda: npnet.callbacks.ReduceLROnPlateau(monitor="f1_score", mode="max"),
    lambda: npnet.callbacks.ModelCheckpoint("/nonexistent/never-written.npnet", monitor="f1_score", mode="max",
                                            save_best_only=True),
])
def test_monitoring_a_per_class_metric_is_refused(make):
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0).astype(int)]
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile("sgd", "categorical_crossentropy", metrics=[npnet.metrics.F1Score(average=None)])
    with pytest.raises(ValueError, match=r"monitor 'f1_score' has one value per class \(\(2,\)\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[make()])


def test_progress_bar_draws_a_per_class_metric(monkeypatch):
    stream = TtyStream()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(npnet.callbacks.ProgressBar, "min_interval", 0.0)
    x = np.array([[1.0], [-1.0], [2.0], [-2.0]], np.float32)
    y = np.eye(2, dtype=np.float32)[[1, 0, 1, 0]]
    model = npnet.Sequential([npnet.Input(shape=(1,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), "categorical_crossentropy",
                  metrics=[npnet.metrics.F1Score(average=None)])
    model.set_weights([np.array([[-1.0, 1.0]], np.float32), np.zeros(2, np.float32)])  # every sample right
    model.fit(x, y, epochs=1, batch_size=2, verbose=1, shuffle=False)
    frames = stream.getvalue().split("\r")
    assert "f1_score: [1.0000 1.0000]" in frames[1] and frames[-1].rstrip().endswith("f1_score: [1.0000 1.0000]")
