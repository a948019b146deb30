"""Keras' public names in npnet.saving: save_model, load_model, register_keras_serializable,
get_custom_objects."""

import numpy as np
import pytest

import npnet
from npnet import saving


def _model():
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2, activation="softmax", name="out")],
                             seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_save_model_and_the_three_load_model_names(tmp_path):
    model = _model()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0, seed=0)
    saving.save_model(model, tmp_path / "m.npnet")
    want = model.predict(x, verbose=0)
    for load in (saving.load_model, npnet.models.load_model, npnet.load_model):
        loaded = load(tmp_path / "m.npnet")
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
        assert loaded.compiled and loaded.optimizer.iterations == model.optimizer.iterations
    assert not saving.load_model(tmp_path / "m.npnet", compile=False).compiled


@saving.register_keras_serializable(package="Tests")
class SavingNamesScale(npnet.layers.Layer):
    """y = factor * x, a layer of the test's own."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def forward(self, x, training=False):
        return self._enter(x) * self.factor, ()

    def backward(self, cache, dy):
        return dy * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@saving.register_keras_serializable
class SavingNamesBare(npnet.layers.Layer):
    def forward(self, x, training=False):
        return self._enter(x), ()

    def backward(self, cache, dy):
        return dy


def test_register_keras_serializable_makes_a_layer_loadable(tmp_path):
    model = npnet.Sequential([npnet.Input(shape=(3,)), SavingNamesScale(3.0, name="scale"),
                              SavingNamesBare(name="bare")])
    saving.save_model(model, tmp_path / "m.npnet")
    loaded = saving.load_model(tmp_path / "m.npnet")
    assert isinstance(loaded.get_layer("scale"), SavingNamesScale) and loaded.get_layer("scale").factor == 3.0
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 3), np.float32), verbose=0), [[3.0, 3.0, 3.0]])
    custom = saving.get_custom_objects()
    assert custom["SavingNamesScale"] is SavingNamesScale and custom["SavingNamesBare"] is SavingNamesBare
    assert "Dense" not in custom and "Sequential" not in custom
    custom.clear()  # a copy: the registry is untouched
    assert saving.get_custom_objects()["SavingNamesScale"] is SavingNamesScale


def test_register_keras_serializable_with_the_class_name_and_bad_uses():
    class SavingNamesNamed(npnet.layers.Layer):
        pass

    assert saving.register_keras_serializable(name="SavingNamesNamed")(SavingNamesNamed) is SavingNamesNamed
    assert npnet.layers.get_layer_class("SavingNamesNamed") is SavingNamesNamed

    class Other(npnet.layers.Layer):
        pass

    with pytest.raises(ValueError, match=r"saves an object under its own name 'Other'; received name='Alias'"):
        saving.register_keras_serializable(name="Alias")(Other)

    class NotSaveable:
        pass

    with pytest.raises(TypeError, match=r"register_keras_serializable: npnet registers subclasses of "
                                        r"npnet.layers.Layer \(layers and models\), npnet.losses.Loss, "
                                        r"npnet.metrics.Metric, npnet.regularizers.Regularizer and "
                                        r"npnet.constraints.Constraint, and metric functions; received "
                                        r"<class .*NotSaveable'>"):
        saving.register_keras_serializable()(NotSaveable)
    with pytest.raises(TypeError, match=r"register_keras_serializable: .* received 3"):
        saving.register_keras_serializable()(3)
    with pytest.raises(TypeError, match=r"`package` must be a string, received 3"):
        saving.register_keras_serializable(package=3)
    with pytest.raises(TypeError, match=r"`name` must be a string or None, received 3"):
        saving.register_keras_serializable(name=3)


def saving_names_abs_error(y_true, y_pred):
    """|y_true - y_pred| averaged over the last axis: a plain metric function."""
    return np.mean(np.abs(np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)), axis=-1)


def _regression(metrics):
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2, name="out")], seed=0)
    model.compile(optimizer="sgd", loss="mse", metrics=metrics)
    return model


_X = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
_Y = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [2.0, -1.0]], np.float32)


def test_a_plain_metric_function_loads_with_custom_objects_and_says_what_to_pass(tmp_path):
    model = _regression([saving_names_abs_error])
    model.fit(_X, _Y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.npnet")
    with pytest.raises(saving.SavedModelError,
                       match=r"metric function 'saving_names_abs_error'.*custom_objects=\{'saving_names_abs_error': "
                             r"\.\.\.\}.*compile=False") as info:
        saving.load_model(tmp_path / "m.npnet")
    assert "corrupt" not in str(info.value)
    loaded = saving.load_model(tmp_path / "m.npnet", custom_objects={"saving_names_abs_error": saving_names_abs_error})
    # The metric is the mean over samples of the per-sample mean absolute error.
    pred = model.predict(_X, verbose=0).astype(np.float64)
    want = float(np.mean(np.mean(np.abs(_Y - pred), axis=-1)))
    got = loaded.evaluate(_X, _Y, verbose=0, return_dict=True)
    assert got["saving_names_abs_error"] == pytest.approx(want, rel=1e-6)
    assert not saving.load_model(tmp_path / "m.npnet", compile=False).compiled


@saving.register_keras_serializable(package="Tests")
class SavingNamesAbsLoss(npnet.losses.Loss):
    """mean |y_pred - y_true| over the last axis; derivative sign(d) / K."""

    def forward(self, y_true, y_pred, sample_weight=None):
        d = y_pred - np.asarray(y_true, dtype=y_pred.dtype)
        self._cache = d
        return self.reduce(np.mean(np.abs(d), axis=-1), sample_weight)

    def backward(self):
        d = self._cache
        return (self.reduce_gradient()[..., None] * np.sign(d) / d.shape[-1]).astype(d.dtype)


@saving.register_keras_serializable(package="Tests")
class SavingNamesMaxError(npnet.metrics.Metric):
    """The largest absolute error seen."""

    def __init__(self, name="max_error", dtype=None, scale=1.0):
        super().__init__(name=name, dtype=dtype)
        self.scale = scale
        self.worst = self.add_variable(shape=(), initializer="zeros", name="worst")

    def update_state(self, y_true, y_pred, sample_weight=None):
        err = float(np.max(np.abs(np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64))))
        self.worst.assign(max(float(self.worst.value), self.scale * err))

    def result(self):
        return float(self.worst.value)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@saving.register_keras_serializable()
def saving_names_squared_error(y_true, y_pred):
    return np.mean((np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)) ** 2, axis=-1)


def test_registered_loss_metric_and_metric_function_load_without_custom_objects(tmp_path):
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2, name="out")], seed=0)
    model.compile(optimizer="sgd", loss=SavingNamesAbsLoss(),
                  metrics=[SavingNamesMaxError(scale=2.0), saving_names_squared_error])
    model.fit(_X, _Y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.npnet")
    loaded = saving.load_model(tmp_path / "m.npnet")
    assert type(loaded.loss) is SavingNamesAbsLoss
    assert isinstance(loaded.metrics[-2], SavingNamesMaxError) and loaded.metrics[-2].scale == 2.0
    pred = model.predict(_X, verbose=0).astype(np.float64)
    got = loaded.evaluate(_X, _Y, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(float(np.mean(np.abs(pred - _Y))), rel=1e-6)
    assert got["max_error"] == pytest.approx(2.0 * float(np.max(np.abs(pred - _Y))), rel=1e-6)
    assert got["saving_names_squared_error"] == pytest.approx(float(np.mean((pred - _Y) ** 2)), rel=1e-6)
    custom = saving.get_custom_objects()
    assert custom["SavingNamesAbsLoss"] is SavingNamesAbsLoss and custom["SavingNamesMaxError"] is SavingNamesMaxError
    assert custom["saving_names_squared_error"] is saving_names_squared_error
    assert npnet.losses.get({"class_name": "SavingNamesAbsLoss", "config": {}}).__class__ is SavingNamesAbsLoss


def test_regularizers_and_constraints_are_returned_unchanged_and_names_are_checked():
    class SavingNamesHalfL2(npnet.regularizers.Regularizer):
        def __call__(self, w):
            return 0.5 * float(np.sum(w * w))

        def gradient(self, w):
            return w

    class SavingNamesClip(npnet.constraints.Constraint):
        def __call__(self, w):
            return np.clip(w, -1, 1)

    assert saving.register_keras_serializable()(SavingNamesHalfL2) is SavingNamesHalfL2
    assert saving.register_keras_serializable(name="SavingNamesClip")(SavingNamesClip) is SavingNamesClip
    assert type(npnet.regularizers.get({"class_name": "SavingNamesHalfL2", "config": {}})) is SavingNamesHalfL2

    class Accuracy(npnet.metrics.Metric):
        pass

    with pytest.raises(ValueError, match=r"register_keras_serializable: the name 'Accuracy' belongs to npnet's own "
                                         r"metric"):
        saving.register_keras_serializable()(Accuracy)

    def mean_squared_error(y_true, y_pred):
        return y_pred

    with pytest.raises(ValueError, match=r"the name 'mean_squared_error' belongs to npnet's own metric function"):
        saving.register_keras_serializable()(mean_squared_error)


def _rename_in_config(path, old, new):
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(entries["config.json"])
    text = json.dumps(header).replace(f'"{old}"', f'"{new}"')
    entries["config.json"] = text.encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


def test_a_loss_class_unknown_here_loads_from_custom_objects_or_says_what_to_pass(tmp_path):
    """A file names a loss class that this process has not registered (as when the file
    comes from another program)."""
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2, name="out")], seed=0)
    model.compile(optimizer="sgd", loss=SavingNamesAbsLoss())
    model.save(tmp_path / "m.npnet")
    _rename_in_config(tmp_path / "m.npnet", "SavingNamesAbsLoss", "SavingNamesElsewhereLoss")
    with pytest.raises(saving.SavedModelError, match=r"unknown loss class 'SavingNamesElsewhereLoss'; pass your own loss classes"
                                                     r".*custom_objects=\{'SavingNamesElsewhereLoss': \.\.\.\}.*"
                                                     r"compile=False") as info:
        saving.load_model(tmp_path / "m.npnet")
    assert "corrupt" not in str(info.value)

    class SavingNamesElsewhereLoss(SavingNamesAbsLoss):
        pass

    loaded = saving.load_model(tmp_path / "m.npnet", custom_objects={"SavingNamesElsewhereLoss": SavingNamesElsewhereLoss})
    assert type(loaded.loss) is SavingNamesElsewhereLoss
    pred = model.predict(_X, verbose=0).astype(np.float64)
    assert loaded.evaluate(_X, _Y, verbose=0) == pytest.approx(float(np.mean(np.abs(pred - _Y))), rel=1e-6)


def test_an_unregistered_metric_class_says_what_to_pass(tmp_path):
    model = _regression([SavingNamesMaxError()])
    model.save(tmp_path / "m.npnet")
    _rename_in_config(tmp_path / "m.npnet", "SavingNamesMaxError", "SavingNamesOtherMetric")
    with pytest.raises(saving.SavedModelError, match=r"unknown metric class 'SavingNamesOtherMetric'; pass your own metric classes"
                                                     r".*custom_objects=\{'SavingNamesOtherMetric': \.\.\.\}.*"
                                                     r"compile=False"):
        saving.load_model(tmp_path / "m.npnet")
    assert not saving.load_model(tmp_path / "m.npnet", compile=False).compiled


def test_metrics_deserialize_finds_a_registered_metric_class():
    @npnet.saving.register_keras_serializable()
    class CountedSamples(npnet.metrics.Metric):
        def __init__(self, name="counted_samples", **kwargs):
            super().__init__(name=name, **kwargs)
            self.n = self.add_variable(shape=(), initializer="zeros", name="n")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.n.assign(float(self.n) + len(y_pred))

        def result(self):
            return float(self.n)

    again = npnet.metrics.deserialize(npnet.metrics.serialize(CountedSamples(name="seen")))
    assert type(again) is CountedSamples and again.name == "seen"
