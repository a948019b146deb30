"""SimpleRNN, LSTM and GRU against Keras' equations unrolled step by step, gradients
through long sequences, masks, initial states, dropout, weight layout, saving and training,
and their argument checks."""

import re

import numpy as np
import pytest

import npnet
from npnet.layers import GRU, LSTM, SimpleRNN
from npnet.testing import check_gradients


# ---------------------------------------------------------------- the reference
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference(kind, x, weights, mask=None, initial=None, go_backwards=False, reset_after=True):
    """Keras' cells, one step at a time, and Keras' loop (its NumPy backend): the steps
    are read in reverse with go_backwards and the outputs stay in that order; at a masked
    step the states are carried over and the output is the carried first state.

    Returns the output of every step (in processing order) and the final states."""
    kernel, rec, bias = weights
    n, steps, _ = x.shape
    u = rec.shape[0]
    states = [np.zeros((n, u)) for _ in range(2 if kind == "lstm" else 1)] if initial is None else \
        [np.array(s, dtype=np.float64) for s in initial]
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    outputs = []
    for t in order:
        xt = x[:, t]
        h = states[0]
        if kind == "simple":
            new = [np.tanh(xt @ kernel + h @ rec + bias)]
        elif kind == "lstm":
            c = states[1]
            a = xt @ kernel + h @ rec + bias
            i, f, g, o = (a[:, j * u:(j + 1) * u] for j in range(4))
            c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            new = [sigmoid(o) * np.tanh(c_new), c_new]
        else:
            if reset_after:
                bx, bh = bias[0], bias[1]
                mx, mh = xt @ kernel + bx, h @ rec + bh
                z = sigmoid(mx[:, :u] + mh[:, :u])
                r = sigmoid(mx[:, u:2 * u] + mh[:, u:2 * u])
                hh = np.tanh(mx[:, 2 * u:] + r * mh[:, 2 * u:])
            else:
                mx = xt @ kernel + bias
                z = sigmoid(mx[:, :u] + h @ rec[:, :u])
                r = sigmoid(mx[:, u:2 * u] + h @ rec[:, u:2 * u])
                hh = np.tanh(mx[:, 2 * u:] + (r * h) @ rec[:, 2 * u:])
            new = [z * h + (1 - z) * hh]
        if mask is not None:
            m = mask[:, t][:, None]
            new = [np.where(m, s_new, s_old) for s_new, s_old in zip(new, states)]
        states = new
        outputs.append(states[0])
    return np.stack(outputs, axis=1), states


def make(kind, units, **kw):
    if kind == "simple":
        return SimpleRNN(units, **kw)
    if kind == "lstm":
        return LSTM(units, **kw)
    if kind == "gru_after":
        return GRU(units, **kw)
    return GRU(units, reset_after=False, **kw)


KINDS = ["simple", "lstm", "gru_after", "gru_before"]


def random_weights(layer, rng, scale=0.5):
    layer.set_weights([rng.normal(scale=scale, size=w.shape) for w in layer.get_weights()])
    return [w.astype(np.float64) for w in layer.get_weights()]


def ref_kind(kind):
    return "gru" if kind.startswith("gru") else kind


def n_states(kind):
    return 2 if kind == "lstm" else 1


