"""Conv2DTranspose against its definition (the scatter of each input pixel times the
kernel) and against Keras' own route (dilate, pad, correlate with the flipped kernel);
the adjoint identity with Conv2D; Keras' output sizes; a trained and saved model; and
its argument checks."""

import itertools
import re

import numpy as np
import pytest

import npnet
from npnet.layers import Conv2D, Conv2DTranspose
from npnet.testing import check_gradients


# ---------------------------------------------------------------- Keras' geometry, written out
def keras_output_size(size, k, s, padding, output_padding, d):
    """keras.src.backend.common.backend_utils._get_output_shape_given_tf_padding."""
    k = (k - 1) * d + 1
    if padding == "valid":
        op = max(k, s) - k if output_padding is None else output_padding
        return (size - 1) * s + k + op
    if output_padding is None:
        return size * s
    return (size - 1) * s + k % 2 + output_padding


def keras_jax_padding(k, s, padding, output_padding, d):
    """keras.src.backend.common.backend_utils._convert_conv_transpose_padding_args_from_keras_to_jax:
    the (left, right) padding of the stride-dilated input before the correlation."""
    k = (k - 1) * d + 1
    if padding == "valid":
        op = max(k, s) - k if output_padding is None else output_padding
        return k - 1, k - 1 + op
    pad_len = s + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return left, pad_len - left


def _ops(output_padding):
    return (None, None) if output_padding is None else output_padding


# ---------------------------------------------------------------- two references
def scatter_reference(x, kernel, bias, strides, padding, output_padding, dilation):
    """By the definition: every input pixel adds kernel[a, b] @ x[n, i, j] at
    (i * s + a * d, j * s + b * d) of a full image; the output is the window of it that
    starts at the left padding Keras removes, k_e - 1 - left."""
    n, h, w, _ = x.shape
    kh, kw, f, _ = kernel.shape
    full = np.zeros((n, (h - 1) * strides[0] + (kh - 1) * dilation[0] + 1 + 8,
                     (w - 1) * strides[1] + (kw - 1) * dilation[1] + 1 + 8, f))
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for a in range(kh):
                    for c in range(kw):
                        full[b, i * strides[0] + a * dilation[0], j * strides[1] + c * dilation[1]] += (
                            kernel[a, c] @ x[b, i, j])
    starts, sizes = [], []
    for size, k, s, op, d in zip((h, w), (kh, kw), strides, _ops(output_padding), dilation):
        left, _ = keras_jax_padding(k, s, padding, op, d)
        starts.append((k - 1) * d - left)
        sizes.append(keras_output_size(size, k, s, padding, op, d))
    return full[:, starts[0] : starts[0] + sizes[0], starts[1] : starts[1] + sizes[1]] + bias


def correlation_reference(x, kernel, bias, strides, padding, output_padding, dilation):
    """Keras' NumPy backend route (jax.lax.conv_transpose with transpose_kernel=True):
    put s - 1 zeros between input pixels, pad (left, right), then correlate at stride 1
    with the spatially flipped, dilated kernel."""
    n, h, w, c = x.shape
    kh, kw, f, _ = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    dilated = np.zeros((n, (h - 1) * sh + 1, (w - 1) * sw + 1, c))
    dilated[:, ::sh, ::sw] = x
    (lh, rh), (lw, rw) = (keras_jax_padding(k, s, padding, op, d)
                          for k, s, op, d in zip((kh, kw), strides, _ops(output_padding), dilation))
    xp = np.zeros((n, dilated.shape[1] + lh + rh, dilated.shape[2] + lw + rw, c))
    xp[:, lh : lh + dilated.shape[1], lw : lw + dilated.shape[2]] = dilated
    flipped = kernel[::-1, ::-1]  # (kh, kw, f, c)
    oh, ow = xp.shape[1] - (kh - 1) * dh, xp.shape[2] - (kw - 1) * dw
    y = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    y[:, i, j] += xp[:, i + a * dh, j + b * dw] @ flipped[a, b].T
    return y + bias


GEOMETRIES = [(s, d, p, op) for s, d, p, op in itertools.product([1, 2, 3], [1, 2], ["valid", "same"], [None, 0, 1, 2])
              if (s == 1 or d == 1) and (op is None or op < s)]


