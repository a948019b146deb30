"""A frozen BatchNormalization runs in inference mode, even in training (Keras >= 2.1)."""

import math

import numpy as np
import pytest

import npnet
from npnet.testing import check_gradients


def _stats(bn):
    return bn.state["moving_mean"].copy(), bn.state["moving_variance"].copy()


def test_keras_values_by_hand_frozen_and_training():
    x = np.array([[1.0], [3.0]], dtype=np.float32)
    # Keras: `training and self.trainable`. Frozen: moving statistics (0, 1), gamma 1, beta 0,
    # epsilon 1e-3, so y = x / sqrt(1 + 0.001) and nothing is updated.
    frozen = npnet.layers.BatchNormalization(trainable=False)
    y = frozen(x, training=True)
    np.testing.assert_allclose(y, [[1 / math.sqrt(1.001)], [3 / math.sqrt(1.001)]], rtol=1e-6)
    assert frozen.state["moving_mean"].tolist() == [0.0] and frozen.state["moving_variance"].tolist() == [1.0]
    # Trainable: batch mean 2, biased variance 1, y = (x - 2) / sqrt(1.001); the moving
    # statistics become 0.99 * 0 + 0.01 * 2 = 0.02 and 0.99 * 1 + 0.01 * 1 = 1.
    live = npnet.layers.BatchNormalization()
    np.testing.assert_allclose(live(x, training=True), [[-1 / math.sqrt(1.001)], [1 / math.sqrt(1.001)]], rtol=1e-6)
    np.testing.assert_allclose(live.state["moving_mean"], [0.02], rtol=1e-6)
    np.testing.assert_allclose(live.state["moving_variance"], [1.0], rtol=1e-6)


def _bn_with_statistics(rng, axis=-1, shape=(6, 3, 3, 4)):
    bn = npnet.layers.BatchNormalization(axis=axis, momentum=0.5)
    for _ in range(3):
        bn(rng.normal(loc=2.0, scale=3.0, size=shape).astype(np.float32), training=True)
    bn.params["gamma"][...] = rng.uniform(0.5, 1.5, size=bn.params["gamma"].shape)
    bn.params["beta"][...] = rng.normal(size=bn.params["beta"].shape)
    return bn


@pytest.mark.parametrize("axis, shape", [(-1, (6, 3, 3, 4)), (1, (5, 4, 3))], ids=["channels-last", "axis-1"])
def test_frozen_forward_equals_inference_and_leaves_statistics(rng, axis, shape):
    bn = _bn_with_statistics(rng, axis, shape)
    bn.trainable = False
    before = _stats(bn)
    x = rng.normal(size=shape).astype(np.float32)
    y_train, cache = bn.forward(x, training=True)
    np.testing.assert_array_equal(y_train, bn(x, training=False))
    for a, b in zip(before, _stats(bn)):
        np.testing.assert_array_equal(a, b)
    # backward is the gradient of the fixed affine map: dx = dy * gamma / sqrt(moving_var + eps)
    dy = rng.normal(size=shape).astype(np.float32)
    dx = bn.backward(cache, dy)
    scale = bn.params["gamma"] / np.sqrt(bn.state["moving_variance"].astype(np.float64) + bn.epsilon)
    bshape = [1] * len(shape)
    bshape[axis] = -1
    np.testing.assert_allclose(dx, dy * scale.reshape(bshape), rtol=1e-5)


@pytest.mark.parametrize("axis, shape", [(-1, (4, 2, 2, 3)), (1, (4, 3, 2))], ids=["channels-last", "axis-1"])
def test_frozen_backward_is_gradient_checked(rng, axis, shape):
    bn = _bn_with_statistics(rng, axis, shape)
    bn.trainable = False
    x = rng.normal(size=shape)
    check_gradients(bn, x, training=True)
    # unfrozen, the training-mode gradient (batch statistics) is checked the same way
    bn.trainable = True
    check_gradients(bn, x, training=True)


def _data(n=64, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(loc=1.0, scale=2.0, size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 2.0).astype(int)


def test_frozen_bn_in_fit_keeps_statistics_bit_for_bit():
    x, y = _data()
    bn = npnet.layers.BatchNormalization(trainable=False, name="bn")
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.layers.Dense(5, name="d"), bn,
                              npnet.layers.Dense(2, activation="softmax")], seed=0)
    bn.state["moving_mean"][...] = [0.5, -0.5, 1.0, 0.0, 2.0]
    bn.state["moving_variance"][...] = [2.0, 0.5, 1.0, 3.0, 1.5]
    before = _stats(bn) + (bn.params["gamma"].copy(), bn.params["beta"].copy())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    for a, b in zip(before, _stats(bn) + (bn.params["gamma"], bn.params["beta"])):
        np.testing.assert_array_equal(a, b)
    h = model.get_layer("d")(x)
    np.testing.assert_array_equal(bn(h, training=True), bn(h, training=False))


def _base(seed=0):
    inp = npnet.Input(shape=(4,))
    h = npnet.layers.Dense(8, name="base_dense")(inp)
    h = npnet.layers.BatchNormalization(name="base_bn")(h)
    return npnet.Model(inp, npnet.layers.ReLU()(h), name="base", seed=seed)


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_fine_tuning_a_head_on_a_frozen_base(kind):
    x, y = _data()
    base = _base()
    pre = npnet.Sequential([base, npnet.layers.Dense(2, activation="softmax")])
    pre.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pre.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)  # moving statistics away from (0, 1)
    base.trainable = False
    frozen = base.get_weights()
    head = npnet.layers.Dense(2, activation="softmax", name="head")
    if kind == "functional":
        inp = npnet.Input(shape=(4,))
        model = npnet.Model(inp, head(base(inp)))
    else:
        model = npnet.Sequential([npnet.Input(shape=(4,)), base, head])
    model.compile(optimizer=npnet.Adam(0.05), loss="sparse_categorical_crossentropy")
    losses = model.fit(x, y, epochs=8, batch_size=16, verbose=0, seed=1).history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    for a, b in zip(frozen, base.get_weights()):
        np.testing.assert_array_equal(a, b)
    # unfreezing restores training behaviour: statistics and gamma move again
    base.trainable = True
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=2)
    bn = base.get_layer("base_bn")
    assert not np.array_equal(bn.state["moving_mean"], frozen[4])
    assert not np.array_equal(bn.state["moving_variance"], frozen[5])
    assert not np.array_equal(bn.params["gamma"], frozen[2])


def test_unfrozen_layer_normalizes_with_batch_statistics(rng):
    bn = _bn_with_statistics(rng)
    bn.trainable = False
    bn.trainable = True
    x = rng.normal(loc=5.0, size=(8, 2, 2, 4)).astype(np.float32)
    mm = bn.state["moving_mean"].copy()
    y = bn(x, training=True)
    xhat = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(y, xhat * bn.params["gamma"] + bn.params["beta"], rtol=1e-4, atol=1e-4)
    assert not np.array_equal(mm, bn.state["moving_mean"])
