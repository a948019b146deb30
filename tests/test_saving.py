"""Save/load: exact round trips, exact resume, atomic writes, and clear errors for bad files."""

import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npnet
from npnet.saving import SavedModelError


def _model(seed=0):
    m = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, activation="relu"), npnet.Dropout(0.25),
                          npnet.Dense(3, activation="softmax")], seed=seed)
    m.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_round_trip_predicts_exactly_the_same(tmp_path, toy_data):
    x, y = toy_data
    model = _model()
    model.fit(x, y, epochs=2, seed=0, verbose=0)
    path = tmp_path / "m.npnet"
    model.save(path)
    restored = npnet.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert restored.get_config() == model.get_config()
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert restored.optimizer.iterations == model.optimizer.iterations
    assert [m.name for m in restored.metrics] == ["accuracy"]


def test_file_is_a_zip_of_json_and_npy_without_pickle(tmp_path):
    model = _model()
    model.save(tmp_path / "m.npnet", include_optimizer=False)
    with zipfile.ZipFile(tmp_path / "m.npnet") as zf:
        names = zf.namelist()
        header = json.loads(zf.read("config.json"))
        for name in names[1:]:
            np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
    assert names[0] == "config.json" and all(n.startswith("weights/") for n in names[1:])
    assert header["format_version"] == npnet.saving.FORMAT_VERSION == 3 and header["npnet_version"] == npnet.__version__
    assert header["model"]["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in header["model"]["config"]["layers"]] == ["Dense", "Dropout", "Dense"]
    assert [w["path"] for w in header["weights"]] == [f"{n}/{k}" for n in (model.layers[0].name, model.layers[2].name)
                                                     for k in ("kernel", "bias")]


def test_training_continues_exactly_after_load(tmp_path, toy_data):
    """6 epochs straight == 3 epochs, save, load, 3 more (same seed, optimizer state restored)."""
    x, y = toy_data
    straight = _model()
    h_straight = straight.fit(x, y, epochs=6, seed=42, validation_split=0.2, verbose=0)

    first = _model()
    first.fit(x, y, epochs=3, seed=42, validation_split=0.2, verbose=0)
    first.save(tmp_path / "ckpt.npnet")
    resumed = npnet.load_model(tmp_path / "ckpt.npnet")
    h_resumed = resumed.fit(x, y, epochs=6, initial_epoch=3, seed=42, validation_split=0.2, verbose=0)
    assert _same(straight.get_weights(), resumed.get_weights())
    assert h_resumed.history["loss"] == h_straight.history["loss"][3:]


def test_checkpoint_callback_then_resume(tmp_path, toy_data):
    x, y = toy_data
    model = _model()
    ckpt = npnet.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.npnet"))
    model.fit(x, y, epochs=2, seed=1, callbacks=[ckpt], verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["epoch1.npnet", "epoch2.npnet"]
    assert _same(npnet.load_model(tmp_path / "epoch2.npnet").get_weights(), model.get_weights())


def test_save_and_load_weights(tmp_path, toy_data):
    x, y = toy_data
    model = _model()
    model.fit(x, y, epochs=1, seed=0, verbose=0)
    model.save_weights(tmp_path / "w.npnet")
    other = _model(seed=9)
    assert not _same(other.get_weights(), model.get_weights())
    other.load_weights(tmp_path / "w.npnet")
    assert _same(other.get_weights(), model.get_weights())
    with pytest.raises(SavedModelError, match="weights-only file"):
        npnet.load_model(tmp_path / "w.npnet")
    wrong = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(5)])
    with pytest.raises(SavedModelError, match="holds 4 weight arrays, the model has 2"):
        wrong.load_weights(tmp_path / "w.npnet")


