"""Metrics: Keras 3's update_state / result / reset_state API, sample weights, golden values."""

from __future__ import annotations

import numpy as np
import pytest

import npnet
from npnet import metrics as M

# ---------------------------------------------------------------- Mean: Keras' weighting rules


def test_mean_unweighted_and_weighted_over_batches():
    m = M.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.update_state([10], sample_weight=[2.0])
    # total = 16 + 2*10 = 36, count = 4 + 2 = 6
    assert m.result() == pytest.approx(6.0)
    m.reset_state()
    assert m.result() == 0.0
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0


def test_mean_weight_of_full_shape_counts_mean_entry_weight_per_sample():
    # values (2, 2), weights (2, 2): per sample mean_j(v*w) over mean_j(w)
    v = np.array([[1.0, 3.0], [5.0, 7.0]])
    w = np.array([[1.0, 0.0], [1.0, 1.0]])
    m = M.Mean()
    m.update_state(v, sample_weight=w)
    # per-sample mean of v*w: [(1 + 0) / 2, (5 + 7) / 2] = [0.5, 6]; of w: [0.5, 1]
    assert m.result() == pytest.approx((0.5 + 6.0) / (0.5 + 1.0))


def test_mean_rank_one_weight_weights_samples_of_2d_values():
    # values (2, 2) averaged per sample first: [2, 6]; weights [3, 1]
    m = M.Mean()
    m.update_state([[1.0, 3.0], [5.0, 7.0]], sample_weight=[3.0, 1.0])
    assert m.result() == pytest.approx((3 * 2 + 1 * 6) / 4)


def test_mean_scalar_weight_makes_the_batch_one_sample():
    # Keras: a scalar weight reduces the batch to its mean and counts it with that weight
    m = M.Mean()
    m.update_state([1.0, 3.0, 5.0, 7.0], sample_weight=2.0)
    assert m.result() == 4.0
    assert float(m.count) == 2.0
    m.update_state([0.0, 0.0], sample_weight=[1.0, 1.0])
    assert m.result() == pytest.approx((4.0 * 2) / (2 + 2))


def test_mean_trailing_axis_of_one_in_weight_is_squeezed():
    m = M.Mean()
    m.update_state([2.0, 4.0], sample_weight=[[1.0], [3.0]])
    assert m.result() == pytest.approx((2 + 12) / 4)


def test_mean_bad_weight_shape_names_the_metric():
    m = M.Mean(name="avg")
    with pytest.raises(ValueError, match=r"Mean 'avg': `sample_weight` of shape \(3,\) does not broadcast"):
        m.update_state([1.0, 2.0], sample_weight=[1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match=r"Mean 'avg': `values` must hold numbers"):
        m.update_state(["a", "b"])


def test_sum():
    m = M.Sum()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    m.update_state([[1.0, 2.0]])
    assert m.result() == 7.0


def test_all_zero_weights_give_zero_not_nan():
    m = M.SparseCategoricalAccuracy()
    m.update_state([0, 1], [[0.9, 0.1], [0.2, 0.8]], sample_weight=[0, 0])
    assert m.result() == 0.0


# ---------------------------------------------------------------- accuracy with sample weights


def test_sparse_categorical_accuracy_weighted_and_accumulated():
    m = M.SparseCategoricalAccuracy()
    m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)
    # second batch: both right, weights 1 and 1 -> (0.3 + 2) / (1 + 2)
    m.update_state([0, 2], [[0.8, 0.1, 0.1], [0.0, 0.1, 0.9]], sample_weight=[1.0, 1.0])
    assert m.result() == pytest.approx(2.3 / 3.0)


def test_categorical_accuracy_weighted():
    m = M.CategoricalAccuracy()
    m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)


def test_binary_accuracy_threshold_and_weights():
    m = M.BinaryAccuracy()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    assert m.result() == 0.75
    m.reset_state()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], sample_weight=[1, 0, 0, 1])
    assert m.result() == 0.5
    m = M.BinaryAccuracy(threshold=0.99)
    m.update_state([1, 1, 0, 0], [0.98, 1, 0, 0.6])
    # 0.98 -> 0 (wrong), 1 -> 1, 0 -> 0, 0.6 -> 0
    assert m.result() == 0.75


def test_binary_accuracy_multi_label_averages_per_sample_then_weights():
    m = M.BinaryAccuracy()
    y = [[1, 0, 1], [0, 0, 1]]
    p = [[0.9, 0.2, 0.1], [0.6, 0.4, 0.7]]
    # sample 0: 2/3 right, sample 1: 2/3 right
    m.update_state(y, p, sample_weight=[1.0, 3.0])
    assert m.result() == pytest.approx(2 / 3)


