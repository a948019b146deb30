import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet.testing import check_gradients

from .strategies import seeds


def _loss_grad_check(loss, y, y_pred, sample_weight=None):
    """Central differences of loss.forward against loss.backward, in float64."""
    loss.forward(y, y_pred, sample_weight)
    analytic = loss.backward()
    assert analytic.shape == y_pred.shape
    numeric = np.zeros_like(y_pred)
    eps = 1e-6
    for i in np.ndindex(y_pred.shape):
        old = y_pred[i]
        y_pred[i] = old + eps
        plus = loss.forward(y, y_pred, sample_weight)
        y_pred[i] = old - eps
        minus = loss.forward(y, y_pred, sample_weight)
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
    ([[0, 1], [1, 0]], r"expected class ids of shape \(2,\) \(the predictions' shape \(2, 3\) without the "
                       r"class axis\), received shape \(2, 2\)"),
])
def test_sparse_labels_are_validated(labels, match):
    loss = npnet.losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=match):
        loss.forward(np.array(labels), np.full((2, 3), 1 / 3))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        npnet.losses.MeanSquaredError().backward()


def test_unknown_loss_name_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown loss 'cross_entropy'; known names: \[.*'binary_crossentropy'"):
        npnet.losses.get("cross_entropy")


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


# ---------------------------------------------------------------- sample_weight contract
# Keras' default reduction "sum_over_batch_size": sum(w * per-sample loss) / (number of
# per-sample losses), never divided by the sum of the weights.

def _probs(r, shape):
    z = r.normal(size=shape)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def test_sample_weight_golden_value_divides_by_the_number_of_samples():
    loss = npnet.losses.SparseCategoricalCrossentropy()
    p = np.array([[0.8, 0.1, 0.1], [0.5, 0.25, 0.25]])
    # per-sample: -log 0.8, -log 0.25; weights 2 and 0 -> (2 * -log 0.8 + 0) / 2
    assert loss([0, 2], p, sample_weight=np.array([2.0, 0.0])) == pytest.approx(-math.log(0.8))
    # weights 1 and 0 -> -log 0.8 / 2: the divisor is the batch size, not the sum of the weights
    assert loss([0, 2], p, sample_weight=[1.0, 0.0]) == pytest.approx(-math.log(0.8) / 2)
    # negative weights are accepted, as in Keras: (-1 * -log 0.8 + 3 * -log 0.25) / 2
    assert loss.forward([0, 2], p, sample_weight=[-1.0, 3.0]) == pytest.approx(
        (math.log(0.8) - 3 * math.log(0.25)) / 2)
    mse = npnet.losses.MeanSquaredError()
    # per-sample means (1 + 4) / 2 = 2.5 and (0 + 1) / 2 = 0.5; (3 * 2.5 + 1 * 0.5) / 2
    value = mse([[1.0, 2.0], [0.0, 0.0]], np.array([[0.0, 4.0], [0.0, 1.0]]), sample_weight=[3.0, 1.0])
    assert value == pytest.approx((3 * 2.5 + 0.5) / 2)


def test_sample_weight_on_time_steps_broadcasts_over_time_or_weights_each_step():
    r = np.random.default_rng(0)
    p = _probs(r, (2, 3, 4))
    labels = np.array([[0, 1, 2], [3, 3, 0]])
    per = -np.log(np.take_along_axis(p, labels[..., None], axis=-1)[..., 0])  # (2, 3)
    loss = npnet.losses.SparseCategoricalCrossentropy()
    assert loss(labels, p) == pytest.approx(per.mean())  # mean over batch * time
    w = np.array([2.0, 0.5])
    assert loss(labels, p, sample_weight=w) == pytest.approx((per * w[:, None]).sum() / 6)
    assert loss(labels, p, sample_weight=w[:, None]) == pytest.approx((per * w[:, None]).sum() / 6)
    wt = r.uniform(size=(2, 3))
    assert loss(labels, p, sample_weight=wt) == pytest.approx((per * wt).sum() / 6)
    assert loss(labels, p, sample_weight=wt[..., None]) == pytest.approx((per * wt).sum() / 6)


def test_no_sample_weight_equals_unit_weights():
    r = np.random.default_rng(1)
    cases = [
        (npnet.losses.SparseCategoricalCrossentropy(), r.integers(0, 3, size=4), _probs(r, (4, 3))),
        (npnet.losses.CategoricalCrossentropy(from_logits=True), np.eye(3)[[0, 1, 2, 0]], r.normal(size=(4, 3))),
        (npnet.losses.BinaryCrossentropy(), r.integers(0, 2, size=(4, 2)).astype(float), r.uniform(size=(4, 2))),
        (npnet.losses.MeanSquaredError(), r.normal(size=(4, 2)), r.normal(size=(4, 2))),
        (npnet.losses.MeanAbsoluteError(), r.normal(size=(4, 2)), r.normal(size=(4, 2))),
    ]
    for loss, y, pred in cases:
        v0, g0 = loss(y, pred), loss.backward()
        v1, g1 = loss(y, pred, sample_weight=np.ones(4)), loss.backward()
        assert v0 == pytest.approx(v1, rel=1e-12)
        np.testing.assert_allclose(g0, g1, rtol=1e-12)


def test_fused_logits_path_without_weights_gives_the_same_numbers_as_before():
    # Value -(t * log_softmax(z)).sum() / n and gradient (p - t) / n, bit for bit, in float32.
    r = np.random.default_rng(2)
    z = r.normal(size=(5, 4)).astype(np.float32)
    labels = r.integers(0, 4, size=5)
    t = np.eye(4, dtype=np.float32)[labels]
    m = z.max(axis=-1, keepdims=True)
    logp = (z - m) - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    loss = npnet.losses.SparseCategoricalCrossentropy()
    assert loss._forward_logits(labels, z) == float(-(t * logp).sum() / 5)
    g = loss.backward()
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, (np.exp(logp) - t) / 5)
    w = np.array([1, 0, 2, 1, 1], dtype=np.float32)
    assert loss._forward_logits(labels, z, w) == pytest.approx(float(-((t * logp).sum(-1) * w).sum() / 5), rel=1e-6)
    np.testing.assert_allclose(loss.backward(), (np.exp(logp) - t) * w[:, None] / 5, rtol=1e-6)


