"""Crafted and tampered model files: each attack on the loader is refused, quickly and with
little memory, by a SavedModelError that names the file and the member at fault.

Every crafted file is generated here from a model saved by the test; none is committed.
"""

import io
import json
import os
import struct
import sys
import threading
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import npnet
from npnet.saving import MAX_CONFIG_BYTES, MAX_EXPANSION, MAX_ITERATIONS, MAX_LAYERS, SavedModelError


# ---------------------------------------------------------------------------- helpers
def _trained(tmp_path, optimizer="adam"):
    """A small trained model saved with its optimizer state; returns the file's path."""
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, activation="relu", name="hidden"),
                              npnet.Dense(3, activation="softmax", name="out")], seed=0)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 4)).astype("float32"), rng.integers(0, 3, 16), epochs=1, verbose=0, seed=0)
    path = tmp_path / "good.npnet"
    model.save(path)
    return path


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return [(n, zf.read(n)) for n in zf.namelist()]


def _write(path, members):
    """A zip of ``members`` (a list of (name, bytes), duplicates allowed), stored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)


def _raw_zip(path, members):
    """A zip written byte by byte, so that its directory can declare anything:
    ``members`` is a list of (name, bytes as stored, method, crc32, declared size)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, size in members:
        offset = out.tell()
        raw = name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(data), size, len(raw), 0))
        out.write(raw + data)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 33, crc, len(data), size,
                                  len(raw), 0, 0, 0, 0, 0, offset))
        central.write(raw)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central.getvalue()),
                          start, 0))
    path.write_bytes(out.getvalue())


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _header(members):
    return json.loads(dict(members)["config.json"])


def _with_header(members, edit):
    header = _header(members)
    edit(header)
    return [(n, json.dumps(header).encode() if n == "config.json" else d) for n, d in members]


def _replace(members, name, data):
    return [(n, data if n == name else d) for n, d in members]


def _refused(path, *patterns, load=npnet.load_model):
    """``load(path)`` raises a SavedModelError naming the path and matching every pattern."""
    with pytest.raises(SavedModelError) as info:
        load(path)
    message = str(info.value)
    assert repr(str(path)) in message, message
    for pattern in patterns:
        assert pattern in message, message
    return message


# ---------------------------------------------------------------------------- denial of service
def test_a_member_declaring_a_huge_size_is_refused_before_it_is_read(tmp_path):
    members = _members(_trained(tmp_path))
    kernel = dict(members)["weights/0000.npy"]
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = packed.compress(kernel) + packed.flush()
    crafted = [(n, d, zipfile.ZIP_STORED, zlib.crc32(d), len(d)) for n, d in members if n != "weights/0000.npy"]
    crafted.append(("weights/0000.npy", stream, zipfile.ZIP_DEFLATED, zlib.crc32(kernel), 4_000_000_000))
    _raw_zip(tmp_path / "huge.npnet", crafted)
    tracemalloc.start()
    try:
        _refused(tmp_path / "huge.npnet", "member 'weights/0000.npy' declares 4000000000 bytes",
                 f"MAX_EXPANSION = {MAX_EXPANSION}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_a_member_larger_than_its_manifest_entry_is_refused_before_it_is_read(tmp_path):
    """Within the expansion limit, but larger than the array the manifest describes."""
    members = _members(_trained(tmp_path))
    padded = dict(members)["weights/0003.npy"] + bytes(40_000)  # 'out/bias', shape (3,)
    _write(tmp_path / "padded.npnet", _replace(members, "weights/0003.npy", padded))
    _refused(tmp_path / "padded.npnet", "member 'weights/0003.npy' (weight 'out/bias') declares 40140 bytes, but an "
             "array of shape (3,) and dtype float32 takes at most 16396")


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """A real zip bomb of about 1 MB: a model whose kernel of 1 GiB of zeros is deflated."""
    folder = tmp_path_factory.mktemp("bomb")
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(2, name="big")])
    model.save(folder / "small.npnet")
    members = _members(folder / "small.npnet")
    rows, cols = 8192, 32768  # 2**28 float32 = 1 GiB
    header = _header(members)
    header["model"]["config"]["input_shape"] = [rows]
    header["model"]["config"]["layers"][0]["config"]["units"] = cols
    header["model"]["build_shapes"] = {"shape": [None, rows]}
    header["weights"][0]["shape"] = [rows, cols]
    header["weights"][1]["shape"] = [cols]
    config = json.dumps(header).encode()
    bias = _npy(np.zeros(cols, np.float32))
    npy_header = _npy(np.zeros((rows, cols), np.float32)[:0].reshape(0, cols))  # header of a (0, cols) array
    npy_header = npy_header.replace(b"(0, 32768)", b"(8192, 32768)")
    chunk = bytes(2**20)
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = packed.compress(npy_header) + packed.flush(zlib.Z_FULL_FLUSH)
    piece = packed.compress(chunk) + packed.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every MiB of zeros
    n = rows * cols * 4 // len(chunk)
    stream = start + piece * n + packed.flush()
    crc = zlib.crc32(npy_header)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    size = len(npy_header) + rows * cols * 4
    path = folder / "bomb.npnet"
    _raw_zip(path, [("config.json", config, 0, zlib.crc32(config), len(config)),
                    ("weights/0000.npy", stream, zipfile.ZIP_DEFLATED, crc, size),
                    ("weights/0001.npy", bias, 0, zlib.crc32(bias), len(bias))])
    return path


