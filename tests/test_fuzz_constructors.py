"""Fuzz every public constructor (and a call of every layer) with awkward arguments.

Each public class of the package (from the ``__all__`` of npnet and its modules) is
called with arguments drawn from a pool of awkward values: None, bools, zero, negative,
huge, NaN and infinite numbers, empty and odd strings, lists, dicts, arrays, objects.
The call must succeed, or raise ValueError or TypeError with a message that names the
class or one of its arguments; then the object must work for a first use (a layer's
config, an initializer's values, a schedule's rates). Anything else fails the test.

The default run is short and seeded (a few seconds). The long run draws many more
examples with fresh randomness:

    pytest -m fuzz tests/test_fuzz_constructors.py
"""

import importlib
import inspect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npnet

MODULES = ["npnet"] + [f"npnet.{m}" for m in (
    "activations", "callbacks", "constraints", "data", "datasets", "initializers", "layers", "losses", "metrics",
    "models", "optimizers", "optimizers.schedules", "regularizers", "saving", "schedules", "testing", "utils")]

# Plain records filled in by npnet itself, not checked arguments.
RECORDS = {"SymbolicTensor", "GradientCheckReport", "GradientEntry"}


def _public_classes():
    found = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.isclass(obj) and not issubclass(obj, BaseException) and obj.__name__ not in RECORDS:
                found.setdefault(obj, f"{name}.{attr}")
    return sorted(found.items(), key=lambda item: item[1])


CLASSES = _public_classes()


class _Thing:
    pass


def _identity(*args, **kwargs):
    return 1.0


AWKWARD_FIXED = [
    None, True, False, 0, 1, 2, 3, -1, -(2**31), 2**63, 10**20, 10**400, 0.0, -0.0, 0.5, 1.5, -1.5, 5e-324, 1e39,
    1e300, -1e300, math.nan, math.inf, -math.inf, "", " ", "\x00", "relu", "same", "valid", "auto", "max", "ab", "é",
    b"x", 1 + 1j, [], [None], [1], [1, 2], [0.5, 0.2], (), (0, 0), (2, 2), ((1, 1), (1, 1)), {}, {"a": 1},
    {0: 1}, _Thing(), _identity, np.array(5), np.array([1.0]), np.array([[1, 2]]), np.float64(math.nan),
    np.int64(3), np.float32(0.3), np.zeros((0,)),
]
awkward = st.one_of(
    st.sampled_from(AWKWARD_FIXED),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
)

# Values that let a class with required arguments get past them, so that the other
# arguments are reached too.
BASELINE = {
    "units": 2, "filters": 2, "kernel_size": 3, "rate": 0.5, "scale": 1.0, "target_shape": (2,), "input_dim": 4,
    "output_dim": 2, "num_heads": 2, "key_dim": 2, "axes": 1, "initial_learning_rate": 0.1, "decay_steps": 10,
    "decay_rate": 0.5, "first_decay_steps": 10, "boundaries": [5], "values": [0.1, 0.01], "filepath": "model.npnet",
    "filename": "log.csv", "backup_dir": "backup", "schedule": _identity, "fn": _identity,
    "value": np.zeros(2), "shape": (2,),
}


