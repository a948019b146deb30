"""Metrics from counts of true/false positives/negatives at thresholds: Precision, Recall, AUC."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import check_bool, check_choice, check_int
from ._base import Metric, as_numbers, check_pair, same_rank

__all__ = ["Precision", "Recall", "AUC"]

_EPSILON = 1e-7  # Keras' backend.epsilon(): pads AUC's outer thresholds
_NEG_INF = -1e10  # score given to the classes outside the top k


# AUC keeps a table of counts per threshold and updates it on every batch: more thresholds
# than this is a mistake (and would take the memory of the machine).
_MAX_THRESHOLDS = 1_000_000


def _thresholds(value: Any, owner: str) -> list[float] | None:
    """User thresholds as a list of floats in [0, 1] (None stays None)."""
    if value is None:
        return None
    values = list(np.atleast_1d(value)) if isinstance(value, np.ndarray) else list(value) if isinstance(
        value, (list, tuple)) else [value]
    if not values:
        raise ValueError(f"{owner}: `thresholds` must not be empty")
    bad = [t for t in values if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= float(t) <= 1.0]
    if bad:
        raise ValueError(f"{owner}: threshold values must be numbers in [0, 1], received {bad}")
    return [float(t) for t in values]


def _evenly_spaced(thresholds: list[float]) -> bool:
    n = len(thresholds)
    return n >= 3 and bool(np.allclose(thresholds, np.arange(n) / (n - 1), atol=_EPSILON))


def _top_k_only(x: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest scores of the last axis (lower index first among ties), set the rest to -1e10."""
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return np.where(mask, x, _NEG_INF)