def test_top_k_weighted():
    m = M.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)
    m = M.TopKCategoricalAccuracy(k=2)
    m.update_state([[0, 0, 1], [1, 0, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0.5]], sample_weight=[0.25, 0.75])
    assert m.result() == pytest.approx(0.25)


# ---------------------------------------------------------------- aliases the model uses


def test_old_names_are_aliases():
    m = M.get("accuracy")
    m.update([0, 1], [[0.9, 0.1], [0.7, 0.3]])
    assert m.result() == 0.5 and m.name == "accuracy"
    m.reset()
    assert m.result() == 0.0


# ---------------------------------------------------------------- your own metric


class TruePositives(M.Metric):
    def __init__(self, threshold=0.5, name="true_positives", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = threshold
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hits = (np.asarray(y_true).reshape(-1) == 1) & (np.asarray(y_pred).reshape(-1) > self.threshold)
        w = 1.0 if sample_weight is None else np.asarray(sample_weight, dtype=float).reshape(-1)
        self.tp.assign(self.tp + np.sum(hits * w))

    def result(self):
        return self.tp

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def test_custom_metric_state_reset_and_result_type():
    m = TruePositives()
    m.update_state([1, 0, 1], [0.9, 0.8, 0.2])
    m.update_state([1, 1], [0.7, 0.6], sample_weight=[0.5, 1.0])
    r = m.result()
    assert r == 2.5 and type(r) is float
    m.reset_state()
    assert m.result() == 0.0
    assert [v.name for v in m.variables] == ["tp"]


def test_custom_metric_without_super_init_is_refused():
    class Broken(M.Metric):
        def __init__(self):
            self.v = self.add_variable(shape=())

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\).__init__\(\)"):
        Broken()


