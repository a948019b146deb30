"""Export to ONNX: every exported model runs in onnxruntime and matches ``predict``.

These tests need ``onnx`` and ``onnxruntime``, which the ``dev`` extra installs; without
them they fail (never skip) with a message saying how to install them.
"""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import npnet

L = npnet.layers
TOL = 1e-5


def _require(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.fail(f"the ONNX tests need the {name!r} package from the dev extra: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def onnx():
    return _require("onnx")


@pytest.fixture(scope="module")
def ort():
    return _require("onnxruntime")


@pytest.fixture
def run(tmp_path, onnx, ort):
    """Export a model, check it fully, run it in onnxruntime on ``xs`` and compare with predict."""

    def go(model, xs, check=True, **kwargs):
        path = tmp_path / "model.onnx"
        proto = npnet.onnx.export(model, path, **kwargs)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        if isinstance(xs, dict):
            feeds = {k: np.asarray(v, dtype=np.float32) for k, v in xs.items()}
        else:
            feeds = dict(zip(names, [np.asarray(a, dtype=np.float32) for a in (xs if isinstance(xs, list) else [xs])]))
        got = sess.run(None, feeds)
        if check:
            want = model.predict(xs, verbose=0)
            want = list(want.values()) if isinstance(want, dict) else want if isinstance(want, list) else [want]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape
                assert g.dtype == np.float32
                assert np.abs(g - w).max() <= TOL, np.abs(g - w).max()
        return proto, sess, got

    return go


def _inputs(shape, seed=0):
    """Random inputs and edge cases: zeros, one sample, larger values."""
    r = np.random.default_rng(seed)
    return [r.normal(size=shape).astype(np.float32), np.zeros(shape, np.float32),
            r.normal(size=(1,) + shape[1:]).astype(np.float32), (4 * r.normal(size=shape)).astype(np.float32)]


def _seq(*layers, shape, seed=0):
    return npnet.Sequential([npnet.Input(shape=shape), *layers], seed=seed)


# ---------------------------------------------------------------- core and activations
@pytest.mark.parametrize("activation", sorted(L.ACTIVATIONS) + ["leaky_layer", None])
def test_dense_with_every_fused_activation(run, activation):
    act = L.LeakyReLU(0.1) if activation == "leaky_layer" else activation
    model = _seq(L.Dense(5, activation=act), L.Dense(3, activation=act, use_bias=False), shape=(6,))
    for x in _inputs((7, 6)):
        run(model, x)


@pytest.mark.parametrize("layer", [L.ReLU(), L.LeakyReLU(0.2), L.ELU(0.7), L.Sigmoid(), L.Tanh(), L.Softplus(),
                                   L.Swish(), L.Linear(), L.Softmax(), L.Softmax(axis=1), L.Activation("silu"),
                                   L.Activation("softmax")], ids=lambda layer: layer.name)
def test_activation_layers_including_extreme_values(run, layer):
    model = _seq(layer, shape=(3, 4))
    extreme = np.array([[[-50, -20, -1e-4, 0], [1e-4, 1, 20, 50], [-3, 3, -0.5, 0.5]]], np.float32)
    for x in _inputs((5, 3, 4)) + [extreme]:
        run(model, x)


def test_dropout_is_removed(run):
    model = _seq(L.Dense(8), L.Dropout(0.5), L.Dense(2), shape=(4,))
    proto, _, _ = run(model, np.ones((3, 4), np.float32))
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["MatMul", "Add", "MatMul", "Add"]


def test_flatten_reshape_rescaling(run):
    model = _seq(L.Rescaling(1 / 255, offset=-0.5), L.Reshape((-1, 3)), L.Flatten(), L.Reshape((2, 6)),
                 L.Rescaling(2.0), shape=(4, 3))
    for x in _inputs((5, 4, 3)):
        run(model, x * 255)


# ---------------------------------------------------------------- normalization
@pytest.mark.parametrize("axis, center, scale", [(-1, True, True), (1, True, True), (-1, False, False)])
def test_batch_normalization_uses_moving_statistics(run, axis, center, scale):
    model = _seq(L.BatchNormalization(axis=axis, center=center, scale=scale), shape=(3, 4))
    bn = model.layers[0]
    r = np.random.default_rng(1)
    size = bn.state["moving_mean"].shape
    bn.state["moving_mean"][...] = r.normal(size=size)
    bn.state["moving_variance"][...] = r.uniform(0.5, 2.0, size=size)
    for k in bn.params:
        bn.params[k][...] = r.normal(size=size)
    x = r.normal(size=(6, 3, 4)).astype(np.float32)
    _, _, (got,) = run(model, x)
    # The inference formula, written out: (x - mean) / sqrt(var + eps) * gamma + beta.
    shape = [1, 1, 1]
    shape[axis] = -1
    mean, var = bn.state["moving_mean"].reshape(shape), bn.state["moving_variance"].reshape(shape)
    ref = (x - mean) / np.sqrt(var + 1e-3)
    if scale:
        ref = ref * bn.params["gamma"].reshape(shape)
    if center:
        ref = ref + bn.params["beta"].reshape(shape)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_batch_normalization_after_training(run, toy_data):
    x, y = toy_data
    model = _seq(L.Dense(8), L.BatchNormalization(), L.ReLU(), L.Dense(3, activation="softmax"), shape=(4,))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=0)
    assert not np.allclose(model.layers[1].state["moving_mean"], 0)
    run(model, x)


@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2]}, {"axis": 1}, {"rms_scaling": True}, {"center": False},
                                    {"scale": False, "center": False}])
