"""MultiHeadAttention: Keras' formula written out step by step, masks, gradients, dropout,
config, a functional model trained with fit and saved, and bad input."""

import math
import re

import numpy as np
import pytest

import npnet
from npnet._masks import get_mask, set_mask
from npnet.layers import MultiHeadAttention
from npnet.testing import check_gradients

WEIGHT_NAMES = ["query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias",
                "output_kernel", "output_bias"]


def rng(seed=0):
    return np.random.default_rng(seed)


def randomize(layer, seed=1, scale=0.5):
    """Non-zero biases too, so that every term of the formula shows."""
    r = rng(seed)
    layer.set_weights([r.normal(scale=scale, size=w.shape) for w in layer.get_weights()])


def reference(layer, query, value, key=None, mask=None):
    """Keras 3's MultiHeadAttention written out step by step (float64): the projections
    (EinsumDense ``abc,cde->abde``), the query scaled by 1/sqrt(key_dim), the scores
    ``einsum("aecd,abcd->acbe", key, query)``, the masked softmax (masked scores -1e9,
    masked probabilities 0 after it), the weighted sum and the output projection.
    ``mask`` is the combined boolean mask (batch, T, S). Returns (output, probabilities)."""
    w = dict(zip(WEIGHT_NAMES, (np.asarray(a, np.float64) for a in layer.get_weights())))
    key = value if key is None else key
    q = np.einsum("btd,dhk->bthk", query, w["query_kernel"]) + w["query_bias"]
    k = np.einsum("bsd,dhk->bshk", key, w["key_kernel"]) + w["key_bias"]
    v = np.einsum("bsd,dhk->bshk", value, w["value_kernel"]) + w["value_bias"]
    q = q * (1.0 / math.sqrt(layer.key_dim))
    scores = np.einsum("bshk,bthk->bhts", k, q)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -1e9)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    if mask is not None:
        p = np.where(mask[:, None], p, 0.0)
    ctx = np.einsum("bhts,bshv->bthv", p, v)
    out = np.einsum("bthv,hvo->bto", ctx, w["output_kernel"]) + w["output_bias"]
    return out, p


def causal(t, s):
    return np.tril(np.ones((t, s), bool))[None]


# ---------------------------------------------------------------- values
def test_one_head_by_hand():
    """Identity projections, one head of size 1, steps x = [0, 1]: the second step's
    scores are [0, 1], so it puts weight e / (1 + e) on the value 1."""
    mha = MultiHeadAttention(num_heads=1, key_dim=1)
    x = np.array([[[0.0], [1.0]]], np.float32)
    mha(x, x)
    mha.set_weights([np.ones((1, 1, 1)), np.zeros((1, 1))] * 3 + [np.ones((1, 1, 1)), np.zeros(1)])
    y = mha(x, x)
    np.testing.assert_allclose(y[0, :, 0], [0.5, math.e / (1 + math.e)], rtol=1e-6)
    y = mha(x, x, use_causal_mask=True)  # the first step sees only itself
    np.testing.assert_allclose(y[0, :, 0], [0.0, math.e / (1 + math.e)], rtol=1e-6)


def test_weights_have_keras_shapes_and_order():
    mha = MultiHeadAttention(num_heads=4, key_dim=3, value_dim=5, output_shape=(2, 7))
    q, v, k = np.zeros((2, 6, 8), np.float32), np.zeros((2, 9, 10), np.float32), np.zeros((2, 9, 11), np.float32)
    assert mha(q, v, k).shape == (2, 6, 2, 7)
    assert list(mha.params) == WEIGHT_NAMES
    assert [w.shape for w in mha.get_weights()] == [(8, 4, 3), (4, 3), (11, 4, 3), (4, 3), (10, 4, 5), (4, 5),
                                                    (4, 5, 2, 7), (2, 7)]
    assert all(w.dtype == np.float32 for w in mha.get_weights())
    no_bias = MultiHeadAttention(2, 3, use_bias=False)
    no_bias(q, q)
    assert list(no_bias.params) == ["query_kernel", "key_kernel", "value_kernel", "output_kernel"]


