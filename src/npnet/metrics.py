"""Metrics: accuracy (sparse and one-hot), top-k accuracy, and a confusion matrix.

A metric object accumulates over batches: ``reset()``, ``update(y_true, y_pred)`` for
each batch, then ``result()``. Training logs use the metric's ``name``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_int

__all__ = [
    "Metric",
    "Accuracy",
    "SparseCategoricalAccuracy",
    "CategoricalAccuracy",
    "BinaryAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "accuracy_score",
    "top_k_accuracy_score",
    "confusion_matrix",
    "get",
]


class Metric:
    """Base class of batch-accumulated metrics (mean of a per-sample score)."""

    name = "metric"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._count = 0

    def scores(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Per-sample scores for one batch."""
        raise NotImplementedError

    def update(self, y_true: Any, y_pred: np.ndarray) -> None:
        s = self.scores(np.asarray(y_true), np.asarray(y_pred))
        self._total += float(s.sum())
        self._count += int(s.size)

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)


def _ids(y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return y


class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max prediction equals the integer label."""

    name = "sparse_categorical_accuracy"

    def scores(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == _ids(y_true)).astype(np.float64)


class CategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max prediction equals the arg-max of a one-hot target."""

    name = "categorical_accuracy"

    def scores(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


class BinaryAccuracy(Metric):
    """Fraction of elements where ``y_pred > threshold`` equals the binary target."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        super().__init__(name)

    def scores(self, y_true, y_pred):
        t = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
        return ((y_pred > self.threshold) == (t > 0.5)).astype(np.float64)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class Accuracy(Metric):
    """Accuracy that picks its form from the targets, like Keras' ``"accuracy"`` string:
    integer ids against arg-max, one-hot against arg-max, a single output against 0.5."""

    name = "accuracy"

    def scores(self, y_true, y_pred):
        if y_pred.ndim >= 2 and y_pred.shape[-1] == 1:
            return BinaryAccuracy.scores(BinaryAccuracy(), y_true, y_pred)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1] and y_true.ndim > 1:
            return CategoricalAccuracy.scores(self, y_true, y_pred)
        return SparseCategoricalAccuracy.scores(self, y_true, y_pred)


def _top_k(y_pred: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    k = min(k, y_pred.shape[-1])
    top = np.argpartition(-y_pred, k - 1, axis=-1)[..., :k]
    return (top == ids[..., None]).any(axis=-1).astype(np.float64)


class SparseTopKCategoricalAccuracy(Metric):
    """Fraction of samples whose integer label is among the ``k`` highest predictions."""

    name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        self.k = check_int(k, "k", minimum=1, owner=type(self).__name__)
        super().__init__(name)

    def scores(self, y_true, y_pred):
        return _top_k(y_pred, _ids(y_true).astype(np.int64), self.k)

    def get_config(self):
        return {"name": self.name, "k": self.k}


class TopKCategoricalAccuracy(SparseTopKCategoricalAccuracy):
    """Fraction of samples whose one-hot target class is among the ``k`` highest predictions."""

    name = "top_k_categorical_accuracy"

    def scores(self, y_true, y_pred):
        return _top_k(y_pred, np.argmax(y_true, axis=-1), self.k)


def accuracy_score(y_true: Any, y_pred: Any) -> float:
    """Accuracy of predictions ``y_pred`` (probabilities, or class ids) against ``y_true``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.metrics.accuracy_score([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    0.6666666666666666
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 1 or (y_pred.ndim == y_true.ndim and y_pred.shape == y_true.shape and y_true.dtype.kind in "iu"):
        return float(np.mean(y_pred == y_true))
    return Accuracy().scores(y_true, y_pred).mean().item()


def top_k_accuracy_score(y_true: Any, y_pred: Any, k: int = 5) -> float:
    """Fraction of samples whose class id ``y_true`` is among the top ``k`` of ``y_pred``."""
    return float(SparseTopKCategoricalAccuracy(k).scores(np.asarray(y_true), np.asarray(y_pred)).mean())


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``.

    Parameters
    ----------
    y_true : array of int, shape (n,)
    y_pred : array of int, shape (n,), or probabilities of shape (n, classes)
    n_classes : int, optional
        Defaults to one more than the largest id seen.

    Examples
    --------
    >>> import npnet
    >>> npnet.metrics.confusion_matrix([0, 1, 1], [0, 0, 1])
    array([[1, 0],
           [1, 1]])
    """
    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred)
    p = (np.argmax(p, axis=-1) if p.ndim == 2 else p).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: y_true has {t.size} labels but y_pred has {p.size}")
    k = int(n_classes) if n_classes is not None else int(max(t.max(initial=0), p.max(initial=0)) + 1)
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= k or p.max() >= k):
        raise ValueError(f"confusion_matrix: class ids must lie in [0, {k})")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


_BY_NAME: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
}


def get(identifier: Any) -> Metric:
    """Return a metric object from a Keras name or an instance."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        m = _BY_NAME[identifier]()
        if identifier == "acc":
            m.name = "acc"
        return m
    raise ValueError(f"compile: unknown metric {identifier!r}; known names: {sorted(_BY_NAME)}")
