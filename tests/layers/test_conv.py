"""Convolution, pooling and batch normalization against obviously-correct loop references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet.layers import AveragePooling2D, BatchNormalization, Conv2D, MaxPooling2D

from ..strategies import seeds


def _pad_amounts(size, k_eff, stride, padding):
    if padding == "valid":
        return 0, 0, (size - k_eff) // stride + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2, out


def _offset_sum_reference(xp, kernel, strides, dilation, out_hw):
    """Convolution of a padded batch as a sum over kernel offsets, in float64."""
    (sh, sw), (dh, dw), (oh, ow) = strides, dilation, out_hw
    y = 0.0
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            win = xp[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw, :]
            y = y + win.astype(np.float64) @ kernel[i, j].astype(np.float64)
    return y


@pytest.mark.parametrize("channels, strides, dilation", [(16, 1, 1), (3, 1, 1), (16, 2, 1), (8, 1, 2)])
def test_convolution_of_a_large_batch_matches_the_formula(channels, strides, dilation, rng):
    # large enough that dx is computed in several blocks of images, and run as two batches
    # of a training run that keeps its arrays (as fit does), so the second batch reuses them
    x = rng.normal(size=(40, 30, 30, channels)).astype(np.float32)
    conv = Conv2D(12, 3, strides=strides, padding="same", dilation_rate=dilation, use_bias=False)
    lo, hi, oh = _pad_amounts(30, dilation * 2 + 1, strides, "same")
    dy = rng.normal(size=(40, oh, oh, 12)).astype(np.float32)
    kept = {}

    def batch():
        with npnet._tape.running(npnet._tape.Run(training=True, buffers=kept)):
            y, cache = conv.forward(x, training=True)
            return y, conv.backward(cache, dy)

    batch()
    first = {key: id(buf) for key, buf in kept.items()}
    for buf in kept.values():  # kept between batches: nothing may leak through
        buf.fill(np.nan)
    y, dx = batch()
    assert first and {key: id(buf) for key, buf in kept.items()} == first  # every kept array was reused
    kernel = conv.params["kernel"]
    xp = np.zeros((40, 30 + lo + hi, 30 + lo + hi, channels))
    xp[:, lo : lo + 30, lo : lo + 30] = x
    expected = _offset_sum_reference(xp, kernel, (strides, strides), (dilation, dilation), (oh, oh))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)

    # dx: every output's gradient times the kernel, added back into its window
    dxp = np.zeros_like(xp)
    for i in range(3):
        for j in range(3):
            r, c = i * dilation, j * dilation
            end = (oh - 1) * strides + 1
            dxp[:, r : r + end : strides, c : c + end : strides, :] += dy.astype(np.float64) @ kernel[i, j].T
    np.testing.assert_allclose(dx, dxp[:, lo : lo + 30, lo : lo + 30], rtol=1e-4, atol=1e-4)


def conv_reference(x, kernel, bias, stride, padding, dilation):
    """Direct definition: y[n, i, j, f] = b[f] + sum_{a, b, c} xpad[n, i*s + a*d, j*s + b*d, c] K[a, b, c, f]."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    pt, pb, oh = _pad_amounts(h, dilation * (kh - 1) + 1, stride, padding)
    pl, pr, ow = _pad_amounts(w, dilation * (kw - 1) + 1, stride, padding)
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + w] = x
    y = np.zeros((n, oh, ow, f))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    for bb in range(kw):
                        y[b, i, j] += xp[b, i * stride + a * dilation, j * stride + bb * dilation] @ kernel[a, bb]
    return y + bias


def pool_reference(x, pool, stride, padding, op):
    n, h, w, c = x.shape
    pt, pb, oh = _pad_amounts(h, pool, stride, padding)
    pl, pr, ow = _pad_amounts(w, pool, stride, padding)
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride - pt, j * stride - pl
            rows = slice(max(r0, 0), min(r0 + pool, h))
            cols = slice(max(c0, 0), min(c0 + pool, w))
            window = x[:, rows, cols, :]
            y[:, i, j] = window.max(axis=(1, 2)) if op == "max" else window.mean(axis=(1, 2))
    return y


@given(h=st.integers(3, 9), w=st.integers(3, 9), c=st.integers(1, 3), f=st.integers(1, 3), k=st.integers(1, 3),
       stride=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]), dilation=st.integers(1, 2), seed=seeds)
