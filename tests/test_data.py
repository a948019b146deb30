import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npnet.data import ImageAugmenter, group_split, stratified_split

from .strategies import seeds


@given(n_per=st.lists(st.integers(2, 30), min_size=2, max_size=6), test_size=st.integers(1, 20), seed=seeds)
def test_stratified_split_is_exact_disjoint_and_proportional(n_per, test_size, seed):
    y = np.repeat(np.arange(len(n_per)), n_per)
    test_size = min(test_size, y.size - 1)
    train, test = stratified_split(y, test_size, seed)
    assert len(test) == test_size and len(train) + len(test) == y.size
    assert not set(train) & set(test)
    expected = np.array(n_per) * test_size / y.size
    assert np.all(np.abs(np.bincount(y[test], minlength=len(n_per)) - expected) < 1 + 1e-9)


def test_group_split_keeps_groups_whole():
    groups = np.repeat(np.arange(100), 150)
    train, test = group_split(groups, 2000, seed=0)
    assert len(test) == 1950  # 13 writers of 150; 14 would be 2100, further from 2000
    assert not set(groups[train]) & set(groups[test])
    again = group_split(groups, 2000, seed=0)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(group_split(groups, 2000, seed=1)[1], test)


def test_split_argument_errors():
    with pytest.raises(ValueError, match=r"stratified_split: `test_size` must leave both parts non-empty"):
        stratified_split(np.arange(5), 5)
    with pytest.raises(ValueError, match=r"`y` must be class ids of shape \(n,\)"):
        stratified_split(np.zeros((4, 2)), 1)
    with pytest.raises(ValueError, match="need at least two groups"):
        group_split(np.zeros(10), 2)


def _img(rng, n=3, h=7, w=9):
    return rng.random((n, h, w)).astype(np.float32)


def test_identity_settings_return_the_input_exactly(rng):
    x = _img(rng)
    for interp in ("bilinear", "nearest"):
        np.testing.assert_array_equal(ImageAugmenter(interpolation=interp)(x, rng), x)


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_rotation_by_90_degrees_matches_rot90(rng, interp):
    x = rng.random((2, 6, 6)).astype(np.float32)
    out = ImageAugmenter(interpolation=interp).apply(x, rotation=90)
    np.testing.assert_allclose(out, np.rot90(x, axes=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_integer_shift_moves_pixels_and_fills_with_background(rng, interp):
    x = _img(rng)
    out = ImageAugmenter(interpolation=interp, fill_value=0.0).apply(x, shift_y=2, shift_x=-1)
    expected = np.zeros_like(x)
    expected[:, 2:, :-1] = x[:, :-2, 1:]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_half_pixel_shift_is_the_average_of_neighbours(rng):
    x = _img(rng)
    out = ImageAugmenter().apply(x, shift_x=0.5)
    np.testing.assert_allclose(out[:, :, 1:], (x[:, :, 1:] + x[:, :, :-1]) / 2, atol=1e-6)


def test_zoom_of_a_constant_image_is_constant_inside():
    x = np.full((2, 16, 16), 3.0, np.float32)
    out = ImageAugmenter().apply(x, zoom=[2.0, 0.5])
    np.testing.assert_allclose(out[0], 3.0, atol=1e-6)  # enlarging reads only inside
    np.testing.assert_allclose(out[1, 6:10, 6:10], 3.0, atol=1e-6)
    assert out[1, 0, 0] == 0.0  # shrinking reveals the background


def test_same_seed_same_output_and_images_differ(rng):
    x = _img(rng, n=8)
    aug = ImageAugmenter(rotation_range=15, width_shift_range=0.2, height_shift_range=0.2, zoom_range=0.1,
                         elastic_alpha=1.5)
    a = aug(x, np.random.default_rng(5))
    b = aug(x, np.random.default_rng(5))
    c = aug(x, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape


def test_channels_are_transformed_alike_and_flat_batches_work(rng):
    x = rng.random((4, 8, 8, 3)).astype(np.float32)
    aug = ImageAugmenter()
    out = aug.apply(x, rotation=[10, -20, 5, 0], zoom=1.1, shift_y=0.5)
    for ch in range(3):
        np.testing.assert_allclose(out[..., ch], aug.apply(x[..., ch], rotation=[10, -20, 5, 0], zoom=1.1, shift_y=0.5),
                                   atol=1e-6)
    flat = ImageAugmenter(image_shape=(8, 8)).apply(x[..., 0].reshape(4, 64), rotation=10)
    np.testing.assert_allclose(flat.reshape(4, 8, 8), aug.apply(x[..., 0], rotation=10), atol=1e-6)


def test_uint8_input_becomes_float32():
    out = ImageAugmenter(width_shift_range=0.1)(np.full((2, 4, 4), 200, np.uint8), 0)
    assert out.dtype == np.float32


def test_augmenter_errors():
    with pytest.raises(ValueError, match=r"expected images of shape \(n, H, W\) or \(n, H, W, C\), received shape \(4, 64\); "
                                         "for flat batches pass image_shape"):
        ImageAugmenter()(np.zeros((4, 64)), 0)
    with pytest.raises(ValueError, match=r"ImageAugmenter: `interpolation` must be one of \['bilinear', 'nearest'\]"):
        ImageAugmenter(interpolation="cubic")
    with pytest.raises(ValueError, match=r"ImageAugmenter: `width_shift_range` must be in \[0, 1\]"):
        ImageAugmenter(width_shift_range=2)
    with pytest.raises(ValueError, match=r"`zoom_range` must be a float or a pair"):
        ImageAugmenter(zoom_range=(0.9, 1.0, 1.1))


def test_fit_applies_augmentation_reproducibly(toy_data):
    import npnet

    x = np.random.default_rng(0).random((40, 6, 6)).astype(np.float32)
    y = np.arange(40) % 2
    seen = []

    def spy(batch, rng):
        seen.append(batch.copy())
        return ImageAugmenter(width_shift_range=0.3)(batch, rng)

    runs = []
    for _ in range(2):
        m = npnet.Sequential([npnet.Input(shape=(6, 6)), npnet.Flatten(), npnet.Dense(2, activation="softmax")], seed=0)
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, batch_size=10, augment=spy, seed=3, verbose=0)
        runs.append(m.get_weights())
    assert len(seen) == 16 and seen[0].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    with pytest.raises(TypeError, match=r"fit: `augment` must be callable as augment\(x_batch, rng\)"):
        m.fit(x, y, augment="flip", verbose=0)