def test_self_attention_matches_keras_formula():
    mha = MultiHeadAttention(num_heads=3, key_dim=4)
    x = rng().normal(size=(2, 5, 6))
    mha(x, x)
    randomize(mha)
    out, scores = mha(x.astype(np.float32), x.astype(np.float32), return_attention_scores=True)
    ref, p = reference(mha, x, x)
    assert out.dtype == np.float32 and scores.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, p, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, rtol=1e-5)


def test_cross_attention_with_key_value_dim_and_output_shape_matches_keras_formula():
    npnet.set_floatx("float64")
    r = rng(3)
    q, v, k = r.normal(size=(3, 4, 5)), r.normal(size=(3, 6, 2)), r.normal(size=(3, 6, 7))
    mha = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=6)
    mha(q, v, k)
    randomize(mha, seed=4)
    out, scores = mha(q, v, k, return_attention_scores=True)
    ref, p = reference(mha, q, v, k)
    assert out.shape == (3, 4, 6) and scores.shape == (3, 2, 4, 6)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scores, p, rtol=1e-12, atol=1e-14)
    # without a key, value serves as key as well
    mha2 = MultiHeadAttention(num_heads=2, key_dim=3)
    mha2(q, v)
    randomize(mha2, seed=5)
    np.testing.assert_allclose(mha2(q, v), reference(mha2, q, v)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["attention", "causal", "query", "value", "key", "all"])
def test_masks_match_keras_formula(kind):
    """Each mask as Keras' _compute_attention_mask combines it: query (B, T, 1), value and
    key (B, 1, S), causal (1, T, S), attention_mask (B, T, S), all with a logical and."""
    npnet.set_floatx("float64")
    r = rng(7)
    b, t, s = 3, 5, 5
    q, v, k = r.normal(size=(b, t, 4)), r.normal(size=(b, s, 4)), r.normal(size=(b, s, 4))
    am = r.random((b, t, s)) > 0.3
    qm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    vm = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    km = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], bool)
    kwargs, mask = {
        "attention": ({"attention_mask": am}, am),
        "causal": ({"use_causal_mask": True}, np.broadcast_to(causal(t, s), (b, t, s))),
        "query": ({"query_mask": qm}, np.broadcast_to(qm[:, :, None], (b, t, s))),
        "value": ({"value_mask": vm}, np.broadcast_to(vm[:, None, :], (b, t, s))),
        "key": ({"key_mask": km}, np.broadcast_to(km[:, None, :], (b, t, s))),
        "all": ({"attention_mask": am, "use_causal_mask": True, "query_mask": qm, "value_mask": vm,
                 "key_mask": km}, am & causal(t, s) & qm[:, :, None] & vm[:, None, :] & km[:, None, :]),
    }[kind]
    mha = MultiHeadAttention(num_heads=2, key_dim=3)
    mha(q, v, k)
    randomize(mha, seed=8)
    out, scores = mha(q, v, k, return_attention_scores=True, **kwargs)
    ref, p = reference(mha, q, v, k, mask=mask)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scores, p, rtol=1e-12, atol=1e-14)
    assert np.all(scores[np.broadcast_to(~mask[:, None], scores.shape)] == 0.0)


def test_masks_attached_to_the_inputs_are_used_and_the_query_mask_passes_on():
    """As Keras fills query_mask, value_mask and key_mask from the inputs' masks."""
    npnet.set_floatx("float64")
    r = rng(9)
    q, v = r.normal(size=(2, 4, 3)), r.normal(size=(2, 5, 3))
    qm = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    vm = np.array([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0]], bool)
    set_mask(q, qm)
    set_mask(v, vm)
    mha = MultiHeadAttention(num_heads=2, key_dim=2)
    mha(q, v)
    randomize(mha, seed=10)
    out = mha(q, v)
    ref, _ = reference(mha, q, v, mask=qm[:, :, None] & vm[:, None, :])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(get_mask(out), qm)
    out, scores = mha(q, v, return_attention_scores=True)
    np.testing.assert_array_equal(get_mask(out), qm)
    assert get_mask(scores) is None


