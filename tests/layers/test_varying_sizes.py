"""Layers on inputs whose size varies (``npnet.Input(shape=(None, ...))``): Reshape works
out its -1 per batch, LayerNormalization without weights normalizes a varying axis, and a
weight whose size would vary is a clear error."""

import numpy as np
import pytest

import npnet
from npnet.testing import check_gradients

L = npnet.layers


def test_reshape_with_minus_one_follows_the_length_of_each_batch():
    x = npnet.Input(shape=(None, 3))
    y = L.Reshape((-1, 2))(x)
    assert y.shape == (None, None, 2)
    model = npnet.Model(x, y)
    r = np.random.default_rng(0)
    for steps in (2, 4, 6):
        xs = r.normal(size=(2, steps, 3)).astype(np.float32)
        np.testing.assert_array_equal(model.predict(xs, verbose=0), xs.reshape(2, -1, 2))
    layer = model.layers[-1]
    check_gradients(layer, r.normal(size=(2, 4, 3)))


def test_reshape_of_a_varying_input_checks_each_batch():
    x = npnet.Input(shape=(None, 3))
    for target, steps, message in [((-1, 2), 3, r"cannot reshape samples of shape \(3, 3\) to \(-1, 2\)"),
                                   ((6,), 3, r"cannot reshape samples of shape \(3, 3\) \(9 values\) to \(6,\) \(6 values\)")]:
        model = npnet.Model(x, L.Reshape(target, name="r")(x))
        with pytest.raises(ValueError, match=r"Reshape 'r.*': " + message):
            model.predict(np.ones((2, steps, 3), np.float32), verbose=0)
    model = npnet.Model(x, L.Reshape((6,))(x))
    assert model.predict(np.ones((2, 2, 3), np.float32), verbose=0).shape == (2, 6)


def test_layer_normalization_without_weights_on_a_varying_axis():
    x = npnet.Input(shape=(None,))
    model = npnet.Model(x, L.LayerNormalization(center=False, scale=False)(x))
    xs = np.arange(10.0, dtype=np.float32).reshape(2, 5)
    want = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(model.predict(xs, verbose=0), want, rtol=1e-6)
    assert model.predict(xs[:, :3], verbose=0).shape == (2, 3)


def test_a_weight_over_a_varying_axis_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LayerNormalization 'ln': cannot create weight 'gamma' of shape \(None,\)"):
        L.LayerNormalization(name="ln")(npnet.Input(shape=(None,)))