def _parameters(cls):
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    return [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _arguments(cls):
    """A dict of keyword arguments: each optional one left out or awkward; each required
    one awkward or its baseline value."""
    required, optional = {}, {}
    for p in _parameters(cls):
        if p.default is p.empty:
            required[p.name] = st.one_of(st.just(BASELINE[p.name]), awkward) if p.name in BASELINE else awkward
        else:
            optional[p.name] = awkward
    return st.fixed_dictionaries(required, optional=optional)


def _names_it(message, cls, kwargs):
    names = [cls.__name__] + [f"`{p.name}`" for p in _parameters(cls)] + [f"`{k}`" for k in kwargs]
    if cls.__name__ == "InputLayer":
        names.append("Input:")  # built by npnet.Input, whose name its messages carry
    return any(n in message for n in names)


ABSTRACT = {npnet.initializers.Initializer, npnet.schedules.LearningRateSchedule, npnet.regularizers.Regularizer,
            npnet.constraints.Constraint}


def _first_use(obj):
    """The cheap first use of each kind of object, where a deferred failure would surface."""
    if type(obj) in ABSTRACT:
        return  # a base class: its subclasses define what it computes
    if isinstance(obj, npnet.layers.Layer) and not isinstance(obj, npnet.Model):
        config = obj.get_config()
        type(obj).from_config(config)
    elif isinstance(obj, npnet.initializers.Initializer):
        obj((2, 3))
    elif isinstance(obj, npnet.schedules.LearningRateSchedule):
        for step in (0, 1, 10, 10**6):
            value = obj(step)
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, (obj, step, value)
    elif isinstance(obj, npnet.optimizers.Optimizer):
        assert math.isfinite(obj.learning_rate)
        obj.get_config()
    elif isinstance(obj, npnet.regularizers.Regularizer):
        obj(np.ones((3, 2), np.float32))  # a huge factor may overflow: its size is the user's choice
    elif isinstance(obj, npnet.constraints.Constraint):
        obj.check((3, 2), "a (3, 2) weight")  # as a layer does when the weight is made
        assert np.isfinite(obj(np.ones((3, 2), np.float32))).all()


def _check(cls, kwargs):
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        assert _names_it(str(exc), cls, kwargs), f"{cls.__name__}(**{kwargs!r}): {type(exc).__name__}: {exc}"
        return
    try:
        _first_use(obj)
    except (ValueError, TypeError) as exc:
        assert _names_it(str(exc), cls, kwargs), (
            f"{cls.__name__}(**{kwargs!r}) was accepted, then failed at first use: {type(exc).__name__}: {exc}")


def _run(cls, examples, derandomize):
    @settings(max_examples=examples, derandomize=derandomize, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kwargs=_arguments(cls))
    def fuzz(kwargs):
        _check(cls, kwargs)

    fuzz()


def test_every_public_class_is_fuzzed():
    names = {cls.__name__ for cls, _ in CLASSES}
    assert len(CLASSES) > 120
    assert {"Dense", "Sequential", "CSVLogger", "ExponentialDecay", "RandomUniform", "PyDataset", "AUC",
            "L1L2", "MaxNorm", "Adam"} <= names


@pytest.mark.parametrize("cls", [c for c, _ in CLASSES], ids=[path for _, path in CLASSES])
def test_constructor_short(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no constructor may write, but if one did, it writes here
    _run(cls, examples=6, derandomize=True)


@pytest.mark.fuzz
@pytest.mark.parametrize("cls", [c for c, _ in CLASSES], ids=[path for _, path in CLASSES])
def test_constructor_long(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run(cls, examples=400, derandomize=False)


# ---------------------------------------------------------------- calling layers with bad input
LAYERS = {
    "Dense": lambda: npnet.Dense(2), "Conv2D": lambda: npnet.Conv2D(2, 3), "Conv1D": lambda: npnet.Conv1D(2, 3),
    "LSTM": lambda: npnet.LSTM(2), "Embedding": lambda: npnet.Embedding(4, 2), "Flatten": npnet.Flatten,
    "BatchNormalization": npnet.BatchNormalization, "MaxPooling2D": npnet.MaxPooling2D,
    "Dropout": lambda: npnet.Dropout(0.5), "Reshape": lambda: npnet.Reshape((2,)), "Softmax": npnet.Softmax,
    "LayerNormalization": npnet.LayerNormalization, "GlobalAveragePooling1D": npnet.GlobalAveragePooling1D,
    "Rescaling": lambda: npnet.Rescaling(0.5), "Activation": lambda: npnet.Activation("relu"),
}
bad_inputs = st.one_of(
    st.sampled_from([None, "abc", b"x", _Thing(), {"a": 1}, [[1, 2], [3]], np.zeros((0, 3)), np.array("s"),
                     np.array([[1 + 1j, 2]]), np.array([[object(), 1]], dtype=object), np.zeros(()), 3.0,
                     np.zeros((2,)), np.zeros((1, 1, 1, 1, 1, 1))]),
    st.lists(st.integers(), max_size=3),
)


@pytest.mark.parametrize("name", sorted(LAYERS))
@settings(max_examples=8, derandomize=True, deadline=None, database=None)
@given(x=bad_inputs)
def test_layer_call_with_bad_input_is_a_clear_error(name, x):
    layer = LAYERS[name]()
    try:
        layer(x)
    except (ValueError, TypeError) as exc:
        assert name in str(exc) or "`inputs`" in str(exc), f"{name}({x!r}): {type(exc).__name__}: {exc}"
