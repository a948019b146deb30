"""npnet.models.clone_model: same architecture, new weights (Keras semantics)."""

import numpy as np
import pytest

import npnet
from npnet import layers as L
from npnet.models import clone_model


def _x(n=6, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _same_predictions(a, b, x):
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_sequential_clone_has_new_layers_and_new_weights():
    model = npnet.Sequential([npnet.Input(shape=(4,)), L.Dense(5, activation="relu", name="h"), L.Dropout(0.2),
                              L.Dense(3, activation="softmax", name="out")], name="seq")
    clone = clone_model(model)
    assert isinstance(clone, npnet.Sequential) and clone.name == "seq" and clone.built
    assert [la.name for la in clone.layers] == [la.name for la in model.layers]
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert clone.get_config()["layers"] == model.get_config()["layers"]
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.array_equal(clone.get_weights()[0], model.get_weights()[0])
    _same_predictions(model, clone, _x())
    # training the clone leaves the original alone
    before = model.get_weights()
    clone.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    clone.fit(_x(12), np.arange(12) % 3, epochs=1, verbose=0, seed=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequential_built_from_data_and_nested_models():
    inner = npnet.Sequential([L.Dense(4, activation="tanh", name="t")], name="inner")
    model = npnet.Sequential([inner, L.Dense(2, name="o")])
    model.predict(_x(), verbose=0)  # built from the data, no Input
    clone = clone_model(model)
    assert clone.built and clone.input_shape == (None, 4)
    assert clone.layers[0] is not inner and isinstance(clone.layers[0], npnet.Sequential)
    _same_predictions(model, clone, _x())


def _functional():
    a, b = npnet.Input(shape=(3,), name="a"), npnet.Input(shape=(3,), name="b")
    shared = L.Dense(4, activation="tanh", name="shared")
    joined = L.concatenate([shared(a), shared(b)], name="joined")
    out = {"score": L.Dense(1, name="score")(joined), "cls": L.Dense(2, activation="softmax", name="cls")(joined)}
    return npnet.Model({"a": a, "b": b}, out, name="two_towers")


def test_functional_clone_keeps_graph_shared_layers_and_names():
    model = _functional()
    clone = clone_model(model)
    assert type(clone) is type(model) and clone.name == "two_towers"
    assert clone.input_names == ["a", "b"] and clone.output_names == ["score", "cls"]
    assert [la.name for la in clone.layers] == [la.name for la in model.layers]
    assert len(clone.layers) == len(model.layers)  # the shared layer is one layer, used twice
    assert not set(map(id, clone.layers)) & set(map(id, model.layers))
    x = {"a": _x(5, 3, 1), "b": _x(5, 3, 2)}
    b = clone.get_layer("shared")
    assert not np.array_equal(b.params["kernel"], model.get_layer("shared").params["kernel"])
    clone.set_weights(model.get_weights())
    got, want = clone.predict(x, verbose=0), model.predict(x, verbose=0)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_clone_function_and_input_tensors():
    model = npnet.Sequential([npnet.Input(shape=(4,)), L.Dense(5, name="h"), L.Dropout(0.5, name="drop"),
                              L.Dense(2, name="o")])

    def no_dropout_share_dense(layer):
        if isinstance(layer, L.Dropout):
            return L.Dropout(0.1, name=layer.name)
        return layer  # shared with the original, weights and all

    clone = clone_model(model, clone_function=no_dropout_share_dense)
    assert clone.get_layer("drop").rate == 0.1
    assert clone.get_layer("h") is model.get_layer("h")
    inp = npnet.Input(shape=(4,), name="fresh")
    clone2 = clone_model(model, input_tensors=inp)
    assert clone2.input_shape == (None, 4)
    # functional, with the inputs given as a list in input order
    fmodel = _functional()
    a, b = npnet.Input(shape=(3,), name="a"), npnet.Input(shape=(3,), name="b")
    fclone = clone_model(fmodel, input_tensors=[a, b])
    assert fclone.inputs == [a, b]


def test_compiled_model_clone_is_compiled_with_a_fresh_optimizer():
    model = npnet.Sequential([npnet.Input(shape=(4,)), L.Dense(3, activation="softmax")])
    model.compile(optimizer=npnet.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(_x(12), np.arange(12) % 3, epochs=1, verbose=0, seed=0)
    clone = clone_model(model)
    assert clone.compiled and clone.optimizer is not model.optimizer
    assert type(clone.optimizer) is npnet.Adam and clone.optimizer.get_config() == model.optimizer.get_config()
    assert clone.optimizer.iterations == 0
    history = clone.fit(_x(12), np.arange(12) % 3, epochs=1, verbose=0, seed=0)
    assert sorted(history.history) == ["accuracy", "loss"]


@npnet.register_layer
class CloneConfigured(npnet.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = L.Dense(units, name="d")

    def call(self, inputs, training=False):
        return self.dense(inputs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class CloneUnconfigured(npnet.Model):
    def __init__(self, units):
        super().__init__()
        self.dense = L.Dense(units)

    def call(self, inputs, training=False):
        return self.dense(inputs)


def test_subclassed_models():
    model = CloneConfigured(units=5, name="sub")
    model.predict(_x(), verbose=0)
    clone = clone_model(model)
    assert type(clone) is CloneConfigured and clone.units == 5 and clone.name == "sub" and clone.built
    assert clone.dense is not model.dense
    _same_predictions(model, clone, _x())
    with pytest.raises(ValueError, match=r"clone_model: CloneUnconfigured is a subclassed model, cloned as "
                                         r"CloneUnconfigured.from_config\(model.get_config\(\)\), which fails \(TypeError"):
        clone_model(CloneUnconfigured(2))
    with pytest.raises(ValueError, match="`clone_function` and `input_tensors` work with Sequential and functional"):
        clone_model(model, clone_function=lambda layer: layer)


@pytest.mark.parametrize("call, error, match", [
    (lambda: clone_model(L.Dense(2)), TypeError, r"clone_model: `model` must be an npnet model, received Dense"),
    (lambda: clone_model(npnet.Sequential([L.Dense(2)]), clone_function=3), TypeError,
     r"`clone_function` must be callable as fn\(layer\), received 3"),
    (lambda: clone_model(npnet.Sequential([npnet.Input(shape=(2,)), L.Dense(2)]), clone_function=lambda la: "x"),
     TypeError, r"`clone_function` must return an npnet layer, received 'x' for layer"),
    (lambda: clone_model(npnet.Sequential([npnet.Input(shape=(2,)), L.Dense(2)]),
                         input_tensors=[npnet.Input(shape=(2,)), npnet.Input(shape=(2,))]),
     ValueError, r"a Sequential model takes one input tensor in `input_tensors`, received 2"),
    (lambda: clone_model(npnet.Sequential([npnet.Input(shape=(2,)), L.Dense(2)]),
                         input_tensors=np.zeros((1, 2))),
     TypeError, r"`input_tensors` must hold tensors from npnet.Input, received ndarray"),
    (lambda: clone_model(_functional(), input_tensors=[npnet.Input(shape=(3,))]),
     ValueError, r"`input_tensors` must hold 2 tensors, one per input of 'two_towers' \(\['a', 'b'\]\), received 1"),
    (lambda: clone_model(_functional(), input_tensors=[npnet.Input(shape=(3,)), npnet.Input(shape=(4,))]),
     ValueError, r"input 'b' of 'two_towers' has shape \(None, 3\), the tensor given for it"),
    (lambda: clone_model(_functional(), input_tensors=[npnet.Input(shape=(3,)), L.Dense(3)(npnet.Input(shape=(3,)))]),
     TypeError, r"`input_tensors` must hold tensors from npnet.Input \(for input 'b'\), received the output of layer"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