@pytest.mark.parametrize("kernel_size", [1, 2, 3, (2, 3)])
@pytest.mark.parametrize("stride, dilation, padding, output_padding", GEOMETRIES)
def test_forward_matches_the_scatter_definition_and_keras_route(kernel_size, stride, dilation, padding,
                                                                output_padding):
    npnet.set_floatx("float64")
    rng = np.random.default_rng(stride * 100 + dilation * 10 + (output_padding or 0))
    x = rng.normal(size=(2, 3, 4, 2))
    layer = Conv2DTranspose(3, kernel_size, strides=stride, padding=padding, output_padding=output_padding,
                            dilation_rate=dilation, bias_initializer="random_normal")
    ops = None if output_padding is None else (output_padding, output_padding)
    k = layer.kernel_size
    sizes = [keras_output_size(n, kk, stride, padding, output_padding, dilation) for n, kk in zip((3, 4), k)]
    if min(sizes) < 1:  # "same" with output_padding 0, an even kernel and one input row: refused
        with pytest.raises(ValueError, match="empty output"):
            layer(x)
        return
    y = layer(x)
    args = (x, layer.params["kernel"], layer.params["bias"], (stride, stride), padding, ops, (dilation, dilation))
    expected = scatter_reference(*args)
    assert y.shape == (2, *sizes, 3) == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-12)
    np.testing.assert_allclose(correlation_reference(*args), expected, atol=1e-12)
    assert layer.compute_output_shape((None, 3, 4, 2)) == (None, *sizes, 3)