@given(seed=seeds, from_logits=st.booleans(), time=st.sampled_from([None, 3]), per_step=st.booleans())
def test_weighted_gradients_of_the_crossentropies(seed, from_logits, time, per_step):
    r = np.random.default_rng(seed)
    lead = (3,) if time is None else (3, time)
    w = r.uniform(0, 2, size=lead if per_step else (3,))
    z = r.normal(size=lead + (4,))
    pred = z if from_logits else _probs(r, lead + (4,))
    labels = r.integers(0, 4, size=lead)
    _loss_grad_check(npnet.losses.SparseCategoricalCrossentropy(from_logits=from_logits), labels, pred.copy(), w)
    _loss_grad_check(npnet.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=0.1),
                     np.eye(4)[labels], pred.copy(), w)
    bpred = z if from_logits else 1 / (1 + np.exp(-z))
    _loss_grad_check(npnet.losses.BinaryCrossentropy(from_logits=from_logits), r.integers(0, 2, size=z.shape),
                     bpred.copy(), w)
    loss = npnet.losses.BinaryCrossentropy(from_logits=from_logits)
    loss._forward_logits(r.integers(0, 2, size=z.shape), z, w)  # the fused path takes the same weights
    assert loss.backward().shape == z.shape


@pytest.mark.parametrize("weights, error, match", [
    (np.ones(3), ValueError, r"SparseCategoricalCrossentropy: expected `sample_weight` of shape \(2,\) "
                             r"\(one weight per sample\), received shape \(3,\)"),
    (np.ones((2, 2)), ValueError, r"expected `sample_weight` of shape \(2,\) \(one weight per sample\), "
                                  r"received shape \(2, 2\)"),
    ([1.0, np.nan], ValueError, r"`sample_weight` contains NaN or infinity \(first at index \(1,\)\)"),
    ([1.0, np.inf], ValueError, r"`sample_weight` contains NaN or infinity"),
    (["a", "b"], TypeError, r"expected numeric `sample_weight`, received dtype <U1"),
])
def test_bad_sample_weight_is_rejected_by_name(weights, error, match):
    loss = npnet.losses.SparseCategoricalCrossentropy()
    with pytest.raises(error, match=match):
        loss([0, 1], np.full((2, 3), 1 / 3), sample_weight=weights)


def test_bad_sample_weight_on_time_steps_lists_both_shapes():
    loss = npnet.losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"expected `sample_weight` of shape \(2,\) \(one weight per sample\) or "
                                         r"\(2, 3\) \(one weight per loss value\), received shape \(2, 4\)"):
        loss(np.zeros((2, 3), int), np.full((2, 3, 4), 0.25), sample_weight=np.ones((2, 4)))


def test_a_loss_whose_forward_takes_no_sample_weight_says_how_to_add_it():
    class Plain(npnet.losses.Loss):
        def forward(self, y_true, y_pred):
            return float(np.mean(y_pred))

    assert Plain()([0.0], np.array([[2.0]])) == 2.0
    with pytest.raises(TypeError, match=r"Plain: forward\(\) takes no `sample_weight`; give it a parameter"):
        Plain()([0.0], np.array([[2.0]]), sample_weight=[1.0])