def confusion_counts(y_true: Any, y_pred: Any, thresholds: np.ndarray, *, owner: str, sample_weight: Any = None,
                     top_k: int | None = None, class_id: int | None = None, multi_label: bool = False,
                     label_weights: np.ndarray | None = None, clip: bool = False) -> dict[str, np.ndarray]:
    """Weighted counts ``tp, fp, tn, fn`` at each threshold, a prediction being positive when
    ``y_pred > threshold`` (Keras' ``update_confusion_matrix_variables``).

    Every entry is one binary decision (all entries flattened), or with ``multi_label``
    each column of a ``(batch, labels)`` input is counted apart: the counts then have
    shape ``(thresholds, labels)``.
    """
    t, p = check_pair(y_true, y_pred, owner)
    p = p.astype(np.float64)
    t = t.astype(np.float64)
    p, t = same_rank(p, t)
    if t.shape != p.shape:
        raise ValueError(f"{owner}: y_true of shape {np.shape(y_true)} does not match y_pred of shape "
                         f"{np.shape(y_pred)}")
    w = None
    if sample_weight is not None:
        w = as_numbers(sample_weight, "sample_weight", owner).astype(np.float64)[..., None]
        _, w = same_rank(t, w, expand_rank_1=False)
    if top_k is not None:
        p = _top_k_only(p, top_k)
    if class_id is not None:
        if p.ndim < 2:
            raise ValueError(f"{owner}: with class_id, y_pred must have shape (batch, classes), received {p.shape}")
        if not 0 <= class_id < p.shape[-1]:
            raise ValueError(f"{owner}: class_id {class_id} is outside [0, {p.shape[-1]}) for y_pred of shape {p.shape}")
        t, p = t[..., class_id, None], p[..., class_id, None]
    if clip:
        p = np.clip(p, 0.0, 1.0)
    weights: np.ndarray = np.ones(p.shape)
    if w is not None:
        try:
            weights = weights * np.broadcast_to(w, p.shape)
        except ValueError:
            raise ValueError(f"{owner}: `sample_weight` of shape {np.shape(sample_weight)} does not broadcast "
                             f"to y_pred of shape {p.shape}") from None
    if label_weights is not None and not multi_label:
        weights = weights * np.broadcast_to(label_weights, p.shape)
    positive = t != 0
    if multi_label:
        if p.ndim != 2:
            raise ValueError(f"{owner}: with multi_label=True, y_pred must have shape (batch, labels), "
                             f"received {p.shape}")
        cols = p.shape[1]
    else:
        p, positive, weights = p.reshape(-1, 1), positive.reshape(-1, 1), weights.reshape(-1, 1)
        cols = 1
    # Sorted thresholds s: a prediction is above s[0..j-1] exactly, j = searchsorted(s, p, "left").
    order = np.argsort(thresholds, kind="stable")
    s = thresholds[order]
    n_t = len(s)
    above = np.where(np.isnan(p), 0, np.searchsorted(s, p, side="left"))  # (n, cols) in [0, n_t]; NaN never above
    flat = (above + (n_t + 1) * np.arange(cols)).ravel()

    def count(mask: np.ndarray) -> np.ndarray:
        per_bucket = np.bincount(flat, weights=(weights * mask).ravel(), minlength=(n_t + 1) * cols)
        per_bucket = per_bucket.reshape(cols, n_t + 1)
        # above threshold j <=> bucket index > j: reversed cumulative sum over buckets 1..n_t
        hits = np.cumsum(per_bucket[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (cols, n_t)
        out = np.empty_like(hits)
        out[:, order] = hits
        return out.T  # (n_t, cols)

    pos_total = np.sum(weights * positive, axis=0)
    neg_total = np.sum(weights * ~positive, axis=0)
    tp, fp = count(positive), count(~positive)
    counts = {"tp": tp, "fp": fp, "fn": pos_total - tp, "tn": neg_total - fp}
    if not multi_label:
        counts = {k: v[:, 0] for k, v in counts.items()}
    return counts


def _divide_no_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    safe = np.where(b == 0, 1.0, b)
    return np.where(b == 0, 0.0, a / safe)


class _PrecisionRecall(Metric):
    _other = "fp"

    def __init__(self, thresholds: Any = None, top_k: int | None = None, class_id: int | None = None,
                 name: str | None = None, dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        owner = type(self).__name__
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else check_int(top_k, "top_k", minimum=1, owner=owner)
        self.class_id = None if class_id is None else check_int(class_id, "class_id", minimum=0, owner=owner)
        given = _thresholds(thresholds, owner)
        self.thresholds = given if given is not None else [0.5 if top_k is None else _NEG_INF]
        self._clip = _evenly_spaced(self.thresholds)
        n = len(self.thresholds)
        self.true_positives = self.add_variable(shape=(n,), name="true_positives")
        other = "false_positives" if self._other == "fp" else "false_negatives"
        self._other_counts = self.add_variable(shape=(n,), name=other)
        setattr(self, other, self._other_counts)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        c = confusion_counts(y_true, y_pred, np.asarray(self.thresholds, dtype=np.float64), owner=self._owner,
                             sample_weight=sample_weight, top_k=self.top_k, class_id=self.class_id, clip=self._clip)
        self.true_positives.assign_add(c["tp"])
        self._other_counts.assign_add(c[self._other])

    def result(self) -> Any:
        tp = self.true_positives.value
        other = self._other_counts.value
        r = _divide_no_nan(tp, tp + other)
        return r[0] if len(self.thresholds) == 1 else r

    def get_config(self) -> dict[str, Any]:
        thresholds = self.init_thresholds
        if isinstance(thresholds, np.ndarray):
            thresholds = thresholds.tolist()
        return {"name": self.name, "dtype": self.dtype, "thresholds": thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """Precision :math:`TP / (TP + FP)`, a prediction being positive when ``y_pred > threshold``.

    Every entry of ``y_pred`` is one binary decision against the matching entry of
    ``y_true`` (cast to bool). ``sample_weight`` of shape ``(batch,)`` weights every
    entry of a sample.

    Parameters
    ----------
    thresholds : float or list of float in [0, 1], optional
        With a list, ``result()`` is an array with one precision per threshold.
        Default 0.5 (or, with ``top_k``, every score of the top ``k``).
    top_k : int, optional
        Only the ``k`` highest scores of each row may be positive (lower index first among ties).
    class_id : int, optional
        Only the column ``class_id`` of ``(batch, classes)`` inputs.
    name : str, default "precision"
    dtype : str, optional

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.Precision()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(m.result(), 6)
    0.666667
    >>> m = npnet.metrics.Precision(top_k=2)
    >>> m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    >>> m.result()
    0.0
    """

    _other = "fp"

    def __init__(self, thresholds: Any = None, top_k: int | None = None, class_id: int | None = None,
                 name: str = "precision", dtype: Any = None) -> None:
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)


class Recall(_PrecisionRecall):
    """Recall :math:`TP / (TP + FN)`, a prediction being positive when ``y_pred > threshold``.

    Arguments as :class:`Precision`.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.Recall(thresholds=[0.3, 0.7])
    >>> m.update_state([0, 1, 1, 1], [0.9, 0.2, 0.5, 0.8])
    >>> m.result()
    array([0.66666667, 0.33333333])
    """

    _other = "fn"

    def __init__(self, thresholds: Any = None, top_k: int | None = None, class_id: int | None = None,
                 name: str = "recall", dtype: Any = None) -> None:
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)


class AUC(Metric):
    """Area under the ROC or precision-recall curve, approximated on a grid of thresholds.

    The counts TP, FP, TN, FN are accumulated at each threshold :math:`t_i` (positive
    when ``y_pred > t_i``); by default the thresholds are
    :math:`-\\epsilon, \\tfrac{1}{n-1}, \\dots, \\tfrac{n-2}{n-1}, 1+\\epsilon` with
    :math:`n` = ``num_thresholds`` and :math:`\\epsilon = 10^{-7}`. Then, as in Keras:

    * ``curve="ROC"``: :math:`x` = false positive rate, :math:`y` = recall, and the area
      :math:`\\sum_i (x_i - x_{i+1})\\, h_i` with :math:`h_i` the mean of
      :math:`y_i, y_{i+1}` (``"interpolation"``), their minimum (``"minoring"``) or
      maximum (``"majoring"``);
    * ``curve="PR"`` with ``"interpolation"``: Davis and Goadrich's interpolation,
      TP and the predicted positives :math:`P = TP + FP` varying linearly between two
      thresholds: with :math:`s = \\Delta TP / \\Delta P` and :math:`b = TP_{i+1} - s P_{i+1}`,
      each interval adds :math:`s\\,(\\Delta TP + b \\log(P_i / P_{i+1})) / (TP_{i+1} + FN_{i+1})`.
      This is close to, but not the same as, the exact average precision;
    * ``curve="PR"`` with another summation: :math:`x` = recall, :math:`y` = precision.

    Parameters
    ----------
    num_thresholds : int, default 200
    curve : {"ROC", "PR", "PRGAIN"}
    summation_method : {"interpolation", "minoring", "majoring"}
    name : str, default "auc"
    dtype : str, optional
    thresholds : list of float in [0, 1], optional
        Used (sorted, padded with :math:`-\\epsilon` and :math:`1+\\epsilon`) instead of the grid.
    multi_label : bool, default False
        Count each column of ``(batch, labels)`` apart and average the areas; otherwise
        every entry is one decision.
    num_labels : int, optional
        Number of labels with ``multi_label`` (else taken from the first batch).
    label_weights : list of float, optional
        Weights of the labels: in the counts without ``multi_label``, in the average of
        the areas with it.
    from_logits : bool, default False
        Apply a sigmoid to ``y_pred`` first.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.AUC(num_thresholds=3)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> m.result()
    0.75
    """

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str = "auc", dtype: Any = None, thresholds: Any = None, multi_label: bool = False,
                 num_labels: int | None = None, label_weights: Any = None, from_logits: bool = False) -> None:
        owner = "AUC"
        self.curve = check_choice({"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}.get(str(curve).lower(), curve),
                                  "curve", ["ROC", "PR", "PRGAIN"], owner=owner)
        self.summation_method = check_choice(str(summation_method).lower(), "summation_method",
                                             ["interpolation", "minoring", "majoring"], owner=owner)
        given = _thresholds(thresholds, owner)
        self._init_from_thresholds = given is not None
        if given is not None:
            self.num_thresholds = len(given) + 2
            inner = sorted(given)
            self._clip = _evenly_spaced([0.0] + inner + [1.0])
        else:
            n = check_int(num_thresholds, "num_thresholds", owner=owner)
            if n <= 1:
                raise ValueError(f"AUC: `num_thresholds` must be an integer > 1, received {num_thresholds!r}")
            if n > _MAX_THRESHOLDS:
                raise ValueError(f"AUC: `num_thresholds` must be at most {_MAX_THRESHOLDS}, received {num_thresholds!r}")
            self.num_thresholds = n
            inner = [(i + 1) * 1.0 / (n - 1) for i in range(n - 2)]
            self._clip = True
        self._thresholds = np.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])
        super().__init__(name=name, dtype=dtype)
        self.multi_label = check_bool(multi_label, "multi_label", owner=owner)
        self.num_labels = None if num_labels is None else check_int(num_labels, "num_labels", minimum=1, owner=owner)
        if num_labels is not None and not multi_label:
            raise ValueError("AUC: `num_labels` is needed only when `multi_label` is True")
        if label_weights is not None:
            lw = as_numbers(label_weights, "label_weights", owner).astype(np.float64)
            if lw.ndim != 1 or np.any(lw < 0):
                raise ValueError(f"AUC: `label_weights` must be a list of non-negative numbers, received {label_weights!r}")
            self.label_weights: np.ndarray | None = lw
        else:
            self.label_weights = None
        self._from_logits = check_bool(from_logits, "from_logits", owner=owner)
        self._built = False
        if not self.multi_label:
            self._build(None)
        elif self.num_labels:
            self._build(self.num_labels)

    @property
    def thresholds(self) -> list[float]:
        """Every threshold, the two padded ends included."""
        return [float(t) for t in self._thresholds]

    def _build(self, labels: int | None) -> None:
        shape: tuple[int, ...] = (self.num_thresholds,) if labels is None else (self.num_thresholds, labels)
        self._num_labels = labels
        self.true_positives = self.add_variable(shape=shape, name="true_positives")
        self.false_positives = self.add_variable(shape=shape, name="false_positives")
        self.true_negatives = self.add_variable(shape=shape, name="true_negatives")
        self.false_negatives = self.add_variable(shape=shape, name="false_negatives")
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t, p = check_pair(y_true, y_pred, self._owner)
        if self.multi_label:
            if p.ndim != 2:
                raise ValueError(f"{self._owner}: with multi_label=True, y_pred must have shape (batch, labels), "
                                 f"received {p.shape}")
            if not self._built:
                self._build(p.shape[1])
            elif p.shape[1] != self._num_labels:
                raise ValueError(f"{self._owner}: expected y_pred with {self._num_labels} labels, received shape {p.shape}")
        if self._from_logits:
            p = 1.0 / (1.0 + np.exp(-p.astype(np.float64)))
        c = confusion_counts(t, p, self._thresholds, owner=self._owner, sample_weight=sample_weight,
                             multi_label=self.multi_label,
                             label_weights=None if self.multi_label else self.label_weights, clip=self._clip)
        self.true_positives.assign_add(c["tp"])
        self.false_positives.assign_add(c["fp"])
        self.true_negatives.assign_add(c["tn"])
        self.false_negatives.assign_add(c["fn"])

    def _by_label(self, terms: np.ndarray) -> float:
        if not self.multi_label:
            return float(np.sum(terms))
        by_label = np.sum(terms, axis=0)
        if self.label_weights is None:
            return float(np.mean(by_label))
        return float(_divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights)))

    def interpolate_pr_auc(self) -> float:
        """The area under the PR curve by Davis and Goadrich's interpolation (see the class notes)."""
        if not self._built:
            return 0.0
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
        increment = _divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(increment)

    def result(self) -> Any:
        if not self._built:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.maximum(np.where(tp == 0, 0.0, 1.0 - scale * _divide_no_nan(fn, tp)), 0.0)
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * _divide_no_nan(fp, tp))
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds, "curve": self.curve,
            "summation_method": self.summation_method, "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