class KerasTruePositives(M.Metric):
    """Keras' own Metric docstring example, with npnet's initializer object and Keras' argument order."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")
        self.seen = self.add_variable(shape=(), initializer=npnet.initializers.Zeros(), name="seen")
        self.offset = self.add_variable((2,), npnet.initializers.Constant(1.5), None, "mean", "offset")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.logical_and(np.asarray(y_true, bool), np.asarray(y_pred, bool)).astype(self.dtype or float)
        if sample_weight is not None:
            values = values * np.broadcast_to(np.asarray(sample_weight, float), values.shape)
        self.true_positives.assign(self.true_positives + np.sum(values))
        self.seen.assign_add(values.size)

    def result(self):
        return self.true_positives


def test_add_variable_takes_keras_arguments_and_initializer_objects():
    m = KerasTruePositives(dtype="float32")
    assert m.name == "binary_true_positives" and m.dtype == "float32"
    assert [(v.name, v.dtype, v.aggregation) for v in m.variables] == [
        ("true_positives", np.float32, "sum"), ("seen", np.float32, "sum"), ("offset", np.float32, "mean")]
    np.testing.assert_array_equal(m.offset.value, [1.5, 1.5])
    m.update_state([1, 1, 0, 1], [1, 0, 1, 1], sample_weight=[0.5, 1.0, 1.0, 2.0])
    assert m.result() == 2.5 and m.seen.value == 4.0
    m.offset.assign([0.0, 0.0])
    m.reset_state()
    assert m.result() == 0.0 and m.seen.value == 0.0
    np.testing.assert_array_equal(m.offset.value, [1.5, 1.5])  # back to its initializer's value
    # every Keras aggregation, Keras' class-name string, a class, a function of (shape, dtype)
    for agg, stored in [("none", "none"), ("mean", "mean"), ("sum", "sum"),
                        ("only_first_replica", "only_first_replica"), (None, "none")]:
        assert m.add_variable(shape=(), initializer="zeros", aggregation=agg).aggregation == stored
    assert m.add_variable(shape=2, initializer="Ones").value.tolist() == [1.0, 1.0]
    assert m.add_variable(shape=(2,), initializer=npnet.initializers.Ones).value.tolist() == [1.0, 1.0]
    v = m.add_variable(shape=(2, 1), initializer=lambda shape, dtype: np.full(shape, 7, dtype=dtype), dtype="int64")
    assert v.dtype == np.int64 and v.value.tolist() == [[7], [7]]
    # add_weight: Keras' (shape, initializer, dtype, name) order, zeros by default
    w = m.add_weight((3,), None, None, "w")
    assert w.name == "w" and w.value.tolist() == [0.0, 0.0, 0.0] and w.aggregation == "sum"


@pytest.mark.parametrize("make, error, match", [
    (lambda m: m.add_variable(shape=(), initializer=object(), name="tp"), TypeError,
     r"KerasTruePositives 'binary_true_positives': add_variable\(name='tp'\): `initializer` must be an initializer "
     r"name or object \(npnet.initializers\), a function of \(shape, dtype\), a number or an array, received "
     r"<object object at .*> of type object"),
    (lambda m: m.add_variable(shape=(), initializer="zeroes", name="tp"), ValueError,
     r"add_variable\(name='tp'\): `initializer`: unknown initializer 'zeroes'; known names: \["),
    (lambda m: m.add_variable(shape=(3,), initializer=[1.0, 2.0], name="tp"), ValueError,
     r"add_variable\(name='tp'\): `initializer` of shape \(2,\) does not broadcast to the variable's shape \(3,\)"),
    (lambda m: m.add_variable(shape=(3,), initializer=lambda shape, dtype: np.zeros(2), name="tp"), ValueError,
     r"add_variable\(name='tp'\): `initializer` <function .*> returned shape \(2,\), expected \(3,\)"),
    (lambda m: m.add_variable(shape=(), initializer="zeros", aggregation="max"), ValueError,
     r"add_variable\(name=None\): `aggregation` must be one of \['sum', 'mean', 'none', 'only_first_replica', "
     r"None\], received 'max'"),
    (lambda m: m.add_variable(shape=None, initializer="zeros"), TypeError,
     r"`shape` must be an int or a tuple of non-negative ints, received None"),
    (lambda m: m.add_variable(shape=(), initializer="zeros", dtype="foo"), ValueError,
     r"add_variable\(name=None\): `dtype` must be a numeric dtype such as 'float64' or 'int64', received 'foo'"),
    (lambda m: m.add_variable(shape=(), initializer="zeros", name=3), TypeError,
     r"add_variable `name` must be a string, received 3"),
], ids=["initializer-object", "initializer-name", "initializer-shape", "initializer-fn-shape", "aggregation",
        "shape", "dtype", "name"])
def test_add_variable_rejects_bad_arguments_naming_the_metric_and_argument(make, error, match):
    with pytest.raises(error, match=match):
        make(KerasTruePositives())


def test_metric_dtype_is_checked_and_its_argument_order_explained():
    with pytest.raises(ValueError, match=r"Mean 'mean': `dtype` must be a floating-point dtype such as 'float32' "
                                         r"or 'float64', received 'foo'$"):
        M.Mean(dtype="foo")
    with pytest.raises(ValueError, match=r"Sum 'sum': `dtype` must be a floating-point dtype .*received 'int32'"):
        M.Sum(dtype="int32")
    with pytest.raises(TypeError, match=r"Precision 'precision': `dtype` must be a floating-point dtype .*received 3"):
        M.Precision(dtype=3)
    # Keras' base class takes (dtype, name); npnet's, like every concrete metric, (name, dtype)
    with pytest.raises(ValueError, match=r"Metric 'float32': `dtype` must be a floating-point dtype such as 'float32' "
                                         r"or 'float64', received 'my_metric'; npnet's Metric takes \(name, dtype\) "
                                         r"in that order, Keras' base class \(dtype, name\): pass them by keyword"):
        M.Metric("float32", "my_metric")
    m = M.Metric("my_metric", "float32")
    assert (m.name, m.dtype) == ("my_metric", "float32")
    assert M.Mean(dtype=np.float32).dtype == "float32" and M.Mean().dtype is None


def test_custom_metric_in_compile_and_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = npnet.Sequential([npnet.layers.Dense(1, activation="sigmoid")], seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[TruePositives()])
    hist = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    pred = model.predict(x, verbose=0)
    expected = float(np.sum((y[:, 0] == 1) & (pred[:, 0] > 0.5)))
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert logs["true_positives"] == expected
    assert isinstance(hist.history["true_positives"][0], float)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name, cls", [
    ("mae", M.MeanAbsoluteError), ("MAE", M.MeanAbsoluteError), ("mean_absolute_error", M.MeanAbsoluteError),
    ("mse", M.MeanSquaredError), ("mean_squared_error", M.MeanSquaredError),
    ("rmse", M.RootMeanSquaredError), ("root_mean_squared_error", M.RootMeanSquaredError),
    ("accuracy", M.Accuracy), ("acc", M.Accuracy), ("Precision", M.Precision), ("recall", M.Recall),
    ("auc", M.AUC), ("f1_score", M.F1Score), ("top_k_categorical_accuracy", M.TopKCategoricalAccuracy),
])
def test_get_by_keras_name_names_the_metric_after_the_string(name, cls):
    m = M.get(name)
    assert type(m) is cls and m.name == name


def test_get_other_identifiers():
    assert type(M.get(M.Precision)) is M.Precision
    m = M.get({"class_name": "Recall", "config": {"thresholds": 0.3, "name": "r"}})
    assert type(m) is M.Recall and m.thresholds == [0.3] and m.name == "r"
    with pytest.raises(ValueError, match=r"unknown metric 'f2'; known names"):
        M.get("f2")
    with pytest.raises(ValueError, match=r"could not interpret metric 3"):
        M.get(3)


def test_accuracy_string_picks_the_form_from_the_shapes():
    # binary: one output column
    m = M.get("accuracy")
    m.update_state([[1], [0]], [[0.7], [0.6]])
    assert m.result() == 0.5
    # sparse: ids of one axis fewer, or a last axis of 1
    for y in ([1, 0], [[1], [0]]):
        m = M.get("acc")
        m.update_state(y, [[0.2, 0.8], [0.4, 0.6]])
        assert m.result() == 0.5
    # categorical: one-hot of the same shape
    m = M.get("accuracy")
    m.update_state([[0, 1], [1, 0]], [[0.2, 0.8], [0.4, 0.6]], sample_weight=[3, 1])
    assert m.result() == 0.75


def test_mae_mse_rmse_in_compile_logs_under_the_given_names():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 2)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0]])).astype("float32")
    model = npnet.Sequential([npnet.layers.Dense(1)], seed=0)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse", "rmse", "root_mean_squared_error"])
    logs = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    err = model.predict(x, verbose=0) - y
    assert set(logs) == {"loss", "mae", "mse", "rmse", "root_mean_squared_error"}
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-5)
    assert logs["mse"] == pytest.approx(float(np.mean(err ** 2)), rel=1e-5)
    assert logs["rmse"] == pytest.approx(float(np.sqrt(np.mean(err ** 2))), rel=1e-5)


# ---------------------------------------------------------------- regression golden values


def test_regression_metrics_weighted_over_batches():
    y1, p1 = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 0.0]])
    y2, p2 = np.array([[1.0, 1.0]]), np.array([[0.0, 3.0]])
    w1, w2 = np.array([1.0, 2.0]), np.array([0.5])
    # per-sample errors: batch 1 |e| means [0.5, 0], e^2 means [0.5, 0]; batch 2 |e| mean 1.5, e^2 mean 2.5
    mae = (1 * 0.5 + 2 * 0 + 0.5 * 1.5) / (1 + 2 + 0.5)
    mse = (1 * 0.5 + 2 * 0 + 0.5 * 2.5) / 3.5
    for cls, expected in ((M.MeanAbsoluteError, mae), (M.MeanSquaredError, mse),
                          (M.RootMeanSquaredError, np.sqrt(mse))):
        m = cls()
        m.update_state(y1, p1, sample_weight=w1)
        m.update_state(y2, p2, sample_weight=w2)
        assert m.result() == pytest.approx(expected)


def test_regression_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"same number of samples, received shapes \(3,\) and \(2, 1\)"):
        M.MeanAbsoluteError().update_state([1.0, 2.0, 3.0], [[1.0], [2.0]])
    with pytest.raises(ValueError, match=r"mean_squared_error: y_true of shape \(2, 3\) does not match y_pred"):
        M.MeanSquaredError().update_state(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"RootMeanSquaredError 'root_mean_squared_error': y_true of shape"):
        M.RootMeanSquaredError().update_state(np.zeros((2, 3)), np.zeros((2, 2)))


# ---------------------------------------------------------------- top-k and ties


def test_top_k_counts_every_class_tied_with_the_kth_score():
    # float32 softmax saturates: logits [100, 100, 0] give exactly [0.5, 0.5, ~0]
    logits = np.array([[100.0, 100.0, 0.0]], dtype=np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    assert p[0, 0] == p[0, 1]
    for label in (0, 1):
        m = M.SparseTopKCategoricalAccuracy(k=1)
        m.update_state([label], p)
        assert m.result() == 1.0
    m = M.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([2], p)
    assert m.result() == 0.0
    # a three-way tie is inside k=1 for all three classes
    tie = np.full((3, 3), 1 / 3)
    assert M.top_k_accuracy_score([0, 1, 2], tie, k=1) == 1.0
    # one-hot form and the function form follow the same rule
    m = M.TopKCategoricalAccuracy(k=1)
    m.update_state([[0, 1, 0], [0, 0, 1]], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    assert m.result() == 0.5
    # two classes strictly above, one tied with the 2nd: k=2 includes the tie only
    scores = [[0.4, 0.3, 0.3, 0.0]]
    assert [M.top_k_accuracy_score([c], scores, k=2) for c in range(4)] == [1.0, 1.0, 1.0, 0.0]
    assert M.in_top_k([0], [[np.nan, 0.1]], k=1).tolist() == [False]


def test_top_k_accuracy_score_and_other_functions_keep_working():
    probs = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    # row 2 scores [0.2, 0.2, 0.6]: label 1 ties with the 2nd score, so it is in the top 2
    assert M.top_k_accuracy_score([2, 0, 1], probs, k=2) == 1.0
    assert M.top_k_accuracy_score([2, 0, 1], probs, k=1) == pytest.approx(1 / 3)
    assert M.accuracy_score([1, 0, 2], probs) == 1.0
    assert M.accuracy_score([1, 0, 0], [1, 0, 2]) == pytest.approx(2 / 3)
    # arg-max of the first two columns: [1, 0, 0] (the tie of row 2 goes to the lower id)
    assert M.confusion_matrix([0, 1, 1], probs[:, :2]).tolist() == [[0, 1], [2, 0]]
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\), received ids from 0 to 3"):
        M.top_k_accuracy_score([0, 3], probs[:2], k=1)
    with pytest.raises(ValueError, match=r"same number of samples"):
        M.top_k_accuracy_score([0, 1, 2, 0], probs, k=1)


def test_sparse_top_k_from_sorted_ids():
    m = M.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True)
    m.update_state([2, 1], [[1, 0, 3], [1, 2, 3]])
    assert m.result() == 0.5


# ---------------------------------------------------------------- precision and recall


def test_precision_recall_keras_examples():
    m = M.Precision()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert m.result() == 1.0
    # top_k keeps the first k of tied scores
    for k, expected in ((2, 0.0), (4, 0.5)):
        m = M.Precision(top_k=k)
        m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
        assert m.result() == expected
    r = M.Recall()
    r.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert r.result() == 1.0


def test_precision_recall_threshold_list_and_batches():
    y1, p1 = [0, 1, 1, 0], [0.9, 0.4, 0.6, 0.2]
    y2, p2 = [1, 1], [0.8, 0.1]
    thresholds = [0.5, 0.0, 0.85]  # kept in the order given
    prec, rec = M.Precision(thresholds=thresholds), M.Recall(thresholds=thresholds)
    for m in (prec, rec):
        m.update_state(y1, p1, sample_weight=[1, 1, 2, 1])
        m.update_state(y2, p2)
    y = np.array(y1 + y2)
    p = np.array(p1 + p2)
    w = np.array([1, 1, 2, 1, 1, 1.0])
    for i, t in enumerate(thresholds):
        pos = p > t
        tp, fp, fn = np.sum(w * (pos & (y == 1))), np.sum(w * (pos & (y == 0))), np.sum(w * (~pos & (y == 1)))
        assert prec.result()[i] == pytest.approx(tp / (tp + fp))
        assert rec.result()[i] == pytest.approx(tp / (tp + fn))
    # threshold 0.5: positives 0.9 (neg, w1), 0.6 (pos, w2), 0.8 (pos) -> tp 3, fp 1
    assert prec.result()[0] == pytest.approx(3 / 4)
    # recall at 0.5: true entries 0.4 (w1, miss), 0.6 (w2), 0.8, 0.1 (miss) -> 3 / 5
    assert rec.result()[0] == pytest.approx(3 / 5)
    assert isinstance(prec.result(), np.ndarray) and prec.result().shape == (3,)


def test_precision_recall_class_id_and_top_k():
    y = np.array([[0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    p = np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    # class 1 at 0.5: predicted positive rows 0, 1; true rows 0, 2 -> tp 1, fp 1, fn 1
    prec, rec = M.Precision(class_id=1), M.Recall(class_id=1)
    for m in (prec, rec):
        m.update_state(y, p, sample_weight=[1, 3, 1, 1])
    assert prec.result() == pytest.approx(1 / (1 + 3))
    assert rec.result() == pytest.approx(1 / 2)
    # top_k=1 with class_id=1: rows whose best class is 1 -> rows 0, 1 (row 2's best is 0)
    prec = M.Precision(top_k=1, class_id=1)
    prec.update_state(y, p)
    assert prec.result() == 0.5
    # top_k=2 without class_id: the two highest of each row are positives
    rec = M.Recall(top_k=2)
    rec.update_state(y, p)
    # true entries: (0,1) in top2 yes, (1,2) top2 of [0.2,0.7,0.1] = {1,0} no, (2,1) yes, (3,0) top2 of [0.3,0.3,0.4] = {2,0} yes
    assert rec.result() == pytest.approx(3 / 4)


def test_precision_bad_arguments():
    with pytest.raises(ValueError, match=r"Precision: threshold values must be numbers in \[0, 1\], received \[1.5\]"):
        M.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(TypeError, match=r"Recall: `top_k` must be an integer"):
        M.Recall(top_k=1.5)
    with pytest.raises(ValueError, match=r"Precision 'precision': class_id 3 is outside \[0, 3\)"):
        M.Precision(class_id=3).update_state(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Recall 'recall': y_true of shape \(2, 3\) does not match y_pred of shape \(2, 2\)"):
        M.Recall().update_state(np.zeros((2, 3)), np.zeros((2, 2)))


# ---------------------------------------------------------------- AUC


def _keras_auc(y, p, w, thresholds, curve, summation="interpolation"):
    """Keras' AUC written out: counts at each threshold (positive when p > t), then the area."""
    tp = np.array([np.sum(w * ((p > t) & (y == 1))) for t in thresholds])
    fp = np.array([np.sum(w * ((p > t) & (y == 0))) for t in thresholds])
    fn = np.array([np.sum(w * ((p <= t) & (y == 1))) for t in thresholds])
    tn = np.array([np.sum(w * ((p <= t) & (y == 0))) for t in thresholds])
    area = 0.0
    for i in range(len(thresholds) - 1):
        if curve == "PR" and summation == "interpolation":
            d_tp = tp[i] - tp[i + 1]
            pa, pb = tp[i] + fp[i], tp[i + 1] + fp[i + 1]
            slope = d_tp / (pa - pb) if pa - pb > 0 else 0.0
            intercept = tp[i + 1] - slope * pb
            log_ratio = np.log(pa / pb) if pa > 0 and pb > 0 else 0.0
            denom = tp[i + 1] + fn[i + 1]
            area += slope * (d_tp + intercept * log_ratio) / denom if denom > 0 else 0.0
            continue
        rec = [tp[j] / (tp[j] + fn[j]) if tp[j] + fn[j] else 0.0 for j in (i, i + 1)]
        if curve == "ROC":
            x = [fp[j] / (fp[j] + tn[j]) if fp[j] + tn[j] else 0.0 for j in (i, i + 1)]
            h = rec
        else:
            x = rec
            h = [tp[j] / (tp[j] + fp[j]) if tp[j] + fp[j] else 0.0 for j in (i, i + 1)]
        height = {"interpolation": (h[0] + h[1]) / 2, "minoring": min(h), "majoring": max(h)}[summation]
        area += (x[0] - x[1]) * height
    return area