def test_a_fully_masked_query_row_gives_zero_weights_and_no_nan():
    """Keras' Softmax with a mask zeroes masked probabilities, so a row with nothing to
    attend to gets zero weights: the output is the output bias, and no gradient flows."""
    mha = MultiHeadAttention(num_heads=2, key_dim=3)
    r = rng(11)
    x = r.normal(size=(2, 4, 5)).astype(np.float32)
    mha(x, x)
    randomize(mha, seed=12)
    am = np.ones((2, 4, 4), bool)
    am[0, 1] = False  # query step 1 of sample 0 may attend to nothing
    (out, scores), cache = mha.forward([x, x, x], attention_mask=am, return_attention_scores=True)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores[0, :, 1], 0.0)
    np.testing.assert_allclose(out[0, 1], mha.params["output_bias"], rtol=1e-6)
    dq, dv, dk = mha.backward(cache, [np.ones_like(out), np.ones_like(scores)])
    for g in (dq, dv, dk, *mha.grads.values()):
        assert np.all(np.isfinite(g))
    # only the query projection's bias reaches query step 1 of sample 0: nothing does
    np.testing.assert_array_equal(dq[0, 1], 0.0)
    # all padding: the same, and no NaN anywhere
    y = mha(x, x, value_mask=np.zeros((2, 4), bool))
    np.testing.assert_allclose(y, np.broadcast_to(mha.params["output_bias"], y.shape), rtol=1e-6)


def test_attention_mask_broadcasts_over_the_batch():
    npnet.set_floatx("float64")
    r = rng(13)
    x = r.normal(size=(3, 4, 2))
    mha = MultiHeadAttention(2, 2)
    m = r.random((4, 4)) > 0.4
    np.testing.assert_allclose(mha(x, x, attention_mask=m), mha(x, x, attention_mask=np.broadcast_to(m, (3, 4, 4))))
    np.testing.assert_allclose(mha(x, x, attention_mask=m[None]), mha(x, x, attention_mask=m))
    # non-boolean masks count as True where nonzero, as Keras casts them
    np.testing.assert_allclose(mha(x, x, attention_mask=m.astype(np.float32) * 3), mha(x, x, attention_mask=m))


def test_sliding_window_keeps_a_band():
    npnet.set_floatx("float64")
    x = rng(14).normal(size=(1, 6, 3))
    mha = MultiHeadAttention(1, 2, sliding_window=2)
    mha(x, x)
    randomize(mha, seed=15)
    i, j = np.arange(6)[:, None], np.arange(6)[None]
    band = (np.abs(i - j) < 2)[None]
    out, scores = mha(x, x, use_causal_mask=True, return_attention_scores=True)
    np.testing.assert_allclose(out, reference(mha, x, x, mask=band & causal(6, 6))[0], rtol=1e-12)
    assert np.count_nonzero(scores[0, 0]) == 11  # the diagonal and the one below it


# ---------------------------------------------------------------- gradients
class Attend(npnet.layers.Layer):
    """A composite calling a MultiHeadAttention with fixed call arguments (the masks are
    constants), so that check_gradients goes through the tape."""

    def __init__(self, mha, self_attention=False, attach=None, **kwargs):
        super().__init__()
        self.mha, self.self_attention, self.attach, self.kwargs = mha, self_attention, attach, kwargs

    def call(self, inputs, training=False):
        if self.self_attention:
            return self.mha(inputs, inputs, training=training, **self.kwargs)
        q, v, k = inputs
        if self.attach is not None:
            set_mask(q, self.attach[0])
            set_mask(v, self.attach[1])
        return self.mha(q, v, k, training=training, **self.kwargs)


