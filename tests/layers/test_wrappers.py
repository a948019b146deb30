"""TimeDistributed and Bidirectional: values against the wrapped layers run by hand, the
reshaping primitives' gradients, gradients through models, masks, training, config and
saving, bad input."""

import re

import numpy as np
import pytest

import npnet
from npnet._masks import get_mask
from npnet.layers import (
    GRU,
    LSTM,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    SimpleRNN,
    TimeDistributed,
)
from npnet.layers.wrappers import _FoldTime, _ReverseTime, _UnfoldTime, _ZeroMaskedSteps
from npnet.testing import check_gradients


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ================================================================ the private primitives
def test_fold_and_unfold_time_move_steps_into_the_batch_and_back():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    folded = _FoldTime()(x)
    assert folded.shape == (6, 4)
    for b in range(2):
        for t in range(3):
            np.testing.assert_array_equal(folded[b * 3 + t], x[b, t])
    np.testing.assert_array_equal(_UnfoldTime()([folded, x]), x)
    assert _FoldTime().compute_output_shape((None, 3, 4)) == (None, 4)
    assert _FoldTime().compute_output_shape((2, 3, 4)) == (6, 4)
    assert _UnfoldTime().compute_output_shape([(None, 7), (None, 3, 4)]) == (None, 3, 7)


def test_reverse_time_reverses_the_second_axis():
    x = normal(2, 5, 3)
    np.testing.assert_array_equal(_ReverseTime()(x), x[:, [4, 3, 2, 1, 0]])


@pytest.mark.parametrize("make, x", [
    (lambda: _FoldTime(), normal(2, 3, 4, 2, seed=1)),
    (lambda: _ReverseTime(), normal(3, 5, 2, seed=2)),
])
def test_reshaping_primitives_gradients_match_central_differences(make, x):
    report = check_gradients(make(), x.astype(np.float64))
    assert report.passed and report.entries[0].checked == x.size


def test_unfold_time_gradient_matches_central_differences_and_gives_none_for_the_shape_input():
    seq = normal(2, 3, 4, seed=3).astype(np.float64)
    folded = normal(6, 5, seed=4).astype(np.float64)
    report = check_gradients(_UnfoldTime(), [folded, seq])
    assert report.passed
    assert report.entries[0].checked == folded.size
    layer = _UnfoldTime()
    y, cache = layer.forward([folded, seq])
    dy = normal(2, 3, 5, seed=5)
    d_folded, d_seq = layer.backward(cache, dy)
    np.testing.assert_array_equal(d_folded, dy.reshape(6, 5))
    assert d_seq is None


def test_zero_masked_steps_multiplies_by_the_mask_and_checks_its_gradient():
    mask = np.array([[True, True, False], [True, False, False]])

    class Fixed(_ZeroMaskedSteps):  # the mask a call would bring, fixed for the check
        def forward(self, x, training=False, mask=None):
            return super().forward(x, training, mask=MASK)

    MASK = mask
    x = normal(2, 3, 4, seed=32).astype(np.float64)
    y, cache = Fixed().forward(x)
    np.testing.assert_array_equal(y, x * mask[:, :, None])
    assert check_gradients(Fixed(), x).passed
    np.testing.assert_array_equal(_ZeroMaskedSteps()(x), x)  # no mask: the identity


def test_a_wrong_primitive_backward_is_caught():
    class Wrong(_ReverseTime):
        def backward(self, cache, dy):
            return dy  # forgot to reverse

    with pytest.raises(AssertionError):
        check_gradients(Wrong(), normal(2, 4, 2).astype(np.float64))


# ================================================================ TimeDistributed
def test_time_distributed_dense_equals_dense_on_each_slice_by_hand():
    layer = TimeDistributed(Dense(3, activation="tanh"))
    x = normal(4, 5, 2)
    y = layer(x)
    kernel, bias = layer.layer.params["kernel"], layer.layer.params["bias"]
    assert y.shape == (4, 5, 3)
    for t in range(5):
        np.testing.assert_allclose(y[:, t], np.tanh(x[:, t] @ kernel + bias), rtol=1e-6, atol=1e-6)
    assert len(layer.weights) == 2  # one set of weights for every step