def test_auc_hand_worked_values():
    y, p = [0, 0, 1, 1], [0.0, 0.5, 0.3, 0.9]
    # thresholds [-1e-7, 0.5, 1 + 1e-7]: tp [2, 1, 0], fp [2, 0, 0], tn [0, 2, 2], fn [0, 1, 2]
    roc = M.AUC(num_thresholds=3)
    roc.update_state(y, p)
    # fpr [1, 0, 0], tpr [1, 0.5, 0]: (1 - 0) * (1 + 0.5) / 2
    assert roc.result() == pytest.approx(0.75)
    pr = M.AUC(num_thresholds=3, curve="PR")
    pr.update_state(y, p)
    # predicted positives P = [4, 1, 0]; interval 1: slope 1/3, intercept 1 - 1/3 = 2/3,
    # area (1/3)(1 + (2/3) ln 4) / 2; interval 2: P_b = 0 so log term 0, slope 1: 1 * 1 / 2
    assert pr.result() == pytest.approx((1 + 2 / 3 * np.log(4)) / 6 + 0.5)


@pytest.mark.parametrize("curve, summation", [("ROC", "interpolation"), ("PR", "interpolation"),
                                              ("ROC", "minoring"), ("PR", "majoring")])
def test_auc_matches_the_keras_algorithm_over_batches_with_weights(curve, summation):
    rng = np.random.default_rng(3)
    y = (rng.random(60) < 0.4).astype(int)
    p = np.clip(0.35 * y + rng.random(60) * 0.65, 0, 1)
    w = rng.random(60) + 0.5
    m = M.AUC(num_thresholds=25, curve=curve, summation_method=summation)
    for lo in range(0, 60, 16):
        m.update_state(y[lo:lo + 16], p[lo:lo + 16], sample_weight=w[lo:lo + 16])
    thresholds = [-1e-7] + [(i + 1) / 24 for i in range(23)] + [1 + 1e-7]
    assert m.result() == pytest.approx(_keras_auc(y, p, w, thresholds, curve, summation), rel=1e-9, abs=1e-12)
    m.reset_state()
    assert m.result() == 0.0