# ---------------------------------------------------------------- forward against the reference
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_forward_matches_keras_equations_step_by_step(kind, go_backwards):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 9, 4))
    layer = make(kind, 5, return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer(x[:1].astype(np.float32))
    npnet_weights = random_weights(layer, rng)
    seq, *states = layer(x.astype(np.float32))
    ref_seq, ref_states = reference(ref_kind(kind), x, npnet_weights, go_backwards=go_backwards,
                                    reset_after=kind != "gru_before")
    assert seq.dtype == np.float32
    np.testing.assert_allclose(seq, ref_seq, atol=2e-5)
    assert len(states) == n_states(kind)
    for s, r in zip(states, ref_states):
        np.testing.assert_allclose(s, r, atol=2e-5)
    # the last output is the last element of the returned sequence
    last = make(kind, 5, go_backwards=go_backwards)
    last(x[:1].astype(np.float32))
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(last(x.astype(np.float32)), ref_seq[:, -1], atol=2e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_and_mask_match_the_reference(kind):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 8, 3))
    mask = rng.random((4, 8)) > 0.35
    mask[0, :2] = False  # leading masked steps: the output is the initial state
    mask[1] = False  # a fully masked sequence keeps its initial state
    mask[2, -3:] = False  # trailing padding: the output repeats the last real one
    initial = [rng.normal(size=(4, 6)) for _ in range(n_states(kind))]
    layer = make(kind, 6, return_sequences=True, return_state=True)
    layer([x[:1], *[s[:1] for s in initial]])
    weights = random_weights(layer, rng)
    (seq, *states), _ = layer.forward([x, *initial], mask=mask)
    ref_seq, ref_states = reference(ref_kind(kind), x, weights, mask=mask, initial=initial,
                                    reset_after=kind != "gru_before")
    np.testing.assert_allclose(seq, ref_seq, rtol=1e-6, atol=1e-6)
    for s, r in zip(states, ref_states):
        np.testing.assert_allclose(s, r, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(seq[0, :2], np.broadcast_to(initial[0][0], (2, 6)), rtol=1e-6)
    np.testing.assert_allclose(seq[1], np.broadcast_to(initial[0][1], (8, 6)), rtol=1e-6)
    np.testing.assert_array_equal(seq[2, -3:], np.broadcast_to(seq[2, -4], (3, 6)))


@pytest.mark.parametrize("kind", KINDS)
def test_padded_steps_at_the_end_change_nothing(kind):
    """A masked tail gives the same last output and states as the sequence without it."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    padded = np.concatenate([x, rng.normal(size=(2, 4, 3)).astype(np.float32)], axis=1)
    mask = np.arange(9)[None, :].repeat(2, 0) < 5
    layer = make(kind, 4, return_state=True)
    short = layer(x)
    long, _ = layer.forward(padded, mask=mask)
    for a, b in zip(short, long, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_initial_state_as_argument_equals_the_input_list():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    h, c = rng.normal(size=(2, 2, 5)).astype(np.float32)
    layer = LSTM(5)
    np.testing.assert_array_equal(layer(x, initial_state=[h, c]), layer([x, h, c]))
    assert not np.allclose(layer(x, initial_state=[h, c]), layer(x))
    gru = GRU(5)
    np.testing.assert_array_equal(gru(x, initial_state=h), gru(x, initial_state=[h]))


# ---------------------------------------------------------------- gradients through time
def masked(cls, mask):
    """A layer class whose calls see a fixed mask (the first rows of ``mask``)."""
    class Masked(cls):
        def forward(self, x, training=False, mask=None):
            n = len(x[0] if isinstance(x, list) else x)
            return super().forward(x, training, mask=MASKS[id(type(self))][:n])
    MASKS[id(Masked)] = mask
    return Masked


MASKS: dict = {}


def long_memory(layer, kind, rng):
    """Weights that keep a memory over many steps, so that the gradient of the first steps
    does not vanish: small input weights, the orthogonal recurrent kernel, and gates that
    mostly keep the state (LSTM forget gate, GRU update gate)."""
    kernel, rec, *bias = layer.get_weights()
    # (a SimpleRNN's state has no gate to hold it: smaller inputs keep its tanh unsaturated)
    kernel = rng.normal(scale=0.05 if kind == "simple" else 0.2, size=kernel.shape)
    bias = [rng.normal(scale=0.1, size=b.shape) for b in bias]
    u = rec.shape[0]
    # an orthogonal block per gate, drawn from ``rng`` (the layer's own draw is unseeded)
    rec = np.concatenate([np.linalg.qr(rng.normal(size=(u, u)))[0] for _ in range(rec.shape[1] // u)], axis=1)
    if kind == "lstm":
        bias[0][u:2 * u] += 3.0
    elif kind.startswith("gru"):
        bias[0][..., :u] += 3.0
    layer.set_weights([kernel, rec, *bias])

CLASSES = {"simple": SimpleRNN, "lstm": LSTM, "gru_after": GRU, "gru_before": GRU}
GRAD_CASES = [
    ({}, False, False),
    ({"return_sequences": True}, False, False),
    ({"return_state": True, "go_backwards": True}, False, True),
    ({"return_sequences": True, "return_state": True}, True, True),
    ({"go_backwards": True, "return_sequences": True}, True, False),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options, use_mask, use_state", GRAD_CASES,
                         ids=["last", "sequences", "state_backwards", "mask_state_sequences", "mask_backwards"])
def test_gradients_through_55_steps(kind, options, use_mask, use_state):
    rng = np.random.default_rng(5)
    steps = 55
    x = rng.normal(scale=0.5, size=(2, steps, 3))
    kw = dict(options)
    if kind == "gru_before":
        kw["reset_after"] = False
    cls = CLASSES[kind]
    if use_mask:
        mask = rng.random((2, steps)) > 0.3
        mask[0, :3] = False
        mask[1, -5:] = False
        cls = masked(cls, mask)
    layer = cls(4, **kw)
    inputs = [x, *[rng.normal(size=(2, 4)) for _ in range(n_states(kind))]] if use_state else x
    layer(inputs if use_state else x[:1])
    long_memory(layer, kind, rng)
    report = check_gradients(layer, inputs, atol=1e-6, rtol=1e-5, max_checks=60, seed=1)
    assert report.passed
    names = [e.name for e in report.entries]
    expected = ["x[0]", "x[1]"] + (["x[2]"] if kind == "lstm" else []) if use_state else ["x"]
    assert names == expected + ["kernel", "recurrent_kernel", "bias"]
    # the gradient reaches the first steps, so they are checked too
    dx = np.abs(report.entries[0].analytic)
    assert dx[:, :3].max() > 1e-3 * dx.max(), dx[:, :3].max() / dx.max()


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_with_dropout_in_training(kind):
    rng = np.random.default_rng(6)
    kw = {"reset_after": False} if kind == "gru_before" else {}
    layer = CLASSES[kind](3, dropout=0.3, recurrent_dropout=0.4, seed=2, return_sequences=True, **kw)
    assert check_gradients(layer, rng.normal(size=(3, 12, 4)), training=True, atol=1e-6, rtol=1e-5).passed


@pytest.mark.parametrize("activation, rec", [("relu", "sigmoid"), (None, None), ("elu", "linear"),
                                             ("swish", "softplus")])
def test_other_activations_follow_their_own_derivatives(activation, rec):
    rng = np.random.default_rng(7)
    x = rng.normal(scale=0.3, size=(2, 7, 3))  # small: linear gates multiply the cell state
    for layer in [SimpleRNN(3, activation=activation), LSTM(3, activation=activation, recurrent_activation=rec),
                  GRU(3, activation=activation, recurrent_activation=rec)]:
        assert check_gradients(layer, x, atol=1e-6, rtol=1e-5).passed


def test_a_wrong_backward_is_caught():
    """The gradient check fails when the backward pass drops the recurrent path."""
    class DropsTheRecurrence(SimpleRNN):
        def _scan_backward(self, kept, dseq, dfinal, keep, rmask):
            da, dstates = super()._scan_backward(kept, dseq, dfinal, keep, rmask)
            da[:-1] = 0  # only the last step's gradient
            return da, dstates

    report = check_gradients(DropsTheRecurrence(3), np.random.default_rng(8).normal(size=(2, 6, 3)), raise_on_failure=False)
    assert not report.passed


# ---------------------------------------------------------------- dropout
def test_dropout_masks_are_one_per_sequence_and_follow_the_seed():
    """A linear SimpleRNN with an identity kernel and no recurrence outputs the dropped input:
    the same mask at every step, scaled by 1 / (1 - rate)."""
    x = np.ones((200, 6, 8), np.float32)
    layer = SimpleRNN(8, activation=None, use_bias=False, dropout=0.25, seed=3, return_sequences=True,
                      kernel_initializer="zeros", recurrent_initializer="zeros")
    layer(x[:1])
    layer.params["kernel"][...] = np.eye(8)
    y = layer(x, training=True)
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))  # the same at every step
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y[:, 0] == 0).mean() - 0.25) < 0.03
    np.testing.assert_array_equal(layer(x, training=False), x)  # inference: no dropout
    again = SimpleRNN.from_config(layer.get_config())
    again(x[:1])
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x, training=True), y)  # the same seed, the same masks
    assert not np.array_equal(layer(x, training=True), y)  # the stream moves on


def test_recurrent_dropout_changes_training_outputs_only():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    plain, dropped = LSTM(6, seed=1), LSTM(6, recurrent_dropout=0.5, seed=1)
    plain(x[:1])
    dropped(x[:1])
    dropped.set_weights(plain.get_weights())
    np.testing.assert_array_equal(dropped(x), plain(x))
    assert not np.allclose(dropped(x, training=True), plain(x, training=True))


# ---------------------------------------------------------------- weights
def test_weight_names_shapes_and_order_follow_keras():
    x = np.zeros((2, 3, 7), np.float32)
    cases = [(SimpleRNN(5), [(7, 5), (5, 5), (5,)]), (LSTM(5), [(7, 20), (5, 20), (20,)]),
             (GRU(5), [(7, 15), (5, 15), (2, 15)]), (GRU(5, reset_after=False), [(7, 15), (5, 15), (15,)]),
             (LSTM(5, use_bias=False), [(7, 20), (5, 20)])]
    for layer, shapes in cases:
        layer(x)
        assert list(layer.params) == ["kernel", "recurrent_kernel", "bias"][:len(shapes)]
        assert [w.shape for w in layer.get_weights()] == shapes
        assert all(w.dtype == np.float32 for w in layer.get_weights())


def test_lstm_bias_starts_with_ones_for_the_forget_gate():
    layer = LSTM(3)
    layer(np.zeros((1, 2, 4), np.float32))
    np.testing.assert_array_equal(layer.params["bias"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    layer = LSTM(2, unit_forget_bias=False, bias_initializer="ones")
    layer(np.zeros((1, 2, 4), np.float32))
    np.testing.assert_array_equal(layer.params["bias"], np.ones(8))
    layer = LSTM(2, bias_initializer=npnet.initializers.Constant(0.5))
    layer(np.zeros((1, 2, 4), np.float32))
    np.testing.assert_array_equal(layer.params["bias"], [0.5, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.5])


def test_the_gates_sit_in_keras_order():
    """LSTM i, f, c, o: a forget-gate bias of -inf with an open input gate makes c the
    candidate alone; GRU z, r, h: an update gate of +inf keeps the state."""
    x = np.ones((1, 1, 1), np.float32)
    lstm = LSTM(1, use_bias=True, kernel_initializer="zeros", recurrent_initializer="zeros")
    lstm(x)
    lstm.params["bias"][...] = [30.0, -30.0, 0.5, 30.0]  # i open, f shut, g = tanh(0.5), o open
    lstm_state = LSTM(1, return_state=True)
    lstm_state(x)
    lstm_state.set_weights(lstm.get_weights())
    _, h, c = lstm_state(x, initial_state=[np.zeros((1, 1)), np.full((1, 1), 5.0)])
    np.testing.assert_allclose(c, [[np.tanh(0.5)]], rtol=1e-6)
    np.testing.assert_allclose(h, [[np.tanh(np.tanh(0.5))]], rtol=1e-6)
    gru = GRU(1, kernel_initializer="zeros", recurrent_initializer="zeros")
    gru(x)
    gru.params["bias"][0] = [30.0, 0.0, 2.0]  # z shut: h = h_{t-1}
    np.testing.assert_allclose(gru(x, initial_state=[np.full((1, 1), 0.7)]), [[0.7]], rtol=1e-6)
    gru.params["bias"][0] = [-30.0, 0.0, 2.0]  # z open: h = tanh(x_h)
    np.testing.assert_allclose(gru(x, initial_state=[np.full((1, 1), 0.7)]), [[np.tanh(2.0)]], rtol=1e-6)


def test_orthogonal_initializer_follows_keras_formula():
    init = npnet.initializers.Orthogonal(gain=1.5, seed=4)
    w = init((3, 5))
    rng = np.random.default_rng(4)  # Keras' steps: QR of a (5, 3) normal, signs of diag(R), transposed
    q, r = np.linalg.qr(rng.normal(size=(5, 3)))
    expected = 1.5 * (q * np.sign(np.diag(r))).T
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert w.flags.c_contiguous and w.dtype == np.float32
    np.testing.assert_allclose(w @ w.T, 2.25 * np.eye(3), atol=1e-5)
    tall = npnet.initializers.get("orthogonal")((2, 3, 4))
    flat = tall.reshape(6, 4)
    np.testing.assert_allclose(flat.T @ flat, np.eye(4), atol=1e-5)
    assert npnet.initializers.get({"class_name": "Orthogonal", "config": {"gain": 2.0, "seed": 1}}).gain == 2.0
    with pytest.raises(ValueError, match=r"Orthogonal: the shape must have at least 2 dimensions, received \(3,\)"):
        init((3,))


# ---------------------------------------------------------------- masks and shapes
def test_compute_mask_and_output_shapes_follow_keras():
    m = np.ones((2, 4), bool)
    assert SimpleRNN(3, return_sequences=True).compute_mask(None, m) is m
    assert SimpleRNN(3).compute_mask(None, m) is None
    assert LSTM(3, return_state=True, return_sequences=True).compute_mask(None, [m, None, None]) == [m, None, None]
    assert GRU(3, return_state=True).compute_mask(None, m) == [None, None]
    assert LSTM(3, return_state=True).compute_output_shape((None, 4, 2)) == [(None, 3), (None, 3), (None, 3)]
    assert GRU(3, return_sequences=True).compute_output_shape([(None, 4, 2), (None, 3)]) == (None, 4, 3)
    assert SimpleRNN.supports_masking and LSTM.supports_masking and GRU.supports_masking


# ---------------------------------------------------------------- models
def test_functional_model_with_initial_state_inputs_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(10)
    seq = npnet.Input((6, 3), name="seq")
    h0, c0 = npnet.Input((4,), name="h0"), npnet.Input((4,), name="c0")
    out, h, c = LSTM(4, return_sequences=True, return_state=True)(seq, initial_state=[h0, c0])
    assert (out.shape, h.shape, c.shape) == ((None, 6, 4), (None, 4), (None, 4))
    last = GRU(2)(out, initial_state=[npnet.layers.Dense(2)(h)])
    model = npnet.Model([seq, h0, c0], [last, c])
    data = [rng.normal(size=(16, 6, 3)).astype(np.float32), rng.normal(size=(16, 4)).astype(np.float32),
            rng.normal(size=(16, 4)).astype(np.float32)]
    targets = [rng.normal(size=(16, 2)).astype(np.float32), np.zeros((16, 4), np.float32)]
    model.compile(optimizer=npnet.optimizers.Adam(0.01), loss=["mse", "mse"])
    history = model.fit(data, targets, epochs=8, batch_size=8, verbose=0, seed=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "rnn.npnet")
    restored = npnet.load_model(tmp_path / "rnn.npnet")
    for a, b in zip(restored.predict(data, verbose=0), model.predict(data, verbose=0), strict=True):
        np.testing.assert_array_equal(a, b)
    # the initial states reach the output: the gradient check covers them as model inputs
    assert check_gradients(model, [d[:3].astype(np.float64) for d in data], atol=1e-6, rtol=1e-5).passed


def sign_of_sum_data(steps, seed):
    """Label: is the sum of the sequence positive? A running sum is what a recurrent layer
    can hold in its state. 768 sequences to train on, 256 to test."""
    x = np.random.default_rng(seed).normal(size=(1024, steps, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    return (x[:768], y[:768]), (x[768:], y[768:])


def fit_sign_of_sum(layers, steps, seed):
    (x, y), test = sign_of_sum_data(steps, seed)
    model = npnet.Sequential([npnet.Input((steps, 1)), *layers, npnet.layers.Dense(2, activation="softmax")],
                             seed=0)
    model.compile(optimizer=npnet.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0, seed=0)
    return model, test


def test_sequential_lstm_learns_the_sign_of_a_sum(tmp_path):
    model, (x, y) = fit_sign_of_sum([LSTM(8)], 12, 11)
    assert model.evaluate(x, y, verbose=0)[1] >= 0.93  # chance: 0.5
    model.save(tmp_path / "lstm.npnet")
    restored = npnet.load_model(tmp_path / "lstm.npnet")
    np.testing.assert_array_equal(restored.predict(x[:20], verbose=0), model.predict(x[:20], verbose=0))
    assert isinstance(restored.layers[0], LSTM) and restored.layers[0].unit_forget_bias


@pytest.mark.parametrize("cls", [SimpleRNN, GRU])
def test_stacked_layers_learn_the_sign_of_a_sum(cls):
    model, (x, y) = fit_sign_of_sum([cls(8, return_sequences=True), cls(8)], 10, 12)
    assert model.evaluate(x, y, verbose=0)[1] >= 0.93


def test_config_keeps_every_argument():
    layer = GRU(3, activation="relu", recurrent_activation="tanh", use_bias=False, kernel_initializer="he_normal",
                recurrent_initializer=npnet.initializers.Orthogonal(gain=0.5), bias_initializer="ones",
                kernel_regularizer="l2", recurrent_regularizer="l1", dropout=0.1, recurrent_dropout=0.2, seed=5,
                return_sequences=True, return_state=True, go_backwards=True, unroll=True, reset_after=False,
                name="g")
    config = layer.get_config()
    assert config["recurrent_initializer"] == {"class_name": "Orthogonal", "config": {"gain": 0.5, "seed": None}}
    assert {k: config[k] for k in ("units", "activation", "recurrent_activation", "use_bias", "dropout",
                                   "recurrent_dropout", "seed", "return_sequences", "return_state", "go_backwards",
                                   "stateful", "unroll", "reset_after")} == {
        "units": 3, "activation": "relu", "recurrent_activation": "tanh", "use_bias": False, "dropout": 0.1,
        "recurrent_dropout": 0.2, "seed": 5, "return_sequences": True, "return_state": True, "go_backwards": True,
        "stateful": False, "unroll": True, "reset_after": False}
    assert GRU.from_config(config).get_config() == config
    assert "recurrent_activation" not in SimpleRNN(2).get_config()
    assert LSTM(2, unit_forget_bias=False).get_config()["unit_forget_bias"] is False


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("factory, error, match", [
    (lambda: LSTM(0), ValueError, r"LSTM: `units` must be >= 1, received 0"),
    (lambda: GRU(-2), ValueError, r"GRU: `units` must be >= 1, received -2"),
    (lambda: SimpleRNN(2.5), TypeError, r"SimpleRNN: `units` must be an integer"),
    (lambda: LSTM(2, dropout=1.0), ValueError, r"LSTM: `dropout` must be in \[0, 1\), received 1.0"),
    (lambda: GRU(2, recurrent_dropout=-0.1), ValueError, r"GRU: `recurrent_dropout` must be in \[0, 1\), received -0.1"),
    (lambda: LSTM(2, stateful=True), ValueError, r"LSTM: `stateful=True` is not supported; keep the state yourself"),
    (lambda: SimpleRNN(2, activation="nope"), ValueError, r"SimpleRNN: unknown activation 'nope'"),
    (lambda: LSTM(2, recurrent_initializer="nope"), ValueError, r"unknown initializer 'nope'"),
    (lambda: GRU(2, seed=-1), ValueError, r"GRU: `seed` must be >= 0"),
])
def test_bad_arguments_are_named(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_bad_inputs_are_named():
    layer = LSTM(3, name="lstm_a")
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected input of rank 3 (batch, timesteps, features), received shape (2, 5)")):
        layer(np.zeros((2, 5), np.float32))
    layer(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected input with last dimension 4, received shape (2, 5, 3)")):
        layer(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected 2 initial states [h, c], received 1")):
        layer(np.zeros((2, 5, 4), np.float32), initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected initial state 'c' of shape (2, 3) (batch, units), received (2, 4)")):
        layer(np.zeros((2, 5, 4), np.float32), initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected initial state 'h' of shape (2, 3) (batch, units), received (1, 3)")):
        layer(np.zeros((2, 5, 4), np.float32), initial_state=[np.zeros((1, 3)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected at least one time step, received shape (2, 0, 4)")):
        layer(np.zeros((2, 0, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "LSTM 'lstm_a': expected a mask of shape (2, 5) (batch, timesteps), received (2, 4)")):
        layer.forward(np.zeros((2, 5, 4), np.float32), mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match=re.escape(
            "LSTM 'lstm_a': pass the initial state either in the input list or as initial_state=, not both")):
        layer([np.zeros((2, 5, 4))], initial_state=[np.zeros((2, 3))])
    gru = GRU(3, name="gru_a")
    with pytest.raises(ValueError, match=re.escape("GRU 'gru_a': expected 1 initial state [h], received 2")):
        gru(np.zeros((2, 5, 4), np.float32), initial_state=[np.zeros((2, 3))] * 2)


def test_bad_symbolic_inputs_are_named():
    seq = npnet.Input((5, 4))
    with pytest.raises(ValueError, match=re.escape(
            "GRU 'gru_s': expected initial state 'h' of shape (None, 3) (batch, units), received (None, 2)")):
        GRU(3, name="gru_s")(seq, initial_state=npnet.Input((2,)))
    with pytest.raises(ValueError, match=re.escape(
            "SimpleRNN 'rnn_s': expected input of rank 3 (batch, timesteps, features), received shape (None, 4)")):
        SimpleRNN(3, name="rnn_s")(npnet.Input((4,)))


# ---------------------------------------------------------------- masks from an Embedding
def embedded_model(cls, **kw):
    ids = npnet.Input((None,), dtype="int64")
    h = npnet.layers.Embedding(10, 3, mask_zero=True)(ids)
    return npnet.Model(ids, cls(4, **kw)(h), seed=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("side", ["right", "left"])
def test_zero_padded_sequences_give_the_unpadded_outputs(kind, side):
    """Embedding(mask_zero=True) -> recurrent layer: padding with id 0 on either side
    changes neither the last output nor the final states of any sequence."""
    kw = {"reset_after": False} if kind == "gru_before" else {}
    model = embedded_model(CLASSES[kind], return_state=True, **kw)
    rng = np.random.default_rng(13)
    lengths = [5, 2, 7, 1]
    seqs = [rng.integers(1, 10, size=k) for k in lengths]
    padded = np.zeros((4, 7), np.int64)
    for row, s in zip(padded, seqs):
        if side == "right":
            row[:len(s)] = s
        else:
            row[7 - len(s):] = s
    outputs = model.predict(padded, verbose=0)
    for i, s in enumerate(seqs):
        alone = model.predict(s[None, :], verbose=0)
        for a, b in zip(outputs, alone, strict=True):
            np.testing.assert_allclose(a[i:i + 1], b, rtol=1e-5, atol=1e-6)


def test_the_mask_passes_on_with_return_sequences():
    ids = np.array([[3, 4, 0, 0], [5, 0, 0, 0]])
    x = npnet.layers.Embedding(10, 3, mask_zero=True)(ids)
    seq = LSTM(4, return_sequences=True)(x)
    np.testing.assert_array_equal(npnet._masks.get_mask(seq), ids != 0)
    # the output at a masked step repeats the last real one
    np.testing.assert_array_equal(seq[0, 2:], np.broadcast_to(seq[0, 1], (2, 4)))
    last = GRU(2)(seq)
    assert npnet._masks.get_mask(last) is None
    out, h = SimpleRNN(2, return_sequences=True, return_state=True)(x)
    np.testing.assert_array_equal(npnet._masks.get_mask(out), ids != 0)
    assert npnet._masks.get_mask(h) is None
    # a mask given in the call
    layer = LSTM(2)
    plain = np.array(x)  # the same values without a mask
    given = layer(plain, mask=np.array([[True, True, False, False], [True, False, False, False]]))
    np.testing.assert_array_equal(given, layer(x))
    assert not np.allclose(given, layer(plain))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_check_through_an_embedding_mask(kind):
    kw = {"reset_after": False} if kind == "gru_before" else {}
    ids = npnet.Input((None,), dtype="int64")
    h = npnet.layers.Embedding(10, 3, mask_zero=True)(ids)
    h = CLASSES[kind](4, return_sequences=True, **kw)(h)
    h = CLASSES[kind](3, go_backwards=True, **kw)(h)
    model = npnet.Model(ids, npnet.layers.Dense(2)(h), seed=0)
    padded = np.array([[1, 4, 2, 0, 0, 0], [3, 3, 9, 8, 7, 6], [0, 0, 5, 5, 1, 2]])
    report = check_gradients(model, padded, atol=1e-6, rtol=1e-5)
    assert report.passed
    assert report.entries[0].name.endswith("embeddings")
    # the embedding of the padding id gets no gradient: every step that reads it is masked
    np.testing.assert_array_equal(report.entries[0].analytic[0], 0.0)
    assert np.abs(report.entries[0].analytic[1:]).max() > 0


def test_a_masked_sequence_loss_counts_the_real_steps_only():
    """Embedding(mask_zero) -> LSTM(return_sequences) -> Dense: the loss is the mean over the
    real steps, so the targets of padded steps do not matter, and the gradient checks."""
    ids = npnet.Input((None,), dtype="int64")
    h = LSTM(4, return_sequences=True)(npnet.layers.Embedding(10, 3, mask_zero=True)(ids))
    model = npnet.Model(ids, npnet.layers.Dense(1)(h), seed=0)
    model.compile(optimizer="sgd", loss="mse")
    padded = np.array([[1, 4, 2, 0], [3, 3, 9, 8]])
    y = np.random.default_rng(14).normal(size=(2, 4, 1))
    other = y.copy()
    other[0, 3] += 100.0  # a padded step's target
    assert model.evaluate(padded, y, verbose=0) == pytest.approx(model.evaluate(padded, other, verbose=0))
    assert check_gradients(model, padded, y=y, atol=1e-6, rtol=1e-5).passed


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_use_cudnn_auto_or_false_runs_the_same_loop(cls):
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    base = cls(3, use_cudnn="auto")
    y = base(x)
    other = cls(3, use_cudnn=False)
    other(x)
    other.set_weights(base.get_weights())
    np.testing.assert_array_equal(other(x), y)
    assert base.use_cudnn == "auto" and other.use_cudnn is False
    assert cls.from_config(base.get_config()).use_cudnn == "auto"


@pytest.mark.parametrize("value, match", [
    (True, r"`use_cudnn=True` asks for cuDNN, which npnet .* does not have; pass use_cudnn='auto' or False"),
    ("yes", r"`use_cudnn` must be 'auto', True or False, received 'yes'"),
    (1, r"`use_cudnn` must be 'auto', True or False, received 1"),
])
@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_bad_use_cudnn(cls, value, match):
    with pytest.raises(ValueError, match=f"{cls.__name__}: " + match):
        cls(3, use_cudnn=value)