def test_time_distributed_conv2d_on_videos_equals_the_conv_on_each_frame():
    conv = Conv2D(2, 3, padding="same", activation="relu")
    layer = TimeDistributed(conv)
    x = normal(2, 3, 6, 5, 1, seed=1)
    y = layer(x)
    assert y.shape == (2, 3, 6, 5, 2)
    for t in range(3):
        np.testing.assert_allclose(y[:, t], conv(x[:, t]), rtol=1e-6, atol=1e-6)
    assert layer.compute_output_shape((None, 3, 6, 5, 1)) == (None, 3, 6, 5, 2)


def test_time_distributed_sequential_model_shares_its_weights_over_steps():
    inner = npnet.Sequential([npnet.Input((4,)), Dense(5, activation="relu"), Dense(2)], seed=0)
    layer = TimeDistributed(inner)
    x = normal(3, 6, 4, seed=2)
    y = layer(x)
    assert y.shape == (3, 6, 2)
    for t in range(6):
        np.testing.assert_allclose(y[:, t], inner.predict(x[:, t], verbose=0), rtol=1e-6, atol=1e-6)
    assert layer.count_params() == inner.count_params() == 4 * 5 + 5 + 5 * 2 + 2


def test_time_distributed_dropout_is_identity_at_inference_and_drops_in_training():
    layer = TimeDistributed(Dropout(0.5, seed=3))
    x = np.ones((8, 10, 6), np.float32)
    np.testing.assert_array_equal(layer(x), x)
    y = layer(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.35 < np.mean(y == 0) < 0.65


def test_time_distributed_symbolic_shapes_and_model_summary():
    inputs = npnet.Input((5, 4))
    out = TimeDistributed(Dense(3), name="per_step")(inputs)
    assert out.shape == (None, 5, 3)
    model = npnet.Model(inputs, out)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert re.search(r"per_step \(TimeDistributed\)\s+\(None, 5, 3\)\s+15", text), text
    seq = npnet.Sequential([npnet.Input((5, 4)), TimeDistributed(Dense(3), name="td")])
    lines = []
    seq.summary(print_fn=lines.append)
    assert re.search(r"td \(TimeDistributed\)\s+\(None, 5, 3\)\s+15", "\n".join(lines))


def _td_model():
    inputs = npnet.Input((3, 5, 4, 1))
    h = TimeDistributed(Conv2D(2, 2, activation="tanh"))(inputs)
    h = TimeDistributed(npnet.Sequential([npnet.layers.Flatten(), Dense(3, activation="tanh")]))(h)
    h = TimeDistributed(Dense(2))(h)
    return npnet.Model(inputs, h, seed=0)


def test_gradients_through_a_model_of_time_distributed_layers():
    npnet.set_floatx("float64")
    try:
        model = _td_model()
        x = np.random.default_rng(4).normal(size=(2, 3, 5, 4, 1))
        report = check_gradients(model, x, atol=1e-6, rtol=1e-5)
    finally:
        npnet.set_floatx("float32")
    assert report.passed
    names = [e.name for e in report.entries]
    assert names[0] == "x" and len(names) == 1 + 6
    assert all(e.checked > 0 for e in report.entries)


def test_gradients_through_time_distributed_dropout_in_training():
    inputs = npnet.Input((4, 3))
    h = TimeDistributed(Dropout(0.4, seed=5))(TimeDistributed(Dense(3))(inputs))
    model = npnet.Model(inputs, Dense(1)(h), seed=0)
    x = np.random.default_rng(6).normal(size=(3, 4, 3))
    assert check_gradients(model, x, training=True, atol=1e-6, rtol=1e-5).passed


def test_time_distributed_gradient_sums_over_steps_by_hand():
    """One SGD(1) step on mean((TimeDistributed(Dense) - y)^2): the kernel gradient is the sum
    over every (sample, step) of x^T dz, worked out here in NumPy."""
    npnet.set_floatx("float64")
    try:
        model = npnet.Sequential([npnet.Input((4, 3)), TimeDistributed(Dense(2))], seed=0)
        model.compile(npnet.SGD(learning_rate=1.0), loss="mse")
        x, y = np.random.default_rng(7).normal(size=(5, 4, 3)), np.random.default_rng(8).normal(size=(5, 4, 2))
        dense = model.layers[0].layer
        w, b = dense.params["kernel"].copy(), dense.params["bias"].copy()
        model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
    finally:
        npnet.set_floatx("float32")
    dz = 2.0 * (x @ w + b - y) / y.size
    np.testing.assert_allclose(w - dense.params["kernel"], np.einsum("nti,ntj->ij", x, dz), rtol=1e-7)
    np.testing.assert_allclose(b - dense.params["bias"], dz.sum(axis=(0, 1)), rtol=1e-7)


def test_time_distributed_passes_the_mask_on_to_its_output():
    ids = np.array([[3, 4, 0, 0], [5, 6, 7, 0]])
    embedded = Embedding(10, 3, mask_zero=True)(ids)
    layer = TimeDistributed(Dense(2))
    out = layer(embedded)
    np.testing.assert_array_equal(get_mask(out), ids != 0)
    # a mask given in the call wins
    given = np.array([[True, False, False, False], [True, True, True, True]])
    np.testing.assert_array_equal(get_mask(layer(np.array(embedded), mask=given)), given)
    with pytest.raises(ValueError, match=re.escape(
            f"TimeDistributed '{layer.name}': expected a mask of shape (2, 4) (batch, time), received (2, 3)")):
        layer(np.array(embedded), mask=np.ones((2, 3), bool))


def test_a_mask_with_more_axes_reaches_the_wrapped_layer():
    """TimeDistributed(LSTM) over (batch, sentences, words, features) with a mask
    (batch, sentences, words): each sentence's LSTM sees its own row of the mask."""
    lstm = LSTM(2)
    layer = TimeDistributed(lstm)
    x = normal(2, 3, 4, 5, seed=30)
    mask = np.random.default_rng(31).random((2, 3, 4)) > 0.3
    mask[..., 0] = True
    y = layer(x, mask=mask)
    for t in range(3):
        np.testing.assert_allclose(y[:, t], lstm(x[:, t], mask=mask[:, t]), rtol=1e-6, atol=1e-6)
    assert not np.allclose(y, layer(x))
    assert get_mask(y) is None  # the words' mask was used up inside


def test_frozen_wrappers_leave_their_weights_alone():
    for layer in (TimeDistributed(Dense(2), trainable=False), Bidirectional(GRU(2), trainable=False)):
        model = npnet.Sequential([npnet.Input((3, 4)), layer])
        assert model.trainable_weights == [] and len(model.non_trainable_weights) == len(layer.get_weights())
        layer.trainable = True
        assert len(model.trainable_weights) == len(layer.get_weights())
        layer.trainable = False  # the setter reaches the wrapped layers too, as in Keras
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer.backward_layer
        assert inner.trainable is False


def test_padding_is_ignored_through_time_distributed_and_a_recurrent_layer():
    """Embedding(mask_zero) -> TimeDistributed(Dense) -> LSTM: the mask reaches the LSTM, so
    zero padding changes no output."""
    ids = npnet.Input((None,), dtype="int64")
    h = TimeDistributed(Dense(4, activation="tanh"))(Embedding(10, 3, mask_zero=True)(ids))
    model = npnet.Model(ids, LSTM(3)(h), seed=0)
    seqs = [np.array([4, 2, 7]), np.array([1, 9, 9, 3, 5])]
    padded = np.array([[4, 2, 7, 0, 0], [1, 9, 9, 3, 5]])
    out = model.predict(padded, verbose=0)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out[i], model.predict(s[None], verbose=0)[0], rtol=1e-5, atol=1e-6)