def test_auc_given_thresholds_multi_label_and_label_weights():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.8, 0.3], [0.4, 0.9], [0.6, 0.2], [0.1, 0.7]])
    thresholds = [-1e-7, 0.25, 0.5, 0.75, 1 + 1e-7]
    m = M.AUC(thresholds=[0.75, 0.25, 0.5], multi_label=True, label_weights=[1.0, 3.0])
    m.update_state(y, p)
    per_label = [_keras_auc(y[:, j], p[:, j], np.ones(4), thresholds, "ROC") for j in range(2)]
    assert m.result() == pytest.approx((per_label[0] + 3 * per_label[1]) / 4)
    flat = M.AUC(thresholds=[0.75, 0.25, 0.5])
    flat.update_state(y, p)
    assert flat.result() == pytest.approx(_keras_auc(y.ravel(), p.ravel(), np.ones(8), thresholds, "ROC"))
    logits = M.AUC(num_thresholds=50, from_logits=True)
    logits.update_state(y, np.log(p / (1 - p)))
    ref = M.AUC(num_thresholds=50)
    ref.update_state(y, p)
    assert logits.result() == pytest.approx(ref.result())


def test_auc_bad_arguments():
    with pytest.raises(ValueError, match=r"AUC: `curve` must be one of \['ROC', 'PR', 'PRGAIN'\], received 'XY'"):
        M.AUC(curve="XY")
    with pytest.raises(ValueError, match=r"AUC: `summation_method` must be one of"):
        M.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match=r"AUC: `num_thresholds` must be an integer > 1, received 1"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match=r"AUC: threshold values must be numbers in \[0, 1\]"):
        M.AUC(thresholds=[-0.1])
    with pytest.raises(ValueError, match=r"AUC: `num_labels` is needed only when `multi_label` is True"):
        M.AUC(num_labels=3)
    with pytest.raises(ValueError, match=r"AUC 'auc': with multi_label=True, y_pred must have shape"):
        M.AUC(multi_label=True).update_state([1, 0], [0.3, 0.2])


