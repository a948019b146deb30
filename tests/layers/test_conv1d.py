"""Conv1D against the definition of cross-correlation, causality, a trained and saved model,
and its argument checks."""

import itertools

import numpy as np
import pytest

import npnet
from npnet.testing import check_gradients


def reference_conv1d(x, kernel, bias, stride, padding, dilation):
    """Cross-correlation by its definition, with Keras' paddings written out:
    valid = none; same = ceil(steps/stride) outputs, total padding split floor/ceil;
    causal = dilation * (k - 1) zeros on the left."""
    n, steps, c = x.shape
    k, _, f = kernel.shape
    eff = dilation * (k - 1) + 1
    if padding == "valid":
        before, after = 0, 0
    elif padding == "same":
        out = -(-steps // stride)
        total = max((out - 1) * stride + eff - steps, 0)
        before, after = total // 2, total - total // 2
    else:
        before, after = dilation * (k - 1), 0
    xp = np.zeros((n, steps + before + after, c))
    xp[:, before:before + steps] = x
    out = (xp.shape[1] - eff) // stride + 1
    y = np.zeros((n, out, f))
    for b in range(n):
        for t in range(out):
            for j in range(f):
                acc = bias[j]
                for i in range(k):
                    for ch in range(c):
                        acc += xp[b, t * stride + i * dilation, ch] * kernel[i, ch, j]
                y[b, t, j] = acc
    return y


GEOMETRIES = [(s, p, d) for s, p, d in itertools.product([1, 2, 3], ["valid", "same", "causal"], [1, 2, 3])
              if s == 1 or d == 1]


@pytest.mark.parametrize("steps", [7, 10])
@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
def test_forward_matches_the_definition(steps, kernel_size, stride, padding, dilation):
    if padding == "valid" and dilation * (kernel_size - 1) + 1 > steps:
        pytest.fail("geometry list must keep valid kernels inside the input")
    rng = np.random.default_rng(steps * 100 + kernel_size * 10 + stride + dilation)
    x = rng.normal(size=(2, steps, 3)).astype(np.float32)
    layer = npnet.layers.Conv1D(4, kernel_size, strides=stride, padding=padding, dilation_rate=dilation,
                                bias_initializer="random_normal")
    y = layer(x)
    expected = reference_conv1d(x.astype(np.float64), layer.params["kernel"].astype(np.float64),
                                layer.params["bias"].astype(np.float64), stride, padding, dilation)
    assert y.dtype == np.float32
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((2, steps, 3)) == expected.shape


@pytest.mark.parametrize("padding,expected", [("valid", 8), ("same", 10), ("causal", 10)])
def test_output_lengths_follow_keras(padding, expected):
    # steps 10, kernel 3: valid 10 - 3 + 1 = 8; same and causal keep 10.
    assert npnet.layers.Conv1D(1, 3, padding=padding)(np.zeros((1, 10, 1), np.float32)).shape == (1, expected, 1)


def test_hand_worked_causal_values():
    # kernel [1, 2] (one channel, one filter), dilation 1: y_t = 1 * x_{t-1} + 2 * x_t, x_{-1} = 0.
    layer = npnet.layers.Conv1D(1, 2, padding="causal", kernel_initializer="ones", use_bias=False)
    layer.build((None, 4, 1))
    layer.params["kernel"][...] = np.array([1.0, 2.0], np.float32).reshape(2, 1, 1)
    y = layer(np.array([1.0, 10.0, 100.0, 1000.0], np.float32).reshape(1, 4, 1))
    np.testing.assert_array_equal(y.ravel(), [2.0, 21.0, 210.0, 2100.0])


@pytest.mark.parametrize("kernel_size,dilation,stride", [(3, 1, 1), (3, 2, 1), (2, 4, 1), (3, 1, 2)])
def test_causal_output_depends_only_on_the_past(kernel_size, dilation, stride):
    rng = np.random.default_rng(0)
    steps = 12
    layer = npnet.layers.Conv1D(3, kernel_size, strides=stride, padding="causal", dilation_rate=dilation,
                                activation="tanh")
    x = rng.normal(size=(1, steps, 2)).astype(np.float32)
    y = layer(x)
    for change in range(steps):
        x2 = x.copy()
        x2[:, change:] = rng.normal(size=x2[:, change:].shape)
        y2 = layer(x2)
        # output t reads inputs t * stride - dilation * (k - 1) ... t * stride
        unchanged = [t for t in range(y.shape[1]) if t * stride < change]
        changed = [t for t in range(y.shape[1]) if t * stride >= change]
        np.testing.assert_array_equal(y2[:, unchanged], y[:, unchanged])
        if changed:
            assert not np.allclose(y2[:, changed[0]], y[:, changed[0]])


def test_causal_gradient_only_flows_to_the_past():
    layer = npnet.layers.Conv1D(2, 3, padding="causal", dilation_rate=2)
    x = np.random.default_rng(1).normal(size=(1, 9, 2)).astype(np.float32)
    y, cache = layer.forward(x, training=True)
    dy = np.zeros_like(y)
    dy[0, 4] = 1.0  # output step 4 reads steps 0, 2, 4
    dx = layer.backward(cache, dy)
    nonzero = np.flatnonzero(np.abs(dx[0]).sum(axis=1))
    assert set(nonzero.tolist()) <= {0, 2, 4}
    assert 4 in nonzero


def test_model_with_conv1d_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 2)).astype(np.float32)
    # label: is the sum of channel 0 over the last 3 steps positive?
    y = (x[:, -3:, 0].sum(axis=1) > 0).astype(np.int64)
    model = npnet.Sequential([
        npnet.Input((12, 2)),
        npnet.layers.Conv1D(4, 3, padding="causal", activation="relu"),
        npnet.layers.Conv1D(4, 2, strides=2, padding="same"),
        npnet.layers.Flatten(),
        npnet.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=npnet.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    after = model.evaluate(x, y, verbose=0)
    assert after[0] < before[0]
    model.save(tmp_path / "seq.npnet")
    restored = npnet.load_model(tmp_path / "seq.npnet")
    conv = restored.layers[0]
    assert isinstance(conv, npnet.layers.Conv1D)
    assert (conv.padding, conv.kernel_size, conv.data_format, conv.groups) == ("causal", (3,), "channels_last", 1)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_small_model_gradient_check():
    model = npnet.Sequential([
        npnet.Input((6, 2)),
        npnet.layers.Conv1D(3, 2, padding="causal", dilation_rate=2, activation="tanh"),
        npnet.layers.Conv1D(2, 3, strides=2),
    ])
    check_gradients(model, np.random.default_rng(2).normal(size=(2, 6, 2)))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"padding": "full"}, ValueError, r"Conv1D: `padding` must be one of \['valid', 'same', 'causal'\], "
                                      r"received 'full'"),
    ({"strides": 2, "dilation_rate": 2}, ValueError, r"Conv1D: `strides` > 1 together with `dilation_rate` > 1"),
    ({"groups": 2}, ValueError, r"Conv1D: grouped convolution is not supported: expected groups=1, received groups=2"),
    ({"groups": 0}, ValueError, r"Conv1D: `groups` must be >= 1, received 0"),
    ({"data_format": "channels_first"}, ValueError, r"Conv1D: `data_format` 'channels_first' is not supported; "
                                                  r"npnet takes \(batch, steps, channels\) inputs only"),
    ({"data_format": "nwc"}, ValueError, r"Conv1D: `data_format` must be one of"),
    ({"kernel_size": (2, 2)}, ValueError, r"Conv1D.*kernel_size"),
    ({"kernel_size": 0}, ValueError, r"Conv1D.*kernel_size"),
    ({"strides": 0}, ValueError, r"Conv1D.*strides"),
    ({"kernel_size": "3"}, TypeError, r"Conv1D.*kernel_size"),
    ({"filters": 2.5}, TypeError, r"Conv1D: `filters` must be an integer"),
])
def test_bad_arguments(kwargs, error, match):
    args = {"filters": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        npnet.layers.Conv1D(**args)


def test_channels_last_is_accepted_and_saved():
    layer = npnet.layers.Conv1D(2, 3, data_format="channels_last")
    assert layer.get_config()["data_format"] == "channels_last"
    assert npnet.layers.Conv1D.from_config(layer.get_config()).data_format == "channels_last"


@pytest.mark.parametrize("shape,match", [
    ((2, 5), r"Conv1D 'conv1d.*': expected input of rank 3 \(batch, steps, channels\)"),
    ((2, 5, 4, 1), r"Conv1D 'conv1d.*': expected input of rank 3"),
])
def test_bad_input_rank(shape, match):
    with pytest.raises(ValueError, match=match):
        npnet.layers.Conv1D(2, 3)(np.zeros(shape, np.float32))


def test_sequence_shorter_than_the_kernel():
    with pytest.raises(ValueError, match=r"Conv1D 'conv1d.*': kernel of effective size 5 is larger than the input "
                                         r"length 4 with padding='valid'"):
        npnet.layers.Conv1D(2, 3, dilation_rate=2)(np.zeros((1, 4, 1), np.float32))
    layer = npnet.layers.Conv1D(2, 3)
    layer(np.zeros((1, 6, 1), np.float32))
    with pytest.raises(ValueError, match=r"Conv1D 'conv1d.*': kernel of effective size 3 is larger than the input "
                                         r"length 2"):
        layer(np.zeros((1, 2, 1), np.float32))
    # causal and same padding accept any length
    assert npnet.layers.Conv1D(2, 3, padding="causal")(np.zeros((1, 1, 1), np.float32)).shape == (1, 1, 2)


def test_wrong_channel_count_on_a_built_layer():
    layer = npnet.layers.Conv1D(2, 3)
    layer(np.zeros((1, 6, 2), np.float32))
    with pytest.raises(ValueError, match=r"Conv1D 'conv1d.*': expected input with last dimension 2, received shape \(1, 6, 3\)"):
        layer(np.zeros((1, 6, 3), np.float32))