def _masks_for_gradients():
    r = rng(20)
    b, t, s = 2, 3, 4
    am = r.random((b, t, s)) > 0.3
    am[1, 2] = False  # a fully masked row
    qm = np.array([[1, 1, 0], [1, 1, 1]], bool)
    vm = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)
    km = np.array([[0, 1, 1, 1], [1, 1, 1, 1]], bool)
    return {
        "none": {},
        "attention": {"attention_mask": am},
        "causal": {"use_causal_mask": True},
        "query": {"query_mask": qm},
        "value": {"value_mask": vm},
        "key": {"key_mask": km},
        "all": {"attention_mask": am, "use_causal_mask": True, "query_mask": qm, "value_mask": vm, "key_mask": km},
    }


@pytest.mark.parametrize("scores", [False, True], ids=["output", "with_scores"])
@pytest.mark.parametrize("kind", sorted(_masks_for_gradients()))
def test_gradients_for_query_key_value_and_every_weight(kind, scores):
    r = rng(21)
    q, v, k = r.normal(size=(2, 3, 4)), r.normal(size=(2, 4, 3)), r.normal(size=(2, 4, 5))
    mha = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2)
    mha(q, v, k)
    randomize(mha, seed=22)
    layer = Attend(mha, return_attention_scores=scores, **_masks_for_gradients()[kind])
    report = check_gradients(layer, [q, v, k], atol=1e-6, rtol=1e-5)
    assert report.passed
    names = [e.name for e in report.entries]
    assert names[:3] == ["x[0]", "x[1]", "x[2]"]
    assert all(any(n.endswith(w) for n in names) for w in WEIGHT_NAMES)
    assert all(e.checked == e.analytic.size for e in report.entries)


def test_gradients_with_attached_masks():
    r = rng(23)
    q, v, k = r.normal(size=(2, 3, 4)), r.normal(size=(2, 4, 3)), r.normal(size=(2, 4, 3))
    attach = (np.array([[1, 1, 0], [1, 1, 1]], bool), np.array([[1, 1, 1, 0], [0, 0, 1, 1]], bool))
    mha = MultiHeadAttention(num_heads=2, key_dim=2)
    mha(q, v, k)
    randomize(mha, seed=24)
    assert check_gradients(Attend(mha, attach=attach), [q, v, k], atol=1e-6, rtol=1e-5).passed


@pytest.mark.parametrize("kwargs", [{}, {"use_causal_mask": True}, {"return_attention_scores": True}])
def test_self_attention_gradient_sums_over_query_key_and_value(kwargs):
    """mha(x, x): x feeds the query, key and value projections; the tape adds the three."""
    x = rng(25).normal(size=(2, 4, 3))
    mha = MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.3, seed=5)
    mha(x, x)
    randomize(mha, seed=26)
    report = check_gradients(Attend(mha, self_attention=True, **kwargs), x, atol=1e-6, rtol=1e-5, training=True)
    assert report.passed
    assert report.entries[0].name == "x" and report.entries[0].checked == x.size
    # the same gradient as three separate inputs, summed
    y, cache = mha.forward([x, x, x], **{k: v for k, v in kwargs.items() if k != "return_attention_scores"})
    dy = rng(27).normal(size=y.shape)
    dq, dv, dk = mha.backward(cache, dy)
    model_in = npnet.Input((4, 3))
    model = npnet.Model(model_in, MultiHeadAttention(2, 2, name="self_att")(model_in, model_in, **{
        k: v for k, v in kwargs.items() if k != "return_attention_scores"}))
    model.get_layer("self_att").set_weights(mha.get_weights())
    from npnet import _tape
    tape = _tape.Tape(strict=False, input_grads=True)
    with _tape.running(_tape.Run(training=False, tape=tape)):
        tape.add_source(x)
        out = model(x)
        grads, _ = tape.backward({id(out): dy}, want={id(x)})
    np.testing.assert_allclose(grads[id(x)], dq + dv + dk, rtol=1e-10)