def test_time_distributed_config_round_trip_with_the_nested_layer():
    layer = TimeDistributed(Dense(3, activation="relu", use_bias=False, name="inner"), name="td")
    config = layer.get_config()
    assert config["layer"]["class_name"] == "Dense" and config["layer"]["config"]["name"] == "inner"
    assert config["layer"]["config"]["use_bias"] is False
    clone = TimeDistributed.from_config(config)
    assert clone.get_config() == config
    x = normal(2, 4, 5)
    y = layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), y)
    nested = TimeDistributed(npnet.Sequential([npnet.Input((5,)), Dense(2)], name="block"))
    assert TimeDistributed.from_config(nested.get_config()).get_config() == nested.get_config()


def test_a_model_with_time_distributed_layers_trains_saves_and_loads(tmp_path):
    model = _td_model()
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(9).normal(size=(16, 3, 5, 4, 1)).astype(np.float32)
    y = np.random.default_rng(10).normal(size=(16, 3, 2)).astype(np.float32)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    paths = [p for p, _, _ in model._weight_entries()]
    assert paths[0].startswith("time_distributed") and paths[0].endswith("/kernel")
    model.save(tmp_path / "td.npnet")
    restored = npnet.load_model(tmp_path / "td.npnet")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in restored.layers[1:]] == ["TimeDistributed"] * 3
    restored.fit(x, y, epochs=1, batch_size=8, verbose=0)  # training resumes


