"""Regression metrics: mean absolute error, mean squared error, root mean squared error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _functions as F
from ._base import Mean, MeanMetricWrapper, check_pair, same_rank

__all__ = ["MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError"]


class MeanAbsoluteError(MeanMetricWrapper):
    """Weighted mean over samples of ``mean(|y_true - y_pred|, axis=-1)``.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.MeanAbsoluteError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> m.result()
    0.25
    """

    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None) -> None:
        super().__init__(F.mean_absolute_error, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


class MeanSquaredError(MeanMetricWrapper):
    """Weighted mean over samples of ``mean((y_true - y_pred)**2, axis=-1)``.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.MeanSquaredError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> m.result()
    0.5
    """

    def __init__(self, name: str = "mean_squared_error", dtype: Any = None) -> None:
        super().__init__(F.mean_squared_error, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


class RootMeanSquaredError(Mean):
    """Square root of the weighted mean squared error over every batch:

    .. math:: \\sqrt{\\frac{\\sum_i w_i \\,\\overline{(y_i - \\hat y_i)^2}}{\\sum_i w_i}}

    (the root is taken of the accumulated mean, not averaged over batches).

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.RootMeanSquaredError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> m.result()
    0.5
    """

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        t, p = check_pair(y_true, y_pred, self._owner)
        t, p = same_rank(t.astype(self._state_dtype), p.astype(self._state_dtype))
        try:
            err = np.square(p - t)
        except ValueError:
            raise ValueError(f"{self._owner}: y_true of shape {t.shape} does not match y_pred of shape "
                             f"{p.shape}") from None
        self._add(err, sample_weight)

    def result(self) -> Any:
        return math.sqrt(super().result())
