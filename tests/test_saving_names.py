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

    with pytest.raises(ValueError, match=r"saves a class under its class name 'Other'; received name='Alias'"):
        saving.register_keras_serializable(name="Alias")(Other)

    def my_activation(x):
        return x

    with pytest.raises(TypeError, match=r"npnet registers layer and model classes .* received <function"):
        saving.register_keras_serializable()(my_activation)
    with pytest.raises(TypeError, match=r"`package` must be a string, received 3"):
        saving.register_keras_serializable(package=3)
    with pytest.raises(TypeError, match=r"`name` must be a string or None, received 3"):
        saving.register_keras_serializable(name=3)