def test_conv2d_forward_matches_loops(h, w, c, f, k, stride, padding, dilation, seed):
    if stride > 1 and dilation > 1:
        dilation = 1
    if padding == "valid" and dilation * (k - 1) + 1 > min(h, w):
        return
    r = np.random.default_rng(seed)
    x = r.normal(size=(2, h, w, c))
    layer = Conv2D(f, k, strides=stride, padding=padding, dilation_rate=dilation, bias_initializer="random_normal")
    npnet.set_floatx("float64")
    y = layer(x)
    expected = conv_reference(x, layer.params["kernel"], layer.params["bias"], stride, padding, dilation)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-10)


@given(h=st.integers(2, 9), w=st.integers(2, 9), pool=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), seed=seeds)
def test_pooling_forward_matches_loops(h, w, pool, stride, padding, seed):
    if padding == "valid" and pool > min(h, w):
        return
    x = np.random.default_rng(seed).normal(size=(2, h, w, 3))
    for layer, op in ((MaxPooling2D(pool, stride, padding), "max"), (AveragePooling2D(pool, stride, padding), "mean")):
        np.testing.assert_allclose(layer(x), pool_reference(x, pool, stride, padding, op), atol=1e-12)


@pytest.mark.parametrize("size, k, s, padding, expected", [
    (64, 3, 1, "same", 64), (64, 3, 2, "same", 32), (65, 3, 2, "same", 33), (7, 2, 2, "same", 4),
    (64, 3, 1, "valid", 62), (65, 3, 2, "valid", 32), (7, 2, 2, "valid", 3), (5, 5, 1, "valid", 1),
])
def test_output_sizes_follow_keras(size, k, s, padding, expected):
    layer = Conv2D(1, k, strides=s, padding=padding)
    assert layer.compute_output_shape((None, size, size, 1)) == (None, expected, expected, 1)
    assert layer(np.zeros((1, size, size, 1), np.float32)).shape == (1, expected, expected, 1)


