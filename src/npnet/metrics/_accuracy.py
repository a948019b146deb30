"""Accuracy metrics: binary, categorical, sparse categorical, top-k, and the ``"accuracy"`` string's form."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_bool, check_float, check_int
from . import _functions as F
from ._base import MeanMetricWrapper

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
]


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the 0/1 target (weighted mean over samples).

    Parameters
    ----------
    name : str, default "binary_accuracy"
    dtype : str, optional
    threshold : float, default 0.5

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.BinaryAccuracy()
    >>> m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    >>> m.result()
    0.75
    >>> m.reset_state()
    >>> m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], sample_weight=[1, 0, 0, 1])
    >>> m.result()
    0.5
    """

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5) -> None:
        self.threshold = check_float(threshold, "threshold", owner="BinaryAccuracy")
        super().__init__(F.binary_accuracy, name=name, dtype=dtype, threshold=self.threshold)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of ``y_pred`` is the arg-max of the one-hot target.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.CategoricalAccuracy()
    >>> m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    >>> round(m.result(), 6)
    0.3
    """

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(F.categorical_accuracy, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of ``y_pred`` equals the integer label.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.SparseCategoricalAccuracy()
    >>> m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
    >>> m.result()
    0.5
    """

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(F.sparse_categorical_accuracy, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is among the ``k`` highest predictions.

    Every class tied with the ``k``-th highest score counts as in the top ``k``
    (see :func:`in_top_k`).

    Parameters
    ----------
    k : int, default 5
    name : str, default "top_k_categorical_accuracy"
    dtype : str, optional

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.TopKCategoricalAccuracy(k=1)
    >>> m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    >>> m.result()
    0.5
    """

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None) -> None:
        self.k = check_int(k, "k", minimum=1, owner=type(self).__name__)
        super().__init__(F.top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` highest predictions (ties with the
    ``k``-th score included, see :func:`in_top_k`).

    Parameters
    ----------
    k : int, default 5
    name : str, default "sparse_top_k_categorical_accuracy"
    dtype : str, optional
    from_sorted_ids : bool, default False
        ``y_pred`` holds the ids of the best classes, best first, instead of scores.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.SparseTopKCategoricalAccuracy(k=1)
    >>> m.update_state([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    >>> round(m.result(), 6)
    0.3
    """

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype: Any = None,
                 from_sorted_ids: bool = False) -> None:
        self.k = check_int(k, "k", minimum=1, owner=type(self).__name__)
        self.from_sorted_ids = check_bool(from_sorted_ids, "from_sorted_ids", owner=type(self).__name__)
        super().__init__(F.sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k,
                         from_sorted_ids=self.from_sorted_ids)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config


def _auto_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Keras' choice for the ``"accuracy"`` string: binary for one output column,
    sparse when the targets have one axis fewer (or a last axis of 1), else categorical."""
    if y_pred.ndim <= 1 or y_pred.shape[-1] == 1:
        return F.binary_accuracy(y_true, y_pred)
    if y_true.ndim < y_pred.ndim or (y_true.ndim and y_true.shape[-1] == 1):
        return F.sparse_categorical_accuracy(y_true, y_pred)
    return F.categorical_accuracy(y_true, y_pred)


class Accuracy(MeanMetricWrapper):
    """Accuracy in the form the targets and predictions call for: what Keras' ``compile``
    makes of the string ``"accuracy"`` (or ``"acc"``).

    * ``y_pred`` with one column (or one axis): :class:`BinaryAccuracy` at 0.5;
    * integer ids (one axis fewer than ``y_pred``, or a last axis of 1):
      :class:`SparseCategoricalAccuracy`;
    * otherwise one-hot targets: :class:`CategoricalAccuracy`.

    Keras' own ``Accuracy`` class counts exact equality of ``y_true`` and ``y_pred``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> m = npnet.metrics.Accuracy()
    >>> m.update_state([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    >>> round(m.result(), 6)
    0.666667
    """

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(_auto_accuracy, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}