def test_a_real_zip_bomb_fails_fast_with_little_memory(zip_bomb):
    assert os.path.getsize(zip_bomb) < 2 * 2**20
    with zipfile.ZipFile(zip_bomb) as zf:  # a valid zip: every member decompresses to what it declares
        assert zf.getinfo("weights/0000.npy").file_size > 2**30
        with zf.open("weights/0000.npy") as fp:
            assert fp.read(6) == b"\x93NUMPY"
    tracemalloc.start()
    try:
        _refused(zip_bomb, "member 'weights/0000.npy' declares", "a zip bomb")
        with pytest.raises(SavedModelError, match="a zip bomb"):
            npnet.Sequential([npnet.Dense(32768, name="big")]).load_weights(zip_bomb)  # unbuilt: no kernel yet
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def _in_thread(fn):
    """Run ``fn`` in a thread; its exception, or a failure if it has not returned after a
    generous time (the loader must never wait on a pipe)."""
    result = {}

    def run():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            result["exc"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    return worker.is_alive(), result.get("exc")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.npnet"
    os.mkfifo(fifo)
    for load in (npnet.load_model, npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)]).load_weights):
        hung, exc = _in_thread(lambda: load(fifo))
        if hung:  # let the stuck reader go before failing
            with open(fifo, "wb"):
                pass
        assert not hung, "the loader waited on a named pipe"
        assert isinstance(exc, SavedModelError)
        assert str(exc) == f"load: {str(fifo)!r} is a named pipe, not a regular file; npnet reads model files only"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_without_reading_it():
    hung, exc = _in_thread(lambda: npnet.load_model("/dev/zero"))
    assert not hung
    assert isinstance(exc, SavedModelError)
    assert str(exc) == "load: '/dev/zero' is a device, not a regular file; npnet reads model files only"


def test_a_directory_and_a_missing_file_are_refused(tmp_path):
    _refused(tmp_path, "is a directory, not an npnet file")
    _refused(tmp_path / "nope.npnet", "no file at")


def _layers_config(n):
    return [{"class_name": "Activation", "config": {"name": f"act_{i}", "trainable": True, "activation": "relu"}}
            for i in range(n)]


def _with_layers(tmp_path, n, functional=False):
    """A saved model of ``n`` Activation layers (written as JSON; building it to save it
    would take the time the test measures)."""
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Activation("relu")])
    model.save(tmp_path / "few.npnet")
    members = _members(tmp_path / "few.npnet")

    def edit(header):
        if functional:
            layers = [{"class_name": "InputLayer", "config": {"name": "x", "shape": [2]}}] + _layers_config(n)
            nodes = [{"layer": f"act_{i}", "args": {"tensor": ["x" if i == 0 else f"act_{i - 1}", 0, 0]},
                      "kwargs": {}} for i in range(n)]
            header["model"] = {"class_name": "Functional", "build_shapes": {"shape": [None, 2]}, "config": {
                "name": "deep", "trainable": True, "seed": None, "layers": layers, "nodes": nodes,
                "inputs": {"tensor": ["x", 0, 0]}, "outputs": {"tensor": [f"act_{n - 1}", 0, 0]}}}
        else:
            header["model"]["config"]["layers"] = _layers_config(n)

    path = tmp_path / f"{'f' if functional else 's'}{n}.npnet"
    _write(path, _with_header(members, edit))
    return path


