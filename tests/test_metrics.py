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