def test_time_distributed_bad_input_is_named():
    with pytest.raises(TypeError, match=r"TimeDistributed: `layer` must be an npnet layer instance, received 3"):
        TimeDistributed(3)
    with pytest.raises(TypeError, match=r"TimeDistributed: `layer` must be an npnet layer instance"):
        TimeDistributed(Dense)  # the class, not an instance
    layer = TimeDistributed(Dense(2), name="td")
    with pytest.raises(ValueError, match=re.escape(
            "TimeDistributed 'td': expected input of rank >= 3 (batch, time, ...), received shape (4, 3)")):
        layer(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "TimeDistributed 'td': expected input of rank >= 3 (batch, time, ...), received shape (None, 3)")):
        layer(npnet.Input((3,)))
    with pytest.raises(TypeError, match=r"TimeDistributed 'td': expected one input tensor"):
        layer([np.ones((2, 3, 4)), np.ones((2, 3, 4))])
    multi = TimeDistributed(npnet.layers.LSTM(2, return_state=True), name="td2")
    with pytest.raises(ValueError, match=r"TimeDistributed 'td2': the wrapped layer LSTM '.*' returned 3 outputs"):
        multi(np.ones((2, 3, 4, 5), np.float32))


# ================================================================ Bidirectional
RECURRENT = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
MERGES = {
    "concat": lambda a, b: np.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}


def _reference_backward(bi, x):
    """The backward direction by hand: an ordinary layer (go_backwards=False) with the
    backward layer's weights, run on the reversed sequence."""
    config = bi.backward_layer.get_config()
    config.update(go_backwards=False, name=None)
    plain = type(bi.backward_layer).from_config(config)
    plain(x[:1, ::-1])  # build
    plain.set_weights(bi.backward_layer.get_weights())
    return plain(x[:, ::-1])


@pytest.mark.parametrize("kind", sorted(RECURRENT))
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_equals_the_two_directions_run_by_hand(kind, merge_mode, return_sequences):
    bi = Bidirectional(RECURRENT[kind](3, return_sequences=return_sequences), merge_mode=merge_mode)
    x = normal(4, 6, 2, seed=11)
    out = bi(x)
    forward = bi.forward_layer(x)
    backward = _reference_backward(bi, x)
    # the backward layer reads the sequence from its end: its outputs come last step first
    np.testing.assert_allclose(bi.backward_layer(x), backward, rtol=1e-5, atol=1e-6)
    if return_sequences:
        backward = backward[:, ::-1]  # put back in time order
    if merge_mode is None:
        assert isinstance(out, list) and len(out) == 2
        np.testing.assert_allclose(out[0], forward, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[1], backward, rtol=1e-5, atol=1e-6)
        assert bi.compute_output_shape((None, 6, 2)) == [(None,) + forward.shape[1:]] * 2
    else:
        np.testing.assert_allclose(out, MERGES[merge_mode](forward, backward), rtol=1e-5, atol=1e-6)
        assert bi.compute_output_shape((None, 6, 2)) == (None,) + out.shape[1:]
    assert not np.allclose(forward, backward)  # the directions differ, so the test can tell them apart