def _calls_to_load(path):
    """Python function calls made while loading ``path`` (an operation count, not a time)."""
    count = [0]

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            count[0] += 1

    sys.setprofile(profile)
    try:
        model = npnet.load_model(path)
    finally:
        sys.setprofile(None)
    return count[0], model


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_loading_is_linear_in_the_number_of_layers(tmp_path, functional):
    small, model_small = _calls_to_load(_with_layers(tmp_path, 200, functional))
    large, model_large = _calls_to_load(_with_layers(tmp_path, 2000, functional))
    assert len(model_small.layers) == 200 + functional and len(model_large.layers) == 2000 + functional
    np.testing.assert_array_equal(model_large.predict(np.array([[-1.0, 2.0]]), verbose=0), [[0.0, 2.0]])
    assert large < 12 * small, (small, large)  # linear: 10 times; quadratic: 100 times


def test_adding_layers_one_by_one_builds_each_layer_once():
    built = []

    @npnet.register_layer
    class CountedShape(npnet.layers.Layer):
        """Identity that counts the output shapes asked of it."""

        def forward(self, x, training=False):
            return x, ()

        def backward(self, cache, dy):
            return dy

        def compute_output_shape(self, input_shape):
            built.append(self.name)
            return input_shape

    model = npnet.Sequential([npnet.Input(shape=(3,))])
    for _ in range(50):
        model.add(CountedShape())
    assert len(built) == 50
    assert model.output_shape == (None, 3) and model.built


def test_too_many_layers_are_refused_before_building(tmp_path):
    path = _with_layers(tmp_path, MAX_LAYERS + 1)
    _refused(path, f"the model lists {MAX_LAYERS + 1} layers and layer calls, more than npnet.saving.MAX_LAYERS")


def test_an_oversized_config_is_refused_before_it_is_read(tmp_path):
    members = _members(_trained(tmp_path))
    header = _header(members)
    header["padding"] = "x" * MAX_CONFIG_BYTES
    _write(tmp_path / "big.npnet", _replace(members, "config.json", json.dumps(header).encode()))
    _refused(tmp_path / "big.npnet", "config.json is implausibly large", "MAX_CONFIG_BYTES")


def test_deeply_nested_json_is_refused(tmp_path):
    members = _members(_trained(tmp_path))
    deep = _with_header(members, lambda h: h.update(extra=json.loads("[" * 150 + "]" * 150)))
    _write(tmp_path / "deep.npnet", deep)
    _refused(tmp_path / "deep.npnet", "config.json nests objects more than 100 deep")


# ---------------------------------------------------------------------------- tampered files
def _adam_file(tmp_path):
    members = _members(_trained(tmp_path))
    header = _header(members)
    v_files = [e["file"] for e in header["optimizer_state"]["slots"]["v"]]
    m_files = [e["file"] for e in header["optimizer_state"]["slots"]["m"]]
    return members, v_files, m_files


