"""Functional models: symbolic tensors, graph construction, several inputs and outputs."""

import numpy as np
import pytest

import npnet
from npnet import layers as L


def _two_in_two_out(seed=0):
    a = npnet.Input(shape=(4,), name="a")
    b = npnet.Input(shape=(3,), name="b")
    shared = L.Dense(4, activation="tanh", name="shared")
    h1, h2 = shared(a), shared(L.Dense(4, name="proj")(b))
    cat = L.concatenate([L.add([h1, a], name="res"), h2], name="cat")
    cls = L.Dense(3, activation="softmax", name="cls")(cat)
    reg = L.Dense(1, name="reg")(cat)
    return npnet.Model([a, b], [cls, reg], name="two", seed=seed)


def _data(n=240, seed=0):
    r = np.random.default_rng(seed)
    xa, xb = r.normal(size=(n, 4)).astype("float32"), r.normal(size=(n, 3)).astype("float32")
    return xa, xb, (xa[:, 0] + xa[:, 1] > 0).astype(int), (xb[:, :1] - xa[:, 2:3]).astype("float32")


def test_input_is_a_symbolic_tensor_with_keras_attributes():
    x = npnet.Input(shape=(64, 64, 1), name="image")
    assert x.shape == (None, 64, 64, 1) and x.dtype == "float32" and x.name == "image" and x.ndim == 4
    assert npnet.Input(shape=8).shape == (None, 8)
    assert npnet.Input(batch_shape=(16, 3)).shape == (16, 3)
    y = L.Conv2D(4, 3, padding="same")(x)
    assert y.shape == (None, 64, 64, 4)
    assert L.Flatten()(L.MaxPooling2D(2)(y)).shape == (None, 32 * 32 * 4)
    with pytest.raises(TypeError, match="symbolic tensor 'image' has no values"):
        np.asarray(x)


def test_calling_a_layer_on_an_array_computes_inference_unless_training():
    drop = L.Dropout(0.5, seed=0)
    x = np.ones((4, 10), np.float32)
    np.testing.assert_array_equal(drop(x), x)
    masked = drop(x, training=True)
    assert set(np.unique(masked)) == {0.0, 2.0}


def test_model_names_order_and_get_layer():
    model = _two_in_two_out()
    assert [layer.name for layer in model.layers] == ["a", "b", "shared", "res", "proj", "cat", "cls", "reg"]
    assert model.input_names == ["a", "b"] and model.output_names == ["cls", "reg"]
    assert model.get_layer("proj") is model.layers[4] and model.get_layer(index=-1).name == "reg"
    with pytest.raises(ValueError, match=r"no layer named 'nope'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="exactly one of `name` and `index`"):
        model.get_layer()
    # shared: 4*4+4, proj: 3*4+4, cls: 8*3+3, reg: 8+1
    assert model.count_params() == 20 + 16 + 27 + 9 == sum(w.size for w in model.weights)


def test_multi_input_multi_output_fit_with_lists_and_dicts():
    xa, xb, y1, y2 = _data()
    model = _two_in_two_out()
    model.compile(npnet.Adam(0.02), loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]})
    history = model.fit({"a": xa, "b": xb}, {"cls": y1, "reg": y2}, epochs=25, batch_size=32, verbose=0, seed=0,
                        validation_split=0.25)
    assert set(history.history) == {"loss", "cls_loss", "reg_loss", "cls_accuracy",
                                    "val_loss", "val_cls_loss", "val_reg_loss", "val_cls_accuracy"}
    last = {k: v[-1] for k, v in history.history.items()}
    assert last["loss"] == pytest.approx(last["cls_loss"] + 0.5 * last["reg_loss"], rel=1e-6)
    assert last["val_cls_accuracy"] >= 0.9 and last["val_reg_loss"] < 0.1
    as_dict = model.evaluate({"a": xa, "b": xb}, {"cls": y1, "reg": y2}, verbose=0, return_dict=True)
    as_list = model.evaluate([xa, xb], [y1, y2], verbose=0)
    assert as_list == pytest.approx(list(as_dict.values()))
    probs, values = model.predict([xa, xb], verbose=0)
    assert probs.shape == (240, 3) and values.shape == (240, 1)
    assert np.mean(probs.argmax(1) == y1) == pytest.approx(as_dict["cls_accuracy"])


def test_compile_with_one_loss_and_a_list_applies_to_every_output():
    xa, xb, y1, y2 = _data(64)
    model = _two_in_two_out()
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    assert set(model.evaluate([xa, xb], [y1, y2], verbose=0, return_dict=True)) == {
        "loss", "cls_loss", "reg_loss", "cls_accuracy"}
    model.compile("sgd", loss="mse")
    assert len(model.loss) == 2 and all(isinstance(loss, npnet.losses.MeanSquaredError) for loss in model.loss)
    with pytest.raises(ValueError, match=r"`loss` names unknown outputs \['nope'\]; the outputs are \['cls', 'reg'\]"):
        model.compile("sgd", loss={"nope": "mse"})
    with pytest.raises(ValueError, match=r"`loss` has 1 entries for 2 outputs"):
        model.compile("sgd", loss=["mse"])