@pytest.mark.filterwarnings("ignore:LayerNormalization. `rms_scaling=True` is deprecated:UserWarning")
def test_layer_normalization(run, kwargs):
    model = _seq(L.LayerNormalization(**kwargs), shape=(3, 5))
    ln = model.layers[0]
    r = np.random.default_rng(2)
    for k in ln.params:
        ln.params[k][...] = r.normal(size=ln.params[k].shape)
    for x in _inputs((4, 3, 5)):
        run(model, x)


# ---------------------------------------------------------------- convolution and pooling
@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3, "padding": "valid"},
    {"kernel_size": 3, "padding": "same"},
    {"kernel_size": (2, 4), "padding": "same", "strides": 2},  # asymmetric "same": more zeros after
    {"kernel_size": 3, "padding": "same", "strides": (2, 3)},
    {"kernel_size": 3, "padding": "valid", "strides": 2, "activation": "relu"},
    {"kernel_size": 3, "padding": "same", "dilation_rate": 2},
    {"kernel_size": (3, 2), "padding": "valid", "dilation_rate": (2, 1), "use_bias": False},
])
def test_conv2d(run, kwargs):
    model = _seq(L.Conv2D(4, **kwargs), shape=(7, 8, 3))
    model.layers[0].params.get("bias", np.zeros(1))[...] = 0.1
    for x in _inputs((3, 7, 8, 3)):
        run(model, x)


def test_conv2d_same_padding_is_asymmetric_as_in_keras(run):
    # Input 4 wide, kernel 2, stride 2: Keras pads 0 before and 0 after (out 2); input 5
    # wide, kernel 2, stride 2: one zero, after. A kernel of ones sums each window.
    model = _seq(L.Conv2D(1, (1, 2), strides=(1, 2), padding="same", use_bias=False, kernel_initializer="ones"),
                 shape=(1, 5, 1))
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 1, 5, 1)
    _, _, (got,) = run(model, x)
    np.testing.assert_array_equal(got.ravel(), [1 + 2, 3 + 4, 5])


@pytest.mark.parametrize("kind", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("kwargs", [{}, {"pool_size": 3, "strides": 2, "padding": "same"},
                                    {"pool_size": (2, 3), "strides": 1, "padding": "same"},
                                    {"pool_size": 3, "strides": (1, 2)}])
def test_pooling2d(run, kind, kwargs):
    model = _seq(kind(**kwargs), shape=(8, 7, 2))
    for x in _inputs((3, 8, 7, 2)):
        run(model, x)


def test_average_pooling_same_leaves_padding_out_of_the_mean(run):
    # Keras: the last window of [1, 2, 3, 4, 5] with pool 2, "same", holds only 5.
    _, _, (got,) = run(_seq(L.AveragePooling1D(2, padding="same"), shape=(5, 1)),
                       np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1))
    np.testing.assert_array_equal(got.ravel(), [1.5, 3.5, 5.0])
    _, _, (got,) = run(_seq(L.AveragePooling2D(2, padding="same"), shape=(3, 3, 1)),
                       np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1))
    np.testing.assert_array_equal(got[0, :, :, 0], [[(1 + 2 + 4 + 5) / 4, (3 + 6) / 2], [(7 + 8) / 2, 9]])


