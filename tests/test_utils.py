"""npnet.utils: to_categorical, normalize, set_random_seed, split_dataset (Keras semantics)."""

import random

import numpy as np
import pytest

import npnet
from npnet import _config
from npnet.data import ImageAugmenter
from npnet.utils import normalize, set_random_seed, split_dataset, to_categorical


@pytest.fixture
def restore_seeds():
    """set_random_seed changes global state: put it back after the test."""
    py, np_state, own = random.getstate(), np.random.get_state(), _config._seed_state()
    yield
    random.setstate(py)
    np.random.set_state(np_state)
    _config._set_seed_state(own)


# ---------------------------------------------------------------- to_categorical
def test_to_categorical_values_shapes_and_dtype():
    out = to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    # Keras' shape rules: a trailing axis of 1 is dropped; other axes are kept
    assert to_categorical(np.array([[1], [0]]), num_classes=4).shape == (2, 4)
    assert to_categorical(np.zeros((2, 3), int), num_classes=5).shape == (2, 3, 5)
    assert to_categorical(np.array([[0, 1]])).shape == (1, 2, 2)
    np.testing.assert_array_equal(to_categorical(2, num_classes=3), [0, 0, 1])
    assert to_categorical(np.array([1.0, 0.0])).tolist() == [[0, 1], [1, 0]]
    assert to_categorical(np.array([], int), num_classes=3).shape == (0, 3)
    npnet.set_floatx("float64")
    assert to_categorical([1]).dtype == np.float64


@pytest.mark.parametrize("x, kwargs, error, match", [
    ([0, -1, 2], {}, ValueError, r"to_categorical: class ids must be >= 0, received -1"),
    ([0, 1.5], {}, ValueError, r"to_categorical: `x` must hold integer class ids, received values such as \[1.5\]"),
    ([0, np.nan], {}, ValueError, r"must hold integer class ids, received values such as \[nan\]"),
    (["a", "b"], {}, ValueError, r"to_categorical: `x` must hold integer class ids, received dtype <U1"),
    ([True, False], {}, ValueError, r"must hold integer class ids, received dtype bool"),
    ([0, 3], {"num_classes": 3}, ValueError, r"to_categorical: class ids must be < num_classes=3, received 3"),
    ([0], {"num_classes": 0}, ValueError, r"to_categorical: `num_classes` must be >= 1, received 0"),
    ([0], {"num_classes": 2.0}, TypeError, r"to_categorical: `num_classes` must be an int or None, received 2.0"),
    ([], {}, ValueError, r"to_categorical: `x` is empty; give `num_classes`"),
    ([[0], [1, 2]], {}, ValueError, r"to_categorical: `x` must be an array of class ids, received list"),
])
def test_to_categorical_rejects_bad_labels(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        to_categorical(x, **kwargs)


# ---------------------------------------------------------------- normalize
def test_normalize_keras_formula():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, -1.0]], dtype=np.float32)
    out = normalize(x)
    # x / ||x||_2 per row; a zero row is divided by 1
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1 / np.sqrt(2), -1 / np.sqrt(2)]], rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(normalize(x, order=1), [[3 / 7, 4 / 7], [0, 0], [0.5, -0.5]], rtol=1e-6)
    np.testing.assert_allclose(normalize(x, axis=0), x / np.array([np.sqrt(10), np.sqrt(17)], np.float32),
                               rtol=1e-6)
    np.testing.assert_allclose(normalize(x, order=np.inf), [[0.75, 1.0], [0, 0], [1, -1]])
    assert normalize(np.array([[3, 4]])).dtype == np.float32
    assert normalize(x.astype(np.float64)).dtype == np.float64
    np.testing.assert_allclose(normalize(np.array([[1.0, 2.0], [2.0, 4.0]]), axis=None), [[0.2, 0.4], [0.4, 0.8]])


