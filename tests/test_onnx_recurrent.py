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


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "last")
def test_masked_recurrent_layers(run, kind, options):
    x = npnet.Input(shape=(None,))
    y = kind(4, **options)(L.Embedding(9, 3, mask_zero=True)(x))
    model = _randomize(npnet.Model(x, y))
    proto, _, _ = run(model, _ids())
    assert "Scan" in _ops(proto)
    run(model, _ids((4, 12), seed=2))


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
