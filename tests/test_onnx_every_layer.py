# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""Every layer exports, in every configuration its tests use.

Each case of the layer harness (``tests/layers/test_layer_harness.py``) becomes a
functional model around its layer, with non-trivial weights (and BatchNormalization with
non-trivial moving statistics). The model is exported at the lowest and at the default
opset, run in onnxruntime (CPU) and compared with ``model.predict`` on random inputs at
two batch sizes and on edge cases (larger values, zeros): max abs difference <= 1e-5 in
float32. The configurations the harness leaves to other files (the wrappers, masks
reaching a recurrent layer, the recurrent layers' other activations) are listed below,
and so are whole models: Sequential, functional with shared layers, several inputs and
outputs, subclassed.

A layer class whose converter is not written yet is listed in ``PENDING``: each of its
cases must be refused with the exporter's "no converter" error, so this file fails as
soon as a converter lands and the set has to shrink. ``REFUSED`` does the same for
configurations that a layer's converter refuses today.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import npnet

from .layers.test_layer_harness import CASES
from .test_onnx import TOL, onnx, ort  # noqa: F401  (fixtures)

L = npnet.layers

# The deprecated rms_scaling warns on every construction; its warning is tested with the layer.
pytestmark = pytest.mark.filterwarnings("ignore:LayerNormalization. `rms_scaling=True` is deprecated:UserWarning")

#: Layer classes without an ONNX converter yet: their cases must raise the exporter's
#: "no converter" ValueError naming them. Remove a class when its converter lands.
PENDING: set[str] = set()

_MASKED = r"export to ONNX: {} '[^']+' is called with a mask, and its converter does not export masks yet"
_ACTIVATION = r"export to ONNX: {} '[^']+' has (recurrent_)?activation '\w+', which ONNX's recurrent operators cannot"

#: Configurations (keys of EXTRA below) that a converter refuses today, with the refusal
#: expected. Remove an entry when the converter exports it.
REFUSED: dict[str, str] = {}

#: Public classes of npnet.layers that are not layers to export: the base class, and the
#: layer behind npnet.Input, which becomes a graph input of every exported model.
NOT_EXPORTED = {"Layer": "the base class of every layer",
                "InputLayer": "the placeholder of npnet.Input: a graph input, not a computation"}

_RECURRENT = (L.SimpleRNN, L.LSTM, L.GRU)
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


# ---------------------------------------------------------------- helpers
def _randomize(model, seed=0, scale=0.5):
    """Non-trivial weights: parameters ~ scale N(0, 1); state (BatchNormalization's moving
    mean and variance) ~ U(0.5, 2), positive so that a variance stays a variance."""
    r = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w[...] = scale * r.normal(size=w.shape)
    for w in model.non_trainable_weights:
        if np.issubdtype(w.dtype, np.floating):
            w[...] = r.uniform(0.5, 2.0, size=w.shape)
    return model


def _as_list(value):
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _export_and_compare(model, batches, path, opset=None):
    """Export ``model`` to ``path``, run each batch (a list of arrays, or a dict) in
    onnxruntime and compare every output with ``predict``; return the largest difference."""
    import onnxruntime

    proto = npnet.onnx.export(model, path, opset=opset)
    assert proto.opset_import[0].version == (opset or npnet.onnx.DEFAULT_OPSET)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for xs in batches:
        arrays = list(xs.values()) if isinstance(xs, dict) else xs
        feeds = {i.name: np.asarray(a, dtype=_ORT_DTYPES[i.type]) for i, a in zip(sess.get_inputs(), arrays)}
        assert len(feeds) == len(arrays)
        got = sess.run(None, feeds)
        want = _as_list(model.predict(xs if isinstance(xs, dict) or len(xs) > 1 else xs[0], verbose=0))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            assert g.dtype == np.float32 and w.dtype == np.float32
            assert np.all(np.isfinite(w))
            diff = float(np.abs(g - w).max()) if g.size else 0.0
            assert diff <= TOL, f"max |onnxruntime - predict| = {diff:.3g} on inputs of shapes {[a.shape for a in arrays]}"
            worst = max(worst, diff)
    return worst


def _batches(shapes, ids=None, seed=0):
    """Random batches of 1 and 5 samples, then edge cases: 4x larger values, zeros. For
    ids (an Embedding's input): random ids, then the largest id and id 0."""
    r = np.random.default_rng(seed)

    def batch(n, kind):
        out = []
        for s in shapes:
            full = (n,) + tuple(s)
            if ids is not None:
                a = r.integers(0, ids, size=full) if kind == "random" else np.full(full, ids - 1 if kind == "large" else 0)
            else:
                a = {"random": r.normal(size=full), "large": 4 * r.normal(size=full), "zeros": np.zeros(full)}[kind]
            out.append(a.astype(np.float32))
        return out

    return [batch(1, "random"), batch(5, "random"), batch(3, "large"), batch(2, "zeros")]


# ---------------------------------------------------------------- the harness cases
def _harness_model(case):
    """A functional model around the case's layer, built on the case's example shape:
    a merge layer takes the list of inputs, a recurrent layer its initial states through
    ``initial_state=``, MultiHeadAttention its query, value and key."""
    layer = case.make()
    several = isinstance(case.example, list)
    shapes = [tuple(s) for s in (case.example if several else [case.example])]
    inputs = [npnet.Input(shape=s, name=f"x{i}") for i, s in enumerate(shapes)]
    if not several:
        out = layer(inputs[0])
    elif isinstance(layer, _RECURRENT):
        out = layer(inputs[0], initial_state=inputs[1:])
    elif isinstance(layer, L.MultiHeadAttention):
        out = layer(*inputs)
    else:
        out = layer(inputs)
    model = npnet.Model(inputs if several else inputs[0], out, name="harness")
    return _randomize(model), layer, shapes


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_harness_case_exports_and_matches_predict(key, tmp_path, onnx, ort):
    case = CASES[key]
    model, layer, shapes = _harness_model(case)
    name = type(layer).__name__
    if name in PENDING:
        with pytest.raises(ValueError, match=rf"export to ONNX: no converter for {name} '{re.escape(layer.name)}' "):
            npnet.onnx.export(model, tmp_path / "m.onnx")
        assert not (tmp_path / "m.onnx").exists()
        return
    for opset in (npnet.onnx.MIN_OPSET, None):
        _export_and_compare(model, _batches(shapes, case.ids), tmp_path / f"m{opset}.onnx", opset)


#: Harness cases whose layer also takes a first sample axis of varying size (the length of
#: a sequence, or the features of an element-wise layer): exported with that axis left
#: None in npnet.Input, they must match predict at two lengths.
VARYING = {
    "Activation", "AveragePooling1D_same", "AveragePooling1D_valid", "Conv1D_causal_dilated", "Conv1D_causal_stride",
    "Conv1D_dilated", "Conv1D_regularized", "Conv1D_same_stride", "Conv1D_valid", "Dense_3d", "Dropout_infer",
    "Dropout_train", "ELU", "Embedding", "Embedding_2d_ids_masked", "GRU", "GRU_dropout_train", "GRU_initial_state",
    "GRU_reset_before_sequences", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalMaxPooling1D_keepdims", "LSTM",
    "LSTM_dropout_train", "LSTM_initial_state", "LSTM_regularized", "LSTM_sequences", "LeakyReLU", "Linear", "Masking",
    "MaxPooling1D_same", "MaxPooling1D_tile", "ReLU", "Rescaling", "Sigmoid", "SimpleRNN", "SimpleRNN_initial_state",
    "SimpleRNN_sequences_backwards", "Softmax", "Softmax_axis1", "Softplus", "Swish", "Tanh", "UpSampling1D",
    "ZeroPadding1D",
}


@pytest.mark.parametrize("key", sorted(VARYING))
def test_harness_cases_with_a_varying_length(key, tmp_path, onnx, ort):
    case = CASES[key]
    layer = case.make()
    shapes = [tuple(s) for s in (case.example if isinstance(case.example, list) else [case.example])]
    seq = npnet.Input(shape=(None,) + shapes[0][1:], name="seq")
    states = [npnet.Input(shape=s, name=f"state{i}") for i, s in enumerate(shapes[1:])]
    out = layer(seq, initial_state=states) if states else layer(seq)
    model = _randomize(npnet.Model([seq, *states] if states else seq, out))
    name = type(layer).__name__
    if name in PENDING:
        with pytest.raises(ValueError, match=rf"export to ONNX: no converter for {name} '"):
            npnet.onnx.export(model, tmp_path / "m.onnx")
        return
    path = tmp_path / "m.onnx"
    for length in (shapes[0][0], shapes[0][0] + 4):
        _export_and_compare(model, _batches([(length,) + shapes[0][1:], *shapes[1:]], case.ids), path)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_param  # both axes symbolic in the graph


# ---------------------------------------------------------------- configurations outside the harness
@dataclass
class Extra:
    classes: tuple[str, ...]  # the public layer classes the model exercises
    build: Callable[[], npnet.Model]
    shapes: list[tuple[int, ...]]
    ids: int | None = None
    # the weights' scale: unbounded activations need a recurrence that does not blow up,
    # or float32 rounding alone exceeds an absolute 1e-5
    scale: float = 0.5


def _one(layer_fn, shape):
    def build():
        x = npnet.Input(shape=shape, name="x")
        return npnet.Model(x, layer_fn(x))
    return build


def _bidirectional(kind, merge_mode, return_sequences):
    return Extra(("Bidirectional", kind.__name__), _one(
        lambda x: L.Bidirectional(kind(3, return_sequences=return_sequences), merge_mode=merge_mode)(x), (6, 2)),
        [(6, 2)])


def _bidirectional_states():
    seq, h_f, h_b = npnet.Input((6, 2), name="seq"), npnet.Input((3,), name="h_f"), npnet.Input((3,), name="h_b")
    summed = L.Bidirectional(L.GRU(3), merge_mode="sum")(seq, initial_state=[h_f, h_b])
    # merge_mode=None: both sequences, then each direction's states (h and c of an LSTM)
    both = L.Bidirectional(L.LSTM(3, return_sequences=True, return_state=True), merge_mode=None)(seq)
    assert len(both) == 6
    return npnet.Model([seq, h_f, h_b], [summed, *both])


def _stacked_bidirectional():
    x = npnet.Input((5, 2))
    h = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="ave")(x)
    return npnet.Model(x, L.Dense(2)(L.Bidirectional(L.GRU(2))(h)))


