"""Several threads using one model, or building models while another loads one."""

import threading

import numpy as np

import npnet
from npnet import layers as L


def _cnn():
    x = npnet.Input(shape=(12, 12, 3))
    h = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    h = L.BatchNormalization()(L.MaxPooling2D(2)(h))
    h = L.Conv2D(8, 3)(h)
    skip = L.AveragePooling2D(2, strides=1)(h)
    h = L.add([skip, L.MaxPooling2D(2, strides=1)(h)])
    out = L.Dense(4, activation="softmax")(L.GlobalAveragePooling2D()(h))
    model = npnet.Model(x, out, seed=0)
    bn = model.layers[3]
    bn.state["moving_mean"][:] = 0.3  # inference uses the moving statistics: make them matter
    bn.state["moving_variance"][:] = 2.0
    return model


def _run_threads(fn, n):
    errors, results = [], [None] * n

    def work(i):
        try:
            results[i] = fn(i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_concurrent_predict_and_call_match_serial_results():
    model = _cnn()
    r = np.random.default_rng(0)
    batches = [r.normal(size=(40 + 7 * i, 12, 12, 3)).astype("float32") for i in range(6)]
    serial = [model.predict(b, batch_size=16, verbose=0) for b in batches]
    for _ in range(3):
        got = _run_threads(lambda i: model.predict(batches[i], batch_size=16, verbose=0), 6)
        for g, s in zip(got, serial):
            np.testing.assert_array_equal(g, s)
        called = _run_threads(lambda i: model(batches[i]), 6)
        for g, s in zip(called, serial):
            np.testing.assert_allclose(g, s, rtol=1e-6, atol=1e-7)


def test_concurrent_predict_on_a_sequential_built_lazily():
    model = npnet.Sequential([L.Conv2D(4, 3, padding="same"), L.MaxPooling2D(2), L.Flatten(), L.Dense(3)])
    x = np.random.default_rng(1).normal(size=(32, 8, 8, 2)).astype("float32")
    results = _run_threads(lambda i: model.predict(x, verbose=0), 4)  # all threads race to build it
    assert model.count_params() == 4 * 18 + 4 + 64 * 3 + 3
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_loading_in_one_thread_does_not_change_how_another_builds(tmp_path):
    path = tmp_path / "m.npnet"
    npnet.Sequential([npnet.Input(shape=(5,)), L.Dense(64), L.Dense(64)], seed=0).save(path)
    stop = threading.Event()

    def load_forever(_):
        while not stop.is_set():
            npnet.load_model(path)

    loader = threading.Thread(target=load_forever, args=(0,))
    loader.start()
    try:
        bad = 0
        for _ in range(100):
            layer = L.Dense(32)
            layer(np.ones((1, 16), np.float32))
            kernel = layer.params["kernel"]
            if not kernel.flags.writeable or not np.any(kernel):
                bad += 1
    finally:
        stop.set()
        loader.join()
    assert bad == 0
