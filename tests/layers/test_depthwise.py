"""DepthwiseConv2D and SeparableConv2D against explicit loops over their definitions,
Keras' channel order, weight names and output sizes, a trained and saved classifier, and
their argument checks."""

import itertools
import re

import numpy as np
import pytest

import npnet
from npnet.layers import Conv2D, DepthwiseConv2D, SeparableConv2D
from npnet.testing import check_gradients


def _padding(size, k, s, d, padding):
    """Keras' conv geometry: (before, after, output size)."""
    eff = d * (k - 1) + 1
    if padding == "valid":
        return 0, 0, (size - eff) // s + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2, out


def depthwise_reference(x, kernel, strides, padding, dilation):
    """y[n, i, j, c * M + m] = sum_{a, b} xpad[n, i*s + a*d, j*s + b*d, c] K[a, b, c, m], by loops."""
    n, h, w, channels = x.shape
    kh, kw, _, multiplier = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    top, bottom, oh = _padding(h, kh, sh, dh, padding)
    left, right, ow = _padding(w, kw, sw, dw, padding)
    xp = np.zeros((n, h + top + bottom, w + left + right, channels))
    xp[:, top : top + h, left : left + w] = x
    y = np.zeros((n, oh, ow, channels * multiplier))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for c in range(channels):
                    for m in range(multiplier):
                        for a in range(kh):
                            for e in range(kw):
                                y[b, i, j, c * multiplier + m] += (
                                    xp[b, i * sh + a * dh, j * sw + e * dw, c] * kernel[a, e, c, m])
    return y


def pointwise_reference(u, kernel):
    """A 1x1 convolution by loops: z[n, i, j, f] = sum_k u[n, i, j, k] P[0, 0, k, f]."""
    n, oh, ow, cm = u.shape
    z = np.zeros((n, oh, ow, kernel.shape[-1]))
    for f in range(kernel.shape[-1]):
        for k in range(cm):
            z[..., f] += u[..., k] * kernel[0, 0, k, f]
    return z


GEOMETRIES = list(itertools.product([1, 2, 3], [1, 2], ["valid", "same"]))  # strides with dilation: allowed


@pytest.mark.parametrize("kernel_size", [1, 2, 3, (3, 2)])
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride, dilation, padding", GEOMETRIES)
def test_depthwise_forward_matches_loops(kernel_size, multiplier, stride, dilation, padding):
    npnet.set_floatx("float64")
    rng = np.random.default_rng(stride * 10 + dilation)
    x = rng.normal(size=(2, 7, 6, 3))
    layer = DepthwiseConv2D(kernel_size, strides=stride, padding=padding, depth_multiplier=multiplier,
                            dilation_rate=dilation, bias_initializer="random_normal")
    y = layer(x)
    expected = depthwise_reference(x, layer.params["kernel"], (stride, stride), padding, (dilation, dilation))
    expected += layer.params["bias"]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-12)
    assert layer.compute_output_shape((None, 7, 6, 3)) == (None, *expected.shape[1:])


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("multiplier", [1, 3])
@pytest.mark.parametrize("stride, dilation, padding", [(1, 1, "valid"), (2, 1, "same"), (1, 2, "same"),
                                                       (2, 2, "valid")])
def test_separable_forward_matches_loops(kernel_size, multiplier, stride, dilation, padding):
    npnet.set_floatx("float64")
    rng = np.random.default_rng(multiplier * 10 + stride)
    x = rng.normal(size=(2, 7, 6, 3))
    layer = SeparableConv2D(4, kernel_size, strides=stride, padding=padding, depth_multiplier=multiplier,
                            dilation_rate=dilation, bias_initializer="random_normal")
    y = layer(x)
    u = depthwise_reference(x, layer.params["depthwise_kernel"], (stride, stride), padding, (dilation, dilation))
    expected = pointwise_reference(u, layer.params["pointwise_kernel"]) + layer.params["bias"]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-12)