# ---------------------------------------------------------------- F scores


Y_F = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
P_F = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
W_F = np.array([1.0, 2.0, 1.0, 1.0, 0.5])


def _keras_f(tp, fp, fn, beta):
    eps = 1e-7
    prec, rec = tp / (tp + fp + eps), tp / (tp + fn + eps)
    return prec * rec / (beta ** 2 * prec + rec + eps) * (1 + beta ** 2)


def test_f1_per_class_and_averages_with_weights_over_batches():
    # threshold None: the row maximum (ties included) is the positive; row 4 ties classes 0 and 1
    pred = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 1, 0]], dtype=float)
    tp = (W_F[:, None] * pred * Y_F).sum(0)
    fp = (W_F[:, None] * pred * (1 - Y_F)).sum(0)
    fn = (W_F[:, None] * (1 - pred) * Y_F).sum(0)
    assert tp.tolist() == [1.5, 2.0, 0.0] and fp.tolist() == [1.0, 0.5, 1.0] and fn.tolist() == [0.0, 1.0, 1.0]
    per_class = _keras_f(tp, fp, fn, 1.0)
    support = (W_F[:, None] * Y_F).sum(0)
    expected = {None: per_class, "macro": per_class.mean(),
                "weighted": np.sum(per_class * support / (support.sum() + 1e-7)),
                "micro": _keras_f(tp.sum(), fp.sum(), fn.sum(), 1.0)}
    for average, value in expected.items():
        m = M.F1Score(average=average)
        m.update_state(Y_F[:3], P_F[:3], sample_weight=W_F[:3])
        m.update_state(Y_F[3:], P_F[3:], sample_weight=W_F[3:])
        assert np.allclose(m.result(), value, rtol=1e-12), average
    m = M.F1Score(average=None)
    m.update_state(Y_F, P_F)
    assert isinstance(m.result(), np.ndarray) and m.result().shape == (3,)


