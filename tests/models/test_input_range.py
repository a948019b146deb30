"""Inputs are checked in the type npnet computes in: a finite float64 value that becomes
infinity in float32 is refused with the argument and the index, before any weight moves."""

import numpy as np
import pytest

import npnet

BIG = 1e39  # finite in float64, infinity in float32


def _model():
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2)], seed=0)
    model.compile("sgd", "mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 3)), rng.normal(size=(8, 2))


def _unchanged(model, before):
    return all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_float64_value_beyond_float32_in_x_is_refused_by_fit():
    x, y = _data()
    x[5, 1] = BIG
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"fit: `x` holds 1e\+39 at index \(5, 1\), which becomes infinity in "
                                         r"float32"):
        model.fit(x, y, verbose=0)
    assert _unchanged(model, before)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_targets_and_validation_data_beyond_float32_are_refused():
    x, y = _data()
    model = _model()
    bad_y = y.copy()
    bad_y[3, 0] = -BIG
    with pytest.raises(ValueError, match=r"fit: `y` holds -1e\+39 at index \(3, 0\)"):
        model.fit(x, bad_y, verbose=0)
    bad_x = x.copy()
    bad_x[2, 2] = BIG
    with pytest.raises(ValueError, match=r"fit: `x` holds 1e\+39 at index \(2, 2\)"):
        model.fit(x, y, validation_data=(bad_x, y), verbose=0)
    with pytest.raises(ValueError, match=r"fit: `validation_data\[1\]` holds -1e\+39 at index \(3, 0\)"):
        model.fit(x, y, validation_data=(x, bad_y), verbose=0)


def test_sample_weight_beyond_float32_is_refused():
    x, y = _data()
    sw = np.ones(8)
    sw[6] = BIG
    with pytest.raises(ValueError, match=r"fit: `sample_weight` holds 1e\+39 at index 6, which becomes infinity"):
        _model().fit(x, y, sample_weight=sw, verbose=0)
    with pytest.raises(ValueError, match=r"fit: `validation_data\[2\]` holds 1e\+39 at index 6"):
        _model().fit(x, y, validation_data=(x, y, sw), verbose=0)


@pytest.mark.parametrize("method", ["evaluate", "predict", "train_on_batch", "test_on_batch", "predict_on_batch"])
def test_every_entry_point_refuses_x_beyond_float32(method):
    x, y = _data()
    x[7, 0] = BIG
    model = _model()
    before = model.get_weights()
    call = getattr(model, method)
    args = (x,) if "predict" in method else (x, y)
    with pytest.raises(ValueError, match=rf"{method}: `x` holds 1e\+39 at index \(7, 0\)"):
        call(*args)
    assert _unchanged(model, before)


def test_a_direct_model_call_refuses_inputs_beyond_float32_and_nan():
    x, _ = _data()
    model = _model()
    x[4, 2] = BIG
    with pytest.raises(ValueError, match=r"Sequential '\w+': `inputs` holds 1e\+39 at index \(4, 2\)"):
        model(x)
    x[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"Sequential '\w+': `inputs` contains NaN or infinity \(first at index "
                                         r"\(4, 2\)\)"):
        model(x)


def test_a_direct_call_of_a_two_input_model_names_the_input():
    a, b = npnet.Input(shape=(2,)), npnet.Input(shape=(2,))
    model = npnet.Model([a, b], npnet.layers.Add()([a, b]))
    good = np.ones((3, 2))
    bad = good.copy()
    bad[1, 0] = BIG
    np.testing.assert_array_equal(model([good, good]), 2 * good)
    with pytest.raises(ValueError, match=r"`inputs\[1\]` holds 1e\+39 at index \(1, 0\)"):
        model([good, bad])


def test_batches_of_a_generator_are_checked_after_the_cast():
    x, y = _data()
    bad = x.copy()
    bad[1, 1] = BIG

    def batches():
        yield x, y
        yield bad, y

    model = _model()
    with pytest.raises(ValueError, match=r"fit: `x` holds 1e\+39 at index \(1, 1\)"):
        model.fit(batches(), epochs=1, verbose=0)


def test_the_largest_float32_value_is_accepted():
    x, y = _data()
    x = x.astype(np.float32)
    x[0, 0] = np.finfo(np.float32).max
    out = _model().predict(x, verbose=0)  # no error: the value is finite in float32
    assert out.shape == (8, 2)
    x64 = x.astype(np.float64)
    x64[0, 0] = 3.4028235e38  # rounds to the float32 maximum, not to infinity
    assert _model().predict(x64, verbose=0).shape == (8, 2)


def test_integers_beyond_float16_are_refused_when_floatx_is_float16():
    npnet.set_floatx("float16")
    x = np.ones((4, 3), dtype=np.int32)
    x[2, 1] = 70000  # float16 tops out at 65504
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2)], seed=0)
    with pytest.raises(ValueError, match=r"predict: `x` holds 70000.0 at index \(2, 1\), which becomes infinity "
                                         r"in float16"):
        model.predict(x, verbose=0)


def test_a_large_float64_memmap_is_checked_in_chunks_and_stays_a_memmap(tmp_path):
    x = np.zeros((3000, 1000))  # 24 MB of float64: more than one chunk
    x[2500, 3] = BIG
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = npnet.Sequential([npnet.Input(shape=(1000,)), npnet.Dense(2)], seed=0)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"fit: `x` holds 1e\+39 at index \(2500, 3\)"):
        model.fit(xm, np.zeros((3000, 2)), verbose=0)