def test_dropout_is_seeded_and_scores_are_returned_before_dropout():
    x = rng(30).normal(size=(4, 6, 8)).astype(np.float32)
    a = MultiHeadAttention(2, 4, dropout=0.5, seed=7)
    b = MultiHeadAttention(2, 4, dropout=0.5, seed=7)
    a(x, x)
    b(x, x)
    b.set_weights(a.get_weights())
    out_a, s_a = a(x, x, training=True, return_attention_scores=True)
    out_b, s_b = b(x, x, training=True, return_attention_scores=True)
    np.testing.assert_array_equal(out_a, out_b)
    out_inf, s_inf = a(x, x, return_attention_scores=True)
    assert not np.allclose(out_a, out_inf)
    # the returned scores are the probabilities before dropout, as in Keras
    np.testing.assert_allclose(s_a, s_inf, rtol=1e-6)
    again, _ = a(x, x, training=True, return_attention_scores=True)  # the stream moves on
    assert not np.array_equal(again, out_a)
    # inference ignores the rate
    npnet.set_floatx("float64")
    c = MultiHeadAttention(2, 4, dropout=0.5)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(c(x64, x64), reference(c, x64, x64)[0], rtol=1e-12)


def test_dropout_drops_whole_probabilities_and_rescales_the_rest():
    """With one head, value and output projections set to identity, the output is the
    dropped probabilities times the values: each term is 0 or p / (1 - rate)."""
    npnet.set_floatx("float64")
    t = 5
    x = np.eye(t)[None]  # one-hot steps: the output row i is the dropped probability row i
    mha = MultiHeadAttention(num_heads=1, key_dim=t, dropout=0.4, seed=3, use_bias=False)
    mha(x, x)
    r = rng(31)
    mha.set_weights([r.normal(size=(t, 1, t)), r.normal(size=(t, 1, t)), np.eye(t)[:, None, :],
                     np.eye(t)[None]])
    out, p = mha(x, x, training=True, return_attention_scores=True)
    ratio = out[0] / p[0, 0]
    kept = ratio != 0
    np.testing.assert_allclose(ratio[kept], 1 / 0.6, rtol=1e-12)
    assert 0 < kept.sum() < t * t


# ---------------------------------------------------------------- config, functional models, saving
def test_config_round_trip():
    mha = MultiHeadAttention(num_heads=3, key_dim=2, value_dim=5, dropout=0.25, use_bias=False, output_shape=(4,),
                             attention_axes=1, sliding_window=3, kernel_initializer="he_normal",
                             bias_initializer="ones", kernel_regularizer="l2", bias_regularizer="l1",
                             activity_regularizer="l1_l2", kernel_constraint="max_norm", bias_constraint="non_neg",
                             seed=9, name="att")
    config = mha.get_config()
    assert config["num_heads"] == 3 and config["key_dim"] == 2 and config["value_dim"] == 5
    assert config["output_shape"] == [4] and config["attention_axes"] == [1] and config["seed"] == 9
    clone = MultiHeadAttention.from_config(config)
    assert clone.get_config() == config
    assert MultiHeadAttention(2, 3).get_config()["value_dim"] == 3


def _previous_token_data(n, t, vocab, seed):
    """One-hot tokens with one-hot positions; the target at step i is the token at i - 1
    (0 at the first step)."""
    r = rng(seed)
    tokens = r.integers(1, vocab, size=(n, t))
    x = np.concatenate([np.eye(vocab)[tokens], np.broadcast_to(np.eye(t), (n, t, t))], axis=-1).astype(np.float32)
    y = np.concatenate([np.zeros((n, 1), int), tokens[:, :-1]], axis=1)
    return x, y