def _array_of(members, name):
    return np.load(io.BytesIO(dict(members)[name]))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, value):
    members = _members(_trained(tmp_path))
    kernel = _array_of(members, "weights/0000.npy")
    kernel[1, 2] = value
    _write(tmp_path / "bad.npnet", _replace(members, "weights/0000.npy", _npy(kernel)))
    _refused(tmp_path / "bad.npnet", "'weights/0000.npy' for weight 'hidden/kernel' holds 1 non-finite values")
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, name="hidden"), npnet.Dense(3, name="out")])
    before = model.get_weights()
    _refused(tmp_path / "bad.npnet", "non-finite", load=model.load_weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # left unchanged


def test_float64_weights_that_overflow_float32_are_refused(tmp_path):
    members = _members(_trained(tmp_path))
    kernel = _array_of(members, "weights/0000.npy").astype(np.float64)
    kernel[0, 0] = 1e39
    members = _replace(members, "weights/0000.npy", _npy(kernel))
    members = _with_header(members, lambda h: h["weights"][0].update(dtype="float64"))
    _write(tmp_path / "big.npnet", members)
    _refused(tmp_path / "big.npnet", "'weights/0000.npy' for weight 'hidden/kernel' holds 1 values too large for "
             "float32 (up to 1e+39)")


def test_float64_weights_that_fit_float32_load_as_float32(tmp_path):
    path = _trained(tmp_path)
    members = _members(path)
    kernel = _array_of(members, "weights/0000.npy")
    members = _replace(members, "weights/0000.npy", _npy(kernel.astype(np.float64)))
    _write(tmp_path / "f64.npnet", _with_header(members, lambda h: h["weights"][0].update(dtype="float64")))
    loaded = npnet.load_model(tmp_path / "f64.npnet").get_layer("hidden").params["kernel"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, kernel)


def test_duplicate_members_are_refused(tmp_path):
    members = _members(_trained(tmp_path))
    kernel = _array_of(members, "weights/0000.npy")
    _write(tmp_path / "dup.npnet", members + [("weights/0000.npy", _npy(kernel * 100))])
    _refused(tmp_path / "dup.npnet", "member 'weights/0000.npy' appears twice in the zip")
    _write(tmp_path / "dupconfig.npnet", members + [("config.json", b"{}")])
    _refused(tmp_path / "dupconfig.npnet", "member 'config.json' appears twice in the zip")


def test_a_member_listed_twice_in_the_manifest_is_refused(tmp_path):
    members = _members(_trained(tmp_path))
    members = _with_header(members, lambda h: h["weights"][2].update(file="weights/0000.npy"))
    _write(tmp_path / "twice.npnet", [(n, d) for n, d in members if n != "weights/0002.npy"])
    _refused(tmp_path / "twice.npnet", "member 'weights/0000.npy' is listed twice in the manifest, for weight "
             "'hidden/kernel' and weight 'out/kernel'")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_optimizer_slots_are_refused(tmp_path, value):
    members, _, m_files = _adam_file(tmp_path)
    m = _array_of(members, m_files[0])
    m.flat[0] = value
    _write(tmp_path / "bad.npnet", _replace(members, m_files[0], _npy(m)))
    _refused(tmp_path / "bad.npnet", f"{m_files[0]!r} for optimizer slot 'm' of 'hidden/kernel' holds 1 non-finite")
    npnet.load_model(tmp_path / "bad.npnet", compile=False)  # the weights alone are sound


@pytest.mark.parametrize("optimizer, slot", [("adam", "v"), ("rmsprop", "s"), ("adagrad", "accumulator"),
                                             ("adamax", "u"), ("nadam", "v"), ("adadelta", "accumulated_grad")])
def test_negative_optimizer_slots_that_must_be_non_negative_are_refused(tmp_path, optimizer, slot):
    members = _members(_trained(tmp_path, optimizer))
    entry = _header(members)["optimizer_state"]["slots"][slot][1]
    array = _array_of(members, entry["file"])
    array.flat[0] = -1e-3
    _write(tmp_path / "neg.npnet", _replace(members, entry["file"], _npy(array)))
    _refused(tmp_path / "neg.npnet", f"{entry['file']!r} for optimizer slot {slot!r} of 'hidden/bias' holds negative "
             "values (down to -0.001); the optimizer keeps this slot >= 0")


def test_negative_values_in_slots_that_may_be_negative_load(tmp_path):
    members, _, m_files = _adam_file(tmp_path)
    m = _array_of(members, m_files[0])
    m.flat[0] = -0.5
    _write(tmp_path / "m.npnet", _replace(members, m_files[0], _npy(m)))
    model = npnet.load_model(tmp_path / "m.npnet")
    assert model.optimizer.slots["m"][0].flat[0] == np.float32(-0.5)


@pytest.mark.parametrize("iterations", [10**400, MAX_ITERATIONS + 1, -1, 2.5, True, "7", None],
                         ids=["10**400", "2**63", "-1", "2.5", "True", "'7'", "None"])
def test_out_of_range_or_mistyped_iterations_are_refused(tmp_path, iterations):
    members = _members(_trained(tmp_path))
    _write(tmp_path / "it.npnet",
           _with_header(members, lambda h: h["optimizer_state"].update(iterations=iterations)))
    message = _refused(tmp_path / "it.npnet", "invalid optimizer iterations",
                       "expected an integer from 0 to npnet.saving.MAX_ITERATIONS")
    assert len(message) < 400  # a huge number is shortened


def test_the_largest_iteration_count_loads(tmp_path):
    members = _members(_trained(tmp_path))
    _write(tmp_path / "it.npnet",
           _with_header(members, lambda h: h["optimizer_state"].update(iterations=MAX_ITERATIONS)))
    assert npnet.load_model(tmp_path / "it.npnet").optimizer.iterations == 2**63 - 1


@pytest.mark.parametrize("where", ["model", "layer"])
@pytest.mark.parametrize("value", ["false", 0, None])
def test_trainable_must_be_a_boolean(tmp_path, where, value):
    members = _members(_trained(tmp_path))

    def edit(header):
        config = header["model"]["config"]
        (config if where == "model" else config["layers"][0]["config"])["trainable"] = value

    _write(tmp_path / "t.npnet", _with_header(members, edit))
    _refused(tmp_path / "t.npnet", "`trainable` must be true or false", f"received {value!r}")


@pytest.mark.parametrize("version", [-1, 0, True, "3", 2.0, None])
def test_format_version_must_be_a_positive_integer(tmp_path, version):
    members = _members(_trained(tmp_path))
    _write(tmp_path / "v.npnet", _with_header(members, lambda h: h.update(format_version=version)))
    _refused(tmp_path / "v.npnet", f"config.json has no valid format_version (a positive integer), "
             f"received {version!r}")


@pytest.mark.parametrize("text, problem", [
    ('{"format_version": NaN}', "NaN is not a number JSON allows"),
    ('{"format_version": 3, "lr": 1e400}', "the number 1e400 is out of range"),
    ('{"format_version": 3, "format_version": 1}', "the key 'format_version' appears twice in one object"),
])
def test_non_standard_json_is_refused(tmp_path, text, problem):
    members = _replace(_members(_trained(tmp_path)), "config.json", text.encode())
    _write(tmp_path / "j.npnet", members)
    _refused(tmp_path / "j.npnet", "config.json is unreadable", problem)


def _conv_model(seed=0):
    model = npnet.Sequential([npnet.Input(shape=(6, 6, 2)), npnet.Conv2D(3, 3, name="conv"), npnet.Flatten(),
                              npnet.Dense(2, name="head")], seed=seed)
    model.compile(npnet.SGD(0.1), "mse")
    return model


def test_fortran_order_arrays_load_in_c_order_and_a_conv2d_still_learns(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    _conv_model().save(tmp_path / "c.npnet")
    members = _members(tmp_path / "c.npnet")
    kernel = _array_of(members, "weights/0000.npy")
    fortran = _npy(np.asfortranarray(kernel))
    assert np.lib.format.read_array_header_1_0(io.BytesIO(fortran[8:]))[1]  # stored in Fortran order
    _write(tmp_path / "f.npnet", _replace(members, "weights/0000.npy", fortran))
    from_c, from_f = npnet.load_model(tmp_path / "c.npnet"), npnet.load_model(tmp_path / "f.npnet")
    loaded = from_f.get_layer("conv").params["kernel"]
    assert loaded.flags.c_contiguous and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, kernel)
    from_c.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    from_f.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    assert not np.array_equal(from_f.get_layer("conv").params["kernel"], kernel)  # it learns
    for a, b in zip(from_f.get_weights(), from_c.get_weights()):
        np.testing.assert_array_equal(a, b)  # exactly as from the C-ordered file
    model = _conv_model(seed=3)
    model.load_weights(tmp_path / "f.npnet")
    np.testing.assert_array_equal(model.get_layer("conv").params["kernel"], kernel)


def test_a_junk_member_is_named(tmp_path):
    """Not "an object array": the member is junk, and the message says so."""
    members = _members(_trained(tmp_path))
    _write(tmp_path / "text.npnet", _replace(members, "weights/0002.npy", b"just some text"))
    message = _refused(tmp_path / "text.npnet", "'weights/0002.npy' for weight 'out/kernel' is not a valid .npy array")
    assert "object" not in message and "pickle" not in message
    _write(tmp_path / "junk.npnet", _replace(members, "weights/0002.npy", b"\x93NUMPY junk" + bytes(50)))
    _refused(tmp_path / "junk.npnet", "'weights/0002.npy' for weight 'out/kernel' is not a valid .npy array")
    _write(tmp_path / "extra.npnet", members + [("notes/readme.txt", b"hello")])
    _refused(tmp_path / "extra.npnet", "holds unexpected files ['notes/readme.txt'] that the manifest does not list")


def test_unsupported_members_are_refused(tmp_path):
    members = _members(_trained(tmp_path))
    with zipfile.ZipFile(tmp_path / "bz.npnet", "w") as zf:
        for name, data in members:
            zf.writestr(name, data, compress_type=zipfile.ZIP_BZIP2 if name == "weights/0001.npy" else 0)
    _refused(tmp_path / "bz.npnet", "member 'weights/0001.npy' uses zip compression method 12; npnet reads stored "
             "or deflated members only")
    with zipfile.ZipFile(tmp_path / "deflated.npnet", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    assert len(npnet.load_model(tmp_path / "deflated.npnet").get_weights()) == 4  # a recompressed file loads


def test_the_manifest_may_only_name_float_arrays(tmp_path):
    members = _members(_trained(tmp_path))
    _write(tmp_path / "d.npnet", _with_header(members, lambda h: h["weights"][1].update(dtype="<U1000000")))
    _refused(tmp_path / "d.npnet", "the manifest gives weight 'hidden/bias' ('weights/0001.npy') the dtype "
             "'<U1000000'; npnet files hold float16, float32, float64 arrays")
    _write(tmp_path / "s.npnet", _with_header(members, lambda h: h["weights"][1].update(shape=[-8])))
    _refused(tmp_path / "s.npnet", "the manifest gives weight 'hidden/bias' ('weights/0001.npy') the invalid shape [-8]")


class _Marker:
    """Unpickling this creates a file: the proof that a loader ran code from a file."""

    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_no_crafted_file_runs_code(tmp_path):
    marker = tmp_path / "ran"
    _Marker.path = str(marker)
    payload = np.empty(1, dtype=object)
    payload[0] = _Marker()
    members = _members(_trained(tmp_path))
    evil = _npy(payload, allow_pickle=True)
    np.load(io.BytesIO(evil), allow_pickle=True)  # the payload works when unpickled ...
    assert marker.exists()
    marker.unlink()
    _write(tmp_path / "evil.npnet", _replace(members, "weights/0001.npy", evil))
    _refused(tmp_path / "evil.npnet", "'weights/0001.npy' holds an object array, which npnet never writes and "
             "refuses to unpickle")
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, name="hidden"), npnet.Dense(3, name="out")])
    _refused(tmp_path / "evil.npnet", "object array", load=model.load_weights)
    evil_config = _with_header(members, lambda h: h["model"]["config"]["layers"][0].update(
        class_name="builtins.open"))
    _write(tmp_path / "cls.npnet", evil_config)
    _refused(tmp_path / "cls.npnet", "unknown layer class 'builtins.open'")
    assert not marker.exists()  # ... and the loader never unpickled it


