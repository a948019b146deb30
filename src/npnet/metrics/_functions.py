"""Per-sample metric functions (Keras' ``keras.metrics.<name>`` functions).

Each takes a batch of targets and predictions and returns one value per sample (or per
entry); the metric classes average them with :class:`~npnet.metrics.Mean`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_int
from ._base import as_numbers, check_pair, same_rank

__all__ = [
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "in_top_k",
    "mean_absolute_error",
    "mean_squared_error",
]


def _broadcastable(t: np.ndarray, p: np.ndarray, owner: str) -> None:
    try:
        np.broadcast_shapes(t.shape, p.shape)
    except ValueError:
        raise ValueError(f"{owner}: y_true of shape {t.shape} does not match y_pred of shape {p.shape}") from None


def _float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    """1.0 where ``y_pred > threshold`` equals the binary target, else 0.0 (per entry).

    Parameters
    ----------
    y_true : array of 0/1, shape (batch, ...) or (batch,)
    y_pred : array, shape (batch, ...)
    threshold : float

    Examples
    --------
    >>> import npnet
    >>> npnet.metrics.binary_accuracy([[1], [0]], [[0.7], [0.6]])
    array([[1.],
           [0.]])
    """
    t, p = check_pair(y_true, y_pred, "binary_accuracy")
    t, p = same_rank(t, p)
    _broadcastable(t, p, "binary_accuracy")
    return (t == (p > threshold).astype(t.dtype)).astype(np.float64)


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """1.0 where the arg-max of ``y_pred`` is the arg-max of the one-hot ``y_true``.

    Parameters
    ----------
    y_true : array, shape (batch, ..., classes)
    y_pred : array, shape (batch, ..., classes)

    Returns
    -------
    ndarray of shape (batch, ...)
    """
    t, p = check_pair(y_true, y_pred, "categorical_accuracy")
    if t.shape != p.shape or p.ndim < 1:
        raise ValueError(f"categorical_accuracy: expected one-hot y_true of the same shape as y_pred, "
                         f"received shapes {t.shape} and {p.shape}")
    return (np.argmax(t, axis=-1) == np.argmax(p, axis=-1)).astype(np.float64)


def _sparse_ids(t: np.ndarray, p: np.ndarray, owner: str) -> np.ndarray:
    """Integer labels ``t`` with a trailing axis of 1 dropped, checked against ``p``'s leading shape."""
    if t.ndim == p.ndim and t.ndim > 0 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.shape != p.shape[:-1]:
        raise ValueError(f"{owner}: expected integer class ids of shape {p.shape[:-1]} (or with a "
                         f"trailing axis of 1) for y_pred of shape {p.shape}, received y_true of shape {t.shape}")
    return t


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """1.0 where the arg-max of ``y_pred`` equals the integer label.

    Parameters
    ----------
    y_true : array of int, shape (batch, ...) or (batch, ..., 1)
    y_pred : array, shape (batch, ..., classes)

    Returns
    -------
    ndarray of shape (batch, ...)

    Examples
    --------
    >>> import npnet
    >>> npnet.metrics.sparse_categorical_accuracy([2, 1], [[0.1, 0.6, 0.3], [0.05, 0.95, 0.0]])
    array([0., 1.])
    """
    t, p = check_pair(y_true, y_pred, "sparse_categorical_accuracy")
    if p.ndim < 1:
        raise ValueError(f"sparse_categorical_accuracy: y_pred must have a class axis, received shape {p.shape}")
    t = _sparse_ids(t, p, "sparse_categorical_accuracy")
    return (t == np.argmax(p, axis=-1)).astype(np.float64)


