import math

import numpy as np
import pytest

import npnet
from npnet.testing import check_gradients


def _mlp(seed=0, n_in=4, n_out=3, dropout=None):
    layers = [npnet.Input(shape=(n_in,)), npnet.Dense(16, activation="relu")]
    if dropout:
        layers.append(npnet.Dropout(dropout))
    layers.append(npnet.Dense(n_out, activation="softmax"))
    model = npnet.Sequential(layers, seed=seed)
    model.compile(optimizer=npnet.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_learns_separable_blobs(toy_data):
    x, y = toy_data
    model = _mlp()
    history = model.fit(x, y, epochs=15, batch_size=16, validation_split=0.2, seed=0, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 15
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert history.history["val_accuracy"][-1] >= 0.97
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc >= 0.97 and loss < 0.2
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(1) == y) == pytest.approx(acc)


def test_two_layer_network_golden_loss_and_gradients():
    # x = [[1, 2, 3], [0, -1, 1]], labels [0, 1].
    # W1 = [[1, 0], [0, 1], [1, -1]], b1 = 0  ->  z1 = [[4, -1], [1, -2]], h = relu(z1) = [[4, 0], [1, 0]]
    # W2 = [[1, -1], [0, 1]], b2 = 0          ->  z2 = [[4, -4], [1, -1]]
    # softmax rows: p1 = [1/(1+e^-8), e^-8/(1+e^-8)], p2 = [1/(1+e^-2), e^-2/(1+e^-2)]
    # loss = (-log p1[0] - log p2[1]) / 2 = (log(1 + e^-8) + log(1 + e^2)) / 2
    # With s = e^-8/(1+e^-8) and q = 1/(1+e^-2):
    #   dz2 = (p - onehot)/2 = [[-s, s], [q, -q]] / 2
    #   dW2 = h^T dz2 = [[-2s + q/2, 2s - q/2], [0, 0]],  db2 = [(q - s)/2, (s - q)/2]
    #   dh = dz2 W2^T = [[-s, s/2], [q, -q/2]];  dz1 = dh * [z1 > 0] = [[-s, 0], [q, 0]]
    #   dW1 = x^T dz1 = [[-s, 0], [-2s - q, 0], [-3s + q, 0]],  db1 = [q - s, 0]
    s = math.exp(-8) / (1 + math.exp(-8))
    q = 1 / (1 + math.exp(-2))
    expected_loss = (math.log(1 + math.exp(-8)) + math.log(1 + math.exp(2))) / 2
    assert expected_loss == pytest.approx(1.0636317, abs=1e-7)

    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="relu"),
                              npnet.Dense(2, activation="softmax")])
    model.set_weights([np.array([[1, 0], [0, 1], [1, -1]]), np.zeros(2),
                       np.array([[1, -1], [0, 1]]), np.zeros(2)])
    model.compile(npnet.SGD(learning_rate=0.0), "sparse_categorical_crossentropy")
    x = np.array([[1, 2, 3], [0, -1, 1]], dtype=np.float32)
    history = model.fit(x, np.array([0, 1]), batch_size=2, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected_loss, rel=1e-6)
    d1, d2 = model.layers
    np.testing.assert_allclose(d2.grads["kernel"], [[-2 * s + q / 2, 2 * s - q / 2], [0, 0]], atol=1e-7)
    np.testing.assert_allclose(d2.grads["bias"], [(q - s) / 2, (s - q) / 2], atol=1e-7)
    np.testing.assert_allclose(d1.grads["kernel"], [[-s, 0], [-2 * s - q, 0], [-3 * s + q, 0]], atol=1e-7)
    np.testing.assert_allclose(d1.grads["bias"], [q - s, 0], atol=1e-7)