@pytest.mark.parametrize("x, kwargs, match", [
    (np.zeros((2, 2)), {"axis": 2}, r"normalize: `axis` must be an int in \[-2, 2\), received 2"),
    (np.zeros((2, 2)), {"axis": 1.0}, r"normalize: `axis` must be an int"),
    (np.array(["a"]), {}, r"normalize: `x` must be a numeric array, received dtype <U1"),
    (np.float64(3.0), {}, r"normalize: `x` must have at least one axis"),
    (np.ones((2, 2)), {"order": "fro"}, r"normalize: invalid `order` 'fro' for `axis` -1"),
])
def test_normalize_rejects_bad_input(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        normalize(x, **kwargs)


# ---------------------------------------------------------------- set_random_seed
def _run(with_dropout=True):
    layers = [npnet.Input(shape=(4,)), npnet.layers.Dense(8, activation="relu")]
    if with_dropout:
        layers.append(npnet.layers.Dropout(0.3))
    model = npnet.Sequential(layers + [npnet.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32)
    initial = model.get_weights()
    history = model.fit(x, np.arange(48) % 3, epochs=3, batch_size=8, verbose=0, validation_split=0.25)
    return initial, model.get_weights(), history.history


def test_set_random_seed_makes_unseeded_runs_reproducible(restore_seeds):
    set_random_seed(42)
    first = _run()
    set_random_seed(42)
    second = _run()
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        np.testing.assert_array_equal(a, b)
    assert first[2] == second[2]
    set_random_seed(43)
    third = _run()
    assert not np.array_equal(first[0][0], third[0][0])
    assert first[2]["loss"] != third[2]["loss"]


def test_set_random_seed_covers_every_unseeded_source(restore_seeds):
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype(np.float32)
    data = np.arange(20)

    def draw():
        return (
            npnet.initializers.get("glorot_uniform")((3, 3)),
            npnet.layers.Dropout(0.5)(np.ones((2, 6), np.float32), training=True),
            ImageAugmenter(rotation_range=20)(images),
            split_dataset(data, left_size=0.5, shuffle=True)[0],
            random.random(),
            np.random.random(),
        )

    set_random_seed(7)
    a = draw()
    set_random_seed(7)
    b = draw()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    # Python's and NumPy's global state are seeded as Keras seeds them
    set_random_seed(7)
    assert (random.random(), np.random.random()) == (random.Random(7).random(), np.random.RandomState(7).random_sample())


def test_explicit_seeds_keep_their_own_streams(restore_seeds):
    set_random_seed(1)
    a = npnet.initializers.get({"class_name": "GlorotUniform", "config": {"seed": 5}})((3, 3))
    set_random_seed(2)
    b = npnet.initializers.get({"class_name": "GlorotUniform", "config": {"seed": 5}})((3, 3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed, error, match", [
    ("1", TypeError, r"set_random_seed: `seed` must be an int, received '1' of type str"),
    (1.0, TypeError, r"set_random_seed: `seed` must be an int, received 1.0 of type float"),
    (True, TypeError, r"set_random_seed: `seed` must be an int, received True"),
    (-1, ValueError, r"set_random_seed: `seed` must be in \[0, 2\*\*32\), received -1"),
    (2**32, ValueError, r"set_random_seed: `seed` must be in \[0, 2\*\*32\), received 4294967296"),
])
def test_set_random_seed_rejects_bad_seeds(restore_seeds, seed, error, match):
    with pytest.raises(error, match=match):
        set_random_seed(seed)


# ---------------------------------------------------------------- split_dataset
def test_split_dataset_structures_and_sizes():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    left, right = split_dataset(x, left_size=0.8)
    np.testing.assert_array_equal(left, x[:8])
    np.testing.assert_array_equal(right, x[8:])
    (lx, ly), (rx, ry) = split_dataset((x, y), right_size=3)
    np.testing.assert_array_equal(ly, y[:7])
    np.testing.assert_array_equal(ry, y[7:])
    assert lx.shape == (7, 2) and rx.shape == (3, 2)
    left, right = split_dataset([x, y], left_size=4)
    assert isinstance(left, list) and [a.shape[0] for a in left + right] == [4, 4, 6, 6]
    left, right = split_dataset({"image": x, "label": y, "more": (y, [y])}, left_size=0.5)
    assert set(left) == {"image", "label", "more"}
    np.testing.assert_array_equal(left["more"][1][0], y[:5])
    np.testing.assert_array_equal(right["label"], y[5:])
    # both sizes given: the first left_size samples and the last right_size; the middle is left out
    left, right = split_dataset(y, left_size=2, right_size=3)
    assert left.tolist() == [0, 1] and right.tolist() == [7, 8, 9]
    # fractions round to the nearest count with Python's round (round(2.5) == 2), as Keras
    left, right = split_dataset(y, left_size=0.25)
    assert (len(left), len(right)) == (2, 8)
    left, right = split_dataset(y, left_size=0.25, right_size=0.35)
    assert (len(left), len(right)) == (2, 4)


def test_split_dataset_shuffle_is_a_seeded_permutation():
    x, y = np.arange(30).reshape(15, 2), np.arange(15)
    (lx, ly), (rx, ry) = split_dataset((x, y), left_size=10, shuffle=True, seed=3)
    assert sorted(ly.tolist() + ry.tolist()) == list(range(15))
    assert ly.tolist() != list(range(10))
    np.testing.assert_array_equal(lx[:, 0], 2 * ly)  # rows stay together
    again = split_dataset((x, y), left_size=10, shuffle=True, seed=3)
    np.testing.assert_array_equal(again[0][1], ly)
    other = split_dataset((x, y), left_size=10, shuffle=True, seed=4)
    assert other[0][1].tolist() != ly.tolist()


@pytest.mark.parametrize("dataset, kwargs, error, match", [
    (np.arange(10), {}, ValueError, r"split_dataset: give `left_size`, `right_size` or both; received neither"),
    (np.arange(10), {"left_size": 10}, ValueError, r"`left_size` as an int must be in \[1, 9\] for 10 samples"),
    (np.arange(10), {"left_size": 0}, ValueError, r"`left_size` as an int must be in \[1, 9\]"),
    (np.arange(10), {"right_size": -2}, ValueError, r"`right_size` as an int must be in \[1, 9\]"),
    (np.arange(10), {"left_size": 1.0}, ValueError, r"`left_size` as a float must be in \(0, 1\), received 1.0"),
    (np.arange(10), {"right_size": 0.0}, ValueError, r"`right_size` as a float must be in \(0, 1\)"),
    (np.arange(10), {"left_size": 0.6, "right_size": 0.5}, ValueError,
     r"`left_size` \+ `right_size` must be <= 1, received 0.6 \+ 0.5"),
    (np.arange(10), {"left_size": 6, "right_size": 5}, ValueError, r"give 6 \+ 5 samples, more than the 10"),
    (np.arange(10), {"left_size": 6, "right_size": 0.5}, ValueError, r"give 6 \+ 5 samples, more than the 10"),
    (np.arange(3), {"left_size": 0.1}, ValueError, r"with 3 samples, left_size=0.1 and right_size=None leave the "
                                                    r"left part empty"),
    (np.arange(10), {"left_size": True}, TypeError, r"`left_size` must be an int, a float or None, received True"),
    (np.arange(10), {"right_size": "3"}, TypeError, r"`right_size` must be an int, a float or None, received '3'"),
    ((np.arange(10), np.arange(9)), {"left_size": 2}, ValueError,
     r"every array must have the same number of samples, received dataset\[0\]: 10, dataset\[1\]: 9"),
    ([1, 2, 3], {"left_size": 1}, TypeError, r"`dataset\[0\]` must be a NumPy array, or a tuple, list or dict"),
    ("abc", {"left_size": 1}, TypeError, r"`dataset` must be a NumPy array, or a tuple, list or dict of arrays, "
                                         r"received str"),
    ((), {"left_size": 1}, ValueError, r"`dataset` is an empty tuple"),
    ({}, {"left_size": 1}, ValueError, r"`dataset` is an empty dict"),
    ((np.float64(1.0),), {"left_size": 1}, TypeError, r"`dataset\[0\]` must be a NumPy array"),
    ((np.array(1.0),), {"left_size": 1}, ValueError, r"`dataset\[0\]` is a scalar"),
    (np.zeros((0, 2)), {"left_size": 0.5}, ValueError, r"`dataset` has no samples"),
])
def test_split_dataset_rejects_bad_arguments(dataset, kwargs, error, match):
    with pytest.raises(error, match=match):
        split_dataset(dataset, **kwargs)


def test_utils_namespace():
    for name in ("to_categorical", "normalize", "set_random_seed", "split_dataset"):
        assert name in npnet.utils.__all__ and callable(getattr(npnet.utils, name))
