"""MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D and GlobalMaxPooling1D: forward
values worked out by hand from Keras' definitions, gradients routed as those definitions
say, and bad arguments and inputs rejected with clear messages."""

import re

import numpy as np
import pytest

import npnet
from npnet.layers import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D

# One sequence of 5 steps, 1 channel: 1 4 2 5 3
X = np.array([1.0, 4.0, 2.0, 5.0, 3.0], np.float32).reshape(1, 5, 1)


def col(y):
    return y[0, :, 0].tolist()


@pytest.mark.parametrize("kwargs, expected", [
    # valid, pool 2 stride 2: windows [1 4] [2 5]; the last step is dropped
    (dict(pool_size=2), [4.0, 5.0]),
    # valid, pool 2 stride 1: [1 4] [4 2] [2 5] [5 3]
    (dict(pool_size=2, strides=1), [4.0, 4.0, 5.0, 5.0]),
    # valid, pool 3 stride 2: floor((5 - 3) / 2) + 1 = 2 windows: [1 4 2] [2 5 3]
    (dict(pool_size=3, strides=2), [4.0, 5.0]),
    # same, pool 2 stride 2: ceil(5 / 2) = 3 windows; total padding (3-1)*2 + 2 - 5 = 1, all on
    # the right: [1 4] [2 5] [3 pad]
    (dict(pool_size=2, padding="same"), [4.0, 5.0, 3.0]),
    # same, pool 3 stride 1: padding 2, one each side: [pad 1 4] [1 4 2] [4 2 5] [2 5 3] [5 3 pad]
    (dict(pool_size=3, strides=1, padding="same"), [4.0, 4.0, 5.0, 5.0, 5.0]),
])
def test_max_pooling_1d_by_hand(kwargs, expected):
    assert col(MaxPooling1D(**kwargs)(X)) == expected


@pytest.mark.parametrize("kwargs, expected", [
    (dict(pool_size=2), [2.5, 3.5]),  # (1+4)/2, (2+5)/2
    (dict(pool_size=2, strides=1), [2.5, 3.0, 3.5, 4.0]),
    (dict(pool_size=3, strides=2), [7 / 3, 10 / 3]),  # (1+4+2)/3, (2+5+3)/3
    # same: the padded cell is left out of the mean, so the last window [3 pad] averages 3 alone
    (dict(pool_size=2, padding="same"), [2.5, 3.5, 3.0]),
    # same, pool 3 stride 1: [pad 1 4] -> 5/2, [1 4 2] -> 7/3, [4 2 5] -> 11/3, [2 5 3] -> 10/3, [5 3 pad] -> 4
    (dict(pool_size=3, strides=1, padding="same"), [2.5, 7 / 3, 11 / 3, 10 / 3, 4.0]),
])
def test_average_pooling_1d_by_hand(kwargs, expected):
    np.testing.assert_allclose(col(AveragePooling1D(**kwargs)(X)), expected, rtol=1e-6)


def test_max_pooling_1d_routes_the_gradient_to_each_window_maximum():
    # pool 2 stride 1 windows [1 4] [4 2] [2 5] [5 3]: step 1 (value 4) wins twice, step 3 (5) twice
    layer = MaxPooling1D(2, strides=1)
    y, cache = layer.forward(X, training=True)
    dx = layer.backward(cache, np.array([1.0, 10.0, 100.0, 1000.0], np.float32).reshape(1, 4, 1))
    assert col(dx) == [0.0, 11.0, 0.0, 1100.0, 0.0]


def test_average_pooling_1d_same_spreads_the_gradient_over_real_cells_only():
    # pool 2 same: windows [1 4] [2 5] [3]; dy / count to each real cell of each window
    layer = AveragePooling1D(2, padding="same")
    y, cache = layer.forward(X, training=True)
    dx = layer.backward(cache, np.array([2.0, 4.0, 6.0], np.float32).reshape(1, 3, 1))
    assert col(dx) == [1.0, 1.0, 2.0, 2.0, 6.0]


def test_pooling_1d_keeps_channels_apart():
    x = np.stack([X[0, :, 0], -X[0, :, 0]], axis=-1)[None]  # channel 1 is the negation
    y = MaxPooling1D(2)(x)
    assert y[0].tolist() == [[4.0, -1.0], [5.0, -2.0]]


def test_global_pooling_1d_by_hand():
    x = np.array([[[1.0, -2.0], [4.0, -8.0], [2.0, -1.0]]], np.float32)
    np.testing.assert_allclose(GlobalAveragePooling1D()(x), [[7 / 3, -11 / 3]], rtol=1e-6)
    assert GlobalMaxPooling1D()(x).tolist() == [[4.0, -1.0]]
    assert GlobalMaxPooling1D(keepdims=True)(x).tolist() == [[[4.0, -1.0]]]
    np.testing.assert_allclose(GlobalAveragePooling1D(keepdims=True)(x), [[[7 / 3, -11 / 3]]], rtol=1e-6)


