"""npnet.activations: Keras' functions on arrays, and activation= by function, name or layer."""

import json
import math
import re
import zipfile

import numpy as np
import pytest

import npnet
from npnet import activations as A

X = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])


# ---------------------------------------------------------------- Keras' values, by hand
def test_leaky_relu_function_has_keras_slope_0_2_and_the_layer_keeps_0_3():
    x = np.array([-2.0, -0.5, 3.0])
    # keras.activations.leaky_relu(x, negative_slope=0.2): x for x > 0, else 0.2 * x
    np.testing.assert_allclose(A.leaky_relu(x), [-0.4, -0.1, 3.0])
    np.testing.assert_allclose(A.leaky_relu(x, negative_slope=0.5), [-1.0, -0.25, 3.0])
    # keras.layers.LeakyReLU() defaults to negative_slope=0.3
    assert npnet.layers.LeakyReLU().negative_slope == 0.3
    np.testing.assert_allclose(npnet.layers.LeakyReLU()(x), [-0.6, -0.15, 3.0])


@pytest.mark.parametrize("make", [
    lambda: npnet.layers.Dense(3, activation="leaky_relu"),
    lambda: npnet.layers.Dense(3, activation=A.leaky_relu),
    lambda: npnet.layers.Activation("leaky_relu"),
], ids=["Dense-name", "Dense-function", "Activation"])
def test_leaky_relu_by_name_uses_slope_0_2(make):
    x = np.array([[-1.0, 2.0, -3.0]], dtype=np.float32)
    layer = make()
    layer(x)
    if layer.params:  # Dense: the identity map before the activation
        layer.set_weights([np.eye(3), np.zeros(3)])
    np.testing.assert_allclose(layer(x), [[-0.2, 2.0, -0.6]], rtol=1e-6)


def test_relu_keras_arguments():
    # x = [-10, -5, 0, 5, 10]; Keras: r = x where x > t else 0, clipped to [0, max_value],
    # minus negative_slope * max(t - x, 0)
    np.testing.assert_array_equal(A.relu(X), [0, 0, 0, 5, 10])
    np.testing.assert_array_equal(A.relu(X, negative_slope=0.5), [-5, -2.5, 0, 5, 10])
    np.testing.assert_array_equal(A.relu(X, max_value=5.0), [0, 0, 0, 5, 5])
    np.testing.assert_array_equal(A.relu(X, max_value=6.0), [0, 0, 0, 5, 6])
    np.testing.assert_array_equal(A.relu(X, threshold=5.0), [0, 0, 0, 0, 10])
    np.testing.assert_array_equal(A.relu(X, threshold=5.0, max_value=5.0), [0, 0, 0, 0, 5])
    # slope 0.5 below t = 5: 0.5 * (x - 5) = -7.5, -5, -2.5, 0; 10 capped at 5
    np.testing.assert_array_equal(A.relu(X, negative_slope=0.5, max_value=5.0, threshold=5.0),
                                  [-7.5, -5, -2.5, 0, 5])


