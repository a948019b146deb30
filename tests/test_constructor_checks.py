"""Constructors refuse bad arguments at once, naming the class, the argument, what was
expected and what was received (not later, with an unrelated error)."""

import math

import numpy as np
import pytest

import npnet
from npnet import callbacks as C
from npnet import initializers as I
from npnet import schedules as S
from npnet.data import ImageAugmenter


@pytest.mark.parametrize("make, error, message", [
    (lambda: C.CSVLogger("log.csv", separator="ab"), ValueError,
     r"CSVLogger: `separator` must be a one-character string such as ',' or ';', received 'ab'"),
    (lambda: C.CSVLogger("log.csv", separator=None), TypeError, r"CSVLogger: `separator` must be a one-character"),
    (lambda: C.CSVLogger("log.csv", separator="\n"), ValueError, r"CSVLogger: `separator` cannot be a quote"),
    (lambda: C.CSVLogger(None), TypeError, r"CSVLogger: `filename` must be a str or path, received None"),
    (lambda: C.CSVLogger(""), ValueError, r"CSVLogger: `filename` must be a non-empty path"),
    (lambda: C.CSVLogger("log.csv", append="no"), TypeError, r"CSVLogger: `append` must be True or False"),
    (lambda: C.EarlyStopping(verbose=None), TypeError, r"EarlyStopping: `verbose` must be an integer, received None"),
    (lambda: C.EarlyStopping(verbose=-1), ValueError, r"EarlyStopping: `verbose` must be >= 0, received -1"),
    (lambda: C.ModelCheckpoint("m.npnet", verbose=None), TypeError, r"ModelCheckpoint: `verbose` must be an integer"),
    (lambda: C.ModelCheckpoint(None), TypeError, r"ModelCheckpoint: `filepath` must be a str or path"),
    (lambda: C.ReduceLROnPlateau(verbose="loud"), TypeError, r"ReduceLROnPlateau: `verbose` must be an integer"),
    (lambda: C.LearningRateScheduler(lambda e: 0.1, verbose=1.5), TypeError,
     r"LearningRateScheduler: `verbose` must be an integer"),
    (lambda: C.EarlyStopping(restore_best_weights="yes"), TypeError,
     r"EarlyStopping: `restore_best_weights` must be True or False, received 'yes'"),
    (lambda: C.ModelCheckpoint("m.npnet", save_freq=np.array([1, 2])), ValueError,
     r"ModelCheckpoint: `save_freq` must be 'epoch' or a positive number of batches"),
    (lambda: C.CallbackList(C.EarlyStopping()), TypeError,
     r"CallbackList: `callbacks` must be a list of callbacks, received a single EarlyStopping"),
    (lambda: C.CallbackList(params=3), TypeError, r"CallbackList: `params` must be a dict or None"),
    (lambda: C.CallbackList(model=3), TypeError, r"CallbackList: `model` must be an npnet model or None"),
])
def test_callbacks(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("make, error, message", [
    (lambda: I.RandomUniform(1, 0), ValueError,
     r"RandomUniform: `minval` must not exceed `maxval`.*received minval=1.0, maxval=0.0"),
    (lambda: I.RandomUniform(-1e308, 1e308), ValueError, r"RandomUniform: .*their difference must be finite"),
    (lambda: I.RandomUniform("a", 1), TypeError, r"RandomUniform: `minval` must be a number, received 'a'"),
    (lambda: I.RandomNormal(stddev=-1), ValueError, r"RandomNormal: `stddev` must be in \[0, inf\), received -1.0"),
    (lambda: I.RandomNormal(mean=math.inf), ValueError, r"RandomNormal: `mean` must be in"),
    (lambda: I.Constant(math.nan), ValueError, r"Constant: `value` must be in \(-inf, inf\), received nan"),
    (lambda: I.Constant([1.0]), TypeError, r"Constant: `value` must be a number, received \[1.0\]"),
    (lambda: I.Constant(10**400), ValueError, r"Constant: `value` must be in \(-inf, inf\), received inf"),
    (lambda: I.Orthogonal(gain="x"), TypeError, r"Orthogonal: `gain` must be a number"),
])
def test_initializers(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_an_initial_value_beyond_the_weight_type_is_refused_when_the_weights_are_made():
    init = I.Constant(1e300)  # finite, but not in float32
    np.testing.assert_array_equal(init((2,), dtype="float64"), [1e300, 1e300])
    with pytest.raises(ValueError, match=r"Constant: the initial values overflow float32"):
        init((2, 2))


def test_exponential_decay_whose_rate_overflows():
    with pytest.raises(ValueError, match=r"ExponentialDecay: the rate after `decay_steps` steps, "
                                         r"initial_learning_rate \* decay_rate = 10.0 \* 1e\+308, overflows"):
        S.ExponentialDecay(10.0, decay_steps=1, decay_rate=1e308)
    s = S.ExponentialDecay(0.1, decay_steps=1, decay_rate=1e300)  # finite for one period
    assert s(1) == pytest.approx(1e299)
    with pytest.raises(ValueError, match=r"ExponentialDecay: the learning rate at step 2 overflows"):
        s(2)


def test_other_schedules_never_return_infinity():
    s = S.CosineDecayRestarts(1.0, first_decay_steps=1, t_mul=1.0, m_mul=1e10)
    with pytest.raises(ValueError, match=r"CosineDecayRestarts .*overflows at step 40"):
        s(40)
    p = S.PolynomialDecay(1e308, decay_steps=10, end_learning_rate=0.0, power=1.0)
    assert math.isfinite(p(5))
    with pytest.raises(TypeError, match=r"PiecewiseConstantDecay: `values` must be a list of numbers"):
        S.PiecewiseConstantDecay([], np.array(5.0))


def test_an_optimizer_refuses_a_schedule_that_returns_a_bad_rate():
    class Bad(S.LearningRateSchedule):
        def __call__(self, step):
            return math.nan

        def get_config(self):
            return {}

    opt = npnet.SGD(learning_rate=Bad())
    with pytest.raises(ValueError, match=r"SGD: the learning-rate schedule Bad\(\) must return a finite number >= 0, "
                                         r"received nan at step 0"):
        _ = opt.learning_rate
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)], seed=0)
    model.compile(npnet.SGD(learning_rate=S.ExponentialDecay(0.1, 1, 1e300)), "mse")
    with pytest.raises(ValueError, match=r"SGD: the learning-rate schedule ExponentialDecay\(.*\) returned 1e\+299 "
                                         r"at step 1, which becomes infinity in float32"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=1, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_messages_name_the_class_and_the_argument():
    with pytest.raises(TypeError, match=r"Sequential: `layers` must be a list of layers, received 5 of type int"):
        npnet.Sequential(5)
    with pytest.raises(TypeError, match=r"Activation: `activation` must be a name such as 'relu' or an "
                                        r"npnet.activations function, received \['relu'\] of type list"):
        npnet.layers.Activation(["relu"])
    with pytest.raises(TypeError, match=r"load_model: `filepath` must be a str or path, received None of type NoneType"):
        npnet.saving.load_model(None)
    with pytest.raises(TypeError, match=r"Dense: `trainable` must be True or False, received array"):
        npnet.Dense(2, trainable=np.array([1, 2]))
    with pytest.raises(TypeError, match=r"SGD: `nesterov` must be True or False, received 'yes'"):
        npnet.SGD(nesterov="yes")
    with pytest.raises(TypeError, match=r"CategoricalCrossentropy: `from_logits` must be True or False"):
        npnet.CategoricalCrossentropy(from_logits=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"ZeroPadding1D: `data_format` must be one of \['channels_last'\]"):
        npnet.layers.ZeroPadding1D(data_format=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"AUC: `num_thresholds` must be at most 1000000, received 10000000000"):
        npnet.metrics.AUC(num_thresholds=10**10)
    with pytest.raises(TypeError, match=r"Input: `dtype` must be a NumPy type name such as 'float32', received 0.5"):
        npnet.Input(shape=(2,), dtype=0.5)
    with pytest.raises(TypeError, match=r"InputSpec: `axes` must be a dict of axis to size"):
        npnet.layers.InputSpec(axes=3)
    with pytest.raises(TypeError, match=r"Variable: `value` must be a NumPy array of numbers, received 1.5"):
        npnet.metrics.Variable(1.5)
    with pytest.raises(TypeError, match=r"ImageAugmenter: `image_shape` must be a tuple"):
        ImageAugmenter(image_shape=2)
    with pytest.raises(ValueError, match=r"SGD: `momentum` must be in \[0, 1\], received inf"):
        npnet.SGD(momentum=10**400)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_a_lone_callback_without_a_list_is_a_clear_error(method):
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)], seed=0)
    model.compile("sgd", "mse")
    x, y = np.ones((4, 2)), np.ones((4, 1))
    args = (x,) if method == "predict" else (x, y)
    with pytest.raises(TypeError, match=rf"{method}: `callbacks` must be a list of callbacks, received a single "
                                        r"EarlyStopping; pass it in a list: callbacks=\[EarlyStopping\(...\)\]"):
        getattr(model, method)(*args, callbacks=C.EarlyStopping(), verbose=0)
