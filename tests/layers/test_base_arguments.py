"""Keras' base-layer arguments on every layer: ``input_shape``/``input_dim`` (a Sequential
model's input, Keras' older style, with Keras' warning), ``dtype`` and ``autocast``
(npnet has one float type: the others are refused by name)."""

import warnings

import numpy as np
import pytest

import npnet

L = npnet.layers
OLDER_STYLE = "`input_shape`/`input_dim` on a layer is Keras' older style"


def test_the_first_layers_input_shape_builds_a_sequential_model():
    with pytest.warns(UserWarning, match=f"Dense: {OLDER_STYLE}") as record:
        model = npnet.Sequential([L.Dense(8, activation="relu", input_shape=(4,)), L.Dense(2)])
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert model.built and model.input_shape == (None, 4)
    reference = npnet.Sequential([npnet.Input(shape=(4,)), L.Dense(8, activation="relu"), L.Dense(2)])
    reference.set_weights(model.get_weights())
    xs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(xs, verbose=0), reference.predict(xs, verbose=0))


def test_input_dim_and_add():
    model = npnet.Sequential()
    with pytest.warns(UserWarning, match=OLDER_STYLE):
        model.add(L.Dense(3, input_dim=5))
    assert model.built and model.input_shape == (None, 5)
    with pytest.warns(UserWarning, match=OLDER_STYLE):
        model = npnet.Sequential([L.LSTM(3, input_shape=(None, 2))])
    assert model.input_shape == (None, None, 2)
    assert model.predict(np.ones((2, 7, 2), np.float32), verbose=0).shape == (2, 3)


def test_a_later_layers_input_shape_and_npnet_input_first_leave_the_model_alone():
    with pytest.warns(UserWarning, match=OLDER_STYLE):
        model = npnet.Sequential([npnet.Input(shape=(6,)), L.Dense(3, input_shape=(4,))])
    assert model.input_shape == (None, 6)


def test_a_subclass_passing_its_keyword_arguments_on_takes_them_too():
    class Scaled(L.Dense):
        def __init__(self, units, factor=2.0, **kwargs):
            super().__init__(units, **kwargs)
            self.factor = factor

    with pytest.warns(UserWarning, match=f"Scaled: {OLDER_STYLE}"):
        layer = Scaled(3, factor=3.0, input_shape=(4,), name="scaled")
    assert layer.factor == 3.0 and layer.name == "scaled" and layer._input_shape_arg == (4,)


@pytest.mark.parametrize("dtype", [None, "float32", np.float32, np.dtype("float32")])
def test_dtype_of_floatx_is_accepted(dtype):
    assert L.Dense(2, dtype=dtype, autocast=True).units == 2


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dtype": "float64"}, ValueError, r"Dense: `dtype` 'float64' is not supported: every layer computes in "
                                       r"npnet.floatx\(\) \('float32'\)"),
    ({"dtype": "mixed_float16"}, ValueError, r"Dense: `dtype` 'mixed_float16' is not supported"),
    ({"dtype": object()}, ValueError, r"Dense: `dtype` <object object .*> is not supported"),
    ({"autocast": False}, ValueError, r"Dense: `autocast=False` is not supported"),
    ({"autocast": "yes"}, TypeError, r"Dense: `autocast` must be"),
    ({"input_shape": "x"}, TypeError, r"Dense: `input_shape` must be a tuple of sizes \(ints >= 1 or None\)"),
    ({"input_shape": (4, 0)}, TypeError, r"Dense: `input_shape` must be a tuple of sizes"),
    ({"input_dim": 0}, ValueError, r"Dense: `input_dim` must be >= 1, received 0"),
    ({"input_dim": 2.5}, TypeError, r"Dense: `input_dim` must be an int"),
    ({"unknown": 1}, TypeError, r"unexpected keyword argument 'unknown'"),
])
def test_bad_base_arguments_are_named(kwargs, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            L.Dense(2, **kwargs)


def test_every_public_layer_takes_the_base_arguments():
    from npnet.layers import base

    for name, cls in sorted(vars(L).items()):
        if not (isinstance(cls, type) and issubclass(cls, L.Layer)) or name in ("Layer", "InputLayer"):
            continue
        init = cls.__init__
        assert init is L.Layer.__init__ or getattr(init, "_takes_base_arguments", False), name
    assert base._BASE_ARGUMENTS == ("input_shape", "input_dim", "dtype", "autocast")


def test_a_layer_without_its_own_constructor_takes_them_from_layer():
    with pytest.warns(UserWarning, match=f"Add: {OLDER_STYLE}") as record:
        layer = L.Add(input_shape=(3,))
    assert record[0].filename == __file__
    assert layer._input_shape_arg == (3,)
    with pytest.raises(ValueError, match="Add: `dtype` 'int8' is not supported"):
        L.Add(dtype="int8")