def test_bidirectional_output_of_the_first_step_sees_the_whole_sequence():
    """With return_sequences, step 0 of the backward half depends on the last input step."""
    bi = Bidirectional(GRU(2, return_sequences=True))
    x = normal(1, 5, 2, seed=12)
    changed = x.copy()
    changed[0, -1] += 1.0
    a, b = bi(x), bi(changed)
    np.testing.assert_array_equal(a[0, 0, :2], b[0, 0, :2])  # forward half: not yet seen
    assert not np.allclose(a[0, 0, 2:], b[0, 0, 2:])  # backward half: seen


def test_return_state_orders_output_then_forward_then_backward_states():
    bi = Bidirectional(LSTM(3, return_state=True))
    x = normal(2, 4, 2, seed=13)
    out = bi(x)
    assert len(out) == 5
    f_out, f_h, f_c = bi.forward_layer(x)
    b_out, b_h, b_c = bi.backward_layer(x)
    np.testing.assert_allclose(out[0], np.concatenate([f_out, b_out], axis=-1), rtol=1e-6)
    for got, want in zip(out[1:], [f_h, f_c, b_h, b_c]):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert bi.compute_output_shape((None, 4, 2)) == [(None, 6), (None, 3), (None, 3), (None, 3), (None, 3)]
    none = Bidirectional(GRU(2, return_state=True, return_sequences=True), merge_mode=None)
    outs = none(x)
    assert [o.shape for o in outs] == [(2, 4, 2), (2, 4, 2), (2, 2), (2, 2)]
    assert none.compute_output_shape((None, 4, 2)) == [(None, 4, 2), (None, 4, 2), (None, 2), (None, 2)]