def test_interrupted_save_leaves_the_previous_file_intact(tmp_path, toy_data, monkeypatch):
    x, y = toy_data
    model = _model()
    path = tmp_path / "m.npnet"
    model.save(path)
    before = model.predict(x, verbose=0)
    model.fit(x, y, epochs=1, seed=0, verbose=0)

    calls = {"n": 0}
    real = zipfile.ZipFile.writestr

    def crash_midway(self, name, data, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("power cut")
        return real(self, name, data, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    np.testing.assert_array_equal(npnet.load_model(path).predict(x, verbose=0), before)
    assert os.listdir(tmp_path) == ["m.npnet"]  # no temporary file left behind


def test_unknown_layer_class_needs_registration(tmp_path):
    class Doubler(npnet.layers.Layer):
        """Multiplies by two."""

        def forward(self, x, training=False):
            return self._enter(x) * 2, ()

        def backward(self, cache, dy):
            return dy * 2

    model = npnet.Sequential([npnet.Input(shape=(2,)), Doubler(name="twice")])
    model.save(tmp_path / "d.npnet")
    with pytest.raises(SavedModelError, match="unknown layer class 'Doubler'; register it with npnet.register_layer"):
        npnet.load_model(tmp_path / "d.npnet")
    restored = npnet.load_model(tmp_path / "d.npnet", custom_objects={"Doubler": Doubler})
    np.testing.assert_array_equal(restored.predict(np.ones((1, 2)), verbose=0), [[2, 2]])


def _rewrite(path, out, mutate):
    """Copy the zip at ``path`` to ``out`` with ``mutate(entries: dict)`` applied."""
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    mutate(entries)
    with zipfile.ZipFile(out, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _header_edit(fn):
    def mutate(entries):
        header = json.loads(entries["config.json"])
        fn(header)
        entries["config.json"] = json.dumps(header).encode()
    return mutate


BAD_FILES = {
    "missing array": (lambda e: e.pop("weights/0001.npy"), r"array 'weights/0001.npy' .* is missing"),
    "extra array": (lambda e: e.update({"weights/9999.npy": _npy(np.zeros(2))}), r"unexpected files \['weights/9999.npy'\]"),
    "wrong shape": (lambda e: e.update({"weights/0000.npy": _npy(np.zeros((5, 8), np.float32))}),
                    r"has shape \(5, 8\) and dtype float32, the manifest says \(4, 8\)"),
    "wrong dtype": (lambda e: e.update({"weights/0000.npy": _npy(np.zeros((4, 8), np.int64))}),
                    r"has dtype int64, expected a float array"),
    "object array": (lambda e: e.update({"weights/0000.npy": _npy(np.array([print, None], dtype=object), True)}),
                     r"holds an object array, which npnet never writes and refuses to unpickle"),
    "unknown layer": (_header_edit(lambda h: h["model"]["config"]["layers"][0].update(class_name="os.system")),
                      r"unknown layer class 'os.system'"),
    "newer format": (_header_edit(lambda h: h.update(format_version=99)),
                     r"uses format version 99, newer than this npnet supports \(3\); upgrade npnet"),
    "no config": (lambda e: e.pop("config.json"), r"has no config.json"),
    "bad json": (lambda e: e.update({"config.json": b"{not json"}), r"config.json is unreadable"),
    "bad layer config": (_header_edit(lambda h: h["model"]["config"]["layers"][0]["config"].update(units=-3)),
                         r"corrupt or inconsistent: ValueError: Dense: `units` must be >= 1, received -3"),
    "manifest mismatch": (_header_edit(lambda h: h["weights"][0].update(shape=[9, 9])),
                          r"the manifest says \(9, 9\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_get_clear_errors(tmp_path, case):
    mutate, match = BAD_FILES[case]
    _model().save(tmp_path / "good.npnet", include_optimizer=False)
    _rewrite(tmp_path / "good.npnet", tmp_path / "bad.npnet", mutate)
    with pytest.raises(SavedModelError, match=match):
        npnet.load_model(tmp_path / "bad.npnet")


def test_not_a_zip_truncated_directory_and_missing(tmp_path):
    (tmp_path / "text.npnet").write_text("hello")
    with pytest.raises(SavedModelError, match="is not an npnet file \\(not a readable zip"):
        npnet.load_model(tmp_path / "text.npnet")
    _model().save(tmp_path / "good.npnet")
    data = (tmp_path / "good.npnet").read_bytes()
    (tmp_path / "cut.npnet").write_bytes(data[: len(data) // 2])
    with pytest.raises(SavedModelError, match="not a readable zip"):
        npnet.load_model(tmp_path / "cut.npnet")
    with pytest.raises(SavedModelError, match="is a directory, not an npnet file"):
        npnet.load_model(tmp_path)
    with pytest.raises(SavedModelError, match="no file at"):
        npnet.load_model(tmp_path / "nope.npnet")
    with pytest.raises(IsADirectoryError, match="is a directory; give a file path"):
        _model().save(tmp_path)


def test_huge_shapes_in_a_tampered_config_fail_without_allocating(tmp_path):
    _model().save(tmp_path / "good.npnet")
    _rewrite(tmp_path / "good.npnet", tmp_path / "huge.npnet",
             _header_edit(lambda h: h["model"]["config"]["layers"][0]["config"].update(units=10**9)))
    with pytest.raises(SavedModelError):
        npnet.load_model(tmp_path / "huge.npnet")


@pytest.fixture(scope="module")
def valid_file_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "m.npnet"
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.ones((4, 3), np.float32), np.array([0, 1, 0, 1]), verbose=0, seed=0)
    model.save(path)
    return path.read_bytes(), model.predict(np.eye(3), verbose=0)


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_bytes_load_correctly_or_raise_an_npnet_error(tmp_path_factory, valid_file_bytes, edits):
    data, expected = valid_file_bytes
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    path = tmp_path_factory.mktemp("m") / "mutated.npnet"
    path.write_bytes(bytes(buf))
    try:
        model = npnet.load_model(path)
    except SavedModelError:
        return
    np.testing.assert_array_equal(model.predict(np.eye(3), verbose=0), expected)


DATA = pathlib.Path(__file__).resolve().parent / "data"


def _release_0_1_0_inputs():
    reference = json.loads((DATA / "release-0.1.0-sequential.json").read_text())
    x_test = np.random.default_rng(5).normal(size=(4, 6, 6, 1)).astype("float32")
    r = np.random.default_rng(123)
    x = r.normal(size=(40, 6, 6, 1)).astype("float32")
    y = r.integers(0, 3, size=40)
    return reference, x_test, x, y


def test_a_file_written_by_npnet_0_1_0_loads_predicts_and_resumes_exactly():
    reference, x_test, x, y = _release_0_1_0_inputs()
    model = npnet.load_model(DATA / "release-0.1.0-sequential.npnet")
    assert [layer.name for layer in model.layers] == ["conv", "bn", "pool", "flat", "drop", "head"]
    np.testing.assert_array_equal(model.predict(x_test, verbose=0), np.array(reference["predict_seed5_n4"], np.float32))
    history = model.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0, seed=1, shuffle=False)
    # The optimizer state came back: Adam's moment update now rounds as Keras' formula does, which
    # moves this loss by about 1e-7 of itself; zeroed moments would move it by 5e-3.
    assert history.history["loss"][0] == pytest.approx(reference["resume_epoch3_loss"], rel=1e-6, abs=0)


def test_a_weights_file_of_npnet_0_1_0_loads_by_layer_name_or_structure():
    reference, x_test, _, _ = _release_0_1_0_inputs()

    def build(names):
        return npnet.Sequential([npnet.Input(shape=(6, 6, 1)), npnet.Conv2D(2, 3, padding="same", activation="relu", **names[0]),
                                 npnet.BatchNormalization(**names[1]), npnet.MaxPooling2D(2), npnet.Flatten(),
                                 npnet.Dropout(0.2), npnet.Dense(3, activation="softmax", **names[2])])

    for names in ([{"name": "conv"}, {"name": "bn"}, {"name": "head"}], [{}, {}, {}]):
        model = build(names)
        model.load_weights(DATA / "release-0.1.0-sequential.weights.npnet")
        np.testing.assert_array_equal(model.predict(x_test, verbose=0),
                                      np.array(reference["predict_seed5_n4"], np.float32))


def test_weights_load_by_name_even_when_layers_are_listed_in_another_order(tmp_path):
    a = npnet.Input(shape=(3,), name="a")
    left, right = npnet.Dense(2, name="left"), npnet.Dense(2, name="right")
    model = npnet.Model(a, npnet.layers.concatenate([left(a), right(a)], name="cat"), seed=0)
    model.save_weights(tmp_path / "w.npnet")
    b = npnet.Input(shape=(3,), name="a")
    right2, left2 = npnet.Dense(2, name="right"), npnet.Dense(2, name="left")
    swapped = npnet.Model(b, npnet.layers.concatenate([right2(b), left2(b)], name="cat"), seed=1)
    # the same shapes in the other order: matching by position would cross the kernels
    assert [layer.name for layer in swapped.layers] == ["a", "right", "left", "cat"]
    swapped.load_weights(tmp_path / "w.npnet")
    np.testing.assert_array_equal(left2.params["kernel"], left.params["kernel"])
    np.testing.assert_array_equal(right2.params["kernel"], right.params["kernel"])
    other = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(4)])
    with pytest.raises(SavedModelError, match=r"holds 4 weight arrays, the model has 2; missing from the file"):
        other.load_weights(tmp_path / "w.npnet")


def test_signatures_follow_keras_with_include_optimizer_keyword_only():
    """Keras 3: save(filepath, overwrite=True, zipped=None, ...), save_model(model, filepath,
    overwrite=True, zipped=None, ...), save_weights(filepath, overwrite=True),
    load_weights(filepath, skip_mismatch=False, ...)."""
    import inspect

    def params(fn):
        return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]

    empty = inspect.Parameter.empty
    assert params(npnet.Model.save) == [
        ("self", "POSITIONAL_OR_KEYWORD", empty), ("filepath", "POSITIONAL_OR_KEYWORD", empty),
        ("overwrite", "POSITIONAL_OR_KEYWORD", True), ("zipped", "POSITIONAL_OR_KEYWORD", None),
        ("include_optimizer", "KEYWORD_ONLY", True)]
    assert params(npnet.saving.save_model)[:4] == [
        ("model", "POSITIONAL_OR_KEYWORD", empty), ("filepath", "POSITIONAL_OR_KEYWORD", empty),
        ("overwrite", "POSITIONAL_OR_KEYWORD", True), ("zipped", "POSITIONAL_OR_KEYWORD", None)]
    assert params(npnet.saving.save_model)[4] == ("include_optimizer", "KEYWORD_ONLY", True)
    assert params(npnet.Model.save_weights)[1:] == [("filepath", "POSITIONAL_OR_KEYWORD", empty),
                                                    ("overwrite", "POSITIONAL_OR_KEYWORD", True)]
    assert params(npnet.Model.load_weights)[1:] == [("filepath", "POSITIONAL_OR_KEYWORD", empty),
                                                    ("skip_mismatch", "POSITIONAL_OR_KEYWORD", False)]


def test_overwrite_false_refuses_an_existing_file_and_keeps_it(tmp_path, toy_data):
    x, y = toy_data
    model = _model()
    model.fit(x[:32], y[:32], epochs=1, seed=0, verbose=0)
    path = tmp_path / "m.npnet"
    model.save(path, False)  # no file yet: saves
    before = path.read_bytes()
    model.fit(x[:32], y[:32], epochs=1, seed=0, verbose=0)
    match = r"save: .*m\.npnet' exists and overwrite=False"
    with pytest.raises(FileExistsError, match=match):
        model.save(path, False)
    with pytest.raises(FileExistsError, match=match):
        npnet.saving.save_model(model, path, False)  # the third argument is overwrite, as in Keras
    with pytest.raises(FileExistsError, match=r"save_weights: .*m\.npnet' exists and overwrite=False"):
        model.save_weights(path, overwrite=False)
    assert path.read_bytes() == before
    model.save(path)  # overwrite=True by default
    assert path.read_bytes() != before
    with pytest.raises(TypeError, match=r"takes from 2 to 4 positional arguments"):
        model.save(path, True, None, False)  # include_optimizer is keyword-only
    npnet.saving.save_model(model, path, include_optimizer=False)
    with zipfile.ZipFile(path) as zf:
        assert not any(n.startswith("optimizer/") for n in zf.namelist())


def test_zipped_and_overwrite_arguments_are_checked(tmp_path):
    model = _model()
    model.build((None, 4))
    path = tmp_path / "m.npnet"
    model.save(path, zipped=True)
    npnet.saving.save_model(model, path, zipped=None)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ValueError, match=r"save: npnet always writes one zip file; zipped=False .* is not supported"):
        model.save(tmp_path / "d.npnet", zipped=False)
    with pytest.raises(TypeError, match=r"save: `zipped` must be None, True or False, received 'yes'"):
        model.save(tmp_path / "d.npnet", zipped="yes")
    with pytest.raises(TypeError, match=r"save: `overwrite` must be True or False, received 'no'"):
        model.save(path, "no")
    with pytest.raises(TypeError, match=r"save_weights: `overwrite` must be True or False, received 0"):
        model.save_weights(path, 0)
    with pytest.raises(TypeError, match=r"load_weights: `skip_mismatch` must be True or False, received 'yes'"):
        model.load_weights(path, skip_mismatch="yes")
    assert not (tmp_path / "d.npnet").exists()


def _net(units_in=4, units_out=3, extra=False, seed=0):
    layers = [npnet.Input(shape=(units_in,)), npnet.Dense(8, name="hidden"), npnet.Dense(units_out, name="out")]
    if extra:
        layers.append(npnet.Dense(2, name="extra"))
    return npnet.Sequential(layers, seed=seed)


def _weights(model, layer):
    return [w.copy() for w in model.get_layer(layer).get_weights()]


def test_load_weights_skip_mismatch_skips_layers_whose_shapes_differ(tmp_path):
    saved = _net()
    saved.save_weights(tmp_path / "w.npnet")
    other = _net(units_out=5, seed=1)
    out_before = _weights(other, "out")
    with pytest.raises(SavedModelError, match=r"weight 'out/kernel' has shape \(8, 3\), the model expects \(8, 5\)"
                                              r".*skip_mismatch=True"):
        other.load_weights(tmp_path / "w.npnet")
    with pytest.warns(UserWarning, match=r"load_weights: .*skipped 1 layer .*'out' \(kernel: shape \(8, 3\) in the "
                                          r"file, \(8, 5\) in the model; bias: shape \(3,\) in the file, \(5,\)"):
        other.load_weights(tmp_path / "w.npnet", skip_mismatch=True)
    assert _same(_weights(other, "hidden"), _weights(saved, "hidden"))
    assert _same(_weights(other, "out"), out_before)


def test_skip_mismatch_skips_a_whole_layer_as_keras_does(tmp_path):
    """Keras loads a layer's weights together: when the kernel of 'hidden' mismatches, its
    bias (same shape in both) is not loaded either."""
    saved = _net()
    kernel, _ = saved.get_layer("hidden").get_weights()
    saved.get_layer("hidden").set_weights([kernel, np.full(8, 1.5, np.float32)])
    saved.save_weights(tmp_path / "w.npnet")
    other = _net(units_in=5, seed=1)
    hidden_before = _weights(other, "hidden")
    with pytest.warns(UserWarning, match=r"skipped 1 layer .*'hidden' \(kernel: shape \(4, 8\) in the file, "
                                          r"\(5, 8\) in the model\)"):
        other.load_weights(tmp_path / "w.npnet", skip_mismatch=True)
    assert _same(_weights(other, "hidden"), hidden_before)
    assert not np.array_equal(hidden_before[1], _weights(saved, "hidden")[1])
    assert _same(_weights(other, "out"), _weights(saved, "out"))


def test_skip_mismatch_skips_weights_missing_from_the_file_and_ignores_extra_ones(tmp_path):
    saved = _net()
    saved.save(tmp_path / "m.npnet")
    bigger = _net(extra=True, seed=1)
    extra_before = _weights(bigger, "extra")
    with pytest.raises(SavedModelError, match=r"missing from the file: \['extra/kernel', 'extra/bias'\].*"
                                              r"skip_mismatch=True"):
        bigger.load_weights(tmp_path / "m.npnet")
    with pytest.warns(UserWarning, match=r"'extra' \(kernel: not in the file; bias: not in the file\)"):
        bigger.load_weights(tmp_path / "m.npnet", skip_mismatch=True)
    assert _same(_weights(bigger, "hidden"), _weights(saved, "hidden"))
    assert _same(_weights(bigger, "out"), _weights(saved, "out"))
    assert _same(_weights(bigger, "extra"), extra_before)
    bigger.save_weights(tmp_path / "big.npnet")
    smaller = _net(seed=2)
    with pytest.warns(UserWarning, match=r"weights in the file that match no weight of the model: "
                                          r"\['extra/kernel', 'extra/bias'\]"):
        smaller.load_weights(tmp_path / "big.npnet", skip_mismatch=True)
    assert _same(smaller.get_weights(), saved.get_weights())