@pytest.mark.parametrize("kind", [L.MaxPooling1D, L.AveragePooling1D])
@pytest.mark.parametrize("kwargs", [{}, {"pool_size": 3, "strides": 2, "padding": "same"}, {"pool_size": 3, "strides": 1}])
def test_pooling1d(run, kind, kwargs):
    model = _seq(kind(**kwargs), shape=(9, 2))
    for x in _inputs((3, 9, 2)):
        run(model, x)


@pytest.mark.parametrize("layer, shape", [
    (L.GlobalAveragePooling2D(), (5, 4, 3)), (L.GlobalMaxPooling2D(), (5, 4, 3)),
    (L.GlobalAveragePooling1D(), (6, 3)), (L.GlobalMaxPooling1D(), (6, 3)),
    (L.GlobalAveragePooling1D(keepdims=True), (6, 3)), (L.GlobalMaxPooling1D(keepdims=True), (6, 3)),
], ids=lambda v: getattr(v, "name", str(v)))
def test_global_pooling(run, layer, shape):
    model = _seq(layer, shape=shape)
    for x in _inputs((4,) + shape):
        run(model, x)


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3}, {"kernel_size": 3, "padding": "same"}, {"kernel_size": 4, "padding": "same", "strides": 2},
    {"kernel_size": 3, "padding": "causal"}, {"kernel_size": 3, "padding": "causal", "dilation_rate": 2},
    {"kernel_size": 2, "padding": "same", "dilation_rate": 3, "activation": "tanh"},
])
def test_conv1d(run, kwargs):
    model = _seq(L.Conv1D(4, **kwargs), shape=(10, 3))
    for x in _inputs((3, 10, 3)):
        run(model, x)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 3, "padding": "causal", "dilation_rate": 2},
                                    {"kernel_size": 4, "padding": "same", "strides": 2},
                                    {"kernel_size": 3, "padding": "valid", "strides": 2}])
def test_conv1d_with_a_varying_length(run, kwargs):
    model = _seq(L.Conv1D(4, **kwargs), L.Conv1D(2, 2, padding="same"), L.GlobalAveragePooling1D(), shape=(None, 3))
    proto, _, _ = run(model, np.ones((2, 8, 3), np.float32))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "input_dim1", 3]
    for steps in (5, 8, 13, 20):
        run(model, np.random.default_rng(steps).normal(size=(3, steps, 3)).astype(np.float32))


def test_embedding(run):
    model = _seq(L.Embedding(10, 4), L.Flatten(), L.Dense(2), shape=(5,))
    ids = np.random.default_rng(0).integers(0, 10, size=(6, 5))
    _, _, (got,) = run(model, ids.astype(np.float32))
    np.testing.assert_allclose(got, model.predict(ids, verbose=0), atol=TOL)
    run(model, np.full((2, 5), 9, np.float32))


# ---------------------------------------------------------------- recurrent layers
def _set_random_weights(layer, seed):
    r = np.random.default_rng(seed)
    for v in layer.params.values():
        v[...] = 0.5 * r.normal(size=v.shape)