def test_global_pooling_1d_gradients_by_hand():
    x = np.array([[[1.0, -2.0], [4.0, -8.0], [2.0, -1.0]]], np.float32)
    layer = GlobalMaxPooling1D(keepdims=True)
    y, cache = layer.forward(x, training=True)
    dx = layer.backward(cache, np.array([[[3.0, 5.0]]], np.float32))
    assert dx[0].tolist() == [[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]]
    layer = GlobalAveragePooling1D()
    y, cache = layer.forward(x, training=True)
    dx = layer.backward(cache, np.array([[3.0, 6.0]], np.float32))
    assert dx[0].tolist() == [[1.0, 2.0]] * 3


def test_pooling_1d_configs_follow_keras_names():
    assert {k: v for k, v in MaxPooling1D(3, padding="same", name="p").get_config().items()
            if k not in ("name", "trainable")} == {
        "pool_size": [3], "strides": [3], "padding": "same", "data_format": "channels_last"}
    assert GlobalMaxPooling1D(keepdims=True).get_config()["keepdims"] is True
    assert GlobalAveragePooling1D().get_config()["data_format"] == "channels_last"


def test_pooling_1d_in_a_sequential_model_trains():
    model = npnet.Sequential([npnet.Input((8, 2)), MaxPooling1D(2), AveragePooling1D(2, padding="same"),
                              GlobalAveragePooling1D(), npnet.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 8, 2)).astype(np.float32)
    history = model.fit(x, x.sum(axis=(1, 2))[:, None], epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize("factory, error, message", [
    (lambda: MaxPooling1D(0), ValueError, "MaxPooling1D: `pool_size` must contain integers >= 1"),
    (lambda: MaxPooling1D((2, 2)), ValueError, "MaxPooling1D: `pool_size`"),
    (lambda: AveragePooling1D(2, strides=0), ValueError, "AveragePooling1D: `strides` must contain integers >= 1"),
    (lambda: AveragePooling1D(2, padding="causal"), ValueError,
     "AveragePooling1D: `padding` must be one of ['valid', 'same'], received 'causal'"),
    (lambda: MaxPooling1D(data_format="channels_first"), ValueError,
     "MaxPooling1D: `data_format` 'channels_first' is not supported"),
    (lambda: GlobalAveragePooling1D(data_format="channels_first"), ValueError,
     "GlobalAveragePooling1D: `data_format` 'channels_first' is not supported"),
    (lambda: GlobalMaxPooling1D(data_format="nhwc"), ValueError,
     "GlobalMaxPooling1D: `data_format` must be one of ['channels_last'], received 'nhwc'"),
    (lambda: GlobalMaxPooling1D(keepdims="yes"), TypeError,
     "GlobalMaxPooling1D: `keepdims` must be True or False, received 'yes'"),
])
def test_bad_arguments_are_named(factory, error, message):
    with pytest.raises(error, match=re.escape(message)):
        factory()


@pytest.mark.parametrize("factory, shape, message", [
    (lambda: MaxPooling1D(2, name="p"), (2, 6),
     "MaxPooling1D 'p': expected input of rank 3 (batch, steps, channels), received shape (2, 6)"),
    (lambda: AveragePooling1D(2, name="p"), (2, 6, 6, 1),
     "AveragePooling1D 'p': expected input of rank 3 (batch, steps, channels), received shape (2, 6, 6, 1)"),
    (lambda: MaxPooling1D(4, name="p"), (2, 3, 1), "MaxPooling1D 'p': pool 4 is larger than the input's 3 steps"),
    (lambda: GlobalMaxPooling1D(name="g"), (2, 6),
     "GlobalMaxPooling1D 'g': expected input of rank 3 (batch, steps, channels), received shape (2, 6)"),
])
def test_bad_inputs_are_named(factory, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        factory()(np.zeros(shape, np.float32))


def test_a_built_pooling_1d_rejects_a_later_input_of_another_rank():
    layer = GlobalAveragePooling1D(name="g")
    layer(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape("GlobalAveragePooling1D 'g': expected input of rank 3")):
        layer(np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("cls", [npnet.layers.MaxPooling1D, npnet.layers.AveragePooling1D])
def test_1d_pooling_takes_sequences_of_varying_length(cls):
    model = npnet.Sequential([npnet.Input(shape=(None, 2)), cls(2)])
    assert model.output_shape == (None, None, 2)
    x = np.arange(20, dtype=np.float32).reshape(1, 10, 2)
    for steps in (4, 10):
        y = model.predict(x[:, :steps], verbose=0)
        assert y.shape == (1, steps // 2, 2)
        ref = x[:, :steps].reshape(1, steps // 2, 2, 2)
        np.testing.assert_allclose(y, ref.max(axis=2) if cls is npnet.layers.MaxPooling1D else ref.mean(axis=2))