def _time_distributed_cnn():
    x = npnet.Input((3, 6, 6, 2))
    h = L.TimeDistributed(L.Conv2D(2, 2, activation="tanh"))(x)
    h = L.TimeDistributed(npnet.Sequential([L.Flatten(), L.Dense(3, activation="tanh")]))(h)
    return npnet.Model(x, L.TimeDistributed(L.Dense(2))(L.TimeDistributed(L.Dropout(0.4, seed=5))(h)))


def _masked(recurrent, wrapper=None):
    """Embedding(mask_zero=True), then a recurrent layer (in a wrapper) reading the mask."""
    def build():
        ids = npnet.Input((7,), name="ids")
        h = L.Embedding(9, 3, mask_zero=True)(ids)
        if wrapper == "TimeDistributed":
            h = L.TimeDistributed(L.Dense(4, activation="tanh"))(h)
        out = (L.Bidirectional(recurrent(), merge_mode=None) if wrapper == "Bidirectional" else recurrent())(h)
        return npnet.Model(ids, out)
    return build


def _activations(kind, activation, rec=None):
    kwargs = {"activation": activation} if kind is L.SimpleRNN else {"activation": activation, "recurrent_activation": rec}
    return Extra((kind.__name__,), _one(lambda x: kind(3, **kwargs)(x), (7, 3)), [(7, 3)], scale=0.1)


