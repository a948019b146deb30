import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet.testing import check_gradients

from .strategies import seeds


def _loss_grad_check(loss, y, y_pred, sample_weight=None, eps=1e-6):
    """Central differences of loss.forward against loss.backward, in float64."""
    loss.forward(y, y_pred, sample_weight)
    analytic = loss.backward()
    assert analytic.shape == y_pred.shape
    numeric = np.zeros_like(y_pred)
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


# ---------------------------------------------------------------- cross-entropy fixes
def test_categorical_crossentropy_rescales_probabilities_like_keras():
    # Keras: q = p / sum(p) = [0.5, 0.5], then clip, then -sum t log q = log 2 (not -log 0.2).
    loss = npnet.losses.CategoricalCrossentropy()
    assert loss([[1.0, 0.0]], np.array([[0.2, 0.2]])) == pytest.approx(math.log(2))
    sparse = npnet.losses.SparseCategoricalCrossentropy()
    assert sparse([0], np.array([[0.2, 0.2]])) == pytest.approx(math.log(2))
    # the upper clip 1 - 1e-7: -log(1 - 1e-7) rather than 0
    assert loss([[1.0, 0.0]], np.array([[1.0, 0.0]])) == pytest.approx(-math.log(1 - 1e-7), rel=1e-3)


def test_crossentropies_average_over_time_steps():
    r = np.random.default_rng(3)
    p = _probs(r, (2, 3, 4))
    labels = r.integers(0, 4, size=(2, 3))
    per = -np.log(np.take_along_axis(p, labels[..., None], axis=-1)[..., 0])
    cce = npnet.losses.CategoricalCrossentropy()
    assert cce(np.eye(4)[labels], p) == pytest.approx(per.sum() / 6)  # was per.sum() / 2
    z = np.log(p) + 1.0
    assert npnet.losses.CategoricalCrossentropy(from_logits=True)(np.eye(4)[labels], z) == pytest.approx(per.sum() / 6)
    assert npnet.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, z) == pytest.approx(per.sum() / 6)
    # Binary: mean over the last axis per position, then over batch * time.
    t = r.integers(0, 2, size=(2, 3, 4)).astype(float)
    elem = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    w = np.array([1.0, 3.0])
    bce = npnet.losses.BinaryCrossentropy()
    assert bce(t, p) == pytest.approx(elem.mean())
    assert bce(t, p, sample_weight=w) == pytest.approx((elem.mean(-1) * w[:, None]).sum() / 6)


def test_class_axis_argument():
    r = np.random.default_rng(4)
    p = _probs(r, (2, 3, 4))
    labels = r.integers(0, 4, size=(2, 3))
    onehot = np.eye(4)[labels]
    ref = npnet.losses.CategoricalCrossentropy()(onehot, p)
    moved = npnet.losses.CategoricalCrossentropy(axis=1)
    assert moved(np.moveaxis(onehot, -1, 1), np.moveaxis(p, -1, 1)) == pytest.approx(ref)
    assert npnet.losses.SparseCategoricalCrossentropy(axis=1)(labels, np.moveaxis(p, -1, 1)) == pytest.approx(ref)
    _loss_grad_check(moved, np.moveaxis(onehot, -1, 1), np.moveaxis(p, -1, 1).copy(), np.array([1.0, 2.0]))
    _loss_grad_check(npnet.losses.SparseCategoricalCrossentropy(axis=1, from_logits=True), labels,
                     np.moveaxis(np.log(p), -1, 1).copy())
    t = r.integers(0, 2, size=(2, 3, 4)).astype(float)
    bce1 = npnet.losses.BinaryCrossentropy(axis=1)
    elem = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    w = np.array([[1.0, 0.0, 2.0, 1.0], [0.5, 0.5, 0.5, 0.5]])  # one weight per (batch, last) value
    assert bce1(t, p, sample_weight=w) == pytest.approx((elem.mean(1) * w).sum() / 8)
    _loss_grad_check(bce1, t, p.copy(), w)
    assert not moved.fusable and npnet.losses.CategoricalCrossentropy().fusable
    with pytest.raises(ValueError, match=r"CategoricalCrossentropy: `axis`=3 is out of range for y_pred of shape"):
        npnet.losses.CategoricalCrossentropy(axis=3)(onehot, p)
    with pytest.raises(TypeError, match=r"`axis` must be an integer"):
        npnet.losses.CategoricalCrossentropy(axis=True)