def test_functional_model_learns_the_previous_token_and_survives_saving(tmp_path):
    t, vocab = 8, 6
    x, y = _previous_token_data(1024, t, vocab, seed=40)
    x_test, y_test = _previous_token_data(256, t, vocab, seed=41)
    inp = npnet.Input((t, vocab + t))
    h = npnet.layers.Dense(32)(inp)
    a = MultiHeadAttention(num_heads=2, key_dim=16, dropout=0.1, seed=1, name="att")(h, h, use_causal_mask=True)
    h = npnet.layers.LayerNormalization()(npnet.layers.Add()([h, a]))
    out = npnet.layers.Dense(vocab, activation="softmax")(h)
    model = npnet.Model(inp, out)
    model.compile(optimizer=npnet.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=12, batch_size=64, verbose=0, seed=0)
    pred = model.predict(x_test, verbose=0)
    accuracy = float(np.mean(pred.argmax(-1) == y_test))
    assert accuracy > 0.95, accuracy
    assert all(w.dtype == np.float32 for w in model.get_weights())
    path = tmp_path / "attention.npnet"
    model.save(path)
    loaded = npnet.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), pred)
    assert loaded.get_layer("att").get_config() == model.get_layer("att").get_config()


def test_functional_model_with_mask_input_and_scores_saves_its_call_arguments(tmp_path):
    t, d = 5, 4
    x_in = npnet.Input((t, d), name="x")
    m_in = npnet.Input((t, t), dtype="bool", name="m")
    out, scores = MultiHeadAttention(2, 3, name="att")(x_in, x_in, attention_mask=m_in, use_causal_mask=True,
                                                        return_attention_scores=True)
    assert out.shape == (None, t, d) and scores.shape == (None, 2, t, t)
    model = npnet.Model([x_in, m_in], [out, scores])
    r = rng(42)
    x = r.normal(size=(3, t, d)).astype(np.float32)
    m = r.random((3, t, t)) > 0.3
    y, s = model([x, m])
    layer = model.get_layer("att")
    y_ref, s_ref = layer(x, x, attention_mask=m, use_causal_mask=True, return_attention_scores=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6)
    np.testing.assert_allclose(s, s_ref, rtol=1e-6)
    assert np.all(s[np.broadcast_to(~(m & causal(t, t))[:, None], s.shape)] == 0)
    path = tmp_path / "masked.npnet"
    model.save(path)
    loaded = npnet.load_model(path)
    for a, b in zip(loaded([x, m]), [y, s]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("factory, error, match", [
    (lambda: MultiHeadAttention(0, 4), ValueError, "MultiHeadAttention: `num_heads` must be >= 1, received 0"),
    (lambda: MultiHeadAttention(2, -1), ValueError, "MultiHeadAttention: `key_dim` must be >= 1, received -1"),
    (lambda: MultiHeadAttention(2, 0), ValueError, "MultiHeadAttention: `key_dim` must be >= 1, received 0"),
    (lambda: MultiHeadAttention(2.5, 4), TypeError, "MultiHeadAttention: `num_heads` must be an integer"),
    (lambda: MultiHeadAttention(2, 4, value_dim=0), ValueError, "`value_dim` must be >= 1, received 0"),
    (lambda: MultiHeadAttention(2, 4, dropout=1.0), ValueError, r"`dropout` must be in \[0, 1\), received 1.0"),
    (lambda: MultiHeadAttention(2, 4, output_shape=(0,)), ValueError, "`output_shape` must be a positive int"),
    (lambda: MultiHeadAttention(2, 4, attention_axes=(1, 2)), ValueError,
     r"`attention_axes` other than the time axis .* not supported; use None, received \(1, 2\)"),
    (lambda: MultiHeadAttention(2, 4, flash_attention=True), ValueError, "`flash_attention` must be None or False"),
    (lambda: MultiHeadAttention(2, 4, sliding_window=0), ValueError, "`sliding_window` must be >= 1"),
    (lambda: MultiHeadAttention(2, 4, seed=-1), ValueError, "`seed` must be >= 0"),
])
def test_bad_constructor_arguments_are_named(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


X = np.zeros((2, 5, 4), np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m(np.zeros((2, 4), np.float32), X), ValueError,
     "MultiHeadAttention 'att': expected query of rank 3 (batch, steps, features), received shape (2, 4)"),
    (lambda m: m(X, np.zeros((2, 5, 4, 1), np.float32)), ValueError,
     "MultiHeadAttention 'att': expected value of rank 3 (batch, steps, features), received shape (2, 5, 4, 1)"),
    (lambda m: m(X, X, np.zeros((2, 6, 4), np.float32)), ValueError,
     "MultiHeadAttention 'att': value and key must have the same number of steps, received value shape "
     "(2, 5, 4) and key shape (2, 6, 4)"),
    (lambda m: m(X, np.zeros((3, 5, 4), np.float32)), ValueError,
     "MultiHeadAttention 'att': query, value and key must have the same batch size, received shapes "
     "[(2, 5, 4), (3, 5, 4), (3, 5, 4)]"),
    (lambda m: m(X), TypeError, "MultiHeadAttention 'att': missing `value`: call it as mha(query, value)"),
    (lambda m: m.forward(X), TypeError, "MultiHeadAttention 'att': expected query and value, received one ndarray"),
    (lambda m: m([X, X]), ValueError,
     "MultiHeadAttention 'att': expected the list [query, value, key, *masks], received a list of 2"),
    (lambda m: m([X, X, X], value=X), TypeError,
     "MultiHeadAttention 'att': give either the list [query, value, key] or separate query, value and key"),
    (lambda m: m(X, X, attention_mask=np.ones((2, 5, 4), bool)), ValueError,
     "MultiHeadAttention 'att': expected attention_mask of shape (batch, T, S) = (2, 5, 5), received shape (2, 5, 4)"),
    (lambda m: m(X, X, attention_mask=np.ones((3, 5, 5), bool)), ValueError,
     "MultiHeadAttention 'att': expected attention_mask of shape (batch, T, S) = (2, 5, 5), received shape (3, 5, 5)"),
    (lambda m: m(X, X, query_mask=np.ones((2, 4), bool)), ValueError,
     "MultiHeadAttention 'att': expected query_mask of shape (2, 5), received shape (2, 4)"),
    (lambda m: m(X, X, value_mask=np.ones((5,), bool)), ValueError,
     "MultiHeadAttention 'att': expected value_mask of shape (2, 5), received shape (5,)"),
    (lambda m: m(X, X, use_causal_mask="yes"), TypeError,
     "MultiHeadAttention 'att': `use_causal_mask` must be True or False, received 'yes'"),
    (lambda m: m(X, X, return_attention_scores=1), TypeError,
     "MultiHeadAttention 'att': `return_attention_scores` must be True or False, received 1"),
], ids=["query_rank", "value_rank", "value_key_steps", "batch", "no_value", "forward_one_array", "short_list",
        "list_and_args", "attention_mask_steps", "attention_mask_batch", "query_mask", "value_mask", "causal_flag",
        "scores_flag"])