def test_fbeta_with_threshold():
    m = M.FBetaScore(beta=2.0, threshold=0.35, average="macro")
    m.update_state(Y_F, P_F)
    pred = (P_F > 0.35).astype(float)
    tp, fp, fn = (pred * Y_F).sum(0), (pred * (1 - Y_F)).sum(0), ((1 - pred) * Y_F).sum(0)
    assert m.result() == pytest.approx(_keras_f(tp, fp, fn, 2.0).mean())
    m.reset_state()
    m.update_state([[1, 0, 0]], [[0.9, 0.1, 0.0]])
    # class 0: P = R = 1/(1 + 1e-7); classes 1 and 2 score 0
    assert m.result() == pytest.approx(_keras_f(np.array([1.0, 0, 0]), np.zeros(3), np.zeros(3), 2.0).mean())
    assert m.result() == pytest.approx(1 / 3, rel=1e-6)


def test_f_score_bad_arguments():
    with pytest.raises(ValueError,
                       match=r"F1Score 'f1_score': `average` must be None, 'micro', 'macro' or 'weighted', "
                             r"received 'samples'"):
        M.F1Score(average="samples")
    with pytest.raises(ValueError, match=r"FBetaScore: `beta` must be in \(0, inf\), received 0.0"):
        M.FBetaScore(beta=0.0)
    with pytest.raises(ValueError, match=r"F1Score: `threshold` must be in \(0, 1\], received 1.5"):
        M.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match=r"F1Score 'f1_score': expected y_true and y_pred of the same shape \(batch, classes\)"):
        M.F1Score().update_state([0, 1], [[0.3, 0.7], [0.2, 0.8]])
    m = M.F1Score()
    m.update_state(Y_F, P_F)
    with pytest.raises(ValueError, match=r"expected 3 classes, received y_pred of shape \(1, 2\)"):
        m.update_state([[1, 0]], [[0.5, 0.5]])