def test_batchnorm_training_and_inference_values():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])  # feature 0: mean 3, var 8/3
    bn = BatchNormalization(momentum=0.5, epsilon=1e-3)
    y = bn(x, training=True)
    np.testing.assert_allclose(y[:, 0], (x[:, 0] - 3) / np.sqrt(8 / 3 + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(bn.state["moving_mean"], [0.5 * 0 + 0.5 * 3, 0.5 * 20], rtol=1e-6)
    np.testing.assert_allclose(bn.state["moving_variance"], [0.5 + 0.5 * 8 / 3, 0.5 + 0.5 * 200], rtol=1e-6)
    y_inf = bn(x, training=False)
    np.testing.assert_allclose(y_inf[:, 0], (x[:, 0] - 1.5) / np.sqrt(0.5 + 4 / 3 + 1e-3), rtol=1e-6)


def test_batchnorm_state_is_non_trainable_saved_and_counted(tmp_path, capsys):
    model = npnet.Sequential([npnet.Input(shape=(8, 8, 1)), Conv2D(4, 3, padding="same"), BatchNormalization(),
                              npnet.ReLU(), MaxPooling2D(2), npnet.GlobalAveragePooling2D(),
                              npnet.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype(np.float32)
    y = np.arange(32) % 3
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    bn = model.layers[1]
    assert not np.allclose(bn.state["moving_mean"], 0)
    model.summary()
    out = capsys.readouterr().out
    # conv 3*3*1*4 + 4 = 40; BN gamma, beta 8 trainable + 8 moving stats; dense 4*3 + 3 = 15
    assert "Trainable params: 63" in out and "Non-trainable params: 8" in out
    assert bn.count_params() == 16 and model.count_params() == 63 + 8  # trainable or not, as Keras counts
    model.save(tmp_path / "cnn.npnet")
    restored = npnet.load_model(tmp_path / "cnn.npnet")
    np.testing.assert_array_equal(restored.layers[1].state["moving_variance"], bn.state["moving_variance"])
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_whole_cnn_gradient_check():
    model = npnet.Sequential([npnet.Input(shape=(6, 6, 2)), Conv2D(3, 3, padding="same"), BatchNormalization(),
                              npnet.Tanh(), AveragePooling2D(2), Conv2D(2, 2, strides=1), npnet.Flatten(),
                              npnet.Dense(3, activation="softmax")], seed=1)
    model.compile("sgd", "sparse_categorical_crossentropy")
    r = np.random.default_rng(2)
    report = npnet.testing.check_gradients(model, r.normal(size=(3, 6, 6, 2)), np.array([0, 1, 2]), training=True)
    assert report.passed and len(report.entries) == 1 + 2 + 2 + 2 + 2


@pytest.mark.parametrize("factory, x_shape, match", [
    (lambda: Conv2D(4, 3, name="c"), (2, 8, 8), r"Conv2D 'c': expected input of rank 4 \(batch, height, width, channels\), "
                                               r"received shape \(2, 8, 8\)"),
    (lambda: Conv2D(4, 5, name="c"), (2, 4, 4, 1), r"Conv2D 'c': kernel of effective size \(5, 5\) is larger than the input "
                                                  r"\(4, 4\) with padding='valid'"),
    (lambda: MaxPooling2D(3, name="p"), (2, 2, 2, 1), r"MaxPooling2D 'p': pool \(3, 3\) is larger than the input"),
    (lambda: npnet.GlobalAveragePooling2D(name="g"), (2, 8), r"GlobalAveragePooling2D 'g': expected input of rank 4"),
])
def test_bad_image_input(factory, x_shape, match):
    with pytest.raises(ValueError, match=match):
        factory()(np.zeros(x_shape, np.float32))


def test_wrong_channel_count_on_a_built_layer():
    conv = Conv2D(4, 3, name="c")
    conv(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D 'c': expected input with last dimension 3, received shape \(1, 8, 8, 1\)"):
        conv(np.zeros((1, 8, 8, 1), np.float32))


@pytest.mark.parametrize("factory, match", [
    (lambda: Conv2D(0, 3), r"Conv2D: `filters` must be >= 1, received 0"),
    (lambda: Conv2D(4, 0), r"Conv2D: `kernel_size` must contain integers >= 1"),
    (lambda: Conv2D(4, -2), r"Conv2D: `kernel_size` must contain integers >= 1"),
    (lambda: Conv2D(4, (3, 3, 3)), r"Conv2D: `kernel_size` must be an int or a tuple of 2 ints"),
    (lambda: Conv2D(4, 3, strides=0), r"Conv2D: `strides` must contain integers >= 1"),
    (lambda: Conv2D(4, 3, padding="full"), r"Conv2D: `padding` must be one of \['valid', 'same'\]"),
    (lambda: Conv2D(4, 3, strides=2, dilation_rate=2), r"`strides` > 1 together with `dilation_rate` > 1"),
    (lambda: MaxPooling2D(0), r"MaxPooling2D: `pool_size` must contain integers >= 1"),
    (lambda: BatchNormalization(momentum=2), r"BatchNormalization: `momentum` must be in \[0, 1\]"),
])
def test_bad_sizes_are_rejected(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_images_of_varying_size_build_symbolically_and_train():
    x = npnet.Input(shape=(None, None, 2))
    h = npnet.layers.Conv2D(3, 3, padding="same", strides=2, activation="relu")(x)
    assert h.shape == (None, None, None, 3)
    h = npnet.layers.MaxPooling2D()(h)
    h = npnet.layers.AveragePooling2D(padding="same")(npnet.layers.Conv2D(4, 2)(h))
    assert h.shape == (None, None, None, 4)
    model = npnet.Model(x, npnet.layers.Dense(2)(npnet.layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer="sgd", loss="mse")
    r = np.random.default_rng(0)
    for size in (9, 16):
        xs = r.normal(size=(4, size, size + 3, 2)).astype(np.float32)
        assert model.predict(xs, verbose=0).shape == (4, 2)
        before = model.get_weights()[0].copy()
        model.fit(xs, np.zeros((4, 2), np.float32), epochs=1, verbose=0)
        assert not np.array_equal(before, model.get_weights()[0])
    with pytest.raises(ValueError, match="larger than the input"):
        npnet.layers.Conv2D(1, 5)(npnet.Input(shape=(None, 3, 1)))


# ---------------------------------------------------------------- Keras 3 arguments: groups, data_format
def grouped_conv_reference(x, kernel, bias, groups):
    """Keras' grouped convolution written out: input channels and filters cut into
    `groups` consecutive blocks, block j of filters sees block j of channels only
    (valid padding, stride 1)."""
    n, h, w, c = x.shape
    kh, kw, cg, f = kernel.shape
    assert cg * groups == c
    fg = f // groups
    y = np.zeros((n, h - kh + 1, w - kw + 1, f))
    for j in range(groups):
        xj = x[..., j * cg:(j + 1) * cg]
        for i in range(y.shape[1]):
            for k in range(y.shape[2]):
                patch = xj[:, i:i + kh, k:k + kw, :]  # (n, kh, kw, cg)
                y[:, i, k, j * fg:(j + 1) * fg] = np.einsum("nabc,abcf->nf", patch, kernel[..., j * fg:(j + 1) * fg])
    return y + bias


def test_grouped_conv2d_by_hand():
    # 2 groups, 1x1 kernel: channel 0 -> filter 0, channel 1 -> filter 1 (each a scalar weight).
    conv = Conv2D(2, 1, groups=2, use_bias=False)
    x = np.array([[[[1.0, 10.0], [2.0, 20.0]]]])  # (1, 1, 2, 2)
    conv.build(x.shape)
    assert conv.params["kernel"].shape == (1, 1, 1, 2)
    conv.params["kernel"][...] = np.array([3.0, -1.0]).reshape(1, 1, 1, 2)
    # y[..., 0] = 3 * x[..., 0]; y[..., 1] = -1 * x[..., 1]
    np.testing.assert_allclose(conv(x)[0, 0], [[3.0, -10.0], [6.0, -20.0]])


@pytest.mark.parametrize("groups, c, f", [(2, 4, 6), (3, 3, 3), (4, 8, 4)])
def test_grouped_conv2d_matches_the_keras_definition(groups, c, f, rng):
    npnet.set_floatx("float64")
    x = rng.normal(size=(2, 5, 6, c))
    conv = Conv2D(f, (2, 3), groups=groups, bias_initializer="random_normal")
    y = conv(x)
    assert conv.params["kernel"].shape == (2, 3, c // groups, f)
    np.testing.assert_allclose(y, grouped_conv_reference(x, conv.params["kernel"], conv.params["bias"], groups),
                               atol=1e-12)


@pytest.mark.parametrize("kwargs", [{}, {"padding": "same", "strides": 2}, {"dilation_rate": 2, "use_bias": False},
                                    {"activation": "tanh", "padding": "same"}])
def test_grouped_conv2d_gradients(kwargs, rng):
    conv = Conv2D(6, (2, 3), groups=3, **kwargs)
    report = npnet.testing.check_gradients(conv, rng.normal(size=(2, 6, 7, 6)))
    assert report.passed, report


def test_grouped_conv2d_config_and_saving(tmp_path, rng):
    conv = Conv2D(4, 3, groups=2, data_format="channels_last", name="g")
    config = conv.get_config()
    assert config["groups"] == 2 and config["data_format"] == "channels_last"
    assert Conv2D.from_config(config).get_config() == config
    model = npnet.Sequential([npnet.Input(shape=(5, 5, 4)), conv, npnet.layers.Flatten(), npnet.layers.Dense(2)],
                             seed=0)
    model.compile("adam", "mse")
    x = rng.normal(size=(8, 5, 5, 4)).astype(np.float32)
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "g.npnet")
    restored = npnet.load_model(tmp_path / "g.npnet")
    assert restored.layers[0].groups == 2
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_conv2d_data_format_none_means_channels_last():
    conv = Conv2D(2, 3, data_format=None)
    assert conv.data_format == "channels_last"
    assert conv(np.zeros((1, 5, 5, 3), np.float32)).shape == (1, 3, 3, 2)


@pytest.mark.parametrize("factory, error, match", [
    (lambda: Conv2D(4, 3, data_format="channels_first"), ValueError,
     r"Conv2D: `data_format` 'channels_first' is not supported; npnet takes \(batch, height, width, channels\) inputs only"),
    (lambda: Conv2D(4, 3, data_format="nhwc"), ValueError, r"Conv2D: `data_format` must be one of"),
    (lambda: Conv2D(4, 3, groups=0), ValueError, r"Conv2D: `groups` must be >= 1, received 0"),
    (lambda: Conv2D(4, 3, groups=1.5), TypeError, r"Conv2D: `groups` must be an int"),
    (lambda: Conv2D(5, 3, groups=2), ValueError,
     r"Conv2D: `filters` must be divisible by `groups`, received filters=5 and groups=2"),
])
def test_bad_groups_and_data_format(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_grouped_conv2d_rejects_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"Conv2D 'g': the input's 3 channels must be divisible by `groups`=2"):
        Conv2D(4, 3, groups=2, name="g")(np.zeros((1, 5, 5, 3), np.float32))


# ---------------------------------------------------------------- Keras 3 arguments of the 2-D pooling layers
def test_global_pooling_2d_keepdims_values_and_gradients(rng):
    x = np.arange(12.0).reshape(1, 2, 3, 2)  # channel 0: 0, 2, ..., 10; channel 1: 1, 3, ..., 11
    avg = npnet.layers.GlobalAveragePooling2D(keepdims=True)
    mx = npnet.layers.GlobalMaxPooling2D(keepdims=True)
    np.testing.assert_allclose(avg(x), [[[[(0 + 2 + 4 + 6 + 8 + 10) / 6, (1 + 3 + 5 + 7 + 9 + 11) / 6]]]])
    np.testing.assert_allclose(mx(x), [[[[10.0, 11.0]]]])
    assert avg.compute_output_shape((None, 2, 3, 2)) == (None, 1, 1, 2)
    assert npnet.layers.GlobalAveragePooling2D().compute_output_shape((None, 2, 3, 2)) == (None, 2)
    # dx of the mean: dy / (h * w) everywhere; of the max: dy at the maximum only
    _, cache = avg.forward(x)
    np.testing.assert_allclose(avg.backward(cache, np.full((1, 1, 1, 2), 6.0)), np.ones_like(x))
    _, cache = mx.forward(x)
    dx = mx.backward(cache, np.array([[[[2.0, 3.0]]]]))
    assert dx[0, 1, 2, 0] == 2.0 and dx[0, 1, 2, 1] == 3.0 and dx.sum() == 5.0
    xs = rng.normal(size=(2, 3, 4, 3))
    for layer in (avg, mx):
        assert npnet.testing.check_gradients(layer, xs).passed


@pytest.mark.parametrize("cls", [npnet.layers.GlobalAveragePooling2D, npnet.layers.GlobalMaxPooling2D])
def test_global_pooling_2d_keepdims_config_and_saving(cls, tmp_path, rng):
    layer = cls(data_format="channels_last", keepdims=True)
    config = layer.get_config()
    assert config["keepdims"] is True and config["data_format"] == "channels_last"
    assert cls.from_config(config).get_config() == config
    model = npnet.Sequential([npnet.Input(shape=(4, 4, 2)), Conv2D(3, 3), layer, npnet.layers.Flatten()], seed=0)
    x = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (2, 3)
    model.save(tmp_path / "m.npnet")
    np.testing.assert_array_equal(npnet.load_model(tmp_path / "m.npnet").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
def test_pooling_2d_data_format(cls):
    layer = cls(2, data_format=None)
    assert layer.data_format == "channels_last" and layer.get_config()["data_format"] == "channels_last"
    assert cls.from_config(layer.get_config()).pool_size == (2, 2)
    assert layer(np.zeros((1, 4, 4, 3), np.float32)).shape == (1, 2, 2, 3)


def test_flatten_data_format():
    layer = npnet.layers.Flatten(data_format="channels_last")
    assert layer.get_config()["data_format"] == "channels_last"
    assert npnet.layers.Flatten.from_config(layer.get_config()).data_format == "channels_last"
    x = np.arange(12.0).reshape(1, 2, 3, 2)
    np.testing.assert_array_equal(layer(x), x.reshape(1, 12))


@pytest.mark.parametrize("factory, error, match", [
    (lambda: MaxPooling2D(data_format="channels_first"), ValueError,
     r"MaxPooling2D: `data_format` 'channels_first' is not supported; npnet takes \(batch, height, width, channels\)"),
    (lambda: AveragePooling2D(data_format="channels_first"), ValueError,
     r"AveragePooling2D: `data_format` 'channels_first' is not supported"),
    (lambda: npnet.layers.GlobalAveragePooling2D(data_format="channels_first"), ValueError,
     r"GlobalAveragePooling2D: `data_format` 'channels_first' is not supported"),
    (lambda: npnet.layers.GlobalMaxPooling2D(data_format="channels_first"), ValueError,
     r"GlobalMaxPooling2D: `data_format` 'channels_first' is not supported"),
    (lambda: MaxPooling2D(data_format="nchw"), ValueError, r"MaxPooling2D: `data_format` must be one of"),
    (lambda: npnet.layers.GlobalMaxPooling2D(keepdims=1), TypeError,
     r"GlobalMaxPooling2D: `keepdims` must be True or False, received 1"),
    (lambda: npnet.layers.Flatten(data_format="channels_first"), ValueError,
     r"Flatten: `data_format` 'channels_first' is not supported; npnet takes channels-last inputs only"),
    (lambda: npnet.layers.Flatten(data_format=3), ValueError, r"Flatten: `data_format` must be one of \[.channels_last.\], received 3"),
])
def test_bad_pooling_and_flatten_arguments(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


# ---------------------------------------------------------------- Keras 3 arguments of BatchNormalization
def test_batchnorm_initializers_are_used(tmp_path):
    c = npnet.initializers.Constant
    bn = BatchNormalization(momentum=0.5, epsilon=1e-3, gamma_initializer=c(2.0), beta_initializer=c(0.5),
                            moving_mean_initializer=c(1.0), moving_variance_initializer=c(4.0))
    x = np.array([[1.0], [3.0], [5.0]])  # batch mean 3, biased variance 8/3
    # inference with the initial statistics: y = gamma (x - 1) / sqrt(4 + eps) + beta
    np.testing.assert_allclose(bn(x), 2.0 * (x - 1.0) / np.sqrt(4.0 + 1e-3) + 0.5, rtol=1e-6)
    bn(x, training=True)
    # moving = momentum * initial + (1 - momentum) * batch
    np.testing.assert_allclose(bn.state["moving_mean"], [0.5 * 1.0 + 0.5 * 3.0], rtol=1e-6)
    np.testing.assert_allclose(bn.state["moving_variance"], [0.5 * 4.0 + 0.5 * 8 / 3], rtol=1e-6)
    config = bn.get_config()
    assert config["moving_variance_initializer"]["class_name"] == "Constant"
    assert config["moving_variance_initializer"]["config"]["value"] == 4.0
    assert config["synchronized"] is False and config["renorm"] is False
    rebuilt = BatchNormalization.from_config(config)
    assert rebuilt.get_config() == config
    rebuilt.build((None, 1))
    np.testing.assert_allclose(rebuilt.state["moving_variance"], [4.0])
    np.testing.assert_allclose(rebuilt.params["gamma"], [2.0])
    np.testing.assert_allclose(rebuilt.params["beta"], [0.5])


def test_batchnorm_with_initializers_trains_saves_and_checks_gradients(tmp_path, rng):
    model = npnet.Sequential([npnet.Input(shape=(3,)), BatchNormalization(
        gamma_initializer="random_uniform", moving_variance_initializer=npnet.initializers.Constant(2.0),
        synchronized=False, renorm=False, renorm_momentum=0.9, renorm_clipping={"rmax": 3.0})], seed=0)
    bn = model.layers[0]
    assert not np.allclose(bn.params["gamma"], 1.0)
    np.testing.assert_allclose(bn.state["moving_variance"], 2.0)
    model.save(tmp_path / "bn.npnet")
    restored = npnet.load_model(tmp_path / "bn.npnet").layers[0]
    assert restored.renorm_clipping == {"rmax": 3.0} and restored.renorm_momentum == 0.9
    np.testing.assert_array_equal(restored.params["gamma"], bn.params["gamma"])
    assert npnet.testing.check_gradients(bn, rng.normal(size=(4, 3)), training=True).passed


@pytest.mark.parametrize("kwargs, error, match", [
    ({"synchronized": True}, ValueError, r"BatchNormalization: `synchronized=True` .* is not supported"),
    ({"synchronized": "yes"}, TypeError, r"BatchNormalization: `synchronized` must be"),
    ({"renorm": True}, ValueError, r"BatchNormalization: batch renormalization is not supported"),
    ({"renorm_clipping": 3}, TypeError, r"BatchNormalization: `renorm_clipping` must be a dict or None"),
    ({"renorm_momentum": 2.0}, ValueError, r"BatchNormalization: `renorm_momentum` must be in \[0, 1\]"),
    ({"gamma_initializer": "nope"}, ValueError, r"`gamma_initializer` of BatchNormalization"),
    ({"moving_mean_initializer": 3}, (TypeError, ValueError), r"`moving_mean_initializer` of BatchNormalization"),
])
def test_bad_batchnorm_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)