def test_bad_inputs_to_a_graph_model_are_named():
    xa, xb, y1, y2 = _data(16)
    model = _two_in_two_out()
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match=r"expected 2 inputs \['a', 'b'\], received 1"):
        model.predict([xa], verbose=0)
    with pytest.raises(ValueError, match=r"missing \['b'\], unknown \['c'\]"):
        model.predict({"a": xa, "c": xb}, verbose=0)
    with pytest.raises(ValueError, match=r"input 'b' of 'two' expects shape \(batch, 3\), received shape \(16, 4\)"):
        model.predict([xa, xa], verbose=0)
    with pytest.raises(ValueError, match=r"the model has 2 outputs \['cls', 'reg'\]; give `y` as a list or a dict"):
        model.fit([xa, xb], y1, verbose=0)
    with pytest.raises(ValueError, match=r"every input must have the same number of samples, received \[16, 8\]"):
        model.predict([xa, xb[:8]], verbose=0)


def test_bad_graph_constructions_name_the_layer():
    a, other = npnet.Input(shape=(4,), name="a"), npnet.Input(shape=(4,), name="other")
    with pytest.raises(ValueError, match=r"depends on input 'other', which is not among the model's inputs"):
        npnet.Model(a, L.Dense(2)(other))
    with pytest.raises(ValueError, match=r"input 'other' is not connected to any output"):
        npnet.Model([a, other], L.Dense(2)(a))
    with pytest.raises(ValueError, match=r"two different layers are named 'x'"):
        npnet.Model(a, [L.Dense(2, name="x")(a), L.Dense(2, name="x")(a)])
    with pytest.raises(ValueError, match=r"Conv2D 'c': expected input of rank 4 \(batch, height, width, channels\), "
                                         r"received shape \(None, 4\)"):
        L.Conv2D(2, 3, name="c")(a)
    with pytest.raises(TypeError, match=r"Dense 'd': expected a single input tensor, received a list of 2"):
        L.Dense(2, name="d")([a, a])
    with pytest.raises(ValueError, match=r"Add 'plus': inputs must have the same shape"):
        L.Add(name="plus")([a, npnet.Input(shape=(5,))])
    with pytest.raises(ValueError, match=r"every input must come from npnet.Input; 'h' is the output of layer 'h'"):
        npnet.Model(L.Dense(3, name="h")(a), L.Dense(2)(a))
    with pytest.raises(TypeError, match="arithmetic on symbolic tensors is not recorded"):
        a + a  # noqa: B018
    built = L.Dense(3, name="built")
    built(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"Dense 'built': expected input with last dimension 4, received shape \(None, 5\)"):
        built(npnet.Input(shape=(5,)))


def test_nested_models_train_and_save(tmp_path):
    r = np.random.default_rng(1)
    inner = npnet.Sequential([L.Dense(8, activation="tanh"), L.Dense(2)], name="inner")
    x = npnet.Input(shape=(6,))
    model = npnet.Model(x, L.Softmax(name="probs")(inner(x)), seed=0)
    assert [layer.name for layer in model.layers][1:] == ["inner", "probs"] and model.count_params() == 56 + 18
    xs = r.normal(size=(128, 6)).astype("float32")
    ys = (xs[:, 0] > 0).astype(int)
    model.compile(npnet.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model._fused_outputs(xs) == [True]  # the softmax head fuses into the loss through the nesting
    history = model.fit(xs, ys, epochs=20, verbose=0, seed=0)
    assert history.history["accuracy"][-1] >= 0.95
    model.save(tmp_path / "nested.npnet")
    restored = npnet.load_model(tmp_path / "nested.npnet")
    np.testing.assert_array_equal(restored.predict(xs, verbose=0), model.predict(xs, verbose=0))
    outer = npnet.Sequential([npnet.Input(shape=(6,)), model, L.Dense(1)])
    assert outer.output_shape == (None, 1) and outer(xs).shape == (128, 1)


def test_summary_has_keras_connected_to_column():
    lines = []
    _two_in_two_out().summary(print_fn=lines.append)
    text = lines[0]
    assert "Connected to" in text
    row = next(line for line in text.splitlines() if line.startswith("shared (Dense)"))
    assert row.split()[2:] == ["(None,", "4)", "20", "a[0][0],", "proj[0][0]"]
    assert "cat (Concatenate)   (None, 8)" in text and "Total params: 72" in text


def test_model_seed_gives_identical_initial_weights():
    w1 = _two_in_two_out(seed=3).get_weights()
    w2 = _two_in_two_out(seed=3).get_weights()
    w3 = _two_in_two_out(seed=4).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3))


def test_functional_config_round_trip_rebuilds_the_graph():
    model = _two_in_two_out()
    clone = npnet.models.Functional.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    xa, xb, _, _ = _data(8)
    for got, want in zip(clone.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(got, want)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]


