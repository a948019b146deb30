"""UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D and Cropping2D: forward values
worked out by hand from Keras' definitions, the gradients as their adjoints, and bad
arguments and inputs rejected with clear messages."""

import re

import numpy as np
import pytest

import npnet
from npnet.layers import Cropping2D, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D

# A 2x3 image, one channel:  1 2 3
#                            4 5 6
IMG = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 2, 3, 1)
SEQ = np.array([[[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]], np.float32)  # 3 steps, 2 channels


def plane(y):
    return y[0, :, :, 0].tolist()


def test_up_sampling_1d_repeats_each_step():
    # Keras: ops.repeat(x, size, axis=1)
    y = UpSampling1D(2)(SEQ)
    assert y[0].tolist() == [[1, -1], [1, -1], [2, -2], [2, -2], [3, -3], [3, -3]]
    assert UpSampling1D()(SEQ).shape == (1, 6, 2)  # default size 2


def test_up_sampling_1d_sums_the_gradient_of_the_copies():
    layer = UpSampling1D(3)
    y, cache = layer.forward(SEQ[:, :2], training=True)
    dy = np.arange(12.0, dtype=np.float32).reshape(1, 6, 2)  # steps 0..5, channel values 2t, 2t+1
    dx = layer.backward(cache, dy)
    assert dx[0].tolist() == [[0 + 2 + 4, 1 + 3 + 5], [6 + 8 + 10, 7 + 9 + 11]]


def test_up_sampling_2d_nearest_by_hand():
    assert plane(UpSampling2D((2, 1))(IMG)) == [[1, 2, 3], [1, 2, 3], [4, 5, 6], [4, 5, 6]]
    assert plane(UpSampling2D()(IMG)) == [[1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 3, 3],
                                          [4, 4, 5, 5, 6, 6], [4, 4, 5, 5, 6, 6]]


def test_up_sampling_2d_sums_the_gradient_over_each_block():
    layer = UpSampling2D(2)
    y, cache = layer.forward(IMG, training=True)
    dy = np.arange(24.0, dtype=np.float32).reshape(1, 4, 6, 1)
    dx = layer.backward(cache, dy)
    # block (0, 0) holds dy rows 0-1, columns 0-1: 0 + 1 + 6 + 7 = 14; each block to the right adds 2*4,
    # each block down adds 12*4
    assert plane(dx) == [[14, 22, 30], [62, 70, 78]]


def test_zero_padding_1d_by_hand():
    assert ZeroPadding1D()(SEQ)[0, :, 0].tolist() == [0, 1, 2, 3, 0]
    assert ZeroPadding1D((0, 2))(SEQ)[0, :, 1].tolist() == [-1, -2, -3, 0, 0]
    layer = ZeroPadding1D((2, 1))
    y, cache = layer.forward(SEQ, training=True)
    dy = np.arange(12.0, dtype=np.float32).reshape(1, 6, 2)
    assert layer.backward(cache, dy)[0].tolist() == [[4, 5], [6, 7], [8, 9]]


def test_zero_padding_2d_forms_by_hand():
    # an int pads every side; (1, 2) pads 1 row above and below, 2 columns left and right
    assert plane(ZeroPadding2D(1)(IMG)) == [[0] * 5, [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0] * 5]
    assert plane(ZeroPadding2D((1, 2))(IMG)) == [[0] * 7, [0, 0, 1, 2, 3, 0, 0], [0, 0, 4, 5, 6, 0, 0], [0] * 7]
    assert plane(ZeroPadding2D(((0, 1), (1, 0)))(IMG)) == [[0, 1, 2, 3], [0, 4, 5, 6], [0, 0, 0, 0]]
    assert ZeroPadding2D()(IMG).shape == (1, 4, 5, 1)  # default (1, 1)


def test_zero_padding_2d_gradient_cuts_the_padding_off():
    layer = ZeroPadding2D(((1, 0), (0, 1)))
    y, cache = layer.forward(IMG, training=True)
    dy = np.arange(12.0, dtype=np.float32).reshape(1, 3, 4, 1)
    assert plane(layer.backward(cache, dy)) == [[4, 5, 6], [8, 9, 10]]


def test_cropping_2d_by_hand():
    x = np.arange(20.0, dtype=np.float32).reshape(1, 4, 5, 1)
    #  0  1  2  3  4
    #  5  6  7  8  9
    # 10 11 12 13 14
    # 15 16 17 18 19
    assert plane(Cropping2D(((1, 2), (2, 1)))(x)) == [[7, 8]]
    assert plane(Cropping2D(1)(x)) == [[6, 7, 8], [11, 12, 13]]
    assert plane(Cropping2D((0, 2))(x)) == [[2], [7], [12], [17]]
    np.testing.assert_array_equal(Cropping2D()(x), x)  # default: nothing cropped


def test_cropping_2d_gradient_pads_back_with_zeros():
    layer = Cropping2D(((1, 0), (1, 1)))
    y, cache = layer.forward(IMG, training=True)
    assert plane(y) == [[5]]
    assert plane(layer.backward(cache, np.array([[[[7.0]]]], np.float32))) == [[0, 0, 0], [0, 7, 0]]


def test_configs_follow_keras_names():
    def args(layer):
        return {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable")}
    assert args(UpSampling1D(3)) == {"size": 3}
    assert args(UpSampling2D(2)) == {"size": [2, 2], "data_format": "channels_last", "interpolation": "nearest"}
    assert args(ZeroPadding1D(2)) == {"padding": [2, 2], "data_format": "channels_last"}
    assert args(ZeroPadding2D((1, 2))) == {"padding": [[1, 1], [2, 2]], "data_format": "channels_last"}
    assert args(Cropping2D(1)) == {"cropping": [[1, 1], [1, 1]], "data_format": "channels_last"}
    assert UpSampling2D(interpolation="NEAREST").interpolation == "nearest"  # lowered, as in Keras


def test_an_upsampling_unet_shape_model_trains():
    inputs = npnet.Input((6, 6, 1))
    h = npnet.layers.Conv2D(2, 3, padding="same")(inputs)
    h = npnet.layers.MaxPooling2D(2)(h)
    h = UpSampling2D(2)(h)
    h = ZeroPadding2D(1)(h)
    h = Cropping2D(1)(h)
    outputs = npnet.layers.Conv2D(1, 1)(h)
    model = npnet.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (8, 6, 6, 1)
    history = model.fit(x, x, epochs=5, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("factory, error, message", [
    (lambda: UpSampling1D(0), ValueError, "UpSampling1D: `size` must be >= 1, received 0"),
    (lambda: UpSampling1D(2.0), TypeError, "UpSampling1D: `size` must be an integer"),
    (lambda: UpSampling2D((2, 0)), ValueError, "UpSampling2D: `size` must contain integers >= 1"),
    (lambda: UpSampling2D(interpolation="bilinear"), ValueError,
     "UpSampling2D: `interpolation` 'bilinear' is not supported; npnet has 'nearest' only"),
    (lambda: UpSampling2D(interpolation="cubic"), ValueError,
     "UpSampling2D: `interpolation` must be one of ['nearest'], received 'cubic'"),
    (lambda: UpSampling2D(interpolation=1), TypeError, "UpSampling2D: `interpolation` must be a string"),
    (lambda: UpSampling2D(data_format="channels_first"), ValueError,
     "UpSampling2D: `data_format` 'channels_first' is not supported"),
    (lambda: ZeroPadding1D(-1), ValueError, "ZeroPadding1D: `padding` must contain integers >= 0, received -1"),
    (lambda: ZeroPadding1D((1, 2, 3)), ValueError, "ZeroPadding1D: `padding` must be an int or a tuple of 2 ints"),
    (lambda: ZeroPadding1D(data_format="channels_first"), ValueError,
     "ZeroPadding1D: `data_format` 'channels_first' is not supported"),
    (lambda: ZeroPadding2D((1, 2, 3)), ValueError,
     "ZeroPadding2D: `padding` must be an int, a tuple of 2 ints (height, width) or a tuple of 2 pairs"),
    (lambda: ZeroPadding2D(((1, 2), (3, -1))), ValueError, "ZeroPadding2D: `padding` must contain integers >= 0"),
    (lambda: ZeroPadding2D(((1, 2, 3), (3, 1))), ValueError, "ZeroPadding2D: `padding` must be an int or a tuple of 2"),
    (lambda: ZeroPadding2D("ab"), ValueError, "ZeroPadding2D: `padding` must be an int, a tuple of 2 ints"),
    (lambda: ZeroPadding2D(1.5), ValueError, "ZeroPadding2D: `padding` must be an int, a tuple of 2 ints"),
    (lambda: Cropping2D(-1), ValueError, "Cropping2D: `cropping` must contain integers >= 0, received -1"),
    (lambda: Cropping2D(((0, 1), (0.5, 1))), TypeError, "Cropping2D: `cropping` must contain integers"),
    (lambda: Cropping2D(data_format="nhwc"), ValueError,
     "Cropping2D: `data_format` must be one of ['channels_last'], received 'nhwc'"),
])
def test_bad_arguments_are_named(factory, error, message):
    with pytest.raises(error, match=re.escape(message)):
        factory()


@pytest.mark.parametrize("factory, shape, message", [
    (lambda: UpSampling1D(name="u"), (2, 6),
     "UpSampling1D 'u': expected input of rank 3 (batch, steps, channels), received shape (2, 6)"),
    (lambda: ZeroPadding1D(name="z"), (2, 3, 3, 1),
     "ZeroPadding1D 'z': expected input of rank 3 (batch, steps, channels), received shape (2, 3, 3, 1)"),
    (lambda: UpSampling2D(name="u"), (2, 3, 1),
     "UpSampling2D 'u': expected input of rank 4 (batch, height, width, channels), received shape (2, 3, 1)"),
    (lambda: ZeroPadding2D(name="z"), (2, 3, 1),
     "ZeroPadding2D 'z': expected input of rank 4 (batch, height, width, channels), received shape (2, 3, 1)"),
    (lambda: Cropping2D(name="c"), (2, 3),
     "Cropping2D 'c': expected input of rank 4 (batch, height, width, channels), received shape (2, 3)"),
    (lambda: Cropping2D(((1, 1), (0, 0)), name="c"), (2, 2, 5, 1),
     "Cropping2D 'c': `cropping` [[1, 1], [0, 0]] leaves nothing of an input of shape (2, 2, 5, 1)"),
])
def test_bad_inputs_are_named(factory, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        factory()(np.zeros(shape, np.float32))


def test_a_built_cropping_2d_rejects_a_later_input_too_small_to_crop():
    layer = Cropping2D((0, 2), name="c")
    layer(np.zeros((1, 3, 5, 1), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "Cropping2D 'c': `cropping` [[0, 0], [2, 2]] leaves nothing of an input of shape (1, 3, 4, 1)")):
        layer(np.zeros((1, 3, 4, 1), np.float32))


def test_cropping_2d_too_large_for_a_symbolic_input_is_refused():
    with pytest.raises(ValueError, match=re.escape("Cropping2D 'c': `cropping` [[2, 2], [0, 0]] leaves nothing")):
        Cropping2D(((2, 2), (0, 0)), name="c")(npnet.Input((4, 4, 1)))