def test_gradient_is_exact_where_the_probability_clip_is_active():
    # Row 0: class 1 has probability 1e-12, far below the clip 1e-7; steps of 5e-8 stay inside it.
    p = np.array([[0.6, 1e-12, 0.4 - 1e-12], [1 - 2e-12, 1e-12, 1e-12]])
    y = np.eye(3)[[1, 0]]
    cce = npnet.losses.CategoricalCrossentropy()
    _loss_grad_check(cce, y, p.copy(), eps=5e-8)
    cce(y, p)
    g = cce.backward()
    # Row 1: every rescaled probability is clipped (1 - 2e-12 > 1 - 1e-7): the loss is flat there.
    np.testing.assert_array_equal(g[1], 0.0)
    # Row 0: only the row sum reaches the clipped target class: dL/dp_k = -(sum_j g_j q_j) / (s n) with
    # g = 0 for the target class, so every element of the row gets the same value, here 0.
    np.testing.assert_allclose(g[0], 0.0, atol=1e-12)
    _loss_grad_check(npnet.losses.SparseCategoricalCrossentropy(), [1, 0], p.copy(), eps=5e-8)
    # Mixed row: a clipped non-target class still moves the row sum.
    q = np.array([[0.7, 1e-12, 0.3]])
    _loss_grad_check(npnet.losses.CategoricalCrossentropy(label_smoothing=0.1), [[1.0, 0.0, 0.0]], q.copy(), eps=5e-8)
    bce = npnet.losses.BinaryCrossentropy()
    b = np.array([[1e-12, 1 - 1e-12, 0.3]])
    tb = np.array([[1.0, 0.0, 1.0]])
    _loss_grad_check(bce, tb, b.copy(), eps=5e-8)
    bce(tb, b)
    np.testing.assert_array_equal(bce.backward()[0, :2], 0.0)  # was -1e7 / 3 and 1e7 / 3


