"""sample_weight and class_weight in fit, evaluate, train_on_batch and test_on_batch,
with Keras' reduction: sum of weighted per-sample losses over the number of samples."""

import math

import numpy as np
import pytest

import npnet

X = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
Y = np.zeros(4, np.float32)
SW = np.array([1.0, 0.0, 2.0, 0.5])


def _identity(lr=0.0):
    """y_pred = x: one Dense unit with kernel 1 and bias 0 (lr=0 keeps it so)."""
    model = npnet.Sequential([npnet.Input(shape=(1,)), npnet.Dense(1)], seed=0)
    model.compile(npnet.SGD(learning_rate=lr), "mse")
    model.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    return model


def _uniform_classifier(units=3, loss="sparse_categorical_crossentropy", metrics=None):
    """A zero kernel: every prediction is uniform, so each sample's cross-entropy is log(units)."""
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(units, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), loss, metrics=metrics)
    model.set_weights([np.zeros((2, units), np.float32), np.zeros(units, np.float32)])
    return model


def test_fit_and_evaluate_pin_keras_reduction():
    # Per-sample squared errors are x^2 = 1, 4, 9, 16. Keras (sum_over_batch_size):
    # batch [1, 2]: (1*1 + 0*4) / 2 = 0.5; batch [3, 4]: (2*9 + 0.5*16) / 2 = 13.
    # The epoch's loss is the batch-size-weighted mean of the batch losses:
    # (0.5*2 + 13*2) / 4 = 6.75 = sum(w * l) / n; not sum(w * l) / sum(w) = 27/3.5.
    model = _identity()
    h = model.fit(X, Y, batch_size=2, sample_weight=SW, shuffle=False, verbose=0)
    assert h.history["loss"] == [pytest.approx(6.75)]
    # Batches of 3 and 1: (1 + 0 + 18)/3 and 8/1, weighted by 3 and 1 -> 27/4 again.
    assert model.evaluate(X, Y, sample_weight=SW, batch_size=3, verbose=0) == pytest.approx(6.75)
    assert model.evaluate(X, Y, batch_size=3, verbose=0) == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert model.test_on_batch(X, Y, sample_weight=SW) == pytest.approx(6.75)


def test_train_on_batch_steps_along_the_weighted_gradient():
    # L = (1/4) sum_i s_i (w x_i + b)^2 at w=1, b=0:
    # dL/dw = (2/4) sum s_i x_i^2 = 0.5 * (1 + 0 + 18 + 8) = 13.5
    # dL/db = (2/4) sum s_i x_i   = 0.5 * (1 + 0 + 6 + 2)  = 4.5
    model = _identity(lr=0.1)
    assert model.train_on_batch(X, Y, sample_weight=SW) == pytest.approx(6.75)
    kernel, bias = model.get_weights()
    assert kernel[0, 0] == pytest.approx(1 - 0.1 * 13.5)
    assert bias[0] == pytest.approx(-0.1 * 4.5)


def test_zero_weights_leave_the_model_unchanged_and_weights_of_2_double_the_step():
    x = np.random.default_rng(0).normal(size=(8, 1)).astype(np.float32)
    y = np.ones(8, np.float32)
    zero = _identity(lr=0.1)
    zero.train_on_batch(x, y, sample_weight=np.zeros(8))
    assert [w.tolist() for w in zero.get_weights()] == [[[1.0]], [0.0]]
    one, two = _identity(lr=0.1), _identity(lr=0.05)
    one.train_on_batch(x, y)
    two.train_on_batch(x, y, sample_weight=np.full(8, 2.0))
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_fused_softmax_cross_entropy_is_weighted():
    # Uniform predictions over 3 classes: every sample's loss is log 3.
    x = np.ones((4, 2), np.float32)
    model = _uniform_classifier()
    assert model._fused_outputs(x) == [True]
    loss = model.evaluate(x, np.array([0, 1, 2, 0]), sample_weight=[3.0, 1.0, 0.0, 0.0], verbose=0)
    assert loss == pytest.approx(4 * math.log(3) / 4)


