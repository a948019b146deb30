# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""Export to ONNX of the recurrent layers with masks and with any activation: the
general path through ONNX's ``Scan``, checked against ``predict`` in onnxruntime."""

import numpy as np
import pytest

import npnet

from .test_onnx import onnx, ort, run  # noqa: F401  (fixtures)

L = npnet.layers
KINDS = [L.SimpleRNN, L.LSTM, L.GRU]


def _ids(shape=(5, 7), vocab=9, seed=0):
    """Ids with right padding, left padding, holes in the middle and an all-padding row."""
    r = np.random.default_rng(seed)
    ids = r.integers(1, vocab, size=shape).astype(np.float32)
    ids[0, -3:] = 0
    ids[1, :2] = 0
    ids[2, 2] = ids[2, 4] = 0
    ids[3, :] = 0
    return ids


def _randomize(model, scale=0.5, seed=1):
    r = np.random.default_rng(seed)
    model.set_weights([(scale * r.normal(size=w.shape)).astype(w.dtype) for w in model.get_weights()])
    return model


def _ops(proto):
    return {n.op_type for n in proto.graph.node}


OPTIONS = [{}, {"return_sequences": True}, {"go_backwards": True}, {"go_backwards": True, "return_sequences": True},
           {"return_state": True}, {"return_sequences": True, "return_state": True, "go_backwards": True}]


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "last")
def test_masked_recurrent_layers(run, kind, options, opset):
    x = npnet.Input(shape=(None,))
    y = kind(4, **options)(L.Embedding(9, 3, mask_zero=True)(x))
    model = _randomize(npnet.Model(x, y))
    proto, _, _ = run(model, _ids(), opset=opset)
    (scan,) = [n for n in proto.graph.node if n.op_type == "Scan"]
    # the final states, and the stacked outputs only when the sequence is returned
    assert len(scan.output) == (2 if kind is L.LSTM else 1) + bool(options.get("return_sequences"))
    run(model, _ids((4, 12), seed=2), opset=opset)  # another batch size and length
    run(model, _ids((4, 5), seed=3)[:1, :3], opset=opset)  # one sample, three steps
    run(model, np.zeros((2, 4), np.float32), opset=opset)  # every step of every sample masked


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
def test_masked_gru_variants(run, reset_after, use_bias):
    x = npnet.Input(shape=(6,))
    y = L.GRU(3, reset_after=reset_after, use_bias=use_bias, return_sequences=True)(
        L.Embedding(9, 2, mask_zero=True)(x))
    run(_randomize(npnet.Model(x, y)), _ids((5, 6)))


def test_a_masked_step_carries_the_state_in_the_graph_too(run):
    x = npnet.Input(shape=(5,))
    y = L.SimpleRNN(2, return_sequences=True)(L.Embedding(5, 2, mask_zero=True)(x))
    model = _randomize(npnet.Model(x, y))
    ids = np.asarray([[1, 2, 0, 0, 3]], np.float32)
    _, _, got = run(model, ids)
    np.testing.assert_array_equal(got[0][0, 2], got[0][0, 1])  # the masked steps repeat step 1
    np.testing.assert_array_equal(got[0][0, 3], got[0][0, 1])
    _, _, got = run(model, np.zeros((1, 5), np.float32))
    assert np.all(got[0] == 0)  # every step masked: the initial state throughout


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_masked_with_initial_states(run, kind):
    n_states = 2 if kind is L.LSTM else 1
    ids = npnet.Input(shape=(None,), name="ids")
    states = [npnet.Input(shape=(4,), name=f"state{i}") for i in range(n_states)]
    h = L.Embedding(9, 3, mask_zero=True)(ids)
    y = kind(4, return_sequences=True, return_state=True)(h, initial_state=states)
    model = _randomize(npnet.Model([ids, *states], y))
    r = np.random.default_rng(3)
    run(model, [_ids()] + [r.normal(size=(5, 4)).astype(np.float32) for _ in range(n_states)])


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("activation", ["linear", "elu", "softplus", "swish", "silu", "leaky_relu", "softmax"])
def test_any_activation(run, kind, activation):
    kwargs = {"activation": activation}
    if kind is not L.SimpleRNN:
        kwargs["recurrent_activation"] = "softplus" if activation == "softmax" else activation
    x = npnet.Input(shape=(None, 3))
    model = _randomize(npnet.Model(x, kind(4, return_sequences=True, **kwargs)(x)), scale=0.15)
    r = np.random.default_rng(0)
    for steps in (6, 2):
        proto, _, _ = run(model, r.normal(size=(4, steps, 3)).astype(np.float32))
    assert "Scan" in _ops(proto)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_native_operators_without_a_mask(run, kind):
    x = npnet.Input(shape=(None, 3))
    model = _randomize(npnet.Model(x, kind(4, return_sequences=True)(x)))
    proto, _, _ = run(model, np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32))
    ops = _ops(proto)
    assert "Scan" not in ops and {"SimpleRNN": "RNN"}.get(kind.__name__, kind.__name__) in ops
    assert not [i.name for i in proto.graph.initializer if i.name.endswith("axis0")]  # nothing unused


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
def test_bidirectional_over_a_masked_sequence(run, kind, merge_mode):
    x = npnet.Input(shape=(None,))
    y = L.Bidirectional(kind(3, return_sequences=True), merge_mode=merge_mode)(L.Embedding(9, 2, mask_zero=True)(x))
    if merge_mode is not None:
        y = L.GlobalAveragePooling1D()(y)
    run(_randomize(npnet.Model(x, y)), _ids())


