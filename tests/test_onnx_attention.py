# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""Export to ONNX of MultiHeadAttention: every configuration, with and without masks, runs
in onnxruntime and matches ``predict`` (max abs difference <= 1e-5 in float32)."""

import numpy as np
import pytest

import npnet

from .test_onnx import TOL, onnx, ort, run  # noqa: F401  (fixtures)

L = npnet.layers
MHA = L.MultiHeadAttention
OPSETS = [13, 18]


def _layers(model):
    out, stack = [], list(model.layers)
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(getattr(layer, "layers", []))
    return out


def _random_weights(model, seed=0, scale=0.5):
    r = np.random.default_rng(seed)
    for layer in _layers(model):
        for p in getattr(layer, "params", {}).values():
            p[...] = scale * r.normal(size=p.shape)


def _samples(shape, seed=0):
    """Random, zeros, larger values, and another batch size."""
    r = np.random.default_rng(seed)
    return [r.normal(size=shape).astype(np.float32), np.zeros(shape, np.float32),
            (4 * r.normal(size=shape)).astype(np.float32),
            r.normal(size=(shape[0] + 3,) + shape[1:]).astype(np.float32)]


def _ids(shape, vocab=9, seed=0):
    """Token ids with right padding, left padding, a hole and (from 4 rows) an all-padding row."""
    r = np.random.default_rng(seed)
    ids = r.integers(1, vocab, size=shape).astype(np.float32)
    ids[0, -2:] = 0
    ids[1, :1] = 0
    if shape[0] > 2 and shape[1] > 3:
        ids[2, 2] = 0
    if shape[0] > 3:
        ids[3, :] = 0
    return ids


def _session_run(ort, path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip([i.name for i in sess.get_inputs()], feeds)))


# ---------------------------------------------------------------- configurations without masks
CONFIGS = {
    "self": ({"num_heads": 2, "key_dim": 3}, {}),
    "one_head": ({"num_heads": 1, "key_dim": 1}, {}),
    "value_dim": ({"num_heads": 3, "key_dim": 2, "value_dim": 5}, {}),
    "output_shape_int": ({"num_heads": 2, "key_dim": 3, "output_shape": 7}, {}),
    "output_shape_tuple": ({"num_heads": 2, "key_dim": 3, "value_dim": 4, "output_shape": (2, 3)}, {}),
    "no_bias": ({"num_heads": 2, "key_dim": 3, "use_bias": False}, {}),
    "attention_axes": ({"num_heads": 2, "key_dim": 3, "attention_axes": 1}, {}),
    "dropout": ({"num_heads": 2, "key_dim": 3, "dropout": 0.5, "seed": 1}, {}),
    "scores": ({"num_heads": 2, "key_dim": 3}, {"return_attention_scores": True}),
    "causal": ({"num_heads": 2, "key_dim": 3}, {"use_causal_mask": True}),
    "causal_scores": ({"num_heads": 3, "key_dim": 2, "value_dim": 3}, {"use_causal_mask": True,
                                                                        "return_attention_scores": True}),
    "sliding_window": ({"num_heads": 2, "key_dim": 3, "sliding_window": 2}, {"return_attention_scores": True}),
    "sliding_window_causal": ({"num_heads": 2, "key_dim": 3, "sliding_window": 2},
                              {"use_causal_mask": True, "return_attention_scores": True}),
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("length", [5, None])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_self_attention_configurations(run, config, length, opset):
    kwargs, call = CONFIGS[config]
    x = npnet.Input(shape=(length, 6), name="x")
    out = MHA(name="att", **kwargs)(x, x, **call)
    model = npnet.Model(x, out)
    _random_weights(model, seed=1)
    for xs in _samples((2, 5, 6)):
        run(model, xs, opset=opset)
    if length is None:
        for xs in _samples((2, 9, 6), seed=2)[:1] + _samples((3, 1, 6), seed=3)[:1]:
            run(model, xs, opset=opset)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("config", ["self", "value_dim", "output_shape_tuple", "no_bias", "causal_scores",
                                    "sliding_window_causal"])
@pytest.mark.parametrize("with_key", [True, False])
def test_cross_attention_with_other_feature_sizes(run, config, with_key, opset):
    kwargs, call = CONFIGS[config]
    q_in = npnet.Input(shape=(None, 5), name="query")
    v_in = npnet.Input(shape=(None, 3), name="value")
    ins = [q_in, v_in]
    if with_key:
        k_in = npnet.Input(shape=(None, 2), name="key")
        ins.append(k_in)
        out = MHA(**kwargs)(q_in, v_in, k_in, **call)
    else:
        out = MHA(**kwargs)(q_in, v_in, **call)
    model = npnet.Model(ins, out)
    _random_weights(model, seed=4)
    r = np.random.default_rng(5)
    for b, t, s in [(2, 4, 6), (3, 7, 2), (1, 3, 3)]:
        xs = [r.normal(size=(b, t, 5)), r.normal(size=(b, s, 3)), r.normal(size=(b, s, 2))][:len(ins)]
        run(model, [a.astype(np.float32) for a in xs], opset=opset)


def test_causal_scores_are_exactly_zero_above_the_diagonal(run):
    x = npnet.Input(shape=(None, 4))
    out, scores = MHA(2, 3)(x, x, use_causal_mask=True, return_attention_scores=True)
    model = npnet.Model(x, [out, scores])
    _random_weights(model, seed=6)
    for t in (3, 11):
        xs = np.random.default_rng(t).normal(size=(2, t, 4)).astype(np.float32)
        _, _, (_, got) = run(model, xs)
        assert got.shape == (2, 2, t, t)
        assert np.all(got[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]] == 0.0)
        np.testing.assert_allclose(got[..., 0, 0], 1.0, rtol=1e-6)  # the first step attends to itself only


def test_dropout_is_removed(run, onnx, tmp_path):
    x = npnet.Input(shape=(4, 6))
    model = npnet.Model(x, MHA(2, 3, dropout=0.9, seed=0)(x, x))
    _random_weights(model, seed=7)
    proto, _, _ = run(model, _samples((3, 4, 6))[0])
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Dropout", "RandomUniform", "RandomUniformLike", "Bernoulli"}
    assert ops >= {"MatMul", "Softmax"}


def test_varying_batch_and_length_in_one_session(run, ort, tmp_path):
    """One exported file serves every batch size and length."""
    x = npnet.Input(shape=(None, 6), name="x")
    model = npnet.Model(x, MHA(2, 3, name="att")(x, x, use_causal_mask=True))
    _random_weights(model, seed=8)
    path = tmp_path / "att.onnx"
    npnet.onnx.export(model, path)
    r = np.random.default_rng(9)
    for b, t in [(1, 1), (2, 5), (7, 3), (4, 32)]:
        xs = r.normal(size=(b, t, 6)).astype(np.float32)
        (got,) = _session_run(ort, path, [xs])
        assert np.abs(got - model.predict(xs, verbose=0)).max() <= TOL


# ---------------------------------------------------------------- explicit masks as model inputs
def _mask(shape, seed, p=0.3):
    return (np.random.default_rng(seed).random(shape) > p).astype(np.float32)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bool"])
def test_attention_mask_input(run, causal, dtype, opset):
    x = npnet.Input(shape=(None, 4), name="x")
    m = npnet.Input(shape=(None, None), dtype=dtype, name="m")
    out, scores = MHA(2, 3)(x, x, attention_mask=m, use_causal_mask=causal, return_attention_scores=True)
    model = npnet.Model([x, m], [out, scores])
    _random_weights(model, seed=10)
    for b, t in [(3, 5), (2, 8)]:
        xs = np.random.default_rng(t).normal(size=(b, t, 4)).astype(np.float32)
        am = _mask((b, t, t), seed=t)
        am[0, 1] = 0  # a query step with nothing to attend to
        _, _, (_, got) = run(model, [xs, am], opset=opset)
        assert np.all(got[0, :, 1] == 0.0)
    # nonzero values other than 1 count as True, as astype(bool)
    run(model, [xs, am * np.float32(-2.5)], opset=opset)


def test_attention_mask_of_one_sample_broadcasts_over_the_batch(run, ort, tmp_path):
    t = 5
    x = npnet.Input(shape=(t, 4), name="x")
    m = npnet.Input(shape=(t, t), name="m")
    model = npnet.Model([x, m], MHA(2, 3)(x, x, attention_mask=m))
    _random_weights(model, seed=11)
    path = tmp_path / "att.onnx"
    npnet.onnx.export(model, path)
    xs = np.random.default_rng(12).normal(size=(3, t, 4)).astype(np.float32)
    am = _mask((1, t, t), seed=13)
    (got,) = _session_run(ort, path, [xs, am])
    want = model.predict([xs, np.repeat(am, 3, axis=0)], verbose=0)
    assert np.abs(got - want).max() <= TOL
    assert np.abs(got - np.asarray(model([xs, am]))).max() <= TOL


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("which", [("query_mask",), ("value_mask",), ("key_mask",),
                                   ("query_mask", "value_mask", "key_mask", "attention_mask")])
def test_query_value_key_masks_as_inputs(run, which, opset):
    q_in = npnet.Input(shape=(None, 5), name="query")
    v_in = npnet.Input(shape=(None, 3), name="value")
    shapes = {"query_mask": (None,), "value_mask": (None,), "key_mask": (None,), "attention_mask": (None, None)}
    m_ins = {w: npnet.Input(shape=shapes[w], name=w) for w in which}
    out, scores = MHA(2, 3, value_dim=2)(q_in, v_in, return_attention_scores=True, use_causal_mask=True, **m_ins)
    model = npnet.Model([q_in, v_in, *m_ins.values()], [out, scores])
    _random_weights(model, seed=14)
    r = np.random.default_rng(15)
    for b, t, s in [(3, 4, 6), (2, 6, 3)]:
        size = {"query_mask": (b, t), "value_mask": (b, s), "key_mask": (b, s), "attention_mask": (b, t, s)}
        masks = [_mask(size[w], seed=len(w) + t) for w in which]
        masks[0][0] = 0  # the first sample masked entirely
        run(model, [r.normal(size=(b, t, 5)).astype(np.float32), r.normal(size=(b, s, 3)).astype(np.float32),
                    *masks], opset=opset)


def test_masks_computed_by_layers_in_a_subclassed_model(run):
    """Masks passed as keyword arguments of an eager call (the form a subclassed model
    uses) reach the graph as the values the layers computed."""

    class Masked(npnet.Model):
        def __init__(self):
            super().__init__()
            self.att = MHA(2, 3)
            self.gate = L.Activation("relu")

        def call(self, inputs, training=False):
            x, m, qm = inputs
            return self.att(x, x, attention_mask=self.gate(m), query_mask=self.gate(qm), use_causal_mask=True)

    model = Masked()
    r = np.random.default_rng(16)
    xs = [r.normal(size=(3, 5, 4)).astype(np.float32), r.normal(size=(3, 5, 5)).astype(np.float32),
          r.normal(size=(3, 5)).astype(np.float32)]
    model.predict(xs, verbose=0)
    _random_weights(model, seed=17)
    run(model, xs)


# ---------------------------------------------------------------- padding masks from an Embedding
@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_from_an_embedding(run, causal, opset):
    ids_in = npnet.Input(shape=(None,), name="ids")
    h = L.Embedding(9, 6, mask_zero=True)(ids_in)
    out, scores = MHA(2, 3)(h, h, use_causal_mask=causal, return_attention_scores=True)
    y = L.GlobalAveragePooling1D()(L.Dense(4)(out))  # the query's mask passes on to the pooling
    model = npnet.Model(ids_in, [out, scores, y])
    _random_weights(model, seed=18)
    for shape, seed in [((4, 7), 0), ((5, 3), 1), ((2, 12), 2)]:
        ids = _ids(shape, seed=seed)
        _, _, got = run(model, ids, opset=opset)
        padded = np.broadcast_to((ids == 0)[:, None, None, :], got[1].shape)
        assert np.all(got[1][padded] == 0.0)
        assert np.all(np.isfinite(got[0]))


def test_padding_masks_of_query_and_value_in_cross_attention(run):
    q_ids, v_ids = npnet.Input(shape=(None,), name="q_ids"), npnet.Input(shape=(None,), name="v_ids")
    q = L.Embedding(9, 4, mask_zero=True)(q_ids)
    v = L.Embedding(9, 5, mask_zero=True)(v_ids)
    out = MHA(2, 3, output_shape=6)(q, v)
    model = npnet.Model([q_ids, v_ids], out)
    _random_weights(model, seed=19)
    run(model, [_ids((4, 5), seed=3), _ids((4, 8), seed=4)])
    run(model, [_ids((3, 2), seed=5), _ids((3, 3), seed=6)])


def test_explicit_masks_take_the_place_of_the_attached_ones(run):
    ids_in = npnet.Input(shape=(6,), name="ids")
    vm = npnet.Input(shape=(6,), name="value_mask")
    h = L.Embedding(9, 4, mask_zero=True)(ids_in)
    model = npnet.Model([ids_in, vm], MHA(2, 3)(h, h, value_mask=vm, key_mask=vm))
    _random_weights(model, seed=20)
    ids, m = _ids((4, 6), seed=7), _mask((4, 6), seed=8)
    _, _, (got,) = run(model, [ids, m])
    # the attached masks of value and key are replaced, not joined with the explicit ones
    joined = model.predict([ids, m * (ids != 0)], verbose=0)
    assert np.abs(got - joined).max() > 1e-3


def test_fully_masked_rows_give_the_output_bias_and_no_nan(run):
    x = npnet.Input(shape=(4, 5), name="x")
    vm = npnet.Input(shape=(4,), name="value_mask")
    att = MHA(2, 3, name="att")
    out, scores = att(x, x, value_mask=vm, return_attention_scores=True)
    model = npnet.Model([x, vm], [out, scores])
    _random_weights(model, seed=21)
    xs = (1e3 * np.random.default_rng(22).normal(size=(2, 4, 5))).astype(np.float32)
    m = np.zeros((2, 4), np.float32)
    m[1, 2] = 1
    _, _, (got, p) = run(model, [xs, m])
    assert np.all(p[0] == 0.0) and np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[0], np.broadcast_to(att.params["output_bias"], (4, 5)))
    np.testing.assert_array_equal(p[1, :, :, 2], 1.0)


# ---------------------------------------------------------------- a Transformer block
def _transformer(vocab=11, d=8, heads=2, length=None, ids=True):
    inp = npnet.Input(shape=(length,) if ids else (length, d), name="tokens")
    h = L.Embedding(vocab, d, name="embed")(inp) if ids else inp
    a = MHA(heads, d // heads, dropout=0.1, name="att")(h, h, use_causal_mask=True)
    h = L.LayerNormalization(name="norm1")(L.Add()([h, L.Dropout(0.1)(a)]))
    f = L.Dense(d, name="ff2")(L.Dense(2 * d, activation="relu", name="ff1")(h))
    h = L.LayerNormalization(name="norm2")(L.Add()([h, f]))
    return npnet.Model(inp, L.Dense(vocab, activation="softmax", name="probs")(h))


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("ids", [True, False])
def test_transformer_block_at_two_lengths(run, ort, tmp_path, opset, ids):
    model = _transformer(ids=ids)
    _random_weights(model, seed=23)
    path = tmp_path / "block.onnx"
    npnet.onnx.export(model, path, opset=opset)
    r = np.random.default_rng(24)
    for b, t in [(2, 6), (5, 13)]:
        xs = (r.integers(0, 11, size=(b, t)) if ids else r.normal(size=(b, t, 8))).astype(np.float32)
        (got,) = _session_run(ort, path, [xs])
        want = model.predict(xs, verbose=0)
        assert got.shape == want.shape == (b, t, 11)
        assert np.abs(got - want).max() <= TOL
        # causal: the first steps do not depend on the later ones
        xs2 = xs.copy()
        xs2[:, t // 2:] = xs[::-1, t // 2:] if b > 1 else 0
        (got2,) = _session_run(ort, path, [xs2])
        np.testing.assert_allclose(got2[:, :t // 2], got[:, :t // 2], atol=1e-6)


def test_trained_transformer_block(run):
    r = np.random.default_rng(25)
    ids = r.integers(0, 11, size=(64, 8)).astype(np.float32)
    target = np.roll(ids, 1, axis=1)[..., None]
    model = _transformer(length=8)
    model.compile(optimizer=npnet.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(ids, target, epochs=2, batch_size=16, verbose=0, seed=0)
    run(model, ids[:5])
    run(model, ids[5:7], opset=13)


# ---------------------------------------------------------------- what is refused
def test_a_constant_mask_inside_call_is_refused_by_name(onnx, tmp_path):
    class Constant(npnet.Model):
        def __init__(self):
            super().__init__()
            self.att = MHA(2, 3, name="att")

        def call(self, x, training=False):
            return self.att(x, x, attention_mask=np.tril(np.ones((4, 4), bool)))

    model = Constant()
    model.predict(np.zeros((2, 4, 5), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"MultiHeadAttention 'att' is called with `attention_mask=` an array that "
                                         r"no npnet layer computed"):
        npnet.onnx.export(model, tmp_path / "m.onnx")


def test_a_subclass_that_redefines_forward_is_refused_by_name(onnx, tmp_path):
    class Custom(MHA):
        def forward(self, x, training=False, **kwargs):
            y, cache = super().forward(x, training, **kwargs)
            return y * 2.0, cache

    x = npnet.Input(shape=(4, 6))
    model = npnet.Model(x, Custom(2, 3, name="custom")(x, x))
    with pytest.raises(ValueError, match=r"Custom 'custom' redefines forward\(\) of MultiHeadAttention"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