def test_class_weight_with_sparse_and_one_hot_targets():
    x = np.ones((4, 2), np.float32)
    y = np.array([0, 0, 1, 2])
    # weights 2, 2, 1 (class 1 not listed), 0.5: loss = (2 + 2 + 1 + 0.5) log 3 / 4
    expected = 5.5 * math.log(3) / 4
    model = _uniform_classifier()
    h = model.fit(x, y, class_weight={0: 2.0, 2: 0.5}, batch_size=4, verbose=0)
    assert h.history["loss"] == [pytest.approx(expected)]
    assert model.train_on_batch(x, y, class_weight={0: 2.0, 2: 0.5}) == pytest.approx(expected)
    onehot = _uniform_classifier(loss="categorical_crossentropy")
    h = onehot.fit(x, np.eye(3)[y], class_weight={0: 2.0, 2: 0.5}, batch_size=3, verbose=0)
    assert h.history["loss"] == [pytest.approx(expected)]


def test_class_weight_with_a_sigmoid_output():
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1, activation="sigmoid")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), "binary_crossentropy")
    model.set_weights([np.zeros((2, 1), np.float32), np.zeros(1, np.float32)])
    y = np.array([0.0, 1.0, 1.0])
    h = model.fit(np.ones((3, 2), np.float32), y, class_weight={1: 3.0}, verbose=0)
    assert h.history["loss"] == [pytest.approx((1 + 3 + 3) * math.log(2) / 3)]


def test_metrics_are_not_weighted_as_in_keras():
    # Keras weights the loss with sample_weight; compiled `metrics` see every sample.
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    model = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.set_weights([np.eye(2, dtype=np.float32) * 5, np.zeros(2, np.float32)])
    loss, acc = model.evaluate(x, np.array([0, 0]), sample_weight=[1.0, 0.0], verbose=0)
    assert acc == pytest.approx(0.5)  # the second sample (weight 0) is wrong and counts
    assert loss == pytest.approx(math.log1p(math.exp(-5)) / 2)


def test_validation_data_takes_sample_weights():
    model = _identity()
    h = model.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y, SW), batch_size=4)
    assert h.history["val_loss"] == [pytest.approx(6.75)]
    assert h.history["loss"] == [pytest.approx(7.5)]


def test_validation_split_splits_the_sample_weights():
    # The last row (x=4, weight 0.5) is the validation split of float targets.
    model = _identity()
    h = model.fit(X, Y, validation_split=0.25, sample_weight=SW, shuffle=False, batch_size=4, verbose=0)
    assert h.history["val_loss"] == [pytest.approx(0.5 * 16)]
    assert h.history["loss"] == [pytest.approx((1 + 0 + 18) / 3)]


def _two_outputs():
    inp = npnet.Input(shape=(1,))
    a = npnet.layers.Dense(1, name="a")(inp)
    b = npnet.layers.Dense(1, name="b")(inp)
    model = npnet.Model(inp, {"a": a, "b": b}, seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), {"a": "mse", "b": "mse"}, loss_weights={"a": 1.0, "b": 2.0})
    model.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32),
                       np.full((1, 1), 2.0, np.float32), np.zeros(1, np.float32)])
    return model


def test_multi_output_sample_weights_per_output_or_shared():
    # Output a = x (errors 1, 4, 9, 16), output b = 2x (errors 4, 16, 36, 64).
    model = _two_outputs()
    y = {"a": Y, "b": Y}
    wa, wb = SW, np.array([0.0, 1.0, 0.0, 1.0])
    la = (1 + 18 + 8) / 4
    lb = (16 + 64) / 4
    d = model.evaluate(X, y, sample_weight={"a": wa, "b": wb}, return_dict=True, verbose=0)
    assert d == pytest.approx({"loss": la + 2 * lb, "a_loss": la, "b_loss": lb})
    d = model.evaluate(X, y, sample_weight=[wa, wb], return_dict=True, verbose=0)
    assert d["loss"] == pytest.approx(la + 2 * lb)
    shared = (4 * 1 + 0 + 2 * 36 + 0.5 * 64) / 4
    d = model.evaluate(X, y, sample_weight=wa, return_dict=True, verbose=0)  # one array for every output
    assert d == pytest.approx({"loss": la + 2 * shared, "a_loss": la, "b_loss": shared})
    d = model.evaluate(X, y, sample_weight={"a": wa}, return_dict=True, verbose=0)  # b unweighted
    assert d["b_loss"] == pytest.approx((4 + 16 + 36 + 64) / 4)