EXTRA = {
    "TimeDistributed_Dense": Extra(("TimeDistributed", "Dense"), _one(
        lambda x: L.TimeDistributed(L.Dense(3, activation="tanh"))(x), (5, 4)), [(5, 4)]),
    "TimeDistributed_Conv2D_Sequential_Dropout": Extra(("TimeDistributed", "Conv2D", "Flatten", "Dense", "Dropout"),
                                                       _time_distributed_cnn, [(3, 6, 6, 2)]),
    **{f"Bidirectional_{kind.__name__}_{merge}_{'sequences' if rs else 'last'}": _bidirectional(kind, merge, rs)
       for kind in _RECURRENT for merge in ("concat", "sum", "mul", "ave", None) for rs in (True, False)},
    "Bidirectional_initial_and_returned_states": Extra(("Bidirectional", "GRU", "LSTM"), _bidirectional_states,
                                                       [(6, 2), (3,), (3,)]),
    "Bidirectional_stacked": Extra(("Bidirectional", "LSTM", "GRU", "Dense"), _stacked_bidirectional, [(5, 2)]),
    "LSTM_relu_sigmoid": _activations(L.LSTM, "relu", "sigmoid"),
    "GRU_relu_tanh": _activations(L.GRU, "relu", "tanh"),
    "SimpleRNN_relu": _activations(L.SimpleRNN, "relu"),
    "SimpleRNN_linear": _activations(L.SimpleRNN, None),
    "SimpleRNN_elu": _activations(L.SimpleRNN, "elu"),
    "SimpleRNN_swish": _activations(L.SimpleRNN, "swish"),
    "LSTM_linear": _activations(L.LSTM, None, None),
    "LSTM_elu_linear": _activations(L.LSTM, "elu", "linear"),
    "LSTM_swish_softplus": _activations(L.LSTM, "swish", "softplus"),
    "GRU_linear": _activations(L.GRU, None, None),
    "GRU_elu_linear": _activations(L.GRU, "elu", "linear"),
    "GRU_swish_softplus": _activations(L.GRU, "swish", "softplus"),
    "masked_SimpleRNN": Extra(("Embedding", "SimpleRNN"), _masked(lambda: L.SimpleRNN(3)), [(7,)], ids=9),
    "masked_LSTM_sequences": Extra(("Embedding", "LSTM"), _masked(lambda: L.LSTM(3, return_sequences=True)),
                                   [(7,)], ids=9),
    "masked_GRU": Extra(("Embedding", "GRU"), _masked(lambda: L.GRU(3, go_backwards=True)), [(7,)], ids=9),
    "masked_Bidirectional_LSTM": Extra(("Embedding", "Bidirectional", "LSTM"),
                                       _masked(lambda: L.LSTM(4), "Bidirectional"), [(7,)], ids=9),
    "masked_Bidirectional_GRU_states": Extra(
        ("Embedding", "Bidirectional", "GRU"),
        _masked(lambda: L.GRU(3, return_sequences=True, return_state=True), "Bidirectional"), [(7,)], ids=9),
    "masked_TimeDistributed_LSTM": Extra(("Embedding", "TimeDistributed", "Dense", "LSTM"),
                                         _masked(lambda: L.LSTM(3), "TimeDistributed"), [(7,)], ids=9),
}