def test_initial_state_first_half_goes_forward_second_half_backward():
    bi = Bidirectional(LSTM(3))
    x = normal(2, 4, 2, seed=14)
    states = [normal(2, 3, seed=s) for s in (15, 16, 17, 18)]
    out = bi(x, initial_state=states)
    expected = np.concatenate([bi.forward_layer(x, initial_state=states[:2]),
                               bi.backward_layer(x, initial_state=states[2:])], axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_array_equal(bi([x, *states]), out)
    assert not np.allclose(out, bi(x))
    with pytest.raises(ValueError, match=re.escape(
            f"Bidirectional '{bi.name}': expected 4 initial states (2 for the forward layer, then 2 for the "
            "backward layer), received 2")):
        bi(x, initial_state=states[:2])


def test_bidirectional_with_symbolic_initial_states_trains_and_saves(tmp_path):
    seq, h_f, h_b = npnet.Input((5, 2)), npnet.Input((3,)), npnet.Input((3,))
    out = Bidirectional(GRU(3), merge_mode="sum", name="bi")(seq, initial_state=[h_f, h_b])
    model = npnet.Model([seq, h_f, h_b], Dense(1)(out), seed=0)
    model.compile(optimizer="adam", loss="mse")
    xs = [normal(8, 5, 2, seed=19), normal(8, 3, seed=20), normal(8, 3, seed=21)]
    model.fit(xs, normal(8, 1, seed=22), epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "bi_states.npnet")
    restored = npnet.load_model(tmp_path / "bi_states.npnet")
    np.testing.assert_array_equal(restored.predict(xs, verbose=0), model.predict(xs, verbose=0))


def test_a_given_backward_layer_is_used_as_is():
    forward = LSTM(3, return_sequences=True, name="fw")
    backward = LSTM(3, return_sequences=True, go_backwards=True, activation="relu", name="bw")
    bi = Bidirectional(forward, backward_layer=backward)
    assert bi.backward_layer is backward and bi.forward_layer.name == "forward_fw"
    assert bi.forward_layer is not forward  # rebuilt from the config: fresh weights
    x = normal(2, 4, 2, seed=23)
    out = bi(x)
    np.testing.assert_allclose(out[..., 3:], backward(x)[:, ::-1], rtol=1e-6)
    config = bi.get_config()
    assert config["backward_layer"]["config"]["activation"] == "relu"
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config


def test_weights_argument_sets_forward_then_backward_weights():
    source = Bidirectional(SimpleRNN(2))
    x = normal(3, 4, 5, seed=24)
    expected = source(x)
    weights = source.get_weights()
    bi = Bidirectional(SimpleRNN(2), weights=weights)
    np.testing.assert_array_equal(bi(x), expected)
    for got, want in zip(bi.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)
    assert Bidirectional(SimpleRNN(2), weights=[])(x).shape == (3, 4)  # an empty list is ignored, as in Keras
    bad = Bidirectional(SimpleRNN(2), weights=weights[:2] + weights[:2])
    with pytest.raises(ValueError, match=r"Bidirectional '.*': `weights` do not fit the layers"):
        bad(x)


def test_weight_paths_and_get_weights_order_follow_keras():
    bi = Bidirectional(LSTM(3, name="enc"), name="bi")
    bi(normal(2, 4, 5))
    paths = [p for p, _, _ in bi._weight_entries()]
    assert paths == [f"{d}_enc/{k}" for d in ("forward", "backward") for k in ("kernel", "recurrent_kernel", "bias")]
    shapes = [w.shape for w in bi.get_weights()]
    assert shapes == [(5, 12), (3, 12), (12,)] * 2
    assert bi.count_params() == 2 * (5 * 12 + 3 * 12 + 12)
    model = npnet.Sequential([npnet.Input((4, 5)), bi])
    assert [p for p, _, _ in model._weight_entries()][0] == "bi/forward_enc/kernel"


def _bi_model(merge_mode="concat"):
    inputs = npnet.Input((5, 2))
    h = Bidirectional(LSTM(3, return_sequences=True), merge_mode=merge_mode)(inputs)
    h = Bidirectional(GRU(2))(h)
    return npnet.Model(inputs, Dense(2)(h), seed=0)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_gradients_through_a_model_of_bidirectional_layers(merge_mode):
    npnet.set_floatx("float64")
    try:
        model = _bi_model(merge_mode)
        x = np.random.default_rng(25).normal(size=(3, 5, 2))
        report = check_gradients(model, x, atol=1e-6, rtol=1e-5)
    finally:
        npnet.set_floatx("float32")
    assert report.passed
    names = [e.name for e in report.entries]
    assert len(names) == 1 + 12 + 2 and any("backward_lstm" in n for n in names)


def test_gradients_through_bidirectional_with_merge_none_states_and_a_mask():
    npnet.set_floatx("float64")
    try:
        ids = npnet.Input((None,), dtype="int64")
        h = Embedding(10, 3, mask_zero=True)(ids)
        y_f, y_b, h_f, h_b = Bidirectional(GRU(3, return_sequences=True, return_state=True), merge_mode=None)(h)
        pooled = npnet.layers.GlobalAveragePooling1D()(npnet.layers.Multiply()([y_f, y_b]))
        out = Dense(2)(npnet.layers.Concatenate()([pooled, h_f, h_b]))
        model = npnet.Model(ids, out, seed=0)
        padded = np.array([[1, 4, 2, 0, 0], [3, 3, 9, 8, 7], [5, 6, 0, 0, 0]])
        report = check_gradients(model, padded, atol=1e-6, rtol=1e-5)
    finally:
        npnet.set_floatx("float32")
    assert report.passed
    assert report.entries[0].name.endswith("embeddings")
    np.testing.assert_array_equal(report.entries[0].analytic[0], 0.0)  # the padding id: no gradient


@pytest.mark.parametrize("return_sequences", [False, True])
def test_zero_padded_sequences_give_the_unpadded_outputs(return_sequences):
    """Embedding(mask_zero=True) -> Bidirectional(LSTM): padding changes nothing on the real steps."""
    ids = npnet.Input((None,), dtype="int64")
    h = Embedding(10, 3, mask_zero=True)(ids)
    out = Bidirectional(LSTM(4, return_sequences=return_sequences))(h)
    model = npnet.Model(ids, out, seed=0)
    rng = np.random.default_rng(26)
    lengths = [5, 2, 7, 1]
    seqs = [rng.integers(1, 10, size=k) for k in lengths]
    padded = np.zeros((4, 7), np.int64)
    for row, s in zip(padded, seqs):
        row[:len(s)] = s
    outputs = model.predict(padded, verbose=0)
    for i, s in enumerate(seqs):
        alone = model.predict(s[None, :], verbose=0)[0]
        got = outputs[i, :len(s)] if return_sequences else outputs[i]
        np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6)
    # without the mask the padding does change the result
    unmasked = npnet.Model(ids, Bidirectional(LSTM(4))(Embedding(10, 3)(ids)), seed=0)
    assert not np.allclose(unmasked.predict(padded, verbose=0)[1], unmasked.predict(seqs[1][None], verbose=0)[0])