@given(n=st.integers(1, 4), k=st.integers(1, 3), seed=seeds, from_logits=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.2]))
def test_binary_label_smoothing_golden_and_gradient(n, k, seed, from_logits, smoothing):
    r = np.random.default_rng(seed)
    t = r.integers(0, 2, size=(n, k)).astype(float)
    z = r.normal(size=(n, k))
    p = 1 / (1 + np.exp(-z))
    ts = t * (1 - smoothing) + 0.5 * smoothing  # Keras: y_true * (1 - s) + 0.5 * s
    expected = np.mean(-(ts * np.log(p) + (1 - ts) * np.log(1 - p)))
    loss = npnet.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    assert loss(t, z if from_logits else p) == pytest.approx(expected, rel=1e-6)
    _loss_grad_check(loss, t, (z if from_logits else p).copy(), r.uniform(size=n))
    assert loss._forward_logits(t, z) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(loss.backward(), (p - ts) / (n * k), rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------- new losses
L = npnet.losses


def test_new_losses_golden_values_from_keras_formulas():
    yt = np.array([[0.0, 1.0], [0.0, 0.0]])
    yp = np.array([[0.6, 0.4], [0.4, 0.6]])
    # Huber, delta 1: errors [[0.6, -0.6], [0.4, 0.6]] all <= 1 -> 0.5 x^2 = [[.18, .18], [.08, .18]];
    # mean over the last axis [.18, .13]; mean over the batch 0.155 (Keras' docstring value).
    assert L.Huber()(yt, yp) == pytest.approx(0.155)
    # delta 0.5: |0.6| > 0.5 -> 0.5 * 0.6 - 0.125 = 0.175; |0.4| <= 0.5 -> 0.08
    assert L.Huber(delta=0.5)(yt, yp) == pytest.approx(((0.175 + 0.175) / 2 + (0.08 + 0.175) / 2) / 2)
    # LogCosh on Keras' docstring example: log cosh(1) / 2 per sample, 0 for the second -> 0.108
    assert L.LogCosh()(yt, np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx(math.log(math.cosh(1)) / 4)
    assert L.LogCosh()([[0.0]], np.array([[50.0]])) == pytest.approx(50 - math.log(2))  # no overflow
    # KLDivergence: clip both to [1e-7, 1]; sum t log(t / p) over the last axis
    tc = np.clip(yt, 1e-7, 1)
    kld = (tc * np.log(tc / yp)).sum(-1).mean()
    assert L.KLDivergence()(yt, yp) == pytest.approx(kld)
    # Poisson: mean(p - t log(p + 1e-7)) over the last axis
    assert L.Poisson()(yt, yp) == pytest.approx((yp - yt * np.log(yp + 1e-7)).mean())
    # Hinge: 0/1 labels become -1/1: t = [[-1, 1], [-1, -1]]; max(1 - t p, 0) = [[1.6, 0.6], [1.4, 1.6]]
    assert L.Hinge()(yt, yp) == pytest.approx((1.6 + 0.6 + 1.4 + 1.6) / 4)
    assert L.SquaredHinge()(yt, yp) == pytest.approx((1.6**2 + 0.6**2 + 1.4**2 + 1.6**2) / 4)
    # labels already -1/1 are kept; labels 0.5 (not binary) are kept too
    assert L.Hinge()([[-1.0, 1.0]], np.array([[0.5, 2.0]])) == pytest.approx((1.5 + 0.0) / 2)
    assert L.Hinge()([[0.5, 1.0]], np.array([[1.0, 1.0]])) == pytest.approx((0.5 + 0.0) / 2)
    # CategoricalHinge: pos = sum t p, neg = max (1 - t) p; max(neg - pos + 1, 0)
    # row 0: pos 0.4, neg 0.6 -> 1.2; row 1: pos 0, neg 0.6 -> 1.6
    assert L.CategoricalHinge()(yt, yp) == pytest.approx((1.2 + 1.6) / 2)
    # CosineSimilarity on Keras' docstring example: per sample [-0, -1] -> -0.5
    assert L.CosineSimilarity()([[0.0, 1.0], [1.0, 1.0]], np.array([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx(-0.5)
    # a zero vector gives 0
    assert L.CosineSimilarity()([[0.0, 0.0]], np.array([[1.0, 2.0]])) == 0.0


def _new_loss_case(name, r, shape):
    t_bin = r.integers(0, 2, size=shape).astype(float)
    away = np.sign(r.normal(size=shape)) * r.uniform(0.1, 1.0, size=shape)
    if name == "huber":
        d = np.where(r.uniform(size=shape) < 0.5, 0.1 + 0.8 * r.uniform(size=shape), 1.2 + r.uniform(size=shape))
        return L.Huber(), (t := r.normal(size=shape)), t + np.sign(r.normal(size=shape)) * d
    if name == "huber_small_delta":
        return L.Huber(delta=0.3), (t := r.normal(size=shape)), t + np.sign(r.normal(size=shape)) * (
            np.where(r.uniform(size=shape) < 0.5, 0.1, 0.6) + 0.1 * r.uniform(size=shape))
    if name == "log_cosh":
        return L.LogCosh(), r.normal(size=shape), 3 * r.normal(size=shape)
    if name == "kl_divergence":
        return L.KLDivergence(), _probs(r, shape), 0.95 * _probs(r, shape)  # off the clip at 1
    if name == "poisson":
        return L.Poisson(), r.poisson(2.0, size=shape).astype(float), r.uniform(0.2, 3.0, size=shape)
    if name in ("hinge", "squared_hinge"):
        labels = 2 * t_bin - 1 if r.uniform() < 0.5 else t_bin
        margin = 1 + away  # t * y = 1 + away, away from the kink at 1
        return (L.Hinge() if name == "hinge" else L.SquaredHinge()), labels, (2 * t_bin - 1) * margin
    if name == "categorical_hinge":
        onehot = np.eye(shape[-1])[r.integers(0, shape[-1], size=shape[:-1])]
        pred = r.permutation(np.arange(shape[-1]))[None] * 0.37 + 0.05 * r.uniform(size=shape)
        pred = pred + onehot * r.choice([-0.5, 2.0], size=shape[:-1] + (1,))
        return L.CategoricalHinge(), onehot, pred
    if name == "cosine_similarity":
        return L.CosineSimilarity(), r.normal(size=shape), r.normal(size=shape)
    raise AssertionError(name)


NEW = ["huber", "huber_small_delta", "log_cosh", "kl_divergence", "poisson", "hinge", "squared_hinge",
       "categorical_hinge", "cosine_similarity"]


@pytest.mark.parametrize("name", NEW)
@given(seed=seeds, shape=st.sampled_from([(3, 1), (2, 4), (2, 3, 4)]), weighted=st.sampled_from([None, "batch",
                                                                                               "values"]))
def test_new_loss_gradients(name, seed, shape, weighted):
    r = np.random.default_rng(seed)
    loss, y, pred = _new_loss_case(name, r, shape)
    w = None if weighted is None else r.uniform(0, 2, size=shape[:1] if weighted == "batch" else shape[:-1])
    _loss_grad_check(loss, y, pred.copy(), w)
    # the weighted value is sum(w * per-sample) / count: a unit weight gives the unweighted value
    if w is not None:
        assert loss(y, pred, sample_weight=np.ones(shape[:1])) == pytest.approx(loss(y, pred), rel=1e-12)


def test_cosine_similarity_on_another_axis_and_a_zero_prediction():
    r = np.random.default_rng(5)
    t, y = r.normal(size=(2, 3, 4)), r.normal(size=(2, 3, 4))
    ref = L.CosineSimilarity()(np.moveaxis(t, 1, -1), np.moveaxis(y, 1, -1))
    loss = L.CosineSimilarity(axis=1)
    assert loss(t, y) == pytest.approx(ref)
    _loss_grad_check(loss, t, y.copy(), np.array([1.0, 2.0]))
    # a zero prediction: the norm is clamped at 1e-7, the loss is 0 and its gradient -t_hat / 1e-7 / n
    zero = L.CosineSimilarity()
    assert zero([[3.0, 4.0]], np.zeros((1, 2))) == 0.0
    np.testing.assert_allclose(zero.backward(), [[-0.6e7, -0.8e7]])


ALL_CLASSES = [L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, axis=1),
               L.SparseCategoricalCrossentropy(from_logits=True, axis=-1),
               L.BinaryCrossentropy(from_logits=True, label_smoothing=0.2, axis=1), L.MeanSquaredError(),
               L.MeanAbsoluteError(), L.Huber(delta=2.5), L.LogCosh(), L.KLDivergence(), L.Poisson(), L.Hinge(),
               L.SquaredHinge(), L.CategoricalHinge(), L.CosineSimilarity(axis=1)]


@pytest.mark.parametrize("loss", ALL_CLASSES, ids=lambda x: type(x).__name__)
def test_config_round_trip(loss):
    again = type(loss).from_config(loss.get_config())
    assert again.get_config() == loss.get_config() and type(again) is type(loss)
    restored = L.get(L.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    assert L.get(type(loss).__name__).get_config() == type(loss)().get_config()
    assert getattr(npnet.losses, type(loss).__name__) is type(loss)


@pytest.mark.parametrize("name, cls", [
    ("mse", L.MeanSquaredError), ("MSE", L.MeanSquaredError), ("mean_squared_error", L.MeanSquaredError),
    ("mae", L.MeanAbsoluteError), ("MAE", L.MeanAbsoluteError), ("mean_absolute_error", L.MeanAbsoluteError),
    ("bce", L.BinaryCrossentropy), ("BCE", L.BinaryCrossentropy), ("binary_crossentropy", L.BinaryCrossentropy),
    ("categorical_crossentropy", L.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", L.SparseCategoricalCrossentropy),
    ("huber", L.Huber), ("log_cosh", L.LogCosh), ("kl_divergence", L.KLDivergence), ("kld", L.KLDivergence),
    ("KLD", L.KLDivergence), ("poisson", L.Poisson), ("hinge", L.Hinge), ("squared_hinge", L.SquaredHinge),
    ("categorical_hinge", L.CategoricalHinge), ("cosine_similarity", L.CosineSimilarity),
    ("Huber", L.Huber), ("CosineSimilarity", L.CosineSimilarity),
])
def test_keras_names(name, cls):
    assert type(L.get(name)) is cls


def test_new_loss_argument_errors():
    with pytest.raises(ValueError, match=r"Huber: `delta` must be in \(0, inf\), received -1.0"):
        L.Huber(delta=-1.0)
    with pytest.raises(TypeError, match=r"CosineSimilarity: `axis` must be an integer, received 0.5"):
        L.CosineSimilarity(axis=0.5)
    with pytest.raises(ValueError, match=r"Huber: targets of shape \(2, 3\) do not match predictions \(2, 2\)"):
        L.Huber()(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"Hinge: expected `sample_weight` of shape \(2,\)"):
        L.Hinge()(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=np.ones(5))


@pytest.mark.parametrize("loss", ["huber", "log_cosh", "poisson", "squared_hinge", "cosine_similarity",
                                  L.CategoricalHinge(), "kld"])
def test_new_losses_train_a_model(loss):
    r = np.random.default_rng(0)
    x = r.normal(size=(16, 3)).astype(np.float32)
    y = _probs(r, (16, 2)) if loss == "kld" else np.eye(2)[r.integers(0, 2, size=16)]
    last = "softmax" if loss == "kld" else ("softplus" if loss == "poisson" else None)
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2, activation=last)], seed=1)
    model.compile(npnet.SGD(0.1), loss)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


# ---------------------------------------------------------------- your own loss
class ScaledSquare(L.Loss):
    """factor * mean((y - t)^2) over the last axis."""

    def __init__(self, factor=1.0):
        self.factor = factor

    def forward(self, y_true, y_pred, sample_weight=None):
        d = y_pred - np.asarray(y_true, dtype=y_pred.dtype)
        self._cache = d
        return self.reduce(self.factor * np.mean(d * d, axis=-1), sample_weight)

    def backward(self):
        d = self._cache
        return self.reduce_gradient()[..., None] * (2 * self.factor / d.shape[-1]) * d

    def get_config(self):
        return {"factor": self.factor}


def test_a_user_loss_trains_checks_and_saves_once_registered(tmp_path):
    r = np.random.default_rng(6)
    y, p = r.normal(size=(3, 2)), r.normal(size=(3, 2))
    assert check_gradients(ScaledSquare(3.0), y_true=y, y_pred=p, sample_weight=[1.0, 0.0, 2.0]).passed
    assert ScaledSquare(3.0)(y, p) == pytest.approx(3 * L.MeanSquaredError()(y, p))
    x = r.normal(size=(8, 3)).astype(np.float32)
    t = r.normal(size=(8, 2)).astype(np.float32)
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2)], seed=0)
    model.compile("sgd", ScaledSquare(3.0))
    model.fit(x, t, epochs=2, verbose=0)
    with pytest.raises(ValueError, match=r"save: the loss class ScaledSquare is not registered; decorate it with "
                                         r"@npnet.losses.register_loss"):
        model.save(tmp_path / "m.npnet")
    L.register_loss(ScaledSquare)
    try:
        model.save(tmp_path / "m.npnet")
        loaded = npnet.load_model(tmp_path / "m.npnet")
        assert type(loaded.loss) is ScaledSquare and loaded.loss.factor == 3.0
        assert loaded.evaluate(x, t, verbose=0) == pytest.approx(model.evaluate(x, t, verbose=0))
    finally:
        L._BY_CLASS.pop("ScaledSquare", None)
        L._BY_NAME.pop("ScaledSquare", None)