def test_float32_forward_and_backward_match_loops():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 9, 8, 16)).astype(np.float32)
    layer = DepthwiseConv2D(3, padding="same", depth_multiplier=2, bias_initializer="random_normal")
    y, cache = layer.forward(x, training=True)
    assert y.dtype == np.float32
    kernel = layer.params["kernel"].astype(np.float64)
    expected = depthwise_reference(x.astype(np.float64), kernel, (1, 1), "same", (1, 1)) + layer.params["bias"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # dx of a depthwise convolution: each output's gradient times its kernel weight,
    # added back at the input pixel it read (by loops, over a padded image).
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = layer.backward(cache, dy)
    dxp = np.zeros((3, 11, 10, 16))
    dk = np.zeros((3, 3, 16, 2))
    xp = np.zeros((3, 11, 10, 16))
    xp[:, 1:10, 1:9] = x
    for a in range(3):
        for b in range(3):
            for m in range(2):
                g = dy[..., m::2].astype(np.float64)  # channels c * 2 + m
                dxp[:, a : a + 9, b : b + 8] += g * kernel[a, b, :, m]
                dk[a, b, :, m] = (g * xp[:, a : a + 9, b : b + 8]).sum(axis=(0, 1, 2))
    assert dx.dtype == np.float32 and layer.grads["kernel"].dtype == np.float32
    np.testing.assert_allclose(dx, dxp[:, 1:10, 1:9], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.grads["kernel"], dk, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)


def test_keras_channel_order_by_hand():
    # Two channels, multiplier 2, a 1x1 kernel K[0, 0] = [[2, 3], [5, 7]]: output channels
    # are (x0 * 2, x0 * 3, x1 * 5, x1 * 7), channel c * M + m as in Keras.
    layer = DepthwiseConv2D(1, depth_multiplier=2, use_bias=False)
    layer.build((None, 1, 1, 2))
    layer.params["kernel"][...] = np.array([[2.0, 3.0], [5.0, 7.0]], np.float32).reshape(1, 1, 2, 2)
    y = layer(np.array([10.0, 100.0], np.float32).reshape(1, 1, 1, 2))
    np.testing.assert_array_equal(y.ravel(), [20.0, 30.0, 500.0, 700.0])
    # A 2x2 window of ones over [[1, 2], [3, 4]] with stride 1, valid: 10.
    layer = DepthwiseConv2D(2, depthwise_initializer="ones", bias_initializer="ones")
    np.testing.assert_array_equal(layer(np.arange(1.0, 5.0, dtype=np.float32).reshape(1, 2, 2, 1)).ravel(), [11.0])


def test_separable_is_depthwise_then_a_1x1_convolution():
    """Forward and every gradient equal those of DepthwiseConv2D (no bias) followed by a
    1x1 Conv2D with the same weights."""
    npnet.set_floatx("float64")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 7, 7, 3))
    sep = SeparableConv2D(4, 3, strides=2, padding="same", depth_multiplier=2, activation="tanh",
                          bias_initializer="random_normal")
    y, cache = sep.forward(x, training=True)
    dw = DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False)
    pw = Conv2D(4, 1, activation="tanh")
    dw.build((None, 7, 7, 3))
    pw.build((None, 4, 4, 6))
    dw.params["kernel"][...] = sep.params["depthwise_kernel"]
    pw.params["kernel"][...] = sep.params["pointwise_kernel"]
    pw.params["bias"][...] = sep.params["bias"]
    u, cache_dw = dw.forward(x, training=True)
    y2, cache_pw = pw.forward(u, training=True)
    np.testing.assert_allclose(y, y2, atol=1e-12)
    dy = rng.normal(size=y.shape)
    dx = sep.backward(cache, dy)
    dx2 = dw.backward(cache_dw, pw.backward(cache_pw, dy))
    np.testing.assert_allclose(dx, dx2, atol=1e-12)
    np.testing.assert_allclose(sep.grads["depthwise_kernel"], dw.grads["kernel"], atol=1e-12)
    np.testing.assert_allclose(sep.grads["pointwise_kernel"], pw.grads["kernel"], atol=1e-12)
    np.testing.assert_allclose(sep.grads["bias"], pw.grads["bias"], atol=1e-12)


# ---------------------------------------------------------------- Keras' shapes and names
@pytest.mark.parametrize("size, k, s, d, padding, expected", [
    (9, 3, 1, 1, "valid", 7),     # floor((9 - 1 * 2 - 1) / 1) + 1
    (9, 3, 2, 1, "valid", 4),     # floor(6 / 2) + 1
    (9, 3, 2, 1, "same", 5),      # floor(8 / 2) + 1
    (9, 3, 1, 2, "valid", 5),     # k_e = 5: 9 - 5 + 1
    (9, 3, 2, 2, "valid", 3),     # floor((9 - 4 - 1) / 2) + 1
    (9, 3, 3, 2, "same", 3),
    (8, 2, 3, 1, "valid", 3),     # floor(6 / 3) + 1
    (1, 3, 1, 1, "same", 1),
])
def test_output_sizes_follow_keras(size, k, s, d, padding, expected):
    dw = DepthwiseConv2D(k, strides=s, dilation_rate=d, padding=padding, depth_multiplier=3)
    assert dw.compute_output_shape((None, size, size, 2)) == (None, expected, expected, 6)
    assert dw(np.zeros((1, size, size, 2), np.float32)).shape == (1, expected, expected, 6)
    sep = SeparableConv2D(5, k, strides=s, dilation_rate=d, padding=padding)
    assert sep.compute_output_shape((None, size, size, 2)) == (None, expected, expected, 5)
    assert sep(np.zeros((1, size, size, 2), np.float32)).shape == (1, expected, expected, 5)