def test_every_failure_names_the_file(tmp_path):
    """A sample of the corpus through both loaders: always a SavedModelError with the path."""
    members = _members(_trained(tmp_path))
    corpus = {
        "truncated": None,
        "empty": b"",
        "not a zip": b"PK\x03\x04 not really",
    }
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, name="hidden"), npnet.Dense(3, name="out")])
    good = (tmp_path / "good.npnet").read_bytes()
    for name, data in corpus.items():
        path = tmp_path / f"{name.replace(' ', '_')}.npnet"
        path.write_bytes(good[: len(good) // 3] if data is None else data)
        _refused(path, "not a readable zip")
        _refused(path, "not a readable zip", load=model.load_weights)
    _write(tmp_path / "noconfig.npnet", [(n, d) for n, d in members if n != "config.json"])
    _refused(tmp_path / "noconfig.npnet", "has no config.json")
    _write(tmp_path / "compile.npnet", _with_header(members, lambda h: h.update(compile=5)))
    _refused(tmp_path / "compile.npnet", "malformed compile settings")
    _write(tmp_path / "loss.npnet", _with_header(members, lambda h: h["compile"]["heads"][0].update(
        loss={"class_name": "Nope", "config": {}})))
    _refused(tmp_path / "loss.npnet", "unknown loss class 'Nope'")


@pytest.mark.parametrize("shape", [[None, "4"], [None, -4], [None, True]])
def test_malformed_build_shapes_are_refused(tmp_path, shape):
    members = _members(_trained(tmp_path))
    _write(tmp_path / "b.npnet", _with_header(members, lambda h: h["model"].update(build_shapes={"shape": shape})))
    model = npnet.Sequential([npnet.Dense(8, name="hidden"), npnet.Dense(3, name="out")])  # built from the file
    _refused(tmp_path / "b.npnet", "malformed build shapes", load=model.load_weights)