def test_float32_forward_matches_the_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    layer = Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1, bias_initializer="random_normal")
    y = layer(x)
    assert y.dtype == np.float32 and layer.params["kernel"].dtype == np.float32
    expected = scatter_reference(x.astype(np.float64), layer.params["kernel"].astype(np.float64),
                                 layer.params["bias"].astype(np.float64), (2, 2), "same", (1, 1), (1, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_hand_worked_values():
    # One channel, kernel [[1, 2], [3, 4]], input [[1, 10]], stride 2, valid: each pixel
    # stamps the kernel times itself, side by side.
    layer = Conv2DTranspose(1, 2, strides=2, use_bias=False)
    layer.build((None, 1, 2, 1))
    layer.params["kernel"][...] = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(2, 2, 1, 1)
    y = layer(np.array([[1.0, 10.0]], np.float32).reshape(1, 1, 2, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 2, 10, 20], [3, 4, 30, 40]])
    # Stride 1, kernel 3x1 of ones, "same": the full image [1, 11, 111, 110, 100] of
    # x = [1, 10, 100], cropped by one at the start (Keras' left padding 1 of 2).
    layer = Conv2DTranspose(1, (3, 1), padding="same", kernel_initializer="ones", use_bias=False)
    y = layer(np.array([1.0, 10.0, 100.0], np.float32).reshape(1, 3, 1, 1))
    np.testing.assert_array_equal(y.ravel(), [11, 111, 110])
    # Stride 2, kernel 1, valid: output_padding None gives max(1, 2) - 1 = 1 extra zero row.
    layer = Conv2DTranspose(1, 1, strides=(2, 1), kernel_initializer="ones", use_bias=False)
    y = layer(np.array([1.0, 2.0], np.float32).reshape(1, 2, 1, 1))
    np.testing.assert_array_equal(y.ravel(), [1, 0, 2, 0])


# ---------------------------------------------------------------- the adjoint of Conv2D
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (3, 1), (1, 2)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(kernel_size, stride, dilation, padding):
    """<conv(x), y> == <x, conv_transpose(y)> for the same kernel, with x of the shape
    conv_transpose(y) has: the transposed convolution is the gradient of the convolution."""
    npnet.set_floatx("float64")
    rng = np.random.default_rng(kernel_size * 10 + stride + dilation)
    y = rng.normal(size=(2, 4, 5, 3))
    convt = Conv2DTranspose(2, kernel_size, strides=stride, padding=padding, dilation_rate=dilation, use_bias=False)
    ty = convt(y)
    x = rng.normal(size=ty.shape)
    conv = Conv2D(3, kernel_size, strides=stride, padding=padding, dilation_rate=dilation, use_bias=False)
    conv.build((None, *x.shape[1:]))
    conv.params["kernel"][...] = convt.params["kernel"]  # (kh, kw, 2, 3): conv maps 2 channels to 3
    cx = conv(x)
    assert cx.shape == y.shape
    np.testing.assert_allclose(np.vdot(cx, y), np.vdot(x, ty), rtol=1e-12)
    # and its input gradient is the convolution: dx = conv(dy)
    _, cache = convt.forward(y, training=True)
    np.testing.assert_allclose(convt.backward(cache, x), cx, atol=1e-12)


# ---------------------------------------------------------------- output sizes
@pytest.mark.parametrize("size, k, s, padding, output_padding, d, expected", [
    (7, 3, 2, "same", None, 1, 14),     # i * s
    (7, 4, 2, "same", None, 1, 14),
    (7, 3, 2, "same", 1, 1, 14),        # (i - 1) s + k % 2 + op = 12 + 1 + 1
    (7, 3, 2, "same", 0, 1, 13),
    (7, 4, 2, "same", 1, 1, 13),        # 12 + 0 + 1
    (7, 4, 2, "same", 0, 1, 12),
    (7, 3, 2, "valid", None, 1, 15),    # (i - 1) s + k + max(k, s) - k = 12 + 3 + 0
    (7, 1, 2, "valid", None, 1, 14),    # 12 + 1 + (2 - 1)
    (4, 2, 3, "valid", None, 1, 12),    # 9 + 2 + 1
    (7, 3, 3, "valid", 2, 1, 23),       # 18 + 3 + 2
    (5, 3, 1, "valid", None, 2, 9),     # k_e = 5: 4 + 5
    (5, 3, 1, "same", None, 2, 5),
    (5, 2, 1, "same", 0, 3, 4),         # k_e = 4: 4 + 0 + 0
    (1, 3, 1, "valid", None, 1, 3),
])
def test_output_sizes_follow_keras(size, k, s, padding, output_padding, d, expected):
    layer = Conv2DTranspose(1, k, strides=s, padding=padding, output_padding=output_padding, dilation_rate=d)
    assert layer.compute_output_shape((None, size, size, 2)) == (None, expected, expected, 1)
    assert layer(np.zeros((1, size, size, 2), np.float32)).shape == (1, expected, expected, 1)


def test_unknown_spatial_sizes_stay_unknown():
    layer = Conv2DTranspose(3, 3, strides=2, padding="same")
    assert layer.compute_output_shape((None, None, 5, 2)) == (None, None, 10, 3)


# ---------------------------------------------------------------- training, saving, gradients
def _blob_images(rng, n, size=8):
    """One Gaussian bump per image at a random place: a smooth picture to reconstruct."""
    yy, xx = np.mgrid[0:size, 0:size]
    centers = rng.uniform(1.5, size - 2.5, size=(n, 2))
    d2 = (yy - centers[:, 0, None, None]) ** 2 + (xx - centers[:, 1, None, None]) ** 2
    return np.exp(-d2 / 3.0)[..., None].astype(np.float32)


def test_a_small_autoencoder_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = _blob_images(rng, 256)
    model = npnet.Sequential([
        npnet.Input((8, 8, 1)),
        Conv2D(8, 3, strides=2, padding="same", activation="relu"),       # 4x4x8
        Conv2D(4, 3, strides=2, padding="same", activation="relu"),       # 2x2x4
        Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu"),  # 4x4x8
        Conv2DTranspose(1, 3, strides=2, padding="same", output_padding=1),   # 8x8x1
    ], seed=0)
    model.compile(optimizer=npnet.optimizers.Adam(0.01), loss="mse")
    baseline = float(np.mean((x - x.mean()) ** 2))  # the loss of predicting the mean pixel
    history = model.fit(x, x, epochs=40, batch_size=32, verbose=0, seed=0)
    final = history.history["loss"][-1]
    assert final < 0.05 * baseline, (final, baseline)
    for layer in model.layers:
        for k, v in layer.params.items():
            assert v.dtype == np.float32 and layer.grads[k].dtype == np.float32, (layer.name, k)
    model.save(tmp_path / "ae.npnet")
    restored = npnet.load_model(tmp_path / "ae.npnet")
    up = restored.layers[3]
    assert isinstance(up, Conv2DTranspose)
    assert (up.filters, up.kernel_size, up.strides, up.padding, up.output_padding) == (1, (3, 3), (2, 2), "same", (1, 1))
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_small_model_gradient_check():
    model = npnet.Sequential([
        npnet.Input((3, 3, 2)),
        Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation="tanh"),
        Conv2D(2, 2, strides=2),
        Conv2DTranspose(2, 2, dilation_rate=2),
    ], seed=3)
    report = check_gradients(model, np.random.default_rng(2).normal(size=(2, 3, 3, 2)))
    assert report.passed and len(report.entries) == 1 + 2 + 2 + 2


