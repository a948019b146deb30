"""Memory-mapped arrays (``np.load(path, mmap_mode="r")``) train, evaluate and predict
without being read into memory whole."""

import os
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import npnet


def _model():
    model = npnet.Sequential([npnet.Input(shape=(6,)), npnet.Dense(3, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_memmap_gives_the_same_run_as_the_array_in_memory(tmp_path, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(90, 6)).astype(dtype)
    y = np.repeat(np.arange(3), 30)  # sorted by class: the validation split is stratified
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ym = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert isinstance(xm, np.memmap)

    runs = []
    for xs, ys in ((x, y), (xm, ym)):
        model = _model()
        h = model.fit(xs, ys, batch_size=16, epochs=2, validation_split=0.2, seed=3, verbose=0)
        runs.append((h.history, model.evaluate(xs, ys, batch_size=7, verbose=0),
                     model.predict(xs, batch_size=11, verbose=0), model.get_weights()))
    (h0, e0, p0, w0), (h1, e1, p1, w1) = runs
    assert h0 == h1
    assert e0 == e1
    np.testing.assert_array_equal(p0, p1)
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert set(h0) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_a_float_memmap_with_nan_is_refused_with_the_row(tmp_path):
    x = np.zeros((5000, 1000), np.float32)  # 20 MB: checked for NaN in chunks
    x[4321, 7] = np.nan
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = npnet.Sequential([npnet.Input(shape=(1000,)), npnet.Dense(2)], seed=0)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"`x` contains NaN or infinity \(first at index \(4321, 7\)\)"):
        model.fit(xm, np.zeros((5000, 2), np.float32), verbose=0)


_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import npnet

    def data_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmData:"))

    path_x, path_y, limit_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    x = np.load(path_x, mmap_mode="r")
    y = np.load(path_y, mmap_mode="r")
    model = npnet.Sequential([npnet.Input(shape=x.shape[1:]), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.predict(x[:2], verbose=0)  # warm up the BLAS threads and buffers before measuring
    limit = data_kb() * 1024 + limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        np.ones(limit_mb * 2**20 + 2**20, np.uint8)
    except MemoryError:
        print("limit-bites")
    h = model.fit(x, y, batch_size=4096, epochs=1, validation_split=0.1, seed=0, verbose=0)
    print("fit", h.history["loss"][0], h.history["val_loss"][0])
    loss, acc = model.evaluate(x, y, batch_size=8192, verbose=0)
    print("evaluate", loss, acc)
    p = model.predict(x, batch_size=8192, verbose=0)
    print("predict", p.shape)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA and /proc are Linux features")
def test_a_memmap_larger_than_the_memory_limit_trains(tmp_path):
    # RLIMIT_DATA (Linux >= 4.7) counts the heap and private writable mappings, not a
    # read-only shared file mapping: a 600 MB memory-mapped file under a limit of 300 MB
    # above the process's baseline only fits if nothing reads the data set in whole.
    assert hasattr(resource, "RLIMIT_DATA")
    n, d = 600_000, 1000
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(n, d))
    row = np.arange(d, dtype=np.uint8)
    for lo in range(0, n, 50_000):
        x[lo:lo + 50_000] = row
    x.flush()
    del x
    y = (np.arange(n) % 2).astype(np.int64)
    np.save(tmp_path / "y.npy", y)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "300"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split("\n")
    assert lines[0] == "limit-bites"  # the limit is real: one array of the limit's size fails
    fit = lines[1].split()
    assert fit[0] == "fit" and np.isfinite(float(fit[1])) and np.isfinite(float(fit[2]))
    assert lines[2].startswith("evaluate")
    assert lines[3] == f"predict ({n}, 2)"