@pytest.mark.parametrize("kind", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("kwargs", [{}, {"return_sequences": True}, {"go_backwards": True, "return_sequences": True},
                                    {"go_backwards": True}, {"use_bias": False}, {"return_state": True},
                                    {"activation": "relu"}, {"dropout": 0.3, "recurrent_dropout": 0.3}])
def test_recurrent_layers(run, kind, kwargs):
    if kind is L.SimpleRNN and "return_state" in kwargs:
        kwargs = {**kwargs, "return_sequences": True}
    x_in = npnet.Input(shape=(None, 3), name="seq")
    out = kind(4, **kwargs)(x_in)
    model = npnet.Model(x_in, out)
    _set_random_weights(model.layers[1], 0)
    for steps in (1, 6, 11):
        for x in _inputs((3, steps, 3), seed=steps):
            run(model, x)


def test_gru_reset_before(run):
    model = _seq(L.GRU(4, reset_after=False, return_sequences=True), L.GRU(3, recurrent_activation="tanh"),
                 shape=(5, 2))
    for layer in model.layers:
        _set_random_weights(layer, 1)
    for x in _inputs((4, 5, 2)):
        run(model, x)


def test_lstm_with_initial_states_and_returned_states(run):
    seq, h0, c0 = npnet.Input(shape=(5, 3), name="seq"), npnet.Input(shape=(4,), name="h0"), npnet.Input(shape=(4,), name="c0")
    y, h, c = L.LSTM(4, return_sequences=True, return_state=True, name="lstm")(seq, initial_state=[h0, c0])
    last = L.GRU(4, name="gru")(y, initial_state=[h])
    model = npnet.Model([seq, h0, c0], [y, c, last])
    for layer in model.layers:
        _set_random_weights(layer, 2)
    r = np.random.default_rng(3)
    run(model, [r.normal(size=(2, 5, 3)), r.normal(size=(2, 4)), r.normal(size=(2, 4))])


def test_recurrent_activation_onnx_operators_lack_exports_as_a_scan(run):
    model = _seq(L.LSTM(3, activation="softplus", name="lstm"), shape=(4, 2))
    proto, _, _ = run(model, np.random.default_rng(0).normal(size=(3, 4, 2)))
    assert "Scan" in {n.op_type for n in proto.graph.node}


# ---------------------------------------------------------------- merging
def _two(shape_a, shape_b=None):
    return npnet.Input(shape=shape_a, name="a"), npnet.Input(shape=shape_b or shape_a, name="b")


@pytest.mark.parametrize("kind", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum, L.Concatenate])
def test_merge_layers(run, kind):
    a, b = _two((3, 4))
    if kind is L.Subtract:
        out = kind()([a, b])
        xs = [np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32) for _ in range(2)]
    else:
        c = npnet.Input(shape=(3, 4), name="c")
        out = kind()([a, b, c])
        a = [a, b, c]
        xs = [np.random.default_rng(i).normal(size=(5, 3, 4)).astype(np.float32) for i in range(3)]
    model = npnet.Model(a if isinstance(a, list) else [a, b], out)
    run(model, xs)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concatenate_axes(run, axis):
    a, b = _two((3, 4), (3, 4))
    model = npnet.Model([a, b], L.Concatenate(axis=axis)([a, b]))
    r = np.random.default_rng(0)
    run(model, [r.normal(size=(2, 3, 4)).astype(np.float32), r.normal(size=(2, 3, 4)).astype(np.float32)])


@pytest.mark.parametrize("shapes, axes", [(((4,), (4,)), 1), (((3, 4), (5, 4)), 2), (((4, 3), (5, 4)), (1, 2)),
                                          (((3, 4), (3, 5)), 1), (((2, 3, 4), (4, 2)), (3, 1))])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot(run, shapes, axes, normalize):
    a, b = _two(*shapes)
    model = npnet.Model([a, b], L.Dot(axes=axes, normalize=normalize)([a, b]))
    r = np.random.default_rng(0)
    xs = [r.normal(size=(3,) + s).astype(np.float32) for s in shapes]
    run(model, xs)
    run(model, [np.zeros_like(v) for v in xs])  # normalize: the norm is clamped, no NaN


# ---------------------------------------------------------------- models
def test_functional_multi_input_multi_output_shared_layers(run):
    a, b = _two((6,))
    shared = L.Dense(5, activation="tanh", name="shared")
    ha, hb = shared(a), shared(b)
    joined = L.Concatenate(name="joined")([ha, hb, L.Subtract(name="diff")([ha, hb])])
    score = L.Dense(1, activation="sigmoid", name="score")(joined)
    probs = L.Dense(3, activation="softmax", name="probs")(L.Dropout(0.3)(joined))
    model = npnet.Model([a, b], [score, probs], seed=0)
    r = np.random.default_rng(0)
    xs = [r.normal(size=(4, 6)).astype(np.float32), r.normal(size=(4, 6)).astype(np.float32)]
    proto, sess, _ = run(model, xs)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["score", "probs"]
    # The shared kernel is stored once.
    assert sum(init.name.startswith("shared/kernel") for init in proto.graph.initializer) == 1