def test_register_loss_errors():
    with pytest.raises(TypeError, match=r"register_loss: expected a subclass of npnet.losses.Loss"):
        L.register_loss(int)

    class Huber(L.Loss):
        pass

    with pytest.raises(ValueError, match=r"register_loss: the name 'Huber' belongs to npnet's own loss"):
        L.register_loss(Huber)


def test_a_plain_function_as_loss_says_how_to_write_a_loss_class():
    def my_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)

    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2)])
    with pytest.raises(TypeError, match=r"compile: loss 'my_loss' is a plain function, but npnet needs the loss's "
                                        r"gradient too; write a subclass of npnet.losses.Loss with forward"):
        model.compile("sgd", my_loss)
    with pytest.raises(ValueError, match=r"unknown loss class 'Nope'; register your own"):
        L.get({"class_name": "Nope", "config": {}})
    assert isinstance(L.get(L.Huber), L.Huber)  # a class is instantiated, as in Keras


def test_fusion_needs_the_last_class_axis_and_matches_the_unfused_value():
    x = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
    y = np.eye(3)[[0, 1, 2, 0]]
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(3, activation="softmax")], seed=2)
    model.compile("sgd", L.CategoricalCrossentropy())
    assert model._fused_outputs(x) == [True]
    fused = model.evaluate(x, y, verbose=0)
    model.compile("sgd", L.CategoricalCrossentropy(axis=1))  # the same axis, named otherwise: not fused
    assert model._fused_outputs(x) == [False]
    assert model.evaluate(x, y, verbose=0) == pytest.approx(fused, rel=1e-5)