def test_config_round_trip_keeps_every_argument():
    layer = Conv2DTranspose(5, (2, 3), strides=(2, 3), padding="same", output_padding=(1, 0), activation="relu",
                            use_bias=False, kernel_initializer="he_normal", kernel_regularizer="l2",
                            kernel_constraint="non_neg", name="up")
    config = layer.get_config()
    assert config["output_padding"] == [1, 0] and config["data_format"] == "channels_last"
    assert config["kernel_size"] == [2, 3] and config["strides"] == [2, 3] and config["dilation_rate"] == [1, 1]
    clone = Conv2DTranspose.from_config(config)
    assert clone.get_config() == config
    assert Conv2DTranspose(2, 3).get_config()["output_padding"] is None
    assert Conv2DTranspose(2, 3, data_format="channels_last").data_format == "channels_last"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, match", [
    ({"filters": 0}, ValueError, r"Conv2DTranspose: `filters` must be >= 1, received 0"),
    ({"kernel_size": 0}, ValueError, r"Conv2DTranspose: `kernel_size` must contain integers >= 1"),
    ({"kernel_size": (3, 3, 3)}, ValueError, r"Conv2DTranspose: `kernel_size` must be an int or a tuple of 2 ints"),
    ({"kernel_size": 2.5}, TypeError, r"Conv2DTranspose: `kernel_size` must be an int or a tuple of 2 ints"),
    ({"kernel_size": (2, 2.5)}, TypeError, r"Conv2DTranspose: `kernel_size` must contain integers"),
    ({"strides": 0}, ValueError, r"Conv2DTranspose: `strides` must contain integers >= 1"),
    ({"padding": "full"}, ValueError, r"Conv2DTranspose: `padding` must be one of \['valid', 'same'\], "
                                      r"received 'full'"),
    ({"output_padding": -1}, ValueError, r"Conv2DTranspose: `output_padding` must contain integers >= 0"),
    ({"output_padding": 1}, ValueError, r"Conv2DTranspose: `output_padding` must be smaller than `strides` along "
                                        r"each axis, received output_padding=\(1, 1\) and strides=\(1, 1\)"),
    ({"strides": (2, 3), "output_padding": (1, 3)}, ValueError, r"`output_padding` must be smaller than `strides`"),
    ({"output_padding": (1, 1, 1), "strides": 2}, ValueError, r"`output_padding` must be an int or a tuple of 2"),
    ({"strides": 2, "dilation_rate": 2}, ValueError,
     r"Conv2DTranspose: `strides` > 1 together with `dilation_rate` > 1 is not supported \(as in Keras\)"),
    ({"data_format": "channels_first"}, ValueError,
     r"Conv2DTranspose: `data_format` 'channels_first' is not supported; npnet takes \(batch, height, width, channels\) inputs only"),
    ({"data_format": "nhwc"}, ValueError, r"Conv2DTranspose: `data_format` must be one of"),
    ({"activation": "relu6"}, ValueError, r"unknown activation 'relu6'"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Conv2DTranspose(**{"filters": 2, "kernel_size": 3, **kwargs})


@pytest.mark.parametrize("shape", [(2, 5, 5), (2, 5, 5, 1, 1)])
def test_bad_input_rank(shape):
    with pytest.raises(ValueError, match=re.escape(
            f"Conv2DTranspose 'ct': expected input of rank 4 (batch, height, width, channels), received shape {shape}")):
        Conv2DTranspose(2, 3, name="ct")(np.zeros(shape, np.float32))


def test_wrong_channel_count_on_a_built_layer():
    layer = Conv2DTranspose(2, 3, name="ct")
    layer(np.zeros((1, 4, 4, 3), np.float32))
    assert layer.params["kernel"].shape == (3, 3, 2, 3)
    with pytest.raises(ValueError, match=re.escape(
            "Conv2DTranspose 'ct': expected input with last dimension 3, received shape (1, 4, 4, 1)")):
        layer(np.zeros((1, 4, 4, 1), np.float32))


def test_an_empty_output_is_refused():
    # "same" with output_padding 0 and an even kernel: (1 - 1) * 2 + 0 + 0 = 0 rows.
    layer = Conv2DTranspose(2, 2, strides=2, padding="same", output_padding=0, name="ct")
    with pytest.raises(ValueError, match=re.escape(
            "Conv2DTranspose 'ct': an input of size (1, 3) gives an empty output (0, 4) with padding='same' "
            "and output_padding=(0, 0)")):
        layer(np.zeros((1, 1, 3, 1), np.float32))
    layer = Conv2DTranspose(2, 2, strides=2, padding="same", output_padding=0, name="ct2")
    layer(np.zeros((1, 2, 2, 1), np.float32))  # built on a good size, then fed a bad one
    with pytest.raises(ValueError, match=r"Conv2DTranspose 'ct2': an input of size \(2, 1\) gives an empty output"):
        layer(np.zeros((1, 2, 1, 1), np.float32))