def test_masked_steps_of_returned_sequences_are_zeros_as_in_keras():
    ids = np.array([[3, 4, 0, 0], [0, 5, 6, 0]])
    x = Embedding(10, 3, mask_zero=True)(ids)
    for merge_mode in ("concat", None):
        out = Bidirectional(LSTM(2, return_sequences=True), merge_mode=merge_mode)(x)
        halves = out if merge_mode is None else [out[..., :2], out[..., 2:]]
        for half in halves:
            np.testing.assert_array_equal(half[ids == 0], 0.0)
            assert np.all(np.abs(half[ids != 0]).sum(axis=-1) > 0)


def test_bidirectional_output_masks_follow_keras():
    ids = np.array([[3, 4, 0], [5, 0, 0]])
    x = Embedding(10, 3, mask_zero=True)(ids)
    np.testing.assert_array_equal(get_mask(Bidirectional(GRU(2, return_sequences=True))(x)), ids != 0)
    assert get_mask(Bidirectional(GRU(2))(x)) is None
    outs = Bidirectional(LSTM(2, return_sequences=True, return_state=True), merge_mode=None)(x)
    np.testing.assert_array_equal(get_mask(outs[0]), ids != 0)
    np.testing.assert_array_equal(get_mask(outs[1]), ids != 0)
    assert all(get_mask(s) is None for s in outs[2:])
    bi = Bidirectional(LSTM(2, return_sequences=True, return_state=True), merge_mode=None)
    masks = bi.compute_mask(x, ids != 0)
    assert len(masks) == 6 and masks[2:] == [None] * 4
    # a mask given in the call reaches both directions
    plain = np.array(x)
    layer = Bidirectional(SimpleRNN(2))
    np.testing.assert_array_equal(layer(plain, mask=ids != 0), layer(x))
    assert not np.allclose(layer(plain, mask=ids != 0), layer(plain))


def test_bidirectional_config_round_trip():
    bi = Bidirectional(GRU(3, return_sequences=True, reset_after=False, name="g"), merge_mode="ave", name="bi")
    config = bi.get_config()
    assert config["merge_mode"] == "ave" and config["name"] == "bi"
    assert config["layer"]["config"]["name"] == "forward_g" and config["layer"]["config"]["go_backwards"] is False
    assert config["backward_layer"]["config"]["name"] == "backward_g"
    assert config["backward_layer"]["config"]["go_backwards"] is True
    assert config["layer"]["config"]["reset_after"] is False
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config
    x = normal(2, 4, 3, seed=27)
    y = bi(x)
    clone(x)
    clone.set_weights(bi.get_weights())
    np.testing.assert_array_equal(clone(x), y)