def test_bad_call_arguments_are_named(call, error, message):
    mha = MultiHeadAttention(2, 3, name="att")
    with pytest.raises(error, match=re.escape(message)):
        call(mha)


@pytest.mark.parametrize("which, shapes, message", [
    ("query", [(2, 5, 3), (2, 5, 4), (2, 5, 4)], "expected query with last dimension 4, received shape (2, 5, 3)"),
    ("value", [(2, 5, 4), (2, 5, 6), (2, 5, 4)], "expected value with last dimension 4, received shape (2, 5, 6)"),
    ("key", [(2, 5, 4), (2, 5, 4), (2, 5, 2)], "expected key with last dimension 4, received shape (2, 5, 2)"),
])
def test_feature_sizes_are_checked_after_build(which, shapes, message):
    mha = MultiHeadAttention(2, 3, name="att")
    mha(X, X, X)
    with pytest.raises(ValueError, match=re.escape(f"MultiHeadAttention 'att': {message}")):
        mha(*[np.zeros(s, np.float32) for s in shapes])


def test_symbolic_calls_check_shapes_and_refuse_constant_masks():
    x = npnet.Input((5, 4))
    with pytest.raises(ValueError, match=re.escape(
            "MultiHeadAttention 'att': expected key of rank 3 (batch, steps, features), received shape (None, 4)")):
        MultiHeadAttention(2, 3, name="att")(x, x, npnet.Input((4,)))
    with pytest.raises(TypeError, match=re.escape(
            "MultiHeadAttention 'att2': in a functional model `attention_mask` must be a symbolic tensor (an "
            "npnet.Input or a layer's output), received ndarray")):
        MultiHeadAttention(2, 3, name="att2")(x, x, attention_mask=np.ones((1, 5, 5), bool))