def test_formulas_by_hand():
    e = math.e
    np.testing.assert_allclose(A.elu(np.array([-1.0, 2.0])), [1 / e - 1, 2.0])
    np.testing.assert_allclose(A.elu(np.array([-1.0]), alpha=0.5), [0.5 * (1 / e - 1)])
    np.testing.assert_allclose(A.sigmoid(np.array([0.0, 1.0, -800.0, 800.0])), [0.5, 1 / (1 + 1 / e), 0.0, 1.0])
    np.testing.assert_allclose(A.tanh(np.array([1.0])), [(e - 1 / e) / (e + 1 / e)])
    np.testing.assert_allclose(A.softplus(np.array([0.0, 1.0, 800.0])), [math.log(2), math.log(1 + e), 800.0])
    np.testing.assert_allclose(A.silu(np.array([1.0, -1.0])), [1 / (1 + 1 / e), -1 / (1 + e)])
    np.testing.assert_allclose(A.softmax(np.array([[0.0, math.log(3.0)], [5.0, 5.0]])), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(A.softmax(np.array([[0.0, 0.0], [0.0, math.log(3.0)]]), axis=0),
                               [[0.5, 0.25], [0.5, 0.75]])
    np.testing.assert_array_equal(A.linear(np.array([-1.0, 2.0])), [-1.0, 2.0])
    assert A.swish is A.silu


FUNCTIONS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "silu", "swish", "softmax"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_function_equals_its_layer_and_keeps_float32(name, rng):
    x = rng.normal(scale=3.0, size=(4, 5)).astype(np.float32)
    fn = A.get(name)
    y = fn(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, npnet.layers.Activation(name)(x), rtol=1e-6, atol=1e-7)
    # integers become floatx
    assert fn(np.array([[1, -2]])).dtype == np.float32


def test_softmax_rejects_a_bad_axis_and_a_scalar():
    with pytest.raises(ValueError, match=r"softmax: `axis` 2 is out of range for an array of shape \(2, 3\)"):
        A.softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(ValueError, match="softmax: expected an array with at least one axis"):
        A.softmax(1.0)


# ---------------------------------------------------------------- get / serialize / deserialize
def test_get_names_none_and_callables():
    for name in FUNCTIONS:
        assert A.get(name) is getattr(A, name)
    assert A.get(None) is A.linear
    assert A.get("swish") is A.silu
    own = lambda x: x  # noqa: E731
    assert A.get(own) is own
    with pytest.raises(ValueError, match=r"activations.get: unknown activation 'gelu'; known names: \["):
        A.get("gelu")
    with pytest.raises(ValueError, match="activations.get: could not interpret activation identifier 3"):
        A.get(3)


def test_serialize_and_deserialize():
    assert [A.serialize(getattr(A, n)) for n in FUNCTIONS] == [
        "linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "silu", "silu", "softmax"]
    assert A.serialize(npnet.layers.ELU(alpha=0.5, name="e")) == {"class_name": "ELU", "config": {"alpha": 0.5}}
    assert A.deserialize("relu") is A.relu
    layer = A.deserialize({"class_name": "LeakyReLU", "config": {"negative_slope": 0.1}})
    assert isinstance(layer, npnet.layers.LeakyReLU) and layer.negative_slope == 0.1
    with pytest.raises(ValueError, match="activations.serialize: .* is not one of npnet's activations"):
        A.serialize(lambda x: x)
    with pytest.raises(ValueError, match="activations.deserialize: expected a name or a dict"):
        A.deserialize(7)


# ---------------------------------------------------------------- activation= on layers
def _trained(activation, out_activation="softmax"):
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.layers.Dense(6, activation=activation),
                              npnet.layers.Dense(3, activation=out_activation)], seed=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    history = model.fit(x, np.arange(40) % 3, epochs=2, batch_size=8, verbose=0, seed=1)
    return model, history.history["loss"]


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "swish", "linear"])
def test_function_as_activation_trains_exactly_like_the_name(name):
    by_name, loss_name = _trained(name)
    by_fn, loss_fn = _trained(getattr(A, name), out_activation=A.softmax)
    assert loss_name == loss_fn
    for a, b in zip(by_name.get_weights(), by_fn.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert by_fn.layers[0].get_config()["activation"] == ("silu" if name == "swish" else name)
    assert by_fn.layers[1].get_config()["activation"] == "softmax"


def test_function_activation_is_saved_by_name(tmp_path):
    model = npnet.Sequential([npnet.Input(shape=(3, 3, 1)),
                              npnet.layers.Conv2D(2, 2, activation=A.relu, name="conv"),
                              npnet.layers.Flatten(), npnet.layers.Dense(2, activation=A.sigmoid, name="out")])
    model.save(tmp_path / "m.npnet")
    with zipfile.ZipFile(tmp_path / "m.npnet") as zf:
        layers = json.loads(zf.read("config.json"))["model"]["config"]["layers"]
    assert [layer["config"].get("activation") for layer in layers] == ["relu", None, "sigmoid"]
    loaded = npnet.load_model(tmp_path / "m.npnet")
    x = np.random.default_rng(2).normal(size=(2, 3, 3, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.get_layer("conv")._act, npnet.layers.ReLU)


def test_activation_layer_instance_and_its_saved_form(tmp_path):
    dense = npnet.layers.Dense(2, activation=npnet.layers.LeakyReLU(negative_slope=0.1), kernel_initializer="ones")
    assert dense.get_config()["activation"] == {"class_name": "LeakyReLU", "config": {"negative_slope": 0.1}}
    np.testing.assert_allclose(dense(np.array([[-1.0, -2.0]], np.float32)), [[-0.3, -0.3]], rtol=1e-6)
    again = npnet.layers.Dense.from_config(dense.get_config())
    assert again._act.negative_slope == 0.1
    model = npnet.Sequential([npnet.Input(shape=(2,)), again])
    model.save(tmp_path / "m.npnet")
    assert npnet.load_model(tmp_path / "m.npnet").layers[0]._act.negative_slope == 0.1


def test_unknown_callable_says_how_to_make_it_a_layer():
    def mish(x):
        return x * np.tanh(np.log1p(np.exp(x)))

    with pytest.raises(TypeError, match=r"Dense: activation <function .*mish.*> is not one of npnet's activations .*"
                                        r"Make it a layer: subclass npnet.layers.Layer with forward\(x, training\)"):
        npnet.layers.Dense(2, activation=mish)
    with pytest.raises(TypeError, match="Conv2D: activation .* Make it a layer"):
        npnet.layers.Conv2D(2, 3, activation=lambda x: x)


def test_bad_activation_layers_are_refused():
    with pytest.raises(TypeError, match="Dense: an activation layer must be a primitive layer with forward"):
        npnet.layers.Dense(2, activation=npnet.Sequential([npnet.layers.ReLU()]))
    dense = npnet.layers.Dense(2, activation=npnet.layers.Dense(2, name="inner"))
    with pytest.raises(ValueError, match=re.escape(
            "its activation layer 'inner' has weights, which the layer would not train")):
        dense(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dense: invalid activation .*unknown layer class 'Nope'"):
        npnet.layers.Dense(2, activation={"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match=r"Dense: unknown activation 7; known names"):
        npnet.layers.Dense(2, activation=7)


# ---------------------------------------------------------------- files saved before slope 0.2
def _rewrite_version(src, dst, version):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                header = json.loads(data)
                header["format_version"] = version
                data = json.dumps(header).encode()
            zout.writestr(name, data)


def _leaky_model(kind):
    if kind == "sequential":
        return npnet.Sequential([npnet.Input(shape=(3,)), npnet.layers.Dense(4, activation="leaky_relu", name="d"),
                                 npnet.layers.Activation("leaky_relu", name="act"), npnet.layers.Dense(2)], seed=0)
    inp = npnet.Input(shape=(3,))
    h = npnet.layers.Dense(4, activation="leaky_relu", name="d")(inp)
    return npnet.Model(inp, npnet.layers.Dense(2)(npnet.layers.Activation("leaky_relu", name="act")(h)), seed=0)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_files_before_format_3_keep_slope_0_3(tmp_path, kind):
    model = _leaky_model(kind)
    model.save(tmp_path / "new.npnet")
    _rewrite_version(tmp_path / "new.npnet", tmp_path / "old.npnet", 2)
    x = np.random.default_rng(4).normal(size=(5, 3)).astype(np.float32)
    kernel, bias, k2, b2 = model.get_weights()

    def forward(slope):  # the model by hand, with one slope for both activations
        def leaky(z):
            return np.where(z > 0, z, slope * z)
        return leaky(leaky(x @ kernel + bias)) @ k2 + b2

    np.testing.assert_allclose(model.predict(x, verbose=0), forward(0.2), rtol=1e-5, atol=1e-6)
    old = npnet.load_model(tmp_path / "old.npnet")
    np.testing.assert_allclose(old.predict(x, verbose=0), forward(0.3), rtol=1e-5, atol=1e-6)
    assert old.get_layer("d").get_config()["activation"] == {"class_name": "LeakyReLU",
                                                             "config": {"negative_slope": 0.3}}
    act = old.get_layer("act")
    assert isinstance(act, npnet.layers.LeakyReLU) and act.negative_slope == 0.3
    # saved again (format 3), the old slope stays
    old.save(tmp_path / "resaved.npnet")
    again = npnet.load_model(tmp_path / "resaved.npnet")
    np.testing.assert_allclose(again.predict(x, verbose=0), forward(0.3), rtol=1e-5, atol=1e-6)
    # a file of format 3 means what it says
    np.testing.assert_allclose(npnet.load_model(tmp_path / "new.npnet").predict(x, verbose=0), forward(0.2),
                               rtol=1e-5, atol=1e-6)


def test_activation_layer_takes_the_function_of_a_name_and_saves_the_name():
    x = np.array([[-2.0, 0.5, 3.0]], np.float32)
    layer = npnet.layers.Activation(npnet.activations.leaky_relu)
    assert layer.get_config()["activation"] == "leaky_relu"
    np.testing.assert_allclose(layer(x), [[-0.4, 0.5, 3.0]], rtol=1e-6)  # Keras' slope 0.2 by name
    assert npnet.layers.Activation.from_config(layer.get_config())(x).tolist() == layer(x).tolist()
    with pytest.raises(TypeError, match=r"Activation: `activation` must be a name such as 'relu' or an "
                                        r"npnet.activations function, received <function "):
        npnet.layers.Activation(lambda v: v)
    with pytest.raises(ValueError, match="Activation: unknown activation 'gelu'"):
        npnet.layers.Activation("gelu")