def _ids_with_padding(batch):
    """Ids with right padding, left padding, a hole and (in the last row) padding only."""
    r = np.random.default_rng(len(batch[0]))
    ids = r.integers(1, 9, size=batch[0].shape).astype(np.float32)
    ids[0, -3:] = 0
    if len(ids) > 1:
        ids[1, :2] = 0
        ids[-1, :] = 0
    return [ids]


@pytest.mark.parametrize("key", sorted(EXTRA))
def test_every_configuration_outside_the_harness_exports_or_is_refused_by_name(key, tmp_path, onnx, ort):
    extra = EXTRA[key]
    model = _randomize(extra.build(), scale=extra.scale)
    if key in REFUSED:
        with pytest.raises(ValueError, match=REFUSED[key]):
            npnet.onnx.export(model, tmp_path / "m.onnx")
        assert not (tmp_path / "m.onnx").exists()
        return
    batches = _batches(extra.shapes, extra.ids)
    if extra.ids is not None:
        batches += [_ids_with_padding(b) for b in batches[:2]]
    for opset in (npnet.onnx.MIN_OPSET, None):
        _export_and_compare(model, batches, tmp_path / f"m{opset}.onnx", opset)


# ---------------------------------------------------------------- every public layer class
def _public_layer_classes():
    """Every public layer class of the npnet.layers module, by walking it."""
    return {name: obj for name, obj in vars(L).items()
            if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, L.Layer)}