@pytest.mark.parametrize("sw, error, match", [
    (np.ones(3), ValueError, r"fit: `sample_weight` must have one weight per sample, shape \(4,\) .*received shape \(3,\)"),
    (np.ones((4, 2)), ValueError, r"MeanSquaredError: expected `sample_weight` of shape \(4,\).*received shape \(4, 2\)"),
    (np.array([1.0, -1.0, 1.0, 1.0]), ValueError, r"fit: `sample_weight` must be >= 0, received -1.0 at index 1"),
    (np.array([1.0, np.nan, 1.0, 1.0]), ValueError, r"fit: `sample_weight` contains NaN or infinity \(first at index 1\)"),
    (np.array(["a", "b", "c", "d"]), TypeError, r"fit: `sample_weight` must hold real numbers, received .* dtype <U1"),
    (2.0, TypeError, r"fit: `sample_weight` must be an array of shape \(4,\), received 2.0"),
])
def test_bad_sample_weights_are_refused(sw, error, match):
    with pytest.raises(error, match=match):
        _identity().fit(X, Y, sample_weight=sw, verbose=0)


def test_bad_weights_in_evaluate_and_validation_data_name_the_argument():
    with pytest.raises(ValueError, match=r"evaluate: `sample_weight` must be >= 0"):
        _identity().evaluate(X, Y, sample_weight=-SW, verbose=0)
    with pytest.raises(ValueError, match=r"fit: `validation_data\[2\]` must have one weight per sample, shape \(4,\)"):
        _identity().fit(X, Y, validation_data=(X, Y, SW[:2]), verbose=0)
    with pytest.raises(ValueError, match=r"train_on_batch: `sample_weight` contains NaN"):
        _identity().train_on_batch(X, Y, sample_weight=[np.nan] * 4)


def test_bad_multi_output_sample_weights_are_refused():
    model = _two_outputs()
    y = {"a": Y, "b": Y}
    with pytest.raises(ValueError, match=r"fit: `sample_weight` names unknown outputs \['c'\]; the outputs are \['a', 'b'\]"):
        model.fit(X, y, sample_weight={"c": SW}, verbose=0)
    with pytest.raises(ValueError, match=r"fit: `sample_weight` has 3 arrays for 2 outputs \['a', 'b'\]"):
        model.fit(X, y, sample_weight=[SW, SW, SW], verbose=0)
    with pytest.raises(ValueError, match=r"fit: `sample_weight\['b'\]` must be >= 0"):
        model.fit(X, y, sample_weight={"a": SW, "b": -SW}, verbose=0)


@pytest.mark.parametrize("cw, match", [
    ({3: 1.0}, r"fit: `class_weight` has class 3, but the model's output has 3 classes \(0 to 2\)"),
    ({-1: 1.0}, r"fit: `class_weight` has class -1"),
    ({"zero": 1.0}, r"fit: `class_weight` keys must be integer class ids, received 'zero'"),
    ({0: -2.0}, r"fit: `class_weight` must map classes to finite weights >= 0, received -2.0 for class 0"),
    ({0: float("nan")}, r"finite weights >= 0, received nan for class 0"),
])
def test_bad_class_weights_are_refused(cw, match):
    with pytest.raises(ValueError, match=match):
        _uniform_classifier().fit(np.ones((4, 2), np.float32), np.array([0, 1, 2, 0]), class_weight=cw, verbose=0)


def test_class_weight_is_refused_with_sample_weight_and_with_several_outputs():
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"fit: give `class_weight` or `sample_weight`, not both"):
        _uniform_classifier().fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(4), verbose=0)
    with pytest.raises(ValueError, match=r"train_on_batch: give `class_weight` or `sample_weight`, not both"):
        _uniform_classifier().train_on_batch(x, y, class_weight={0: 2.0}, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match=r"fit: `class_weight` works on models with one output; this one has \['a', 'b'\]"):
        _two_outputs().fit(X, {"a": Y, "b": Y}, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(TypeError, match=r"fit: `class_weight` must be a dict of class id -> weight, received list"):
        _uniform_classifier().fit(x, y, class_weight=[1.0, 2.0, 3.0], verbose=0)


def test_sample_weight_none_adds_no_work_per_step():
    # The weights reach the loss only when given: a loss that refuses the argument still trains.
    class Plain(npnet.losses.MeanSquaredError):
        def forward(self, y_true, y_pred, **kwargs):
            assert not kwargs
            return super().forward(y_true, y_pred)

    model = npnet.Sequential([npnet.Input(shape=(1,)), npnet.Dense(1)], seed=0)
    model.compile("sgd", Plain())
    h = model.fit(X, Y, epochs=2, verbose=0, seed=0)
    assert len(h.history["loss"]) == 2


def test_per_time_step_weights_for_an_output_with_time_steps():
    # Output (batch, 3 steps, 1) = 1 everywhere against targets 0: every element's error is 1.
    model = npnet.Sequential([npnet.Input(shape=(3, 2)), npnet.Dense(1)], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), "mse")
    model.set_weights([np.full((2, 1), 0.5, np.float32), np.zeros(1, np.float32)])
    x, y = np.ones((4, 3, 2), np.float32), np.zeros((4, 3, 1), np.float32)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(1.0)
    w = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 0.0, 1.0]])
    # Keras: sum of the weighted per-step losses over their number, 4 x 3.
    assert model.evaluate(x, y, sample_weight=w, verbose=0) == pytest.approx(7 / 12)