# ---------------------------------------------------------------- a loss class npnet cannot train with
def test_compile_refuses_a_keras_style_loss_that_defines_only_call():
    class KerasStyle(L.Loss):
        def call(self, y_true, y_pred):
            return np.mean((y_pred - y_true) ** 2, axis=-1)

    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2)])
    match = (r"compile: loss KerasStyle overrides neither forward\(\) nor backward\(\) \(its call\(\) is Keras' "
             r"method, which npnet does not use: it has no automatic differentiation\); npnet needs "
             r"forward\(y_true, y_pred, sample_weight=None\) -> float and backward\(\) -> dL/dy_pred, the "
             r"derivative written by hand \(see 'Write your own loss' in the docs\)")
    with pytest.raises(TypeError, match=match):
        model.compile("sgd", KerasStyle())
    with pytest.raises(TypeError, match=match):
        model.compile("sgd", KerasStyle)  # the class, as Keras also accepts
    assert model.loss is None  # nothing was compiled

    class Empty(L.Loss):
        pass

    with pytest.raises(TypeError, match=r"compile: loss Empty overrides neither forward\(\) nor backward\(\); npnet "
                                        r"needs forward"):
        L.get(Empty())


def test_compile_refuses_a_loss_with_forward_but_no_backward_and_the_reverse():
    class NoBackward(L.Loss):
        def forward(self, y_true, y_pred, sample_weight=None):
            return self.reduce(np.mean((y_pred - y_true) ** 2, axis=-1), sample_weight)

    class NoForward(L.Loss):
        def backward(self):
            return np.zeros(1)

    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2)])
    with pytest.raises(TypeError, match=r"compile: loss NoBackward defines forward\(\) but not backward\(\); npnet "
                                        r"needs forward\(y_true, y_pred, sample_weight=None\) -> float and "
                                        r"backward\(\) -> dL/dy_pred, the derivative written by hand \(see 'Write "
                                        r"your own loss' in the docs\)"):
        model.compile("sgd", NoBackward())
    with pytest.raises(TypeError, match=r"compile: loss NoForward defines backward\(\) but not forward\(\)"):
        model.compile("sgd", NoForward())
    # calling one directly names what is missing
    with pytest.raises(NotImplementedError, match=r"NoBackward: a Loss subclass must implement backward\(\), the "
                                                  r"derivative of its forward\(\)"):
        loss = NoBackward()
        assert loss([[1.0]], np.array([[3.0]])) == 4.0
        loss.backward()
    with pytest.raises(NotImplementedError, match=r"NoForward: a Loss subclass must implement forward\(y_true, "
                                                  r"y_pred, sample_weight=None\) and backward\(\); npnet does not "
                                                  r"use Keras' call\(\)"):
        NoForward()([[1.0]], np.array([[2.0]]))


