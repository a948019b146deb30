"""LayerNormalization: Keras 3's values by hand, shapes of its weights, training, saving, bad arguments."""

import math
import re

import numpy as np
import pytest

import npnet
from npnet.layers import LayerNormalization


def test_values_worked_out_by_hand_with_keras_epsilon():
    # Keras: per sample, mean and biased variance over the last axis,
    # y = (x - mean) / sqrt(var + 1e-3) * gamma + beta.
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 0.0]], dtype=np.float32)
    # row 0: mean 2, var (1 + 0 + 1) / 3 = 2/3; row 1: mean 2, var (0 + 4 + 4) / 3 = 8/3
    inv0 = 1 / math.sqrt(2 / 3 + 1e-3)  # 1.2238274...
    inv1 = 1 / math.sqrt(8 / 3 + 1e-3)  # 0.6122575...
    layer = LayerNormalization()
    y = layer(x)
    expected = np.array([[-inv0, 0.0, inv0], [0.0, 2 * inv1, -2 * inv1]])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(y[0, 2], 1.2238274, rtol=1e-6)
    np.testing.assert_allclose(y[1, 1], 1.2245150, rtol=1e-6)
    assert y.dtype == np.float32

    gamma, beta = np.array([1.0, 2.0, 0.5], np.float32), np.array([0.1, 0.0, -0.1], np.float32)
    layer.set_weights([gamma, beta])
    np.testing.assert_allclose(layer(x), expected * gamma + beta, rtol=1e-6)
    np.testing.assert_allclose(layer(x)[1, 1], 2 * 1.2245150, rtol=1e-6)