def test_functional_with_dict_inputs_and_outputs(run):
    a, b = _two((3,))
    h = L.Add()([L.Dense(4)(a), L.Dense(4)(b)])
    model = npnet.Model({"left": a, "right": b}, {"sum": h, "relu": L.ReLU()(h)})
    r = np.random.default_rng(0)
    xs = {"left": r.normal(size=(2, 3)), "right": r.normal(size=(2, 3))}
    proto, _, _ = run(model, xs)
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["sum", "relu"]


def test_model_output_that_is_an_input_or_repeated(run):
    a, b = _two((3,))
    h = L.Dense(2, name="head")(a)
    model = npnet.Model([a, b], [h, b, h])
    r = np.random.default_rng(0)
    proto, _, got = run(model, [r.normal(size=(2, 3)), r.normal(size=(2, 3))])
    assert len({o.name for o in proto.graph.output}) == 3
    np.testing.assert_array_equal(got[0], got[2])


class _Net(npnet.Model):
    def __init__(self):
        super().__init__(name="net")
        self.shared = L.Dense(4, activation="tanh")
        self.add = L.Add()
        self.score = L.Dense(2)
        self.probs = L.Dense(3, activation="softmax")

    def call(self, inputs, training=False):
        h = self.add([self.shared(inputs["a"]), self.shared(inputs["b"])])
        return {"score": self.score(h), "probs": self.probs(h)}


def test_subclassed_model(run):
    model = _Net()
    r = np.random.default_rng(0)
    xs = {"a": r.normal(size=(5, 3)).astype(np.float32), "b": r.normal(size=(5, 3)).astype(np.float32)}
    model.predict(xs, verbose=0)
    proto, _, _ = run(model, xs)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["score", "probs"]


def test_nested_models_and_cnn(run):
    block = npnet.Sequential([L.Conv2D(4, 3, padding="same", activation="relu"), L.BatchNormalization(),
                              L.MaxPooling2D()], name="block")
    model = _seq(L.Rescaling(1 / 255), block, L.Conv2D(8, 3, activation="relu"), L.GlobalAveragePooling2D(),
                 L.Dropout(0.2), L.Dense(15, activation="softmax"), shape=(12, 12, 1))
    x = np.random.default_rng(0).integers(0, 256, size=(4, 12, 12, 1)).astype(np.float32)
    proto, _, _ = run(model, x)
    assert [o.name for o in proto.graph.output] == [model.layers[-1].name]


def test_dynamic_batch(run, ort, tmp_path):
    model = _seq(L.Dense(3, activation="relu"), L.Dense(2), shape=(4,))
    proto, sess, _ = run(model, np.ones((2, 4), np.float32))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for n in (1, 5, 64):
        x = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
        (got,) = sess.run(None, {"input": x})
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=TOL)


def test_fixed_batch(run, ort):
    model = _seq(L.Dense(2), shape=(4,))
    proto, sess, _ = run(model, np.ones((1, 4), np.float32), dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    with pytest.raises(Exception, match="[Dd]imension|[Ss]hape|index"):
        sess.run(None, {"input": np.ones((2, 4), np.float32)})
    a = npnet.Input(shape=(4,), batch_size=3, name="x")
    proto, _, _ = run(npnet.Model(a, L.Dense(2)(a)), np.ones((3, 4), np.float32), dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3


def test_input_names(run, tmp_path):
    a, b = _two((3,))
    model = npnet.Model([a, b], L.Add(name="total")([a, b]))
    proto, _, _ = run(model, [np.ones((2, 3)), np.ones((2, 3))], input_names=["x0", "x1"])
    assert [i.name for i in proto.graph.input] == ["x0", "x1"]
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"`input_names` must hold 2 non-empty strings"):
        npnet.onnx.export(model, path, input_names=["x0"])
    with pytest.raises(ValueError, match="`input_names` must be unique"):
        npnet.onnx.export(model, path, input_names=["x", "x"])
    with pytest.raises(TypeError, match="`input_names` must be a list"):
        npnet.onnx.export(model, path, input_names="x")


def test_weights_round_trip_bit_identical(run, onnx, tmp_path):
    from onnx import numpy_helper

    model = _seq(L.Conv2D(3, 2), L.Flatten(), L.Dense(4), L.BatchNormalization(), shape=(4, 4, 2))
    proto, _, _ = run(model, np.ones((2, 4, 4, 2), np.float32))
    loaded = onnx.load(str(tmp_path / "model.onnx"))
    before = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in loaded.graph.initializer}
    assert before.keys() == after.keys()
    for k in before:
        assert before[k].dtype == after[k].dtype and before[k].tobytes() == after[k].tobytes()
    dense = model.layers[2]
    assert after[f"{dense.name}/kernel"].tobytes() == dense.params["kernel"].tobytes()
    assert after[f"{dense.name}/bias"].tobytes() == dense.params["bias"].tobytes()
    conv = model.layers[0]
    kernel = after[f"{conv.name}/kernel"]
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, conv.params["kernel"].transpose(3, 2, 0, 1))


