"""Metrics with Keras 3's API, and a few plain functions on whole arrays.

A metric object accumulates over batches: ``update_state(y_true, y_pred,
sample_weight=None)`` for each batch, ``result()`` for the value so far,
``reset_state()`` to start again. ``fit`` and ``evaluate`` log ``result()`` under the
metric's ``name``. Write your own by subclassing :class:`Metric`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    _auto_accuracy,
)
from ._base import Mean, MeanMetricWrapper, Metric, Sum, Variable, _snake
from ._confusion import AUC, Precision, Recall
from ._f_score import F1Score, FBetaScore
from ._functions import (
    binary_accuracy,
    categorical_accuracy,
    in_top_k,
    mean_absolute_error,
    mean_squared_error,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from ._regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError

__all__ = [
    "Metric",
    "Variable",
    "Mean",
    "Sum",
    "MeanMetricWrapper",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "RootMeanSquaredError",
    "Precision",
    "Recall",
    "AUC",
    "F1Score",
    "FBetaScore",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "in_top_k",
    "mean_absolute_error",
    "mean_squared_error",
    "accuracy_score",
    "top_k_accuracy_score",
    "confusion_matrix",
    "get",
    "serialize",
    "deserialize",
]


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
        if y_true.shape != y_pred.shape:
            raise ValueError(f"accuracy_score: y_true of shape {y_true.shape} does not match class ids "
                             f"y_pred of shape {y_pred.shape}")
        return float(np.mean(y_pred == y_true))
    if y_true.ndim and y_pred.ndim and y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"accuracy_score: y_true and y_pred must have the same number of samples, "
                         f"received shapes {y_true.shape} and {y_pred.shape}")
    return float(np.mean(_auto_accuracy(y_true, y_pred)))


def top_k_accuracy_score(y_true: Any, y_pred: Any, k: int = 5) -> float:
    """Fraction of samples whose class id ``y_true`` is among the top ``k`` of ``y_pred``.

    Every class tied with the ``k``-th highest score counts as in the top ``k``, as in
    Keras (see :func:`in_top_k`).

    Examples
    --------
    >>> import npnet
    >>> npnet.metrics.top_k_accuracy_score([1, 2], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], k=1)
    1.0
    """
    return float(np.mean(sparse_top_k_categorical_accuracy(y_true, y_pred, k=k)))


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


_CLASSES: list[type[Metric]] = [
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanAbsoluteError, MeanSquaredError,
    RootMeanSquaredError, Precision, Recall, AUC, F1Score, FBetaScore,
]

_BY_NAME: dict[str, type[Metric]] = {
    **{c.__name__: c for c in _CLASSES},
    **{_snake(c.__name__): c for c in _CLASSES},
    "acc": Accuracy,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "rmse": RootMeanSquaredError,
}


def serialize(metric: Metric) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` of a metric object."""
    if not isinstance(metric, Metric):
        raise TypeError(f"metrics.serialize: expected a Metric, received {metric!r}")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config: Any, custom_objects: dict[str, type] | None = None) -> Metric:
    """The metric object that :func:`serialize` described.

    ``custom_objects`` maps the class names of your own :class:`Metric` subclasses to the
    classes; classes registered with :func:`npnet.saving.register_keras_serializable` are
    found without it.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"metrics.deserialize: expected {{'class_name': ..., 'config': ...}}, received {config!r}")
    from .. import saving  # its registry of classes decorated with register_keras_serializable

    name = config["class_name"]
    known: dict[str, type[Metric]] = {c.__name__: c for c in _CLASSES + [MeanMetricWrapper]}
    known.update(saving._METRIC_CLASSES)
    cls = (custom_objects or {}).get(name) or known.get(name)
    if cls is None or not issubclass(cls, Metric):
        raise ValueError(f"metrics.deserialize: unknown metric class {name!r}; pass your own metric "
                         "classes in custom_objects")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier: Any) -> Metric:
    """A metric object from a name, a class, a config dict, a function or an instance.

    A name is a Keras metric name: a class name (``"Precision"``), its snake-case form
    (``"mean_absolute_error"``) or a short form (``"mae"``, ``"mse"``, ``"rmse"``,
    ``"acc"``). The object is named after the string, as Keras' ``compile`` does, so
    ``metrics=["mae"]`` logs ``"mae"``. ``"accuracy"`` and ``"acc"`` give
    :class:`Accuracy`, which picks binary, categorical or sparse accuracy from the
    shapes of the targets and predictions. A function ``fn(y_true, y_pred)`` is
    averaged over samples by :class:`MeanMetricWrapper`.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.get("mae")
    >>> type(m).__name__, m.name
    ('MeanAbsoluteError', 'mae')
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"compile: unknown metric {identifier!r}; known names: {sorted(_BY_NAME)}")
        metric = _BY_NAME[identifier]()
        metric.name = identifier
        return metric
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"compile: could not interpret metric {identifier!r}: expected a name, a Metric "
                     "class or instance, or a function fn(y_true, y_pred)")
