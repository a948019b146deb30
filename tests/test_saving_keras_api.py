"""Keras 3's saving signatures: overwrite, zipped, skip_mismatch, functions and classes
registered with register_keras_serializable."""

import os
import warnings

import numpy as np
import pytest

import npnet


def _model(units=3, seed=0):
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(units, activation="softmax", name="out")], seed=seed)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _data():
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int)


def test_overwrite_is_the_third_argument_as_in_keras(tmp_path):
    path = tmp_path / "m.npnet"
    model = _model()
    model.fit(*_data(), verbose=0, seed=0)
    npnet.saving.save_model(model, path)
    before = path.read_bytes()
    # Keras' save_model(model, filepath, overwrite=True): a positional False is overwrite.
    with pytest.raises(FileExistsError, match=r"save: '.*m.npnet' exists and overwrite=False"):
        npnet.saving.save_model(model, path, False)
    with pytest.raises(FileExistsError, match=r"exists and overwrite=False"):
        model.save(path, overwrite=False)
    with pytest.raises(FileExistsError, match=r"save_weights: '.*w.npnet' exists"):
        (tmp_path / "w.npnet").write_bytes(b"")
        model.save_weights(tmp_path / "w.npnet", overwrite=False)
    assert path.read_bytes() == before
    model.save(path, True, include_optimizer=False)  # include_optimizer is keyword-only
    assert npnet.load_model(path).optimizer.iterations == 0
    with pytest.raises(TypeError, match="positional"):
        model.save(path, True, None, False)
    with pytest.raises(ValueError, match=r"save: npnet files are always one zip file; `zipped` must be None or True"):
        model.save(tmp_path / "n.npnet", zipped=False)
    with pytest.raises(TypeError, match=r"save: `overwrite` must be True or False, received 'no'"):
        model.save(tmp_path / "n.npnet", overwrite="no")
    assert not os.path.exists(tmp_path / "n.npnet")


def test_load_weights_skip_mismatch_loads_what_fits(tmp_path):
    source = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(5, name="hidden"), npnet.Dense(3, name="out")],
                              seed=1)
    source.save_weights(tmp_path / "w.npnet")
    target = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(5, name="hidden"), npnet.Dense(2, name="out")],
                              seed=2)
    out_kernel = target.get_layer("out").params["kernel"].copy()
    with pytest.raises(npnet.saving.SavedModelError, match=r"weight 'out/kernel' has shape \(5, 3\), the model "
                                                            r"expects \(5, 2\)"):
        target.load_weights(tmp_path / "w.npnet")
    with pytest.warns(UserWarning, match=r"skip_mismatch=True left 2 weights as they were: \['out/kernel \(file "
                                         r"\(5, 3\), model \(5, 2\)\)', 'out/bias"):
        target.load_weights(tmp_path / "w.npnet", skip_mismatch=True)
    np.testing.assert_array_equal(target.get_layer("hidden").params["kernel"],
                                  source.get_layer("hidden").params["kernel"])
    np.testing.assert_array_equal(target.get_layer("out").params["kernel"], out_kernel)
    with pytest.raises(TypeError, match=r"load_weights: `skip_mismatch` must be True or False"):
        target.load_weights(tmp_path / "w.npnet", skip_mismatch="yes")


def mean_error(y_true, y_pred):
    return np.abs(np.asarray(y_pred)[:, 0] - np.asarray(y_true))


def test_a_plain_function_metric_loads_with_custom_objects(tmp_path):
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[mean_error])
    x, y = _data()
    model.fit(x, y, verbose=0, seed=0)
    model.save(tmp_path / "m.npnet")
    with pytest.raises(npnet.saving.SavedModelError, match=r"compiled with your metric function 'mean_error'; pass "
                                                           r"it as custom_objects=\{'mean_error': mean_error\}, or "
                                                           r"load with compile=False"):
        npnet.load_model(tmp_path / "m.npnet")
    again = npnet.load_model(tmp_path / "m.npnet", custom_objects={"mean_error": mean_error})
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))


@npnet.saving.register_keras_serializable(package="Tests")
class DoubledMSE(npnet.losses.Loss):
    def forward(self, y_true, y_pred, sample_weight=None):
        self._cache = np.asarray(y_pred) - np.asarray(y_true)
        return self.reduce(2.0 * np.mean(self._cache ** 2, axis=-1), sample_weight)

    def backward(self):
        d = self._cache
        return self.reduce_gradient()[..., None] * 4.0 * d / d.shape[-1]


@npnet.saving.register_keras_serializable()
class LargestOutput(npnet.metrics.Metric):
    def __init__(self, name="largest_output", **kwargs):
        super().__init__(name=name, **kwargs)
        self.top = self.add_variable(shape=(), initializer="zeros", name="top")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.top.assign(max(float(self.top), float(np.max(y_pred))))

    def result(self):
        return float(self.top)


@npnet.saving.register_keras_serializable()
class Halved(npnet.regularizers.Regularizer):
    def __call__(self, w):
        return 0.5 * float(np.sum(w * w))

    def gradient(self, w):
        return w

    def get_config(self):
        return {}


def test_register_keras_serializable_makes_losses_and_metrics_loadable(tmp_path):
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(2, kernel_regularizer=Halved())], seed=0)
    model.compile("sgd", DoubledMSE(), metrics=[LargestOutput()])
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    y = np.zeros((8, 2), np.float32)
    model.fit(x, y, verbose=0, seed=0)
    model.save(tmp_path / "m.npnet")
    again = npnet.load_model(tmp_path / "m.npnet")  # no custom_objects
    assert isinstance(again.loss, DoubledMSE) and isinstance(again.metrics[0], LargestOutput)
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))
    with pytest.raises(TypeError, match=r"register_keras_serializable: npnet registers subclasses of "
                                        r"npnet.layers.Layer .*received <class"):
        npnet.saving.register_keras_serializable()(dict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert npnet.saving.register_keras_serializable()(Halved) is Halved