def _both_ends_data(n, seed, steps=20):
    """The class is (first value > 0) + 2 * (last value > 0): it depends on both ends of
    the sequence; the steps between are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(int) + 2 * (x[:, -1, 0] > 0).astype(int)
    return x, y


def _fit_both_ends(layer):
    x, y = _both_ends_data(768, 28)
    model = npnet.Sequential([npnet.Input((20, 1)), layer, Dense(4, activation="softmax")], seed=0)
    model.compile(optimizer=npnet.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=12, batch_size=32, verbose=0, seed=0)
    return model


def test_bidirectional_gru_learns_a_task_that_needs_both_ends(tmp_path):
    x_test, y_test = _both_ends_data(300, 29)
    model = _fit_both_ends(Bidirectional(GRU(8), name="bi"))
    assert model.evaluate(x_test, y_test, verbose=0)[1] >= 0.93  # chance: 0.25
    # one direction alone cannot carry the first value through 19 noisy steps in this budget
    assert _fit_both_ends(GRU(8)).evaluate(x_test, y_test, verbose=0)[1] <= 0.7
    model.save(tmp_path / "bi.npnet")
    restored = npnet.load_model(tmp_path / "bi.npnet")
    np.testing.assert_array_equal(restored.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    assert isinstance(restored.layers[0], Bidirectional)
    assert restored.layers[0].backward_layer.go_backwards
    lines = []
    restored.summary(print_fn=lines.append)
    assert re.search(r"bi \(Bidirectional\)\s+\(None, 16\)\s+" + f"{2 * 3 * 8 * (1 + 8 + 2)}", "\n".join(lines))


@pytest.mark.parametrize("factory, error, match", [
    (lambda: Bidirectional("lstm"), TypeError, "Bidirectional: `layer` must be an npnet layer instance, received 'lstm'"),
    (lambda: Bidirectional(Dense(3)), ValueError,
     r"Bidirectional: `layer` must be a recurrent layer \(SimpleRNN, LSTM, GRU, or a layer with go_backwards, "
     r"return_sequences and return_state\), received Dense '.*'"),
    (lambda: Bidirectional(LSTM(2), backward_layer=3), TypeError, "`backward_layer` must be an npnet layer"),
    (lambda: Bidirectional(LSTM(2), backward_layer=Dense(2)), ValueError, "`backward_layer` must be a recurrent"),
    (lambda: Bidirectional(LSTM(2), merge_mode="max"), ValueError,
     "Bidirectional: `merge_mode` must be one of 'concat', 'sum', 'mul', 'ave' or None, received 'max'"),
    (lambda: Bidirectional(LSTM(2), merge_mode=["concat"]), ValueError, "`merge_mode` must be one of"),
    (lambda: Bidirectional(LSTM(2), backward_layer=LSTM(2)), ValueError,
     r"the forward and backward layers must have different `go_backwards`, received go_backwards=False for both"),
    (lambda: Bidirectional(LSTM(2, go_backwards=True)), ValueError, "different `go_backwards`"),
    (lambda: Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True)), ValueError,
     r"must have the same `return_sequences`, received False for LSTM 'forward_.*' and True for LSTM"),
    (lambda: Bidirectional(LSTM(2, name="a"), backward_layer=LSTM(2, go_backwards=True, name="forward_a")),
     ValueError, "must have different names, both are named 'forward_a'"),
    (lambda: Bidirectional(LSTM(2), weights=[np.ones(2)] * 3), ValueError, r"received 3 arrays"),
])
def test_bidirectional_bad_arguments_are_named(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_bidirectional_bad_inputs_are_named():
    bi = Bidirectional(LSTM(2), name="bi")
    with pytest.raises(ValueError, match=re.escape(
            "Bidirectional 'bi': expected input of rank 3 (batch, timesteps, features), received shape (4, 3)")):
        bi(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "Bidirectional 'bi': expected input of rank 3 (batch, timesteps, features), received shape "
            "(None, 2, 3, 4)")):
        bi(npnet.Input((2, 3, 4)))
    with pytest.raises(TypeError, match="Bidirectional 'bi': pass the initial states either in the input list"):
        bi([np.ones((2, 3, 4))], initial_state=[np.ones((2, 2))] * 4)