# ---------------------------------------------------------------- refusals
class _Unconverted(L.Layer):
    def forward(self, x, training=False):
        return self._enter(x) + 1.0, ()

    def backward(self, cache, dy):
        return dy


def test_layer_without_converter_is_refused_by_name(onnx, tmp_path):
    x = npnet.Input(shape=(5, 4), name="x")
    model = npnet.Model(x, _Unconverted(name="plain")(x))
    with pytest.raises(ValueError, match=r"no converter for _Unconverted 'plain' \(class [\w.]*test_onnx\._Unconverted\)"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


class _Cube(L.Layer):
    def forward(self, x, training=False):
        x = self._enter(x)
        return x ** 3, x

    def backward(self, cache, dy):
        return 3 * cache ** 2 * dy


def test_custom_layer_and_custom_activation_are_refused_until_registered(run, tmp_path):
    model = _seq(L.Dense(3, activation=_Cube(name="cube")), shape=(2,))
    with pytest.raises(ValueError, match=r"no converter for _Cube 'cube'"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
    from npnet.onnx._graph import _CONVERTERS

    @npnet.onnx.register_converter(_Cube)
    def _cube(ctx, layer, inputs, outputs, options):
        return ctx.node("Pow", [inputs[0], ctx.const(3.0)])

    try:
        run(model, np.random.default_rng(0).normal(size=(4, 2)))
    finally:
        del _CONVERTERS[_Cube]


def test_register_converter_rejects_bad_arguments():
    with pytest.raises(TypeError, match="expected a layer class"):
        npnet.onnx.register_converter("Dense")
    with pytest.raises(TypeError, match="expected a function"):
        npnet.onnx.register_converter(_Cube)(3)


class _Outside(npnet.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(3)

    def call(self, x, training=False):
        return self.dense(x * 2.0)


def test_array_computed_outside_layers_is_refused(onnx, tmp_path):
    model = _Outside()
    model.predict(np.ones((2, 4), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"Dense '.*' receives an array computed outside npnet's layers"):
        npnet.onnx.export(model, tmp_path / "m.onnx")


def test_unbuilt_model_is_refused(onnx, tmp_path):
    with pytest.raises(ValueError, match="is not built"):
        npnet.onnx.export(npnet.Sequential([L.Dense(2)]), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="has not been called yet"):
        npnet.onnx.export(_Net(), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="expected an npnet model"):
        npnet.onnx.export(L.Dense(2), tmp_path / "m.onnx")


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_chosen_opset_is_honoured(run, opset):
    model = _seq(L.Conv1D(2, 3, padding="same"), L.LayerNormalization(), L.GlobalMaxPooling1D(), L.Dense(2),
                 shape=(6, 3))
    proto, _, _ = run(model, _inputs((3, 6, 3))[0], opset=opset)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]


def test_default_opset(run):
    proto, _, _ = run(_seq(L.Dense(2), shape=(3,)), np.ones((1, 3), np.float32))
    assert proto.opset_import[0].version == npnet.onnx.DEFAULT_OPSET == 18


def test_unsupported_opset_is_refused(onnx, tmp_path):
    model = _seq(L.Dense(2), shape=(3,))
    with pytest.raises(ValueError, match=r"opset 12 cannot express npnet's layers; the converters need opset >= 13"):
        npnet.onnx.export(model, tmp_path / "m.onnx", opset=12)
    latest = onnx.defs.onnx_opset_version()
    with pytest.raises(ValueError, match=f"opset {latest + 1} is newer than the installed onnx package knows"):
        npnet.onnx.export(model, tmp_path / "m.onnx", opset=latest + 1)
    with pytest.raises(TypeError, match="opset"):
        npnet.onnx.export(model, tmp_path / "m.onnx", opset="18")


def test_missing_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # "import onnx" now raises ImportError
    model = _seq(L.Dense(2), shape=(3,))
    with pytest.raises(ImportError, match=r'pip install "npnet\[onnx\]"'):
        npnet.onnx.export(model, tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=r'pip install "npnet\[onnx\]"'):
        model.export(tmp_path / "m.onnx")


def test_importing_npnet_does_not_import_onnx():
    code = "import sys, npnet, npnet.onnx; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_model_export_method(run, ort, tmp_path):
    model = _seq(L.Dense(2, activation="softmax"), shape=(3,))
    path = tmp_path / "via_method.onnx"
    assert model.export(path) is None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], model.predict(x, verbose=0), atol=TOL)
    model.export(str(path), format="onnx", opset_version=17)
    assert _require("onnx").load(str(path)).opset_import[0].version == 17
    with pytest.raises(ValueError, match="unsupported format 'tf_saved_model'"):
        model.export(path, format="tf_saved_model")
    with pytest.raises(ValueError, match="`opset` 17 and `opset_version` 18 differ"):
        model.export(path, opset=17, opset_version=18)


def test_deploy_example_exports_a_trained_model(ort, tmp_path, capsys):
    import pathlib
    import runpy

    script = pathlib.Path(__file__).resolve().parents[1] / "examples" / "deploy_onnx.py"
    main = runpy.run_path(str(script))["main"]
    result = main(["--dataset", "digits", "--epochs", "2", "--batch", "300", "--repeats", "1", "--out", str(tmp_path)])
    assert result["max_abs_diff"] <= TOL
    assert result["accuracy"] > 0.5
    assert os.path.exists(result["path"])
    assert "max |onnxruntime - predict|" in capsys.readouterr().out


def test_fully_convolutional_model_on_images_of_any_size(run):
    x = npnet.Input(shape=(None, None, 2))
    h = L.Conv2D(3, 3, padding="same", strides=2, activation="relu")(x)
    h = L.MaxPooling2D()(h)
    h = L.AveragePooling2D(padding="same")(L.Conv2D(4, 2)(h))
    model = npnet.Model(x, L.Dense(2)(L.GlobalAveragePooling2D()(h)))
    r = np.random.default_rng(0)
    for size in (9, 16, 23):
        run(model, r.normal(size=(3, size, size + 3, 2)).astype(np.float32))


class _Halved(L.Dense):
    """A Dense layer whose forward halves the result: Dense's converter must not be used."""

    def forward(self, x, training=False):
        y, cache = super().forward(x, training)
        return y * 0.5, cache

    def backward(self, cache, dy):
        return super().backward(cache, dy * 0.5)


class _Named(L.Dense):
    """A subclass that changes no computation exports with Dense's converter."""


def test_a_subclass_that_redefines_forward_is_refused(run, tmp_path):
    model = _seq(_Halved(3, name="halved"), shape=(4,))
    with pytest.raises(ValueError, match=r"_Halved 'halved' redefines forward\(\) of Dense"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
    for xs in _inputs((5, 4)):
        run(_seq(_Named(3, activation="relu"), shape=(4,)), xs)


@pytest.mark.parametrize("target", [(-1, 2), (2, -1)])
def test_reshape_of_a_varying_length(run, target):
    x = npnet.Input(shape=(None, 4))
    model = npnet.Model(x, L.Dense(3)(L.Reshape(target)(x)) if target[0] == -1 else L.Reshape(target)(x))
    r = np.random.default_rng(0)
    for steps in (2, 5):
        run(model, r.normal(size=(3, steps, 4)).astype(np.float32))



def test_a_model_that_cannot_take_the_placeholder_length_is_refused_with_advice(onnx, tmp_path):
    x = npnet.Input(shape=(None, 2))
    model = npnet.Model(x, L.Reshape((-1, 5), name="fives")(x))  # the length must be a multiple of 5
    with pytest.raises(ValueError, match=r"tracing Functional .* on placeholder inputs of shapes \[\(2, 16, 2\)\] "
                                         r"\(each axis left None .* size 16\) failed: Reshape 'fives': cannot "
                                         r"reshape .* give those axes a size in npnet.Input"):
        npnet.onnx.export(model, tmp_path / "m.onnx")


def test_a_u_net_skip_connection_traces_on_a_varying_size(run):
    x = npnet.Input(shape=(None, None, 1))
    down = L.Conv2D(2, 3, strides=2, padding="same", activation="relu")(x)
    deeper = L.Conv2D(2, 3, strides=2, padding="same", activation="relu")(down)
    up = L.Conv2DTranspose(2, 3, strides=2, padding="same")(deeper)
    y = L.Conv2D(1, 1)(L.Concatenate()([down, up]))
    model = npnet.Model(x, y)
    for size in (8, 12):
        run(model, np.random.default_rng(size).normal(size=(2, size, size, 1)).astype(np.float32))


@pytest.mark.parametrize("pool", [L.MaxPooling1D, L.AveragePooling1D])
@pytest.mark.parametrize("size, strides", [(1, 2), (2, 3), (3, 2), (1, 3)])
def test_same_pooling_on_a_varying_length_with_any_window_and_stride(run, pool, size, strides):
    model = _seq(pool(size, strides=strides, padding="same"), shape=(None, 3))
    for n in range(3, 10):  # below zero, where padding with zeros would change a maximum
        run(model, np.random.default_rng(n).normal(size=(2, n, 3)).astype(np.float32) - 3.0)


@pytest.mark.parametrize("pool", [L.MaxPooling2D, L.AveragePooling2D])
def test_same_pooling_on_images_of_varying_size_with_a_window_smaller_than_its_stride(run, pool):
    model = _seq(pool((1, 2), strides=(2, 3), padding="same"), shape=(None, None, 2))
    for h, w in [(3, 4), (5, 7), (8, 8)]:
        run(model, np.random.default_rng(h).normal(size=(2, h, w, 2)).astype(np.float32) - 3.0)


class _InPlace(npnet.Model):
    def __init__(self, where):
        super().__init__()
        self.where, self.d1, self.d2 = where, L.Dense(4), L.Dense(2)

    def call(self, x, training=False):
        if self.where == "input":
            x *= 2.0
        h = self.d1(x)
        if self.where == "output":
            h += x
        return self.d2(h)


@pytest.mark.parametrize("where", ["output", "input"])
def test_in_place_arithmetic_inside_call_is_refused_and_changes_nothing(onnx, tmp_path, where):
    model = _InPlace(where)
    xs = np.ones((3, 4), np.float32)
    model(xs.copy())
    with pytest.raises(ValueError, match=r"_InPlace '.*' changes an array in place inside call\(\)"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    assert model.predict(xs.copy(), verbose=0).shape == (3, 2)  # the arrays are writable again


class _AlwaysTraining(npnet.Model):
    def __init__(self, layer):
        super().__init__()
        self.inner = layer

    def call(self, x, training=False):
        return self.inner(x, training=True)


@pytest.mark.parametrize("layer", [lambda: L.BatchNormalization(name="bn"), lambda: L.Dropout(0.5, name="bn")])
def test_a_call_with_training_true_inside_call_is_refused(onnx, tmp_path, layer):
    model = _AlwaysTraining(layer())
    model(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"'bn' is called with training=True \(in a functional model's node, or inside call\(\)\)"):
        npnet.onnx.export(model, tmp_path / "m.onnx")


def test_a_functional_node_with_a_fixed_training_flag(run, tmp_path):
    x = npnet.Input(shape=(4,))
    bn = L.BatchNormalization(name="bn")
    model = npnet.Model(x, bn(L.Dense(3)(x), training=False))
    bn.state["moving_mean"][...] = 0.5
    run(model, np.random.default_rng(0).normal(size=(3, 4)))  # inference mode: exports
    model = npnet.Model(x, L.Dropout(0.5, name="mc")(L.Dense(3)(x), training=True))
    with pytest.raises(ValueError, match=r"Dropout 'mc' is called with training=True"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
