"""One declarative harness run over every layer class: forward shape, gradients against
central differences, config round trip, dtype kept, bad input rejected."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet.testing import check_gradients

from ..strategies import away_from_zero, seeds


@dataclass
class Case:
    make: Callable[[], npnet.layers.Layer]
    # draw(data) -> sample shape without the batch axis
    sample_shape: Callable
    expected: Callable[[tuple], tuple]  # output shape from full input shape
    training: bool = False
    margin: float = 0.1
    min_batch: int = 1


def feat(data):
    return (data.draw(st.integers(1, 5)),)


def feat_nd(data):
    return tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))


def same(shape):
    return shape


def img(data, minimum):
    """(H, W, C) with H, W >= minimum."""
    return (data.draw(st.integers(minimum, minimum + 4)), data.draw(st.integers(minimum, minimum + 4)),
            data.draw(st.integers(1, 3)))


def even_img(data):
    return (2 * data.draw(st.integers(1, 3)), 2 * data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))


def feat_nd_2(data):
    return tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))


def conv_shape(s, kernel, stride, padding, filters, dilation=1):
    """Keras' formulas, written independently of the library."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    out = []
    for size, kk in zip(s[1:3], k):
        eff = dilation * (kk - 1) + 1
        out.append(-(-size // stride) if padding == "same" else (size - eff) // stride + 1)
    return (s[0], out[0], out[1], filters)


CASES = {
    "Dense": Case(lambda: npnet.layers.Dense(3), feat, lambda s: s[:-1] + (3,)),
    "Dense_relu": Case(lambda: npnet.layers.Dense(4, activation="relu", kernel_initializer="he_normal"),
                       feat, lambda s: s[:-1] + (4,)),
    "Dense_softmax_nobias": Case(lambda: npnet.layers.Dense(3, activation="softmax", use_bias=False),
                                 feat, lambda s: s[:-1] + (3,)),
    "Dense_3d": Case(lambda: npnet.layers.Dense(2, activation="tanh"),
                     lambda d: (d.draw(st.integers(1, 3)), d.draw(st.integers(1, 4))), lambda s: s[:-1] + (2,)),
    "ReLU": Case(lambda: npnet.layers.ReLU(), feat_nd, same),
    "LeakyReLU": Case(lambda: npnet.layers.LeakyReLU(negative_slope=0.2), feat_nd, same),
    "ELU": Case(lambda: npnet.layers.ELU(alpha=1.5), feat_nd, same),
    "Sigmoid": Case(lambda: npnet.layers.Sigmoid(), feat_nd, same),
    "Tanh": Case(lambda: npnet.layers.Tanh(), feat_nd, same),
    "Softplus": Case(lambda: npnet.layers.Softplus(), feat_nd, same),
    "Swish": Case(lambda: npnet.layers.Swish(), feat_nd, same),
    "Linear": Case(lambda: npnet.layers.Linear(), feat_nd, same),
    "Softmax": Case(lambda: npnet.layers.Softmax(), feat_nd, same),
    "Softmax_axis1": Case(lambda: npnet.layers.Softmax(axis=1), lambda d: (d.draw(st.integers(1, 4)), 2), same),
    "Activation": Case(lambda: npnet.layers.Activation("tanh"), feat_nd, same),
    "Flatten": Case(lambda: npnet.layers.Flatten(), feat_nd, lambda s: (s[0], int(np.prod(s[1:])))),
    "Reshape": Case(lambda: npnet.layers.Reshape((-1, 2)), lambda d: (2 * d.draw(st.integers(1, 4)),),
                    lambda s: (s[0], s[1] // 2, 2)),
    "Rescaling": Case(lambda: npnet.layers.Rescaling(1 / 255, offset=-0.5), feat_nd, same),
    "Conv2D_valid": Case(lambda: npnet.layers.Conv2D(2, 3), lambda d: img(d, 3), lambda s: conv_shape(s, 3, 1, "valid", 2)),
    "Conv2D_same_stride": Case(lambda: npnet.layers.Conv2D(3, (2, 3), strides=2, padding="same", activation="tanh"),
                               lambda d: img(d, 2), lambda s: conv_shape(s, (2, 3), 2, "same", 3)),
    "Conv2D_dilated": Case(lambda: npnet.layers.Conv2D(2, 2, dilation_rate=2, use_bias=False), lambda d: img(d, 3),
                           lambda s: conv_shape(s, 2, 1, "valid", 2, dilation=2)),
    "MaxPooling2D_tile": Case(lambda: npnet.layers.MaxPooling2D(2), lambda d: even_img(d),
                              lambda s: (s[0], s[1] // 2, s[2] // 2, s[3])),
    "MaxPooling2D_same": Case(lambda: npnet.layers.MaxPooling2D(3, strides=2, padding="same"), lambda d: img(d, 1),
                              lambda s: (s[0], -(-s[1] // 2), -(-s[2] // 2), s[3])),
    "AveragePooling2D_tile": Case(lambda: npnet.layers.AveragePooling2D(2), lambda d: even_img(d),
                                  lambda s: (s[0], s[1] // 2, s[2] // 2, s[3])),
    "AveragePooling2D_same": Case(lambda: npnet.layers.AveragePooling2D(2, strides=1, padding="same"),
                                  lambda d: img(d, 1), same),
    "GlobalAveragePooling2D": Case(lambda: npnet.layers.GlobalAveragePooling2D(), lambda d: img(d, 1),
                                   lambda s: (s[0], s[3])),
    "GlobalMaxPooling2D": Case(lambda: npnet.layers.GlobalMaxPooling2D(), lambda d: img(d, 1), lambda s: (s[0], s[3])),
    "BatchNormalization_train": Case(lambda: npnet.layers.BatchNormalization(), lambda d: img(d, 1), same,
                                     training=True, min_batch=2),
    "BatchNormalization_infer": Case(lambda: npnet.layers.BatchNormalization(momentum=0.5), feat_nd_2, same),
    "Dropout_infer": Case(lambda: npnet.layers.Dropout(0.5, seed=3), feat_nd, same),
    "Dropout_train": Case(lambda: npnet.layers.Dropout(0.3, seed=3), feat_nd, same, training=True),
}

# Layer classes exercised above; a new layer class must join the harness.
COVERED = {"Dense", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softplus", "Swish", "Linear", "Softmax",
           "Activation", "Flatten", "Reshape", "Dropout", "Rescaling", "Conv2D", "MaxPooling2D", "AveragePooling2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "BatchNormalization"}

IMAGE_KEYS = {k for k in CASES if "2D" in k or k.startswith("BatchNormalization_train")}


def _draw_input(data, case):
    shape = (data.draw(st.integers(case.min_batch, 4)),) + case.sample_shape(data)
    rng = np.random.default_rng(data.draw(seeds))
    x = away_from_zero(rng, shape, margin=case.margin)
    if "Pooling" in type(case.make()).__name__:
        # distinct values, well apart: no ties inside a max-pool window
        x = rng.permutation(x.size).reshape(shape) * 0.1 + rng.normal(scale=0.01, size=shape)
    return x


def test_every_layer_class_is_in_the_harness():
    names = set(npnet.layers.layer_classes())
    missing = names - COVERED
    assert not missing, f"layer classes without harness cases: {sorted(missing)}"


@pytest.mark.parametrize("key", sorted(CASES))
@given(data=st.data())
def test_forward_shape_matches_compute_output_shape(key, data):
    case = CASES[key]
    x = _draw_input(data, case).astype(np.float32)
    layer = case.make()
    y = layer.forward(x, training=case.training)
    assert y.shape == case.expected(x.shape)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]


@pytest.mark.parametrize("key", sorted(CASES))
@given(data=st.data())
def test_gradients_match_central_differences(key, data):
    case = CASES[key]
    x = _draw_input(data, case)
    report = check_gradients(case.make(), x, training=case.training, atol=1e-6, rtol=1e-5)
    assert report.passed
    assert report.entries[0].name == "x" and report.entries[0].checked == x.size


@pytest.mark.parametrize("key", sorted(CASES))
def test_config_round_trip_rebuilds_an_equal_layer(key):
    case = CASES[key]
    x = away_from_zero(np.random.default_rng(0), (2,) + (4,) * 1 if key != "Reshape" else (2, 4))
    if key in IMAGE_KEYS:
        x = away_from_zero(np.random.default_rng(0), (2, 6, 6, 2))
    if key == "Softmax_axis1":
        x = away_from_zero(np.random.default_rng(0), (2, 3, 2))
    if key == "Dense_3d":
        x = away_from_zero(np.random.default_rng(0), (2, 3, 4))
    x = x.astype(np.float32)
    layer = case.make()
    y = layer.forward(x)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.forward(x[:1])
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone.forward(x), y)


@pytest.mark.parametrize("key", sorted(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_through_forward_and_backward(key, dtype):
    npnet.set_floatx(dtype)
    case = CASES[key]
    shape = (2, 3, 2) if key == "Softmax_axis1" else (2, 3, 4) if key == "Dense_3d" else (2, 4)
    if key in IMAGE_KEYS:
        shape = (2, 6, 6, 2)
    x = away_from_zero(np.random.default_rng(0), shape).astype(dtype)
    layer = case.make()
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == np.dtype(dtype)
    assert dx.dtype == np.dtype(dtype)
    for k, g in layer.grads.items():
        assert g.dtype == np.dtype(dtype), k
        assert layer.params[k].dtype == np.dtype(dtype), k


def test_dense_rejects_wrong_feature_size_naming_the_layer():
    layer = npnet.layers.Dense(3, name="dense_1")
    layer.forward(np.zeros((2, 4096), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'dense_1': expected input with last dimension 4096, "
                                         r"received shape \(64, 4095\)"):
        layer.forward(np.zeros((64, 4095), np.float32))


def test_dense_rejects_rank_one_input():
    with pytest.raises(ValueError, match=r"Dense '.*': expected input of rank >= 2 \(batch, features\)"):
        npnet.layers.Dense(3).forward(np.zeros(5, np.float32))


def test_flatten_rejects_changed_sample_shape():
    layer = npnet.layers.Flatten(name="flat")
    layer.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Flatten 'flat': expected input of shape \(batch, 3, 4\), received shape \(2, 3, 5\)"):
        layer.forward(np.zeros((2, 3, 5)))


def test_reshape_rejects_incompatible_size():
    with pytest.raises(ValueError, match=r"cannot reshape samples of shape \(5,\) to \(-1, 2\)"):
        npnet.layers.Reshape((-1, 2)).forward(np.zeros((2, 5)))


@pytest.mark.parametrize("factory, match", [
    (lambda: npnet.layers.Dense(0), r"Dense: `units` must be >= 1, received 0"),
    (lambda: npnet.layers.Dense(2.5), r"Dense: `units` must be an integer"),
    (lambda: npnet.layers.Dense(2, activation="relu6"), r"unknown activation 'relu6'; known names: \["),
    (lambda: npnet.layers.Dense(2, kernel_initializer="nope"), r"unknown initializer 'nope'; known names"),
    (lambda: npnet.layers.Dropout(1.0), r"Dropout: `rate` must be in \[0, 1\), received 1.0"),
    (lambda: npnet.layers.Dropout(0.5, seed=-1), r"Dropout: `seed` must be >= 0"),
    (lambda: npnet.layers.LeakyReLU(negative_slope=-1), r"`negative_slope` must be in \[0, inf\)"),
    (lambda: npnet.layers.Activation("gelu"), r"Activation: unknown activation 'gelu'"),
    (lambda: npnet.layers.Reshape((0, 2)), r"Reshape: `target_shape` must hold positive ints"),
])
def test_bad_constructor_arguments_are_named(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_backward_before_forward_is_a_clear_error():
    layer = npnet.layers.Dense(2, name="d")
    with pytest.raises(RuntimeError, match=r"Dense 'd': backward\(\) called before forward\(\)"):
        layer.backward(np.ones((1, 2)))


def test_dropout_is_identity_at_inference_and_inverted_in_training():
    x = np.ones((1000, 50), np.float32)
    layer = npnet.layers.Dropout(0.25, seed=0)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)


def test_relu_forward_values_by_hand():
    y = npnet.layers.ReLU().forward(np.array([[-2.0, -0.5, 0.5, 3.0]]))
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.5, 3.0]])


def test_softmax_is_stable_for_huge_logits():
    y = npnet.layers.Softmax().forward(np.array([[1e4, 0.0, -1e4]], np.float32))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[1.0, 0.0, 0.0]], atol=1e-7)


def test_sigmoid_is_stable_for_huge_inputs():
    y = npnet.layers.Sigmoid().forward(np.array([[-1e4, 0.0, 1e4]]))
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])
