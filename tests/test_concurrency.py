"""Several threads at once: loading and building, inference on one model, fit refused twice."""

import threading

import numpy as np
import pytest

import npnet
from npnet import layers as L


def small_model(seed=None):
    return npnet.Sequential([npnet.Input((8,)), L.Dense(16), L.Dense(4)], seed=seed)


def assert_freshly_initialized(model):
    for layer in model.layers:
        kernel = layer.params["kernel"]
        assert kernel.flags.writeable, f"{layer.name}: read-only kernel"
        assert np.any(kernel != 0), f"{layer.name}: all-zero kernel"


@npnet.register_layer
class _PausingDense(L.Dense):
    """A Dense layer whose build, while loading, waits for another thread to build a model."""

    inside = threading.Event()
    resume = threading.Event()

    def build(self, input_shape):
        if not type(self).inside.is_set():
            type(self).inside.set()
            type(self).resume.wait(30)
        super().build(input_shape)


def test_a_model_built_while_another_thread_loads_gets_real_weights(tmp_path):
    _PausingDense.resume.clear()
    _PausingDense.inside.set()  # no pause while building this one
    model = npnet.Sequential([npnet.Input((8,)), _PausingDense(4)])
    model.compile("sgd", "mse")
    path = str(tmp_path / "m.npnet")
    model.save(path)
    _PausingDense.inside.clear()
    loaded = []
    loader = threading.Thread(target=lambda: loaded.append(npnet.load_model(path)))
    loader.start()
    try:
        assert _PausingDense.inside.wait(30)  # the loader is in the middle of building its model
        built = []
        builder = threading.Thread(target=lambda: built.append(small_model()))
        builder.start()
        builder.join(10)  # a hang guard, not a timing: building takes milliseconds
        assert built, "building a model waited for the load in another thread to finish"
        assert_freshly_initialized(built[0])
    finally:
        _PausingDense.resume.set()
        loader.join()
    np.testing.assert_array_equal(loaded[0].get_weights()[0], model.get_weights()[0])


def test_models_built_while_another_thread_loads_in_a_loop(tmp_path):
    model = small_model(seed=0)
    model.compile("adam", "mse")
    path = str(tmp_path / "m.npnet")
    model.save(path)
    stop = threading.Event()
    errors = []

    def load():
        while not stop.is_set():
            try:
                assert np.array_equal(npnet.load_model(path).get_weights()[0], model.get_weights()[0])
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
                return

    loader = threading.Thread(target=load)
    loader.start()
    try:
        for _ in range(60):
            assert_freshly_initialized(small_model())
    finally:
        stop.set()
        loader.join()
    assert not errors


def mixed_model():
    inputs = npnet.Input((12, 12, 3))
    h = L.Conv2D(8, 3, activation="relu")(inputs)
    h = L.BatchNormalization()(h)
    h = L.MaxPooling2D(2)(h)
    h = L.Dropout(0.5)(h)
    h = L.Flatten()(h)
    outputs = L.Dense(5, activation="softmax")(h)
    model = npnet.Model(inputs, outputs, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_concurrent_inference_on_one_model_matches_serial():
    rng = np.random.default_rng(0)
    model = mixed_model()
    x = rng.normal(size=(64, 12, 12, 3)).astype(np.float32)
    model.fit(x, rng.integers(0, 5, 64), epochs=1, verbose=0, seed=0)  # moving statistics away from 0 and 1
    batches = [rng.normal(size=(int(n), 12, 12, 3)).astype(np.float32) for n in rng.integers(1, 40, 8)]
    serial = [model.predict(b, verbose=0) for b in batches]
    called = [model(b) for b in batches]
    results: dict = {}
    start = threading.Barrier(len(batches))

    def work(i):
        start.wait()
        for _ in range(5):
            results.setdefault(i, []).append(model.predict(batches[i], verbose=0))
            results[i].append(model(batches[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(batches)):
        assert len(results[i]) == 10
        for k, r in enumerate(results[i]):
            np.testing.assert_array_equal(r, serial[i] if k % 2 == 0 else called[i])


def test_a_second_fit_on_a_training_model_is_refused():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype(np.float32), rng.normal(size=(64, 4)).astype(np.float32)
    model = small_model(seed=0)
    model.compile("sgd", "mse")
    started, release = threading.Event(), threading.Event()

    class Hold(npnet.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                started.set()
                release.wait(10)

    first = threading.Thread(target=lambda: model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Hold()]))
    first.start()
    try:
        assert started.wait(10)
        name = model.name
        with pytest.raises(RuntimeError, match=f"fit: model '{name}' is already training in another thread"):
            model.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match=f"train_on_batch: model '{name}' is already training"):
            model.train_on_batch(x, y)
        # inference alongside is allowed
        assert model.predict(x, verbose=0).shape == (64, 4)
    finally:
        release.set()
        first.join()
    assert model.optimizer.iterations == 4  # the refused calls changed nothing
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # free again
    assert model.optimizer.iterations == 8


def test_fit_from_inside_its_own_fit_is_refused():
    x, y = np.zeros((4, 8), np.float32), np.zeros((4, 4), np.float32)
    model = small_model(seed=0)
    model.compile("sgd", "mse")
    seen = []

    class Nested(npnet.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            try:
                self.model.fit(x, y, verbose=0)
            except RuntimeError as e:
                seen.append(str(e))

    model.fit(x, y, epochs=1, verbose=0, callbacks=[Nested()])
    assert len(seen) == 1 and "already training in this thread, from inside its own training" in seen[0]
    with pytest.raises(ValueError):  # a failed fit frees the model too
        model.fit(np.zeros((4, 3)), y, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)


def test_changing_the_thread_count_while_another_thread_trains():
    before = npnet.get_num_threads()
    rng = np.random.default_rng(0)
    # 8 x 32 x 32 x 64 activations: the batch normalization runs in chunks on the pool
    model = npnet.Sequential([npnet.Input((32, 32, 64)), L.BatchNormalization(), L.GlobalAveragePooling2D(),
                              L.Dense(2)], seed=0)
    model.compile("sgd", "mse")
    x, y = rng.normal(size=(8, 32, 32, 64)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)
    reference = npnet.models.clone_model(model)
    reference.set_weights(model.get_weights())
    reference.compile("sgd", "mse")
    reference.fit(x, y, epochs=6, batch_size=8, verbose=0, shuffle=False)
    stop = threading.Event()

    def flip():
        n = 0
        while not stop.is_set():
            npnet.set_num_threads(2 + n % 2)
            n += 1

    flipper = threading.Thread(target=flip)
    npnet.set_num_threads(2)
    flipper.start()
    try:
        model.fit(x, y, epochs=6, batch_size=8, verbose=0, shuffle=False)
    finally:
        stop.set()
        flipper.join()
        npnet.set_num_threads(before)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