def _mae_model(**compile_kwargs):
    """y_pred = x, compiled with MAE metrics: per-sample absolute errors are 1, 2, 3, 4."""
    model = npnet.Sequential([npnet.Input(shape=(1,)), npnet.Dense(1)], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), "mse", **compile_kwargs)
    model.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    return model


def test_weighted_metrics_count_each_sample_with_its_weight():
    # Keras: `metrics` ignore sample_weight, `weighted_metrics` take it.
    # Unweighted MAE = (1 + 2 + 3 + 4) / 4 = 2.5.
    # Weighted MAE (Keras' weighted mean) = (1*1 + 0*2 + 2*3 + 0.5*4) / (1 + 0 + 2 + 0.5) = 9 / 3.5.
    # The same metric in both lists: the weighted one is logged as weighted_<name>.
    model = _mae_model(metrics=["mae"], weighted_metrics=["mae"])
    logs = model.evaluate(X, Y, sample_weight=SW, batch_size=3, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(6.75)
    assert logs["mae"] == pytest.approx(2.5)
    assert logs["weighted_mae"] == pytest.approx(9 / 3.5)
    h = model.fit(X, Y, sample_weight=SW, batch_size=2, shuffle=False, verbose=0)
    assert sorted(h.history) == ["loss", "mae", "weighted_mae"]
    assert h.history["weighted_mae"] == [pytest.approx(9 / 3.5)]
    # Without sample weights a weighted metric is the plain mean.
    assert model.evaluate(X, Y, verbose=0, return_dict=True)["weighted_mae"] == pytest.approx(2.5)


def test_weighted_metrics_alone_keep_their_name_and_take_class_weight():
    model = _uniform_classifier(metrics=None)
    model.compile(npnet.SGD(learning_rate=0.0), "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    model.set_weights([np.zeros((2, 3), np.float32), np.array([0.0, 0.0, 1.0], np.float32)])  # always class 2
    x, y = np.ones((4, 2), np.float32), np.array([2, 2, 0, 1])
    # Accuracy with class weights {2: 3}: (3 + 3 + 0 + 0) / (3 + 3 + 1 + 1) = 0.75; unweighted 0.5.
    h = model.fit(x, y, class_weight={2: 3.0}, batch_size=4, verbose=0)
    assert h.history["accuracy"] == [pytest.approx(0.75)]
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(0.5)


def test_weighted_metrics_per_output_and_saved(tmp_path):
    inp = npnet.Input(shape=(1,))
    a = npnet.Dense(1, name="a")(inp)
    b = npnet.Dense(1, name="b")(inp)
    model = npnet.Model(inp, [a, b])
    model.compile(npnet.SGD(learning_rate=0.0), "mse", weighted_metrics={"a": ["mae"]})
    model.set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)] * 2)
    logs = model.evaluate(X, [Y, Y], sample_weight=SW, verbose=0, return_dict=True)
    assert logs["a_mae"] == pytest.approx(9 / 3.5)
    assert "b_mae" not in logs
    model.save(tmp_path / "m.npnet")
    again = npnet.models.load_model(tmp_path / "m.npnet")
    assert again.evaluate(X, [Y, Y], sample_weight=SW, verbose=0, return_dict=True) == pytest.approx(logs)


def test_weighted_metric_named_loss_is_refused():
    with pytest.raises(ValueError, match="named 'loss'"):
        _mae_model(weighted_metrics=[npnet.metrics.MeanAbsoluteError(name="loss")])