def test_unknown_sizes_stay_unknown():
    assert DepthwiseConv2D(3, depth_multiplier=2).compute_output_shape((None, None, 5, 3)) == (None, None, 3, 6)
    assert SeparableConv2D(4, 3, strides=2, padding="same").compute_output_shape((None, 7, None, 3)) == (
        None, 4, None, 4)


def test_weight_names_shapes_and_order_are_keras():
    dw = DepthwiseConv2D(3, depth_multiplier=2)
    dw(np.zeros((1, 5, 5, 4), np.float32))
    assert {k: v.shape for k, v in dw.params.items()} == {"kernel": (3, 3, 4, 2), "bias": (8,)}
    sep = SeparableConv2D(7, (3, 2), depth_multiplier=2)
    sep(np.zeros((1, 5, 5, 4), np.float32))
    assert [(k, v.shape) for k, v in sep.params.items()] == [
        ("depthwise_kernel", (3, 2, 4, 2)), ("pointwise_kernel", (1, 1, 8, 7)), ("bias", (7,))]
    assert sep.count_params() == 3 * 2 * 4 * 2 + 8 * 7 + 7


def test_config_round_trip_keeps_every_argument():
    dw = DepthwiseConv2D((3, 2), strides=2, padding="same", depth_multiplier=3, dilation_rate=1, activation="relu",
                         use_bias=False, depthwise_initializer="he_normal", bias_initializer="ones",
                         depthwise_regularizer="l2", depthwise_constraint="non_neg", name="dw")
    config = dw.get_config()
    assert (config["kernel_size"], config["strides"], config["depth_multiplier"], config["data_format"]) == (
        [3, 2], [2, 2], 3, "channels_last")
    assert "kernel_initializer" not in config and config["depthwise_regularizer"] is not None
    assert DepthwiseConv2D.from_config(config).get_config() == config
    sep = SeparableConv2D(6, 3, dilation_rate=2, depth_multiplier=2, pointwise_initializer="zeros",
                          pointwise_regularizer="l1", pointwise_constraint="unit_norm", activation="sigmoid")
    config = sep.get_config()
    assert config["filters"] == 6 and config["dilation_rate"] == [2, 2] and config["pointwise_constraint"] is not None
    clone = SeparableConv2D.from_config(config)
    assert clone.get_config() == config
    clone(np.ones((1, 6, 6, 2), np.float32))
    np.testing.assert_array_equal(clone.params["pointwise_kernel"], 0.0)