def _exporting_classes():
    """The layer classes of the cases above that export (not pending, not refused)."""
    covered = {type(case.make()).__name__ for case in CASES.values()}
    covered |= {c for key, extra in EXTRA.items() if key not in REFUSED for c in extra.classes}
    return covered - PENDING


def test_every_public_layer_class_has_a_converter_or_is_a_composite_that_exports():
    classes = _public_layer_classes()
    assert set(NOT_EXPORTED) <= set(classes)
    assert PENDING <= set(classes), sorted(PENDING - set(classes))
    registered = set(npnet.onnx.converters())
    exporting = _exporting_classes()
    lacking = set()
    for name, cls in classes.items():
        if name in NOT_EXPORTED:
            continue
        composite = cls.forward is L.Layer.forward  # defines call() out of other layers
        if composite:
            assert name not in registered, f"{name} is a composite layer with a converter"
        if (not composite and name not in registered) or name not in exporting:
            lacking.add(name)
    # Exactly the pending classes lack a converter or an exporting case: a converter that
    # lands makes this fail until PENDING shrinks, and so does a new layer without one.
    assert lacking == PENDING, f"lacking a converter or an exporting case: {sorted(lacking)}, PENDING: {sorted(PENDING)}"


def test_pending_and_refused_names_are_real():
    assert PENDING <= {type(case.make()).__name__ for case in CASES.values()}, "a pending class without a case"
    assert set(REFUSED) <= set(EXTRA)
    assert VARYING <= set(CASES)


# ---------------------------------------------------------------- whole models
def test_sequential_models(tmp_path, onnx, ort):
    cnn = npnet.Sequential([
        npnet.Input((10, 10)), L.Rescaling(1 / 255, offset=-0.5), L.Reshape((10, 10, 1)),
        L.Conv2D(4, 3, padding="same", use_bias=False), L.MaxPooling2D(2), L.BatchNormalization(), L.ReLU(),
        L.Conv2D(6, 3, strides=2, activation="elu"), L.AveragePooling2D(2, strides=1, padding="same"),
        L.LayerNormalization(), L.Flatten(), L.Dropout(0.3), L.Dense(5, activation="softmax")], name="cnn")
    rnn = npnet.Sequential([npnet.Input((9, 4)), L.Conv1D(3, 3, padding="causal", activation="swish"),
                            L.MaxPooling1D(2), L.GRU(4, return_sequences=True), L.LSTM(3, go_backwards=True),
                            L.Dense(2, activation="sigmoid")], name="rnn")
    for model, shape, scale in ((cnn, (10, 10), 255.0), (rnn, (9, 4), 1.0)):
        _randomize(model)
        batches = [[scale * np.abs(b[0])] for b in _batches([shape])]
        _export_and_compare(model, batches, tmp_path / f"{model.name}.onnx")


