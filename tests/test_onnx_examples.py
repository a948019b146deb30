# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""The examples' trained models are exported and checked in onnxruntime.

Each model of ``examples/chinese_mnist.py`` (mlp, cnn, resnet, rnn) is built by the
example's own builder, trained briefly on real images (a few hundred, one epoch), exported,
and run in onnxruntime on real test images: max abs difference from ``predict`` <= 1e-5
in float32, the same predicted classes, and weights that ``onnx.save`` / ``onnx.load``
keep bit for bit. The Chinese-MNIST archive comes from ``NPNET_CHINESE_MNIST`` (the
tests skip without the variable and fail when it names a missing file); the same builders
sized for scikit-learn's 8x8 digits run always. ``examples/char_model.py``'s LSTM and
Transformer are trained briefly on the example's own text and checked the same way, on
windows of two lengths.
"""

import pathlib
import runpy

import numpy as np
import pytest

import npnet
from npnet.datasets import chinese_mnist as cm

from .conftest import chinese_mnist_path
from .test_onnx import TOL, onnx, ort  # noqa: F401  (fixtures)
from .test_onnx_every_layer import PENDING

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
KINDS = ["mlp", "cnn", "resnet", "rnn"]
TRAIN, TEST = 256, 128  # images: a few hundred to train one epoch on, real test images to compare on


@pytest.fixture(scope="module")
def cmnist():
    return runpy.run_path(str(EXAMPLES / "chinese_mnist.py"))


@pytest.fixture(scope="module")
def char():
    ns = runpy.run_path(str(EXAMPLES / "char_model.py"))  # registers PositionEmbedding's converter
    return ns


@pytest.fixture(scope="module")
def chinese_mnist_data():
    """(x_train, y_train, x_test, y_test): the first images of the example's random split."""
    (x_train, y_train), (x_test, y_test) = cm.load_data(chinese_mnist_path(), split="random", test_size=2000, seed=0)
    return x_train[:TRAIN], y_train[:TRAIN], x_test[:TEST], y_test[:TEST]


@pytest.fixture(scope="module")
def digits_data(cmnist):
    (x_train, y_train), (x_test, y_test) = cmnist["load_digits"](360, 0)
    return x_train[:TRAIN], y_train[:TRAIN], x_test[:TEST], y_test[:TEST]


def _train_briefly(model, x, y, learning_rate, batch_size=64):
    model.compile(optimizer=npnet.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, seed=0)
    assert np.isfinite(history.history["loss"][0])
    # it did train (a few weights may keep a zero gradient: attention's key bias does)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.trainable_weights))
    return model


def _check(model, batches, path, onnx, ort):
    """Export; compare onnxruntime with predict on each batch (probabilities within TOL, the
    same classes); check that the saved file loads back with bit-identical weights."""
    proto = npnet.onnx.export(model, path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    stored = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert {i.name: onnx.numpy_helper.to_array(i).tobytes() for i in loaded.graph.initializer} == \
        {k: v.tobytes() for k, v in stored.items()}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in sess.get_inputs()]
    for x in batches:
        (got,) = sess.run(None, {name: x.astype(np.float32)})
        want = model.predict(x, verbose=0)
        assert got.shape == want.shape and got.dtype == np.float32
        diff = float(np.abs(got - want).max())
        assert diff <= TOL, f"max |onnxruntime - predict| = {diff:.3g}"
        # The same classes, except where the two best probabilities are closer than the
        # tolerance (a near-tie that a 1e-5 difference may reorder): few of those.
        top2 = np.sort(want, axis=-1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 2 * TOL
        assert clear.mean() >= 0.95
        np.testing.assert_array_equal(got.argmax(-1)[clear], want.argmax(-1)[clear])


# ---------------------------------------------------------------- Chinese-MNIST
@pytest.mark.parametrize("kind", KINDS)
def test_chinese_mnist_models_trained_on_real_images_export(kind, cmnist, chinese_mnist_data, tmp_path, onnx, ort):
    x_train, y_train, x_test, _ = chinese_mnist_data
    model = cmnist["build_model"](kind, 0)
    _train_briefly(model, x_train, y_train, cmnist["RECIPES"][kind]["learning_rate"])
    _check(model, [x_test, x_test[:1]], tmp_path / f"{kind}.onnx", onnx, ort)


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_builders_for_the_8x8_digits_export(kind, cmnist, digits_data, tmp_path, onnx, ort):
    x_train, y_train, x_test, _ = digits_data
    model = cmnist["build_model"](kind, 0, cmnist["DIGITS"])
    _train_briefly(model, x_train, y_train, cmnist["DIGITS_RECIPES"][kind]["learning_rate"])
    _check(model, [x_test, x_test[:1]], tmp_path / f"digits_{kind}.onnx", onnx, ort)


# ---------------------------------------------------------------- character models
def _char_data(char, recipe):
    train, _, test = char["split_text"](char["load_text"]()[: recipe["max_chars"]])
    vocab = char["Vocabulary"].fit(train)
    x, y = char["make_windows"](vocab.encode(train), recipe["seq_len"])
    ids = vocab.encode(test)
    return vocab, x[:TRAIN], y[:TRAIN], ids


def _trained_char_model(char, kind):
    recipe = dict(char["QUICK"][kind])
    vocab, x, y, test_ids = _char_data(char, recipe)
    model = char["build_model"](kind, len(vocab), recipe, 0)
    _train_briefly(model, x, y, recipe["learning_rate"], recipe["batch_size"])
    # test windows of the training length and of another length (the length is a dynamic axis)
    windows = [char["make_windows"](test_ids, n)[0] for n in (recipe["seq_len"], 20)]
    return model, [windows[0][:16], windows[1][:1]]


def test_char_lstm_exports(char, tmp_path, onnx, ort):
    model, batches = _trained_char_model(char, "lstm")
    assert [type(layer).__name__ for layer in model.layers[1:]] == ["Embedding", "LSTM", "Dense"]
    _check(model, batches, tmp_path / "char_lstm.onnx", onnx, ort)


def test_char_transformer_exports_once_attention_does(char, tmp_path, onnx, ort):
    model, batches = _trained_char_model(char, "transformer")
    attention = [layer for layer in model.layers if isinstance(layer, npnet.layers.MultiHeadAttention)]
    assert attention
    if "MultiHeadAttention" in PENDING:
        with pytest.raises(ValueError, match=rf"no converter for MultiHeadAttention '{attention[0].name}' "):
            npnet.onnx.export(model, tmp_path / "char_transformer.onnx")
        assert not (tmp_path / "char_transformer.onnx").exists()
        return
    _check(model, batches, tmp_path / "char_transformer.onnx", onnx, ort)


def test_char_position_embedding_exports_through_the_converter_registered_above(char, tmp_path, onnx, ort):
    """The example's own primitive layer, with the converter a user registers for it."""
    tokens = npnet.Input(shape=(None,), name="characters")
    h = char["PositionEmbedding"](32, initializer="random_normal")(npnet.layers.Embedding(20, 8)(tokens))
    model = npnet.Model(tokens, npnet.layers.Dense(5, activation="softmax")(h))
    ids = np.random.default_rng(0).integers(0, 20, size=(3, 32))
    _check(model, [ids, ids[:1, :20], ids[:, :1]], tmp_path / "positions.onnx", onnx, ort)