def test_every_builtin_loss_and_a_subclass_of_one_pass_the_check():
    for name in sorted(L._BY_NAME):
        assert isinstance(L.get(name), L.Loss)
        assert type(L.get(L.serialize(L.get(name)))) is type(L.get(name))

    class Halved(L.MeanSquaredError):  # inherits forward and backward
        pass

    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(2)])
    model.compile("sgd", Halved())
    assert type(model.loss) is Halved


def test_a_subclass_may_call_the_keras_base_constructor():
    class Scaled(npnet.losses.Loss):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def forward(self, y_true, y_pred, sample_weight=None):
            self._cache = (np.asarray(y_true), np.asarray(y_pred))
            return self.reduce(self.factor * np.mean((self._cache[1] - self._cache[0]) ** 2, axis=-1), sample_weight)

        def backward(self):
            t, p = self._cache
            return self.reduce_gradient()[..., None] * self.factor * 2 * (p - t) / p.shape[-1]

    loss = Scaled(name="scaled_mse", reduction="sum_over_batch_size", dtype="float32")
    assert loss.name == "scaled_mse"
    assert loss(np.zeros((2, 1)), np.array([[1.0], [2.0]])) == pytest.approx(2.0 * (1 + 4) / 2)
    with pytest.raises(ValueError, match=r"Scaled: `reduction` must be 'sum_over_batch_size'.*received 'sum'"):
        Scaled(reduction="sum")
    with pytest.raises(TypeError, match=r"Scaled: `name` must be a non-empty string, received 3"):
        Scaled(name=3)