def test_masking_layer_then_stacked_lstms_and_time_distributed(run):
    x = npnet.Input(shape=(None, 3))
    h = L.Masking(mask_value=0.0)(x)
    h = L.LSTM(4, return_sequences=True)(h)
    h = L.TimeDistributed(L.Dense(2, activation="tanh"))(h)
    y = L.GRU(3)(h)
    model = _randomize(npnet.Model(x, y))
    r = np.random.default_rng(4)
    xs = r.normal(size=(4, 8, 3)).astype(np.float32)
    xs[0, 5:] = 0
    xs[1, :3] = 0
    xs[2, 4] = 0
    run(model, xs)
    run(model, xs[:, :5])


@pytest.mark.parametrize("opset", [13, 18])
def test_scan_at_both_ends_of_the_opset_range(run, opset):
    x = npnet.Input(shape=(7,))
    h = L.Embedding(9, 3, mask_zero=True)(x)
    y = L.LSTM(4, activation="swish", go_backwards=True, return_sequences=True)(h)
    run(_randomize(npnet.Model(x, L.GlobalAveragePooling1D()(y))), _ids(), opset=opset)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("masked", [False, True], ids=["whole", "masked"])
def test_saturating_and_tiny_inputs(run, kind, masked):
    """Both paths (the native operator, and Scan when masked) on inputs that saturate the
    gates, and on inputs close to zero."""
    x = npnet.Input(shape=(None, 3))
    h = L.Masking(mask_value=0.0)(x) if masked else x
    model = _randomize(npnet.Model(x, kind(4, return_sequences=True)(h)), scale=1.0)
    r = np.random.default_rng(5)
    big = (50 * r.normal(size=(3, 6, 3))).astype(np.float32)
    tiny = (1e-4 * r.normal(size=(3, 6, 3))).astype(np.float32)
    if masked:
        big[0, 2:4] = tiny[1, :3] = 0
    for xs in (big, tiny):
        proto, _, _ = run(model, xs)
    assert ("Scan" in _ops(proto)) is masked


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_masked_with_initial_states_read_backwards(run, kind):
    n_states = 2 if kind is L.LSTM else 1
    ids = npnet.Input(shape=(None,), name="ids")
    states = [npnet.Input(shape=(4,), name=f"state{i}") for i in range(n_states)]
    h = L.Embedding(9, 3, mask_zero=True)(ids)
    y = kind(4, go_backwards=True, return_sequences=True, return_state=True, activation="softplus")(
        h, initial_state=states)
    model = _randomize(npnet.Model([ids, *states], y))
    r = np.random.default_rng(6)
    _, _, got = run(model, [_ids()] + [r.normal(size=(5, 4)).astype(np.float32) for _ in range(n_states)],
                    opset=13)
    assert len(got) == 1 + n_states


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_fully_masked_sample_returns_its_initial_state(run, kind):
    n_states = 2 if kind is L.LSTM else 1
    ids = npnet.Input(shape=(None,), name="ids")
    states = [npnet.Input(shape=(4,), name=f"state{i}") for i in range(n_states)]
    y = kind(4, return_sequences=True, return_state=True)(L.Embedding(9, 3, mask_zero=True)(ids),
                                                          initial_state=states)
    model = _randomize(npnet.Model([ids, *states], y))
    r = np.random.default_rng(7)
    given = [r.normal(size=(5, 4)).astype(np.float32) for _ in range(n_states)]
    _, _, got = run(model, [_ids()] + given)
    for t in range(7):  # every step of sample 3 holds the initial h
        np.testing.assert_array_equal(got[0][3, t], given[0][3])
    for state, start in zip(got[1:], given):
        np.testing.assert_array_equal(state[3], start[3])


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("merge_mode", ["concat", "mul", "ave", None])
def test_bidirectional_over_a_masked_sequence_with_states(run, kind, merge_mode):
    x = npnet.Input(shape=(None,))
    h = L.Embedding(9, 2, mask_zero=True)(x)
    y = L.Bidirectional(kind(3, return_sequences=True, return_state=True), merge_mode=merge_mode)(h)
    model = _randomize(npnet.Model(x, y))
    run(model, _ids())
    run(model, _ids((4, 5), seed=8)[:, :3], opset=13)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_bidirectional_with_its_own_backward_layer_and_activations(run, kind):
    x = npnet.Input(shape=(None,))
    h = L.Embedding(9, 2, mask_zero=True)(x)
    y = L.Bidirectional(kind(3, activation="elu"), backward_layer=kind(3, go_backwards=True, activation="swish"))(h)
    run(_randomize(npnet.Model(x, y)), _ids())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_shared_masked_layer_stores_its_weights_once(run, kind):
    a, b = npnet.Input(shape=(None,), name="a"), npnet.Input(shape=(None,), name="b")
    embed, rnn = L.Embedding(9, 3, mask_zero=True), kind(4, activation="elu")
    model = _randomize(npnet.Model([a, b], L.Concatenate()([rnn(embed(a)), rnn(embed(b))])))
    proto, _, _ = run(model, [_ids(), _ids(seed=9)])
    assert sum(n.op_type == "Scan" for n in proto.graph.node) == 2
    names = [i.name for i in proto.graph.initializer]
    assert len([n for n in names if n.startswith(f"{rnn.name}/recurrent_kernel")]) == 1


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_float64_models_take_the_scan_path(onnx, ort, tmp_path, kind):
    """onnxruntime runs its recurrent operators in float32 only: a float64 model is written
    as a Scan, with or without a mask."""
    npnet.set_floatx("float64")
    x = npnet.Input(shape=(None, 3))
    model = _randomize(npnet.Model(x, kind(4, return_sequences=True)(x)))
    path = tmp_path / "m.onnx"
    proto = npnet.onnx.export(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert "Scan" in _ops(proto) and not _ops(proto) & {"RNN", "LSTM", "GRU"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = np.random.default_rng(0).normal(size=(3, 5, 3))
    (got,) = sess.run(None, {sess.get_inputs()[0].name: xs})
    assert got.dtype == np.float64
    assert np.abs(got - model.predict(xs, verbose=0)).max() <= 1e-12


class _Cube(L.Layer):
    def forward(self, x, training=False):
        x = self._enter(x)
        return x ** 3, x

    def backward(self, cache, dy):
        return 3 * cache ** 2 * dy


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_an_activation_without_a_converter_is_refused_naming_the_layer(run, tmp_path, kind):
    x = npnet.Input(shape=(None, 3))
    layer = kind(4, activation=_Cube(name="cube"), return_sequences=True)
    model = _randomize(npnet.Model(x, layer(x)), scale=0.2)
    with pytest.raises(ValueError, match=rf"{kind.__name__} '{layer.name}' cannot export its activation "
                                         r"_Cube 'cube': no converter for _Cube 'cube'"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
    from npnet.onnx._graph import _CONVERTERS

    @npnet.onnx.register_converter(_Cube)
    def _cube(ctx, layer, inputs, outputs, options):
        return ctx.node("Pow", [inputs[0], ctx.const(3.0)])

    try:  # once registered, the step of the Scan applies it
        proto, _, _ = run(model, (0.5 * np.random.default_rng(0).normal(size=(2, 5, 3))).astype(np.float32))
    finally:
        del _CONVERTERS[_Cube]
    assert "Scan" in _ops(proto)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("activation", ["tanh", "elu"])
def test_without_bias_and_with_one_step(run, kind, activation):
    """``use_bias=False`` on both paths (Scan when masked or for elu); one time step."""
    x = npnet.Input(shape=(None,))
    y = kind(3, use_bias=False, activation=activation, return_sequences=True, return_state=True)(
        L.Embedding(9, 2, mask_zero=True)(x))
    model = _randomize(npnet.Model(x, y))
    run(model, _ids())
    run(model, _ids()[:, :1])
    x = npnet.Input(shape=(None, 2))
    model = _randomize(npnet.Model(x, kind(3, use_bias=False, activation=activation)(x)))
    r = np.random.default_rng(10)
    for steps in (1, 5):
        run(model, r.normal(size=(3, steps, 2)).astype(np.float32))


class _Gated(npnet.Model):
    """A subclassed model passing its second input as the recurrent layer's mask."""

    def __init__(self, kind, **kwargs):
        super().__init__(**kwargs)
        self.rnn = kind(3, return_sequences=True, go_backwards=True)

    def call(self, inputs, training=False):
        x, mask = inputs
        return self.rnn(x, mask=mask)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_mask_of_numbers_given_as_an_input(run, kind):
    """A float mask reads as the layer reads it: nonzero is a real step."""
    model = _Gated(kind)
    r = np.random.default_rng(11)
    x = r.normal(size=(4, 6, 2)).astype(np.float32)
    mask = np.asarray([[1, 1, 1, 0, 0, 0], [0, 0, 2, 1, 1, -1], [1, 0, 1, 0, 1, 0], [0] * 6], np.float32)
    model.predict([x, mask], verbose=0)
    _randomize(model)
    proto, _, got = run(model, [x, mask])
    assert "Cast" in _ops(proto)
    np.testing.assert_array_equal(got[0][3], np.zeros((6, 3), np.float32))  # no real step: the zero state
