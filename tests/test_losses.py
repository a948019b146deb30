import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet.testing import check_gradients

from .strategies import seeds


def _loss_grad_check(loss, y, y_pred):
    """Central differences of loss.forward against loss.backward, in float64."""
    loss.forward(y, y_pred)
    analytic = loss.backward()
    numeric = np.zeros_like(y_pred)
    eps = 1e-6
    for i in np.ndindex(y_pred.shape):
        old = y_pred[i]
        y_pred[i] = old + eps
        plus = loss.forward(y, y_pred)
        y_pred[i] = old - eps
        minus = loss.forward(y, y_pred)
        y_pred[i] = old
        numeric[i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@given(n=st.integers(1, 5), k=st.integers(2, 5), seed=seeds, from_logits=st.booleans())
def test_sparse_crossentropy_gradient(n, k, seed, from_logits):
    r = np.random.default_rng(seed)
    y = r.integers(0, k, size=n)
    z = r.normal(size=(n, k))
    pred = z if from_logits else np.exp(z) / np.exp(z).sum(1, keepdims=True)
    _loss_grad_check(npnet.losses.SparseCategoricalCrossentropy(from_logits=from_logits), y, pred)


@given(n=st.integers(1, 5), k=st.integers(2, 5), seed=seeds, from_logits=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.1]))
def test_categorical_crossentropy_gradient(n, k, seed, from_logits, smoothing):
    r = np.random.default_rng(seed)
    y = np.eye(k)[r.integers(0, k, size=n)]
    z = r.normal(size=(n, k))
    pred = z if from_logits else np.exp(z) / np.exp(z).sum(1, keepdims=True)
    loss = npnet.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    _loss_grad_check(loss, y, pred)


@given(n=st.integers(1, 5), k=st.integers(1, 3), seed=seeds, from_logits=st.booleans())
def test_binary_crossentropy_gradient(n, k, seed, from_logits):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, size=(n, k)).astype(float)
    z = r.normal(size=(n, k))
    pred = z if from_logits else 1 / (1 + np.exp(-z))
    _loss_grad_check(npnet.losses.BinaryCrossentropy(from_logits=from_logits), y, pred)


@given(n=st.integers(1, 5), k=st.integers(1, 3), seed=seeds)
def test_regression_losses_gradient(n, k, seed):
    r = np.random.default_rng(seed)
    y = r.normal(size=(n, k))
    pred = y + np.sign(r.normal(size=(n, k))) * (0.1 + np.abs(r.normal(size=(n, k))))  # off the |.| kink
    _loss_grad_check(npnet.losses.MeanSquaredError(), y, pred.copy())
    _loss_grad_check(npnet.losses.MeanAbsoluteError(), y, pred.copy())


def test_crossentropy_golden_values():
    # -log(0.5) = 0.693147...; mean of -log(0.8) and -log(0.25) = (0.223144 + 1.386294) / 2
    cce = npnet.losses.SparseCategoricalCrossentropy()
    assert cce.forward([1], np.array([[0.5, 0.5]])) == pytest.approx(math.log(2))
    value = cce.forward([0, 2], np.array([[0.8, 0.1, 0.1], [0.5, 0.25, 0.25]]))
    assert value == pytest.approx((-math.log(0.8) - math.log(0.25)) / 2)
    mse = npnet.losses.MeanSquaredError()
    assert mse.forward([[1.0, 2.0]], np.array([[0.0, 4.0]])) == pytest.approx((1 + 4) / 2)


def test_label_smoothing_changes_targets_as_keras():
    # K = 2, s = 0.2: targets [0.1, 0.9]; loss = -(0.1 log 0.5 + 0.9 log 0.5) = log 2
    loss = npnet.losses.CategoricalCrossentropy(label_smoothing=0.2)
    assert loss.forward([[0, 1]], np.array([[0.5, 0.5]])) == pytest.approx(math.log(2))
    # with p = [0.2, 0.8]: -(0.1 log 0.2 + 0.9 log 0.8)
    assert loss.forward([[0, 1]], np.array([[0.2, 0.8]])) == pytest.approx(-(0.1 * math.log(0.2) + 0.9 * math.log(0.8)))


def test_log_softmax_is_stable_for_logits_of_1e4():
    loss = npnet.losses.SparseCategoricalCrossentropy(from_logits=True)
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=np.float32)
    assert loss.forward([0, 0], z) == pytest.approx(1e4)  # (0 + 2e4) / 2
    g = loss.backward()
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-7)


def test_probability_zero_gives_a_finite_loss():
    loss = npnet.losses.SparseCategoricalCrossentropy()
    value = loss.forward([1], np.array([[1.0, 0.0]]))
    assert np.isfinite(value) and value == pytest.approx(-math.log(1e-7))
    assert np.all(np.isfinite(loss.backward()))


@pytest.mark.parametrize("labels, match", [
    ([0, 3], r"labels must be in \[0, 3\), received label 3"),
    ([0, -1], r"labels must be in \[0, 3\), received label -1"),
    ([0.0, 1.5], r"expected integer class ids"),
    ([[0, 1], [1, 0]], r"expected class ids of shape \(batch,\)"),
])
def test_sparse_labels_are_validated(labels, match):
    loss = npnet.losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=match):
        loss.forward(np.array(labels), np.full((2, 3), 1 / 3))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        npnet.losses.MeanSquaredError().backward()


def test_unknown_loss_name_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; known names: \['binary_crossentropy'"):
        npnet.losses.get("hinge")


@given(seed=seeds, n=st.integers(1, 4))
def test_fused_softmax_crossentropy_model_gradient(seed, n):
    """A model ending in Dense(softmax) + sparse CE takes the fused (p - y)/n path; the
    checker differentiates the fused loss numerically end to end."""
    r = np.random.default_rng(seed)
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(4, activation="tanh"),
                              npnet.layers.Dense(3, activation="softmax")], seed=seed % 1000)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = r.normal(size=(n, 3))
    assert model._fused_outputs(x) == [True]
    check_gradients(model, x, r.integers(0, 3, size=n))


def test_fusion_covers_softmax_layer_activation_and_sigmoid():
    for last in (npnet.layers.Softmax(), npnet.layers.Activation("softmax")):
        m = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(3), last])
        m.compile("sgd", "categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(2, 3))
        assert m._fused_outputs(x) == [True]
        check_gradients(m, x, np.eye(3)[[0, 2]])
    m = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(1, activation="sigmoid")])
    m.compile("sgd", "binary_crossentropy")
    x = np.random.default_rng(1).normal(size=(4, 3))
    assert m._fused_outputs(x) == [True]
    check_gradients(m, x, np.array([[0.0], [1.0], [1.0], [0.0]]))
    m.compile("sgd", npnet.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert m._fused_outputs(x) == [False]