def in_top_k(targets: Any, predictions: Any, k: int) -> np.ndarray:
    """Whether each target's score is among the ``k`` largest of its row.

    A target counts as in the top ``k`` when fewer than ``k`` scores are strictly
    larger than its own, so every class tied with the ``k``-th score is in (the
    rule of Keras' ``ops.in_top_k``): with scores ``[0.5, 0.5, 0.0]`` and ``k=1``
    both class 0 and class 1 are in the top 1. A NaN score of the target is never in.

    Parameters
    ----------
    targets : array of int, shape (batch,)
    predictions : array, shape (batch, classes)
    k : int

    Returns
    -------
    ndarray of bool, shape (batch,)

    Examples
    --------
    >>> import npnet
    >>> npnet.metrics.in_top_k([0, 1, 2], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], k=1)
    array([ True,  True, False])
    """
    k = check_int(k, "k", minimum=1, owner="in_top_k")
    t = as_numbers(targets, "targets", "in_top_k")
    p = as_numbers(predictions, "predictions", "in_top_k")
    if p.ndim != 2 or t.shape != (p.shape[0],):
        raise ValueError(f"in_top_k: expected targets of shape (batch,) and predictions of shape "
                         f"(batch, classes), received {t.shape} and {p.shape}")
    if t.size and (t.dtype.kind == "f" and not np.all(t == np.round(t))):
        raise ValueError("in_top_k: targets must be integer class ids")
    ids = t.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= p.shape[1]):
        raise ValueError(f"in_top_k: class ids must lie in [0, {p.shape[1]}), "
                         f"received ids from {ids.min()} to {ids.max()}")
    at_target = np.take_along_axis(p, ids[:, None], axis=-1)
    at_target = np.where(np.isnan(at_target), -np.inf, at_target)
    rank = 1 + np.sum(p > at_target, axis=-1)
    return rank <= k


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """1.0 where the one-hot target's class is in the top ``k`` of ``y_pred`` (ties included, see
    :func:`in_top_k`).

    Parameters
    ----------
    y_true : array, shape (batch, ..., classes)
    y_pred : array, shape (batch, ..., classes)
    k : int
    """
    t, p = check_pair(y_true, y_pred, "top_k_categorical_accuracy")
    if t.shape != p.shape or p.ndim < 2:
        raise ValueError(f"top_k_categorical_accuracy: expected one-hot y_true of the same shape as y_pred "
                         f"(batch, classes), received shapes {t.shape} and {p.shape}")
    ids = np.argmax(t, axis=-1)
    hits = in_top_k(ids.reshape(-1), p.reshape(-1, p.shape[-1]), k)
    return hits.reshape(ids.shape).astype(np.float64)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5,
                                      from_sorted_ids: bool = False) -> np.ndarray:
    """1.0 where the integer label is in the top ``k`` of ``y_pred`` (ties included, see :func:`in_top_k`).

    Parameters
    ----------
    y_true : array of int, shape (batch,) or (batch, 1)
    y_pred : array, shape (batch, classes)
        Or, with ``from_sorted_ids=True``, the ids of the best ``N >= k`` classes, best first.
    k : int
    from_sorted_ids : bool

    Examples
    --------
    >>> import npnet
    >>> npnet.metrics.sparse_top_k_categorical_accuracy([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0.0]], k=1)
    array([0., 1.])
    """
    t, p = check_pair(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    shape = t.shape
    if p.ndim < 2:
        raise ValueError(f"sparse_top_k_categorical_accuracy: y_pred must have shape (batch, classes), "
                         f"received {p.shape}")
    flat_p = p.reshape(-1, p.shape[-1])
    flat_t = t.reshape(-1)
    if flat_t.shape[0] != flat_p.shape[0]:
        raise ValueError(f"sparse_top_k_categorical_accuracy: expected one class id per row of y_pred "
                         f"{p.shape}, received y_true of shape {shape}")
    if from_sorted_ids:
        k = check_int(k, "k", minimum=1, owner="sparse_top_k_categorical_accuracy")
        hits = np.any(flat_t[:, None] == flat_p[:, :k], axis=1)
    else:
        hits = in_top_k(flat_t, flat_p, k)
    return hits.reshape(shape).astype(np.float64)


def mean_absolute_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean of ``|y_true - y_pred|`` over the last axis.

    Returns
    -------
    ndarray of shape ``y_pred.shape[:-1]``
    """
    t, p = check_pair(y_true, y_pred, "mean_absolute_error")
    t, p = same_rank(_float(t), _float(p))
    _broadcastable(t, p, "mean_absolute_error")
    return np.mean(np.abs(t - p), axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean of ``(y_true - y_pred)**2`` over the last axis.

    Returns
    -------
    ndarray of shape ``y_pred.shape[:-1]``
    """
    t, p = check_pair(y_true, y_pred, "mean_squared_error")
    t, p = same_rank(_float(t), _float(p))
    _broadcastable(t, p, "mean_squared_error")
    return np.mean(np.square(t - p), axis=-1)


BY_NAME: dict[str, Callable[..., np.ndarray]] = {f.__name__: f for f in (
    binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy, mean_absolute_error, mean_squared_error)}
