"""The callback hooks fit, evaluate and predict call, and the log keys compile accepts."""

import numpy as np
import pytest

import npnet

X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)
HOOKS = sorted(name for name in vars(npnet.callbacks.Callback) if name.startswith("on_"))


class Recorder(npnet.callbacks.Callback):
    """Records every hook with the logs it received (None if it received none)."""

    def __init__(self):
        super().__init__()
        self.calls = []


def _record(name):
    def hook(self, *args):
        self.calls.append((name, args[-1] if args and isinstance(args[-1], (dict, type(None))) else None))
    return hook


for _name in HOOKS:
    setattr(Recorder, _name, _record(_name))


def _model(**compile_kwargs):
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy", **compile_kwargs)
    return model


def test_stop_training_in_on_train_batch_end_stops_after_that_batch():
    class StopAt(npnet.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if batch == 2:
                self.model.stop_training = True

    stop = StopAt()
    h = _model().fit(X, Y, batch_size=2, epochs=4, verbose=0, callbacks=[stop], validation_data=(X, Y))
    assert stop.batches == 3
    assert len(h.history["loss"]) == 1 and "val_loss" in h.history  # the epoch still ends as in Keras


def test_fit_runs_the_validation_hooks_in_keras_order():
    rec = Recorder()
    _model().fit(X, Y, batch_size=5, epochs=1, verbose=0, callbacks=[rec], validation_data=(X, Y),
                 validation_batch_size=4)
    names = [name for name, _ in rec.calls if not name.startswith("on_batch")]
    assert names == [
        "on_train_begin", "on_epoch_begin",
        "on_train_batch_begin", "on_train_batch_end", "on_train_batch_begin", "on_train_batch_end",
        "on_test_begin",
        "on_test_batch_begin", "on_test_batch_end", "on_test_batch_begin", "on_test_batch_end",
        "on_test_batch_begin", "on_test_batch_end",
        "on_test_end", "on_epoch_end", "on_train_end"]
    test_end = dict(rec.calls)["on_test_end"]
    assert set(test_end) == {"loss"}
    epoch_end = [logs for name, logs in rec.calls if name == "on_epoch_end"][0]
    assert epoch_end["val_loss"] == pytest.approx(test_end["loss"])


def test_every_hook_gets_a_dict_of_logs():
    rec = Recorder()
    model = _model(metrics=["accuracy"])
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[rec], validation_data=(X, Y))
    model.evaluate(X, Y, batch_size=4, verbose=0, callbacks=[rec])
    model.predict(X, batch_size=4, verbose=0, callbacks=[rec])
    called = {name for name, _ in rec.calls}
    assert {"on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_test_begin", "on_test_batch_begin",
            "on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end",
            "on_train_end", "on_test_end"} <= called
    assert [name for name, logs in rec.calls if not isinstance(logs, dict)] == []
    batch_end = [logs for name, logs in rec.calls if name == "on_predict_batch_end"]
    assert [logs["outputs"].shape for logs in batch_end] == [(4, 2), (4, 2), (2, 2)]


def test_data_sources_give_dict_logs_too():
    def batches():
        for lo in range(0, 10, 5):
            yield X[lo:lo + 5], Y[lo:lo + 5]

    rec = Recorder()
    model = _model()
    model.fit(batches(), verbose=0, callbacks=[rec])
    model.predict(batches(), verbose=0, callbacks=[rec])
    assert [name for name, logs in rec.calls if not isinstance(logs, dict)] == []
    assert sum(name == "on_train_batch_end" for name, _ in rec.calls) == 2
    assert sum(name == "on_predict_batch_end" for name, _ in rec.calls) == 2


def test_a_metric_named_loss_is_refused_at_compile():
    class Named(npnet.metrics.SparseCategoricalAccuracy):
        pass

    with pytest.raises(ValueError, match=r"compile: a metric is named 'loss', the key of the loss"):
        _model(metrics=[Named(name="loss")])


def _two_outputs(metrics, names=("a", "b")):
    inp = npnet.Input(shape=(3,))
    outs = {n: npnet.layers.Dense(2, activation="softmax", name=n)(inp) for n in names}
    model = npnet.Model(inp, outs)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=metrics)
    return model


def test_log_keys_that_clash_are_refused_at_compile():
    acc = npnet.metrics.SparseCategoricalAccuracy
    # "a" + "b_acc" and "a_b" + "acc" both log "a_b_acc".
    with pytest.raises(ValueError, match=r"compile: the log keys \['a_b_acc'\] would be written twice"):
        _two_outputs({"a": [acc(name="b_acc")], "a_b": [acc(name="acc")]}, names=("a", "a_b"))
    # A metric of output "a" named "loss" would log "a_loss", the output's loss.
    with pytest.raises(ValueError, match=r"compile: a metric is named 'loss'"):
        _two_outputs({"a": [acc(name="loss")]})
    # Output "a"'s metric "b_loss" -> "a_b_loss"; fine. A metric logged as "val_..." of another key clashes.
    with pytest.raises(ValueError, match=r"compile: the log keys \['val_acc'\] would be written twice"):
        _model(metrics=[acc(name="acc"), acc(name="val_acc")])
    with pytest.raises(ValueError, match=r"compile: the log keys \['acc'\] would be written twice"):
        _model(metrics=[acc(name="acc"), acc(name="acc")])
    _two_outputs({"a": [acc(name="b_loss")]})  # "a_b_loss" clashes with nothing


def test_a_metric_named_loss_is_refused_at_compile_for_a_subclassed_model_too():
    class Net(npnet.Model):
        def __init__(self):
            super().__init__()
            self.dense = npnet.layers.Dense(1)

        def call(self, x, training=False):
            return self.dense(x)

    net = Net()
    with pytest.raises(ValueError, match=r"compile: a metric is named 'loss'"):
        net.compile("sgd", "mse", metrics=[npnet.metrics.MeanSquaredError(name="loss")])
    assert not net.compiled


def test_a_refused_compile_leaves_the_model_as_it_was():
    model = _model(metrics=["accuracy"])
    optimizer, metrics = model.optimizer, model.metrics
    with pytest.raises(ValueError, match=r"compile: the log keys \['acc'\] would be written twice"):
        acc = npnet.metrics.SparseCategoricalAccuracy
        model.compile("adam", "sparse_categorical_crossentropy", metrics=[acc(name="acc"), acc(name="acc")])
    assert model.optimizer is optimizer and model.metrics == metrics
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    assert sorted(model.fit(x, (x[:, 0] > 0).astype(int), verbose=0).history) == ["accuracy", "loss"]