def test_multi_output_model_saves_and_loads_with_its_compile_settings(tmp_path):
    xa, xb, y1, y2 = _data(64)
    model = _two_in_two_out()
    model.compile(npnet.Adam(0.01), loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.25}, metrics={"cls": ["accuracy"]})
    model.fit([xa, xb], [y1, y2], epochs=2, verbose=0, seed=0)
    model.save(tmp_path / "two.npnet")
    restored = npnet.load_model(tmp_path / "two.npnet")
    assert type(restored) is npnet.models.Functional and restored.output_names == ["cls", "reg"]
    for got, want in zip(restored.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(got, want)
    assert restored.evaluate([xa, xb], [y1, y2], verbose=0, return_dict=True) == \
        model.evaluate([xa, xb], [y1, y2], verbose=0, return_dict=True)
    a = model.fit([xa, xb], [y1, y2], epochs=1, verbose=0, seed=3).history
    b = restored.fit([xa, xb], [y1, y2], epochs=1, verbose=0, seed=3).history
    assert a == b  # optimizer state and loss weights came back exactly


def test_train_test_and_predict_on_batch():
    xa, xb, y1, y2 = _data(32)
    model = _two_in_two_out()
    model.compile(npnet.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    before = model.test_on_batch([xa, xb], [y1, y2], return_dict=True)
    first = model.train_on_batch([xa, xb], [y1, y2], return_dict=True)
    assert first == pytest.approx(before)  # the loss of the batch before the update
    after = model.test_on_batch([xa, xb], [y1, y2])
    assert after[0] < before["loss"]
    probs, values = model.predict_on_batch([xa, xb])
    np.testing.assert_allclose(probs, model.predict([xa, xb], verbose=0)[0], rtol=1e-6)


def test_the_same_tensor_twice_as_outputs_gets_two_names():
    x = npnet.Input(shape=(3,))
    p = L.Dense(2, name="p")(x)
    model = npnet.Model(x, [p, p])
    assert model.output_names == ["p", "p_1"]
    model.compile("sgd", ["mse", "mae"])
    assert set(model.evaluate(np.ones((2, 3)), [np.zeros((2, 2))] * 2, verbose=0, return_dict=True)) == {
        "loss", "p_loss", "p_1_loss"}


def test_a_metrics_list_has_one_entry_per_output_as_in_keras():
    xa, xb, yc, yr = _data(40)
    model = _two_in_two_out()
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"], metrics=["accuracy", ["mae", "mse"]])
    logs = model.evaluate([xa, xb], [yc, yr], verbose=0, return_dict=True)
    assert sorted(logs) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae", "reg_mse"]
    out = model.predict([xa, xb], verbose=0)
    assert logs["reg_mae"] == pytest.approx(float(np.mean(np.abs(out[1] - yr))), rel=1e-5)
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"], metrics=[None, "mae"])
    assert sorted(model.evaluate([xa, xb], [yc, yr], verbose=0, return_dict=True)) == [
        "cls_loss", "loss", "reg_loss", "reg_mae"]
    with pytest.raises(ValueError, match=r"2 outputs \['cls', 'reg'\], so `metrics` takes one entry per output"):
        model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"], metrics=["accuracy"])
    with pytest.raises(ValueError, match="`weighted_metrics` takes one entry per output"):
        model.compile("sgd", loss="mse", weighted_metrics=["mae", "mae", "mae"])


def test_an_explicit_training_flag_is_kept_in_the_node_as_in_keras(tmp_path):
    """Keras' rule: ``layer(x, training=False)`` in a functional model always runs in
    inference mode (a frozen base's BatchNormalization while the head trains), and
    ``training=True`` always in training mode (Monte Carlo dropout in predict)."""
    x = npnet.Input(shape=(4,))
    bn = npnet.layers.BatchNormalization()
    y = npnet.layers.Dense(1)(bn(npnet.layers.Dense(4)(x), training=False))
    noisy = npnet.layers.Dropout(0.5, seed=0)(y, training=True)
    model = npnet.Model(x, [y, noisy])
    model.compile(optimizer="adam", loss=["mse", "mse"])
    xs = (np.random.default_rng(0).normal(size=(64, 4)) * 3 + 2).astype(np.float32)
    model.fit(xs, [np.zeros((64, 1)), np.zeros((64, 1))], epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.state["moving_mean"], 0)  # never ran in training mode
    np.testing.assert_array_equal(bn.state["moving_variance"], 1)
    a, b = model.predict(xs, verbose=0)[1], model.predict(xs, verbose=0)[1]
    assert not np.array_equal(a, b) and (a == 0).any()  # dropout runs in predict
    for rebuilt in (npnet.Model.from_config(model.get_config()), None):
        if rebuilt is None:
            model.save(tmp_path / "m.npnet")
            rebuilt = npnet.load_model(tmp_path / "m.npnet")
        assert [n.kwargs for n in rebuilt._nodes] == [{}, {"training": False}, {}, {"training": True}]
    with pytest.raises(TypeError, match="`training` must be"):
        npnet.layers.Dense(2)(x, training="yes")