def test_functional_model_with_shared_layers(tmp_path, onnx, ort):
    a, b = npnet.Input((6, 3), name="a"), npnet.Input((6, 3), name="b")
    conv, lstm, dense = L.Conv1D(4, 2, padding="same", activation="tanh"), L.LSTM(3), L.Dense(3)
    ha, hb = lstm(conv(a)), lstm(conv(b))  # one convolution and one LSTM, called on both inputs
    joined = L.Concatenate()([ha, hb, L.Subtract()([ha, hb]), L.Dot(axes=-1, normalize=True)([ha, hb])])
    score = dense(L.Dense(3, activation="relu")(joined))
    again = dense(ha)  # the shared Dense once more, on another path
    model = _randomize(npnet.Model([a, b], L.Add(name="out")([score, again]), name="shared"))
    proto_path = tmp_path / "shared.onnx"
    _export_and_compare(model, _batches([(6, 3), (6, 3)]), proto_path)
    proto = onnx.load(str(proto_path))
    kernels = [i.name for i in proto.graph.initializer if "kernel" in i.name]
    assert len(kernels) == len(set(kernels))
    assert sum(name.startswith(f"{lstm.name}/kernel") for name in kernels) == 1  # a shared layer's weights, once


def test_functional_model_with_several_inputs_and_outputs(tmp_path, onnx, ort):
    image, ids, extra = npnet.Input((8, 8, 2), name="image"), npnet.Input((5,), name="ids"), npnet.Input((4,), name="extra")
    h = L.GlobalAveragePooling2D()(L.BatchNormalization()(L.Conv2D(3, 3, activation="relu")(image)))
    e = L.GlobalMaxPooling1D()(L.Embedding(7, 3)(ids))
    joined = L.Concatenate(name="joined")([h, e, L.Dense(3)(extra)])
    outputs = {"probs": L.Dense(4, activation="softmax", name="probs")(joined),
               "value": L.Dense(1, name="value")(L.Multiply()([h, e])),
               "features": joined}
    model = _randomize(npnet.Model({"image": image, "ids": ids, "extra": extra}, outputs, name="multi"))
    r = np.random.default_rng(1)
    batches = [{"image": r.normal(size=(n, 8, 8, 2)).astype(np.float32),
                "ids": r.integers(0, 7, size=(n, 5)).astype(np.float32),
                "extra": r.normal(size=(n, 4)).astype(np.float32)} for n in (1, 6)]
    path = tmp_path / "multi.onnx"
    _export_and_compare(model, batches, path)
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["image", "ids", "extra"]
    assert [o.name for o in proto.graph.output] == ["probs", "value", "features"]


class _Subclassed(npnet.Model):
    """A subclassed model: a shared recurrent encoder, a residual Dense block, two heads."""

    def __init__(self):
        super().__init__(name="subclassed")
        self.encoder = L.GRU(4, return_sequences=True)
        self.pool = L.GlobalAveragePooling1D()
        self.block = L.Dense(4, activation="tanh")
        self.norm = L.LayerNormalization()
        self.add = L.Add()
        self.probs = L.Dense(3, activation="softmax")
        self.score = L.Dense(1)

    def call(self, inputs, training=False):
        left, right = self.pool(self.encoder(inputs[0])), self.pool(self.encoder(inputs[1]))
        h = self.norm(self.add([left, self.block(right)]))
        return [self.probs(h), self.score(h)]


def test_subclassed_model(tmp_path, onnx, ort):
    model = _Subclassed()
    shapes = [(5, 2), (7, 2)]
    model.predict([np.zeros((1,) + s, np.float32) for s in shapes], verbose=0)  # build it
    _randomize(model)
    _export_and_compare(model, _batches(shapes), tmp_path / "subclassed.onnx")