def test_backward_by_hand_for_one_sample():
    # x = [1, 2, 3], gamma = 1: xhat = [-1, 0, 1] * inv with inv = 1 / sqrt(2/3 + 1e-3).
    # dy = [1, 0, 0]: mean(dy) = 1/3, mean(dy * xhat) = -inv / 3, so
    # dx = inv * (dy - 1/3 - xhat * (-inv / 3)) = inv * ([2/3, -1/3, -1/3] + inv^2 / 3 * [-1, 0, 1]).
    inv = 1 / math.sqrt(2 / 3 + 1e-3)
    layer = LayerNormalization()
    y, cache = layer.forward(np.array([[1.0, 2.0, 3.0]], np.float32), training=True)
    dx = layer.backward(cache, np.array([[1.0, 0.0, 0.0]], np.float32))
    expected = inv * (np.array([2 / 3, -1 / 3, -1 / 3]) + inv ** 2 / 3 * np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(dx, [expected], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(layer.grads["gamma"], [-inv, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(layer.grads["beta"], [1.0, 0.0, 0.0])


def test_rms_scaling_divides_by_the_standard_deviation_as_keras_does():
    # Keras' deprecated rms_scaling: y = x / sqrt(var + eps) * gamma, var about the mean, no beta.
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    with pytest.warns(UserWarning, match="rms_scaling=True` is deprecated"):
        layer = LayerNormalization(rms_scaling=True)
    y = layer(x)
    np.testing.assert_allclose(y, x / math.sqrt(2 / 3 + 1e-3), rtol=1e-6)
    assert sorted(layer.params) == ["gamma"]


@pytest.mark.parametrize("axis, shape, weight_shape", [
    (-1, (None, 3, 4), (4,)),
    (1, (None, 3, 4), (3,)),
    ([1, 2, 3], (None, 2, 3, 4), (2, 3, 4)),
    ([-1, 1], (None, 2, 3, 4), (2, 4)),
    ((2,), (None, 2, 3, 4), (3,)),
])
def test_gamma_and_beta_have_the_shape_of_the_normalized_axes(axis, shape, weight_shape):
    layer = LayerNormalization(axis=axis)
    layer.build(shape)
    assert layer.params["gamma"].shape == layer.params["beta"].shape == weight_shape
    np.testing.assert_array_equal(layer.params["gamma"], np.ones(weight_shape))
    np.testing.assert_array_equal(layer.params["beta"], np.zeros(weight_shape))
    assert layer.get_config()["axis"] == axis if isinstance(axis, int) else list(axis)


def test_multi_axis_normalizes_each_sample_over_those_axes():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    y = LayerNormalization(axis=[1, 3])(x)
    mean = x.mean(axis=(1, 3), keepdims=True)
    var = x.var(axis=(1, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-5, atol=1e-6)


def test_center_and_scale_off_make_no_weights():
    layer = LayerNormalization(center=False, scale=False)
    layer.build((None, 4))
    assert layer.params == {} and layer.get_weights() == []
    layer = LayerNormalization(center=False)
    layer.build((None, 4))
    assert sorted(layer.params) == ["gamma"]


def test_training_and_inference_give_the_same_output_and_keep_no_state():
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    layer = LayerNormalization()
    y_train, _ = layer.forward(x, training=True)
    y_infer, _ = layer.forward(x, training=False)
    np.testing.assert_array_equal(y_train, y_infer)
    assert layer.state == {}
    # each sample alone gives what it gives in the batch
    np.testing.assert_allclose(layer(x[1:2]), y_train[1:2], rtol=1e-6)


def _model(seed=0):
    return npnet.Sequential([npnet.Input(shape=(6,)), npnet.layers.Dense(8, name="d1"),
                             LayerNormalization(name="ln"), npnet.layers.ReLU(),
                             npnet.layers.Dense(1, name="d2")], seed=seed)


def test_a_model_with_it_trains_and_saves(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, :1] * 2 - x[:, 1:2] + 0.5).astype(np.float32)
    model = _model()
    model.compile(optimizer=npnet.Adam(0.02), loss="mse")
    gamma0 = model.get_layer("ln").params["gamma"].copy()
    losses = model.fit(x, y, epochs=15, batch_size=16, verbose=0, seed=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert not np.array_equal(model.get_layer("ln").params["gamma"], gamma0)
    assert model.get_layer("ln").params["gamma"].dtype == np.float32

    model.save(tmp_path / "m.npnet")
    loaded = npnet.models.load_model(tmp_path / "m.npnet")
    assert type(loaded.get_layer("ln")) is LayerNormalization
    assert loaded.get_layer("ln").get_config() == model.get_layer("ln").get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("factory, error, match", [
    (lambda: LayerNormalization(epsilon=-1e-3), ValueError, "LayerNormalization: `epsilon` must be"),
    (lambda: LayerNormalization(epsilon=0.0), ValueError, "LayerNormalization: `epsilon` must be"),
    (lambda: LayerNormalization(center="yes"), TypeError,
     "LayerNormalization: `center` must be True or False, received 'yes'"),
    (lambda: LayerNormalization(scale=1), TypeError, "LayerNormalization: `scale` must be True or False"),
    (lambda: LayerNormalization(rms_scaling=None), TypeError, "`rms_scaling` must be True or False"),
    (lambda: LayerNormalization(axis=1.5), TypeError,
     "LayerNormalization: `axis` must be an int or a list of ints, received 1.5"),
    (lambda: LayerNormalization(axis=[1, "a"]), TypeError, "LayerNormalization: `axis` must be an integer"),
    (lambda: LayerNormalization(axis=[]), ValueError, "LayerNormalization: `axis` must name at least one axis"),
    (lambda: LayerNormalization(gamma_initializer="nope"), ValueError, "unknown initializer 'nope'"),
])
def test_bad_arguments_are_named(factory, error, match):
    with pytest.raises(error, match=re.escape(match)):
        factory()


@pytest.mark.parametrize("axis, received", [(2, "axis 2"), (-3, "axis -3"), (0, "axis 0"), ([1, -2], "axis -2")])
def test_axis_out_of_range_or_the_batch_axis_is_refused_at_build(axis, received):
    layer = LayerNormalization(axis=axis, name="ln")
    with pytest.raises(ValueError, match=re.escape(
            f"LayerNormalization 'ln': `axis` {axis} must name axes 1 to 1 (or -1 to -1) of input shape (None, 3), "
            f"received {received}")):
        layer(np.ones((2, 3), np.float32))
    assert not layer.built


def test_the_same_axis_twice_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            "LayerNormalization 'ln': `axis` [1, -1] names the same axis twice for input shape (None, 3)")):
        LayerNormalization(axis=[1, -1], name="ln").build((None, 3))


def test_input_of_another_size_on_a_normalized_axis_is_refused():
    layer = LayerNormalization(name="ln")
    layer(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "LayerNormalization 'ln': expected input with last dimension 3, received shape (2, 4)")):
        layer(np.ones((2, 4), np.float32))