def test_whole_model_gradient_check_with_dropout_in_training_mode(rng):
    model = npnet.Sequential([npnet.Dense(5, activation="tanh"), npnet.Dropout(0.4, seed=1),
                              npnet.Dense(4, activation="sigmoid"), npnet.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    report = check_gradients(model, rng.normal(size=(4, 6)), np.array([0, 1, 2, 1]), training=True)
    assert report.passed and len(report.entries) == 1 + 6


def test_same_seed_gives_bit_identical_weights_and_history(toy_data):
    x, y = toy_data
    runs = []
    for _ in range(2):
        model = _mlp(seed=3, dropout=0.3)
        h = model.fit(x, y, epochs=3, validation_split=0.1, seed=5, verbose=0)
        runs.append((model.get_weights(), h.history))
    (w1, h1), (w2, h2) = runs
    assert h1 == h2
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    other = _mlp(seed=3, dropout=0.3)
    h3 = other.fit(x, y, epochs=3, validation_split=0.1, seed=6, verbose=0)
    assert h3.history != h1


def test_model_built_in_fit_takes_initial_weights_from_fit_seed(toy_data):
    x, y = toy_data
    weights = []
    for _ in range(2):
        m = npnet.Sequential([npnet.Dense(8, activation="relu"), npnet.Dense(3, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=1, seed=11, verbose=0)
        weights.append(m.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


@pytest.mark.parametrize("x_dtype", ["float64", "uint8", "float32"])
@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd", "rmsprop"])
def test_everything_stays_float32_through_fit(toy_data, x_dtype, opt):
    x, y = toy_data
    x = (np.clip(x, 0, 2) * 100).astype(x_dtype) if x_dtype == "uint8" else x.astype(x_dtype)
    model = npnet.Sequential([npnet.Dense(8, activation="relu"), npnet.Dropout(0.2), npnet.Dense(3, activation="softmax")])
    model.compile(npnet.optimizers.get(opt) if opt != "sgd" else npnet.SGD(momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, seed=0, verbose=0)
    for layer in model.layers:
        for k in layer.params:
            assert layer.params[k].dtype == np.float32, (layer.name, k)
            assert layer.grads[k].dtype == np.float32, (layer.name, k)
    for slot in model.optimizer.slots.values():
        assert all(a.dtype == np.float32 for a in slot)
    assert model.predict(x, verbose=0).dtype == np.float32


def test_stratified_validation_split_on_class_sorted_labels():
    # Labels sorted by class: Keras' "last rows" split would validate on class 2 only.
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    y = np.repeat(np.arange(3), 100)
    seen = {"testing": False, "y": []}

    class Spy(npnet.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen["testing"] = True

        def on_test_end(self, logs=None):
            seen["testing"] = False

    model = _mlp()
    original = model._update_metrics

    def spy(heads, ys, *a, **k):
        if seen["testing"]:
            seen["y"].append(ys[0].copy())
        return original(heads, ys, *a, **k)

    model._update_metrics = spy
    model.fit(x, y, epochs=1, validation_split=0.2, seed=0, verbose=0, callbacks=[Spy()])
    seen["y"] = np.concatenate(seen["y"])
    assert np.bincount(seen["y"]).tolist() == [20, 20, 20]


def test_validation_data_and_evaluate_return_forms(toy_data):
    x, y = toy_data
    model = _mlp()
    h = model.fit(x, y, epochs=1, validation_data=(x[:50], y[:50]), seed=0, verbose=0)
    assert "val_accuracy" in h.history
    d = model.evaluate(x, y, return_dict=True, verbose=0)
    assert list(d) == ["loss", "accuracy"]
    model.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_top_k_metric_and_categorical_targets(toy_data):
    x, y = toy_data
    model = npnet.Sequential([npnet.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy",
                  metrics=["accuracy", npnet.metrics.TopKCategoricalAccuracy(k=3)])
    h = model.fit(x, np.eye(3)[y], epochs=1, seed=0, verbose=0)
    assert h.history["top_k_categorical_accuracy"] == [1.0]  # k = number of classes


def test_summary_before_fit_with_input(capsys):
    model = npnet.Sequential([npnet.Input(shape=(4096,)), npnet.Dense(128, activation="relu"),
                              npnet.Dense(15, activation="softmax")], name="seed_net")
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "seed_net"' in out
    assert "(None, 128)" in out and "524,416" in out  # 4096 * 128 + 128
    assert "(None, 15)" in out and "1,935" in out  # 128 * 15 + 15
    assert "Total params: 526,351" in out and "Non-trainable params: 0" in out
    assert model.count_params() == 526351


def test_summary_of_unbuilt_model(capsys):
    npnet.Sequential([npnet.Dense(3)]).summary()
    assert "0 (unbuilt)" in capsys.readouterr().out


def test_verbose_modes_write_lines_when_not_a_terminal(toy_data, capsys):
    x, y = toy_data
    model = _mlp()
    model.fit(x, y, epochs=2, batch_size=100, verbose=1, seed=0)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2
    assert "3/3 - " in out and "loss: " in out and "\r" not in out
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=2)
    assert "10/10 - " in capsys.readouterr().out


# ------------------------------------------------------------------ bad input
def test_fit_before_compile():
    model = npnet.Sequential([npnet.Dense(2)])
    with pytest.raises(RuntimeError, match=r"call compile\(optimizer, loss\) before fit\(\)"):
        model.fit(np.zeros((2, 3)), np.zeros(2))


def test_predict_and_call_build_an_unbuilt_sequential_from_the_data():
    # Keras 3 builds a Sequential without an Input from the first data it sees.
    model = npnet.Sequential([npnet.Dense(2, kernel_initializer="ones", bias_initializer="zeros")], name="m")
    assert not model.built
    np.testing.assert_array_equal(model.predict(np.ones((2, 3)), verbose=0), np.full((2, 2), 3.0))
    assert model.built and model.input_shape == (None, 3) and model.count_params() == 8
    other = npnet.Sequential([npnet.Dense(1, kernel_initializer="ones")])
    np.testing.assert_array_equal(other(np.ones((1, 4))), [[4.0]])


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, r"fit: `batch_size` must be >= 1, received 0"),
    ({"batch_size": -3}, r"fit: `batch_size` must be >= 1, received -3"),
    ({"epochs": -1}, r"fit: `epochs` must be >= 0, received -1"),
    ({"validation_split": 1.0}, r"fit: `validation_split` must be in \[0, 1\), received 1.0"),
    ({"validation_split": -0.1}, r"fit: `validation_split` must be in \[0, 1\)"),
    ({"verbose": 3}, r"fit: `verbose` must be 'auto', 0, 1 or 2, received 3"),
    ({"seed": -1}, r"fit: `seed` must be >= 0"),
])
def test_bad_fit_arguments(toy_data, kwargs, match):
    x, y = toy_data
    with pytest.raises((ValueError, TypeError), match=match):
        _mlp().fit(x, y, **{"verbose": 0, **kwargs})


def test_x_y_length_mismatch(toy_data):
    x, y = toy_data
    with pytest.raises(ValueError, match=r"fit: `x` and `y` must have the same number of samples, received 300 and 299"):
        _mlp().fit(x, y[:-1], verbose=0)


def test_nan_in_x_is_rejected_before_training(toy_data):
    x, y = toy_data
    x = x.copy()
    x[7, 2] = np.nan
    model = _mlp()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"fit: `x` contains NaN or infinity \(first at index \(7, 2\)\)"):
        model.fit(x, y, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    x[7, 2] = np.inf
    with pytest.raises(ValueError, match="contains NaN or infinity"):
        model.predict(x)


def test_empty_x():
    with pytest.raises(ValueError, match=r"fit: `x` is empty: received shape \(0, 4\)"):
        _mlp().fit(np.zeros((0, 4)), np.zeros(0, int), verbose=0)


def test_labels_out_of_range_or_non_integer(toy_data):
    x, y = toy_data
    with pytest.raises(ValueError, match=r"SparseCategoricalCrossentropy: labels must be in \[0, 3\), received label 3"):
        _mlp().fit(x, y + 1, verbose=0)
    with pytest.raises(ValueError, match="expected integer class ids"):
        _mlp().fit(x, y + 0.5, verbose=0)


def test_wrong_feature_size_names_the_first_layer(toy_data):
    x, y = toy_data
    model = _mlp()
    with pytest.raises(ValueError, match=r"Dense '.*' \(first layer of '.*'\): expected input of shape \(batch, 4\), "
                                         r"received shape \(300, 5\)"):
        model.fit(np.hstack([x, x[:, :1]]), y, verbose=0)


@pytest.mark.parametrize("what, kwargs, match", [
    ("optimizer", {"optimizer": "adagradd", "loss": "mse"}, r"unknown optimizer 'adagradd'; known names"),
    ("loss", {"optimizer": "adam", "loss": "focal"}, r"unknown loss 'focal'; known names"),
    ("metric", {"optimizer": "adam", "loss": "mse", "metrics": ["f1"]}, r"unknown metric 'f1'; known names"),
    ("no loss", {"optimizer": "adam"}, r"compile: `loss` is required"),
])
def test_unknown_names_in_compile(what, kwargs, match):
    with pytest.raises(ValueError, match=match):
        npnet.Sequential([npnet.Dense(2)]).compile(**kwargs)


def test_non_numeric_x():
    with pytest.raises(TypeError, match=r"predict: `x` must hold numbers, received an array of dtype <U1"):
        npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(2)]).predict(np.array([["a", "b"]]))


def test_input_must_come_first_and_names_unique():
    with pytest.raises(ValueError, match="npnet.Input must be the first element"):
        npnet.Sequential([npnet.Dense(2), npnet.Input(shape=(3,))])
    with pytest.raises(ValueError, match="already has a layer named 'a'"):
        npnet.Sequential([npnet.Dense(2, name="a"), npnet.Dense(2, name="a")])
    with pytest.raises(ValueError, match=r"Input: `shape` must be a non-empty tuple of positive ints"):
        npnet.Input(shape=(0,))


def test_set_weights_checks_count_and_shapes():
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, name="d")])
    with pytest.raises(ValueError, match="expected 2 weight arrays, received 1"):
        model.set_weights([np.zeros((3, 2))])
    with pytest.raises(ValueError, match=r"Dense 'd': weight 'kernel' expected shape \(3, 2\), received \(2, 3\)"):
        model.set_weights([np.zeros((2, 3)), np.zeros(2)])


def test_stop_training_ends_fit(toy_data):
    x, y = toy_data
    model = _mlp()
    stopper = npnet.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1))
    h = model.fit(x, y, epochs=10, callbacks=[stopper], verbose=0)
    assert h.epoch == [0, 1]


def test_floatx_setting():
    assert npnet.floatx() == "float32"
    npnet.set_floatx("float64")
    assert npnet.Dense(2)(np.zeros((1, 3))).dtype == np.float64
    with pytest.raises(ValueError, match=r"set_floatx: `value` must be one of"):
        npnet.set_floatx("int8")
