"""Chunked, threaded element-wise work and the arrays that fit reuses between batches.

The layer harness draws small shapes, which run in one piece. These tests use arrays large
enough to be cut into several chunks, and check the chunked paths against plain formulas,
against the thread count, and through fit.
"""

import copy
import os
import subprocess
import sys

import numpy as np
import pytest

import npnet
from npnet.layers import BatchNormalization, Conv2D, GlobalAveragePooling2D, MaxPooling2D, ReLU

# 8 x 32 x 32 x 64 = 524,288 elements: several chunks of about 2**18 elements each.
BIG = (8, 32, 32, 64)


@pytest.fixture
def threads():
    """Restore the thread count after the test."""
    before = npnet.get_num_threads()
    yield
    npnet.set_num_threads(before)


def test_batch_norm_in_chunks_matches_the_formula(rng):
    x = (rng.normal(size=BIG) * 3 + 1).astype(np.float32)
    dy = rng.normal(size=BIG).astype(np.float32)
    bn = BatchNormalization()
    y, cache = bn.forward(x, training=True)
    mean, var = x.astype(np.float64).mean(axis=(0, 1, 2)), x.astype(np.float64).var(axis=(0, 1, 2))
    xhat = (x - mean) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(y, xhat, atol=2e-5)
    dx = bn.backward(cache, dy)
    # dx = (dy - mean(dy) - xhat * mean(dy * xhat)) / sqrt(var + eps), gamma = 1
    expected = (dy - dy.mean(axis=(0, 1, 2)) - xhat * (dy * xhat).mean(axis=(0, 1, 2))) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(dx, expected, atol=2e-5)
    np.testing.assert_allclose(bn.grads["gamma"], (dy * xhat).sum(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(bn.grads["beta"], dy.sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-2)
    # moving statistics: 0.99 * initial + 0.01 * batch
    np.testing.assert_allclose(bn.state["moving_mean"], 0.01 * mean, rtol=1e-4)
    np.testing.assert_allclose(bn.state["moving_variance"], 0.99 + 0.01 * var, rtol=1e-5)


def test_batch_norm_inference_in_chunks_uses_moving_statistics(rng):
    x = rng.normal(size=BIG).astype(np.float32)
    bn = BatchNormalization()
    bn.build((None,) + BIG[1:])
    bn.state["moving_mean"][...] = np.linspace(-1, 1, 64)
    bn.state["moving_variance"][...] = np.linspace(0.5, 2, 64)
    bn.params["gamma"][...] = 2.0
    bn.params["beta"][...] = -1.0
    y, cache = bn.forward(x, training=False)
    scale = 2 / np.sqrt(np.linspace(0.5, 2, 64) + 1e-3)
    np.testing.assert_allclose(y, (x - np.linspace(-1, 1, 64)) * scale - 1, rtol=1e-5, atol=1e-5)
    dy = rng.normal(size=BIG).astype(np.float32)
    np.testing.assert_allclose(bn.backward(cache, dy), dy * scale, rtol=1e-6)


def test_max_pooling_and_relu_in_chunks_match_the_formula(rng):
    x = rng.normal(size=BIG).astype(np.float32)
    pool = MaxPooling2D(2)
    y, cache = pool.forward(x, training=True)
    windows = x.reshape(8, 16, 2, 16, 2, 64).transpose(0, 1, 3, 5, 2, 4).reshape(8, 16, 16, 64, 4)
    np.testing.assert_array_equal(y, windows.max(axis=-1))
    dy = rng.normal(size=y.shape).astype(np.float32)
    # the gradient goes to the first maximal element of each window
    routed = np.zeros(windows.shape, dtype=np.float32)
    np.put_along_axis(routed, windows.argmax(axis=-1)[..., None], dy[..., None], axis=-1)
    expected = routed.reshape(8, 16, 16, 64, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(BIG)
    np.testing.assert_array_equal(pool.backward(cache, dy), expected)

    relu = ReLU()
    y, cache = relu.forward(x, training=True)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dy = rng.normal(size=BIG).astype(np.float32)
    np.testing.assert_array_equal(relu.backward(cache, dy), dy * (x > 0))


def _cnn(seed=0):
    model = npnet.Sequential([
        npnet.Input(shape=(32, 32, 1)),
        Conv2D(64, 3, padding="same", use_bias=False),
        BatchNormalization(),
        ReLU(),
        MaxPooling2D(2),
        GlobalAveragePooling2D(),
        npnet.Dense(3, activation="softmax"),
    ], seed=seed)
    model.compile(npnet.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(rng, n=16):
    x = rng.normal(size=(n, 32, 32, 1)).astype(np.float32)
    return x, rng.integers(0, 3, size=n)


def test_results_do_not_depend_on_the_thread_count(rng, threads):
    x, y = _data(rng)
    runs = []
    for n_threads in (1, 2, 3):
        npnet.set_num_threads(n_threads)
        assert npnet.get_num_threads() == n_threads
        model = _cnn()
        history = model.fit(x, y, batch_size=8, epochs=2, seed=0, verbose=0)
        runs.append((history.history["loss"], model.get_weights()))
    for losses, weights in runs[1:]:
        assert losses == runs[0][0]
        for a, b in zip(weights, runs[0][1]):
            np.testing.assert_array_equal(a, b)


def test_fit_with_reused_arrays_matches_a_hand_written_loop(rng):
    """fit hands the same output arrays from batch to batch; a loop over the public layer
    API with fresh arrays must reach the same weights."""
    x, y = _data(rng)
    model = _cnn()
    model.build((None, 32, 32, 1))
    manual = copy.deepcopy(model)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    # a small learning rate keeps the softmax away from saturation, where the unfused
    # softmax + cross-entropy of this loop and the fused one of fit part ways
    assert history.history["loss"][0] < 5

    params = [p for layer in manual.layers for p in layer.params.values()]
    grads = [g for layer in manual.layers for g in layer.grads.values()]
    for lo in (0, 8):
        h, caches = x[lo:lo + 8], []
        for layer in manual.layers:
            h, cache = layer.forward(h, training=True)
            caches.append(cache)
        manual.loss.forward(y[lo:lo + 8], h)
        d = manual.loss.backward()
        for layer, cache in zip(reversed(manual.layers), reversed(caches)):
            d = layer.backward(cache, d)
        manual.optimizer.step(params, grads)
    for a, b in zip(model.get_weights(), manual.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_outputs_are_fresh_arrays_outside_fit(rng):
    x, y = _data(rng)
    model = _cnn()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for layer in model.layers[1:4]:
        h = model.layers[0](x[:8])
        first = layer(h, training=True)
        kept = first.copy()
        layer(model.layers[0](x[8:]), training=True)
        np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("value, error, match", [
    (0, ValueError, r"set_num_threads: `n` must be at least 1, received 0"),
    (-2, ValueError, r"set_num_threads: `n` must be at least 1, received -2"),
    (2.0, TypeError, r"set_num_threads: `n` must be an integer, received float 2.0"),
    ("2", TypeError, r"set_num_threads: `n` must be an integer, received str '2'"),
    (True, TypeError, r"set_num_threads: `n` must be an integer, received bool True"),
])
def test_set_num_threads_rejects_bad_values(value, error, match, threads):
    with pytest.raises(error, match=match):
        npnet.set_num_threads(value)


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.5"])
def test_bad_thread_count_in_the_environment(raw):
    env = {**os.environ, "NPNET_NUM_THREADS": raw}
    proc = subprocess.run([sys.executable, "-c", "import npnet"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"NPNET_NUM_THREADS: expected a positive integer, received '{raw}'" in proc.stderr


def test_thread_count_from_the_environment():
    env = {**os.environ, "NPNET_NUM_THREADS": "3"}
    proc = subprocess.run([sys.executable, "-c", "import npnet; print(npnet.get_num_threads())"], env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "3"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
def test_a_forked_child_trains_with_its_own_threads(rng, threads):
    """The pool's threads do not survive fork; a child that inherited a started pool
    must not wait on them forever."""
    import multiprocessing

    npnet.set_num_threads(2)
    x, y = _data(rng)
    _cnn().fit(x, y, batch_size=8, epochs=1, verbose=0)  # starts the pool in the parent
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        loss = pool.apply_async(_fit_loss, (x, y)).get(timeout=120)
    assert loss == _fit_loss(x, y)


def _fit_loss(x, y):
    return _cnn().fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0).history["loss"][0]


@pytest.mark.parametrize("make", [
    lambda: ReLU(),
    lambda: BatchNormalization(),
    lambda: MaxPooling2D(2),
    lambda: Conv2D(4, 3, padding="same"),
], ids=["relu", "batch_norm", "max_pooling", "conv2d"])
def test_strided_views_give_the_same_results_as_contiguous_arrays(make, rng):
    """Inputs and gradients that are views (a transpose, a crop) work like their copies."""
    x = rng.normal(size=(4, 8, 6, 3)).astype(np.float32).transpose(0, 2, 1, 3)  # (4, 6, 8, 3), strided
    assert not x.flags.c_contiguous
    a, b = make(), make()
    ya, cache_a = a.forward(x, training=True)
    b.build(a.input_shape)
    b.set_weights(a.get_weights())
    yb, cache_b = b.forward(np.ascontiguousarray(x), training=True)
    np.testing.assert_array_equal(ya, yb)
    dy = rng.normal(size=(ya.shape[0], ya.shape[1] + 2) + ya.shape[2:]).astype(np.float32)[:, 1:-1]
    assert not dy.flags.c_contiguous
    np.testing.assert_array_equal(a.backward(cache_a, dy), b.backward(cache_b, np.ascontiguousarray(dy)))
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k], err_msg=k)