# ---------------------------------------------------------------- training, saving, gradients
def _bars(rng, n):
    """8x8 images of a horizontal, a vertical or a diagonal bar at a random place, with noise."""
    x = rng.normal(scale=0.3, size=(n, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    for i in range(n):
        p = rng.integers(1, 7)
        if y[i] == 0:
            x[i, p, :, 0] += 1.0
        elif y[i] == 1:
            x[i, :, p, 0] += 1.0
        else:
            x[i, np.arange(8), np.arange(8), 0] += 1.0
    return x, y


def test_a_separable_classifier_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x, y = _bars(rng, 300)
    x_test, y_test = _bars(rng, 150)
    model = npnet.Sequential([
        npnet.Input((8, 8, 2)),
        SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="relu"),
        DepthwiseConv2D(3, strides=2, depth_multiplier=2, activation="relu"),
        npnet.GlobalMaxPooling2D(),
        npnet.Dense(3, activation="softmax"),
    ], seed=0)
    model.compile(optimizer=npnet.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0, seed=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95, (loss, accuracy)  # chance is 1/3
    for layer in model.layers:
        for k, v in layer.params.items():
            assert v.dtype == np.float32 and layer.grads[k].dtype == np.float32, (layer.name, k)
    model.save(tmp_path / "sep.npnet")
    restored = npnet.load_model(tmp_path / "sep.npnet")
    sep, dw = restored.layers[0], restored.layers[1]
    assert isinstance(sep, SeparableConv2D) and isinstance(dw, DepthwiseConv2D)
    assert (sep.filters, sep.depth_multiplier, sep.padding, dw.strides) == (8, 2, "same", (2, 2))
    np.testing.assert_array_equal(restored.predict(x_test, verbose=0), model.predict(x_test, verbose=0))


def test_small_model_gradient_check():
    model = npnet.Sequential([
        npnet.Input((5, 5, 2)),
        SeparableConv2D(3, 3, padding="same", depth_multiplier=2, activation="tanh"),
        DepthwiseConv2D(2, strides=2, dilation_rate=2, depth_multiplier=2),
        npnet.Flatten(),
        npnet.Dense(2),
    ], seed=4)
    report = check_gradients(model, np.random.default_rng(1).normal(size=(2, 5, 5, 2)))
    assert report.passed and len(report.entries) == 1 + 3 + 2 + 2


# ---------------------------------------------------------------- bad input
BAD_ARGUMENTS = [
    ({"kernel_size": 0}, ValueError, r"{cls}: `kernel_size` must contain integers >= 1"),
    ({"kernel_size": (3, 3, 3)}, ValueError, r"{cls}: `kernel_size` must be an int or a tuple of 2 ints"),
    ({"kernel_size": 2.5}, TypeError, r"{cls}: `kernel_size` must be an int or a tuple of 2 ints"),
    ({"strides": 0}, ValueError, r"{cls}: `strides` must contain integers >= 1"),
    ({"strides": (1, 2, 1)}, ValueError, r"{cls}: `strides` must be an int or a tuple of 2 ints"),
    ({"dilation_rate": 0}, ValueError, r"{cls}: `dilation_rate` must contain integers >= 1"),
    ({"padding": "causal"}, ValueError, r"{cls}: `padding` must be one of \['valid', 'same'\], received 'causal'"),
    ({"depth_multiplier": 0}, ValueError, r"{cls}: `depth_multiplier` must be >= 1, received 0"),
    ({"depth_multiplier": 1.5}, TypeError, r"{cls}: `depth_multiplier` must be an integer"),
    ({"data_format": "channels_first"}, ValueError, r"{cls}: `data_format` 'channels_first' is not supported; "
                                                    r"npnet takes \(batch, height, width, channels\) inputs only"),
    ({"data_format": "NHWC"}, ValueError, r"{cls}: `data_format` must be one of"),
    ({"depthwise_initializer": "nope"}, ValueError, r"`depthwise_initializer` of {cls}: unknown initializer 'nope'"),
    ({"activation": "relu6"}, ValueError, r"{cls}: unknown activation 'relu6'"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_ARGUMENTS)
def test_depthwise_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match.replace("{cls}", "DepthwiseConv2D")):
        DepthwiseConv2D(**{"kernel_size": 3, **kwargs})


@pytest.mark.parametrize("kwargs, error, match", BAD_ARGUMENTS + [
    ({"filters": 0}, ValueError, r"{cls}: `filters` must be >= 1, received 0"),
    ({"pointwise_initializer": "nope"}, ValueError, r"`pointwise_initializer` of {cls}: unknown initializer 'nope'"),
])
def test_separable_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match.replace("{cls}", "SeparableConv2D")):
        SeparableConv2D(**{"filters": 2, "kernel_size": 3, **kwargs})


@pytest.mark.parametrize("cls", [DepthwiseConv2D, lambda k, name: SeparableConv2D(2, k, name=name)],
                         ids=["depthwise", "separable"])
def test_bad_inputs_name_the_layer(cls):
    layer = cls(3, name="l")
    kind = type(layer).__name__
    with pytest.raises(ValueError, match=re.escape(
            f"{kind} 'l': expected input of rank 4 (batch, height, width, channels), received shape (2, 5, 5)")):
        layer(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            f"{kind} 'l': kernel of effective size (3, 3) is larger than the input (2, 5) with padding='valid'")):
        layer(np.zeros((1, 2, 5, 1), np.float32))
    layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            f"{kind} 'l': expected input with last dimension 3, received shape (1, 5, 5, 2)")):
        layer(np.zeros((1, 5, 5, 2), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            f"{kind} 'l': kernel of effective size (3, 3) is larger than the input (5, 2) with padding='valid'")):
        layer(np.zeros((1, 5, 2, 3), np.float32))

