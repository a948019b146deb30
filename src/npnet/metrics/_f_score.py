"""F-beta and F1 scores over accumulated per-class counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_float
from ._base import Metric, as_numbers, check_pair

__all__ = ["FBetaScore", "F1Score"]

_EPSILON = 1e-7  # Keras' backend.epsilon()


class FBetaScore(Metric):
    """F-beta score per class, or averaged, from counts accumulated over batches.

    .. math:: F_\\beta = (1 + \\beta^2) \\frac{P R}{\\beta^2 P + R + \\epsilon}

    with :math:`P = TP / (TP + FP + \\epsilon)`, :math:`R = TP / (TP + FN + \\epsilon)` and
    :math:`\\epsilon = 10^{-7}`, as Keras computes it. A prediction is positive when
    ``y_pred > threshold``; with ``threshold=None`` the highest score of each row is the
    positive one (every score tied with it too), as for one-hot targets. Inputs are
    ``y_true`` and ``y_pred`` of shape ``(batch, classes)`` (one-hot or multi-label
    targets); ``sample_weight`` of shape ``(batch,)`` weights the rows.

    Parameters
    ----------
    average : {None, "micro", "macro", "weighted"}
        With None, ``result()`` is an array with one score per class; "micro" gives one
        score from the counts summed over classes; "macro" the mean of the class scores;
        "weighted" their mean weighted by each class's (weighted) number of true entries.
    beta : float, default 1.0
        Weight of recall against precision, > 0.
    threshold : float in (0, 1], optional
    name : str, default "fbeta_score"
    dtype : str, optional

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.FBetaScore(beta=2.0, threshold=0.5)
    >>> m.update_state([[1, 0], [1, 1], [0, 1]], [[0.9, 0.6], [0.2, 0.8], [0.4, 0.7]])
    >>> m.result().round(4)
    array([0.5556, 0.9091])
    """

    def __init__(self, average: str | None = None, beta: float = 1.0, threshold: float | None = None,
                 name: str = "fbeta_score", dtype: Any = None) -> None:
        owner = type(self).__name__
        super().__init__(name=name, dtype=dtype)
        if average is not None and (not isinstance(average, str) or average not in ("micro", "macro", "weighted")):
            raise ValueError(f"{self._owner}: `average` must be None, 'micro', 'macro' or 'weighted', "
                             f"received {average!r}")
        self.average = average
        self.beta = check_float(beta, "beta", low=0.0, low_inclusive=False, owner=owner)
        self.threshold = None if threshold is None else check_float(
            threshold, "threshold", low=0.0, high=1.0, low_inclusive=False, owner=owner)
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, classes: int) -> None:
        shape: tuple[int, ...] = () if self.average == "micro" else (classes,)
        self._classes = classes
        self.true_positives = self.add_variable(shape=shape, name="true_positives")
        self.false_positives = self.add_variable(shape=shape, name="false_positives")
        self.false_negatives = self.add_variable(shape=shape, name="false_negatives")
        self.intermediate_weights = self.add_variable(shape=shape, name="intermediate_weights")
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t, p = check_pair(y_true, y_pred, self._owner)
        if p.ndim != 2 or t.ndim != 2 or t.shape != p.shape:
            raise ValueError(f"{self._owner}: expected y_true and y_pred of the same shape (batch, classes), "
                             f"received {t.shape} and {p.shape}")
        if not self._built:
            self._build(p.shape[1])
        elif p.shape[1] != self._classes:
            raise ValueError(f"{self._owner}: expected {self._classes} classes, received y_pred of shape {p.shape}")
        p = p.astype(np.float64)
        t = t.astype(np.float64)
        if self.threshold is None:
            pos = (p >= np.max(p, axis=-1, keepdims=True)) & (np.abs(p) > 1e-9)
        else:
            pos = p > self.threshold
        pred = pos.astype(np.float64)
        w = None
        if sample_weight is not None:
            w = as_numbers(sample_weight, "sample_weight", self._owner).astype(np.float64)
            w = w.reshape(w.shape + (1,) * (t.ndim - w.ndim)) if w.ndim < t.ndim else w
            try:
                np.broadcast_shapes(w.shape, t.shape)
            except ValueError:
                raise ValueError(f"{self._owner}: `sample_weight` of shape {np.shape(sample_weight)} does not "
                                 f"broadcast to y_true of shape {t.shape}") from None

        def weighted_sum(v: np.ndarray) -> np.ndarray:
            return np.sum(v if w is None else v * w, axis=self.axis)

        self.true_positives.assign_add(weighted_sum(pred * t))
        self.false_positives.assign_add(weighted_sum(pred * (1 - t)))
        self.false_negatives.assign_add(weighted_sum((1 - pred) * t))
        self.intermediate_weights.assign_add(weighted_sum(t))

    def result(self) -> Any:
        if not self._built:
            return 0.0 if self.average is not None else np.zeros(0)
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
        precision = tp / (tp + fp + _EPSILON)
        recall = tp / (tp + fn + _EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + _EPSILON) * (1 + b2)
        if self.average == "weighted":
            iw = self.intermediate_weights.value
            return np.sum(f * iw / (np.sum(iw) + _EPSILON))
        if self.average is not None:
            return np.mean(f)
        return f

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 score: :class:`FBetaScore` with ``beta=1``, the harmonic mean of precision and recall.

    Parameters
    ----------
    average : {None, "micro", "macro", "weighted"}
    threshold : float in (0, 1], optional
    name : str, default "f1_score"
    dtype : str, optional

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.F1Score(average="macro")
    >>> m.update_state([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]],
    ...                [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    >>> round(m.result(), 4)
    0.4444
    """

    def __init__(self, average: str | None = None, threshold: float | None = None, name: str = "f1_score",
                 dtype: Any = None) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config