# ---------------------------------------------------------------- configs and saving


ALL = [
    M.Mean(name="m"), M.Sum(), M.Accuracy(), M.BinaryAccuracy(threshold=0.7, name="ba"), M.CategoricalAccuracy(),
    M.SparseCategoricalAccuracy(), M.TopKCategoricalAccuracy(k=2), M.SparseTopKCategoricalAccuracy(k=3),
    M.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True), M.MeanAbsoluteError(), M.MeanSquaredError(),
    M.RootMeanSquaredError(), M.Precision(thresholds=[0.2, 0.6], name="p"), M.Recall(top_k=2, class_id=1),
    M.AUC(num_thresholds=17, curve="PR", summation_method="majoring"),
    M.AUC(thresholds=[0.3, 0.1], multi_label=True, num_labels=2, label_weights=[1.0, 2.0], from_logits=True),
    M.F1Score(average="weighted", threshold=0.4), M.FBetaScore(average="micro", beta=0.5),
    M.MeanMetricWrapper(M.mean_absolute_error, name="wrapped"),
]


@pytest.mark.parametrize("metric", ALL, ids=lambda m: type(m).__name__)
def test_config_round_trip(metric):
    import json

    config = json.loads(json.dumps(metric.get_config()))
    again = type(metric).from_config(config)
    assert again.get_config() == metric.get_config()
    assert M.deserialize(M.serialize(metric)).get_config() == metric.get_config()


def test_saved_compiled_model_restores_metric_objects_with_arguments(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, :1] + 0.3 * x[:, 1:2] > 0).astype("float32")
    model = npnet.Sequential([npnet.Input((4,)), npnet.layers.Dense(1, activation="sigmoid")], seed=0)
    metrics = [M.Precision(thresholds=0.3, name="p30"), M.AUC(num_thresholds=50, curve="PR"), "mae",
               M.BinaryAccuracy(threshold=0.6), TruePositives(threshold=0.4)]
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=metrics)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    before = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    model.save(tmp_path / "m.npnet")
    with pytest.raises(npnet.saving.SavedModelError, match=r"unknown metric class 'TruePositives'; pass your own"):
        npnet.load_model(tmp_path / "m.npnet")
    restored = npnet.load_model(tmp_path / "m.npnet", custom_objects={"TruePositives": TruePositives})
    assert [m.get_config() for m in restored.metrics] == [m.get_config() for m in model.metrics]
    assert [m.name for m in restored.metrics] == ["p30", "auc", "mae", "binary_accuracy", "true_positives"]
    after = restored.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert after == pytest.approx(before)