# ---------------------------------------------------------------- masks from an Embedding, end to end
def test_padding_mask_from_an_embedding_hides_the_padding():
    """Embedding(mask_zero=True) attaches the padding mask; attention then ignores the padded
    steps, so the real steps come out as for the unpadded sequences, and the output
    carries the mask on."""
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 0]])
    emb = npnet.layers.Embedding(10, 6, mask_zero=True)
    mha = MultiHeadAttention(2, 3)
    h = emb(tokens)
    out = mha(h, h)
    np.testing.assert_array_equal(get_mask(out), tokens != 0)
    for i, n in enumerate((3, 4)):
        short = emb(tokens[i:i + 1, :n])
        np.testing.assert_allclose(out[i:i + 1, :n], mha(short, short), rtol=1e-5, atol=1e-6)


def test_fit_on_padded_sequences_through_a_functional_model(tmp_path):
    """Each step must say whether token 1 occurs anywhere in its (padded) sequence: only
    attention over the whole sequence can tell, and the padding must not count."""
    r = rng(50)
    n, t, vocab = 1024, 7, 6
    lengths = r.integers(2, t + 1, size=n)
    tokens = r.integers(2, vocab, size=(n, t))
    has_one = r.random(n) < 0.5
    tokens[has_one, (r.random(n) * lengths).astype(int)[has_one]] = 1
    tokens[np.arange(t)[None] >= lengths[:, None]] = 0  # padding
    y = np.broadcast_to((tokens == 1).any(axis=1)[:, None], (n, t)).astype(np.float32)[..., None]
    inp = npnet.Input((t,), dtype="int64")
    h = npnet.layers.Embedding(vocab, 16, mask_zero=True)(inp)
    a = MultiHeadAttention(num_heads=2, key_dim=8)(h, h)
    h = npnet.layers.LayerNormalization()(npnet.layers.Add()([h, a]))
    out = npnet.layers.Dense(1, activation="sigmoid")(h)
    model = npnet.Model(inp, out)
    model.compile(optimizer=npnet.Adam(0.01), loss="binary_crossentropy")
    model.fit(tokens[:768], y[:768], epochs=15, batch_size=64, verbose=0, seed=0)
    pred = model.predict(tokens[768:], verbose=0) > 0.5
    real = tokens[768:] != 0
    accuracy = float(np.mean(pred[..., 0][real] == (y[768:, :, 0][real] > 0.5)))
    assert accuracy > 0.95, accuracy
    path = tmp_path / "padded.npnet"
    model.save(path)
    np.testing.assert_array_equal(npnet.load_model(path).predict(tokens[768:], verbose=0) > 0.5, pred)
