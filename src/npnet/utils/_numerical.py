"""Array helpers: one-hot encoding and normalization."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._config import floatx

__all__ = ["to_categorical", "normalize"]


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot rows from class ids: ``x`` of shape ``(...)`` gives ``(..., num_classes)``.

    A trailing axis of size 1 is dropped first (``(n, 1)`` gives ``(n, num_classes)``, as
    in Keras), so column vectors of labels work.

    Parameters
    ----------
    x : array_like of int
        Class ids in ``[0, num_classes)``. Floats are accepted when they hold whole numbers.
    num_classes : int, optional
        Number of classes; by default ``max(x) + 1``.

    Returns
    -------
    ndarray of shape ``x.shape + (num_classes,)`` (trailing 1 dropped), dtype floatx
        Zeros with a one at each label.

    Raises
    ------
    ValueError
        For negative ids, non-integer values, ids ``>= num_classes``, or an empty ``x``
        without ``num_classes``.
    TypeError
        If ``num_classes`` is not an int.

    Examples
    --------
    >>> import npnet
    >>> npnet.utils.to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    >>> npnet.utils.to_categorical([[1], [0]]).shape
    (2, 2)
    """
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(f"to_categorical: `num_classes` must be an int or None, received {num_classes!r}")
        if num_classes < 1:
            raise ValueError(f"to_categorical: `num_classes` must be >= 1, received {num_classes}")
        num_classes = int(num_classes)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"to_categorical: `x` must be an array of class ids, received {type(x).__name__}: {exc}") from None
    if a.dtype.kind not in "iuf":
        raise ValueError(f"to_categorical: `x` must hold integer class ids, received dtype {a.dtype}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            bad = a[~np.isfinite(a) | (a != np.round(a))].ravel()[:3].tolist()
            raise ValueError(f"to_categorical: `x` must hold integer class ids, received values such as {bad}")
    shape = a.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = a.reshape(-1)
    if flat.size and flat.min() < 0:
        raise ValueError(f"to_categorical: class ids must be >= 0, received {flat.min().item()}")
    ids = flat.astype(np.int64)
    if num_classes is None:
        if ids.size == 0:
            raise ValueError("to_categorical: `x` is empty; give `num_classes`")
        num_classes = int(ids.max()) + 1
    elif ids.size and ids.max() >= num_classes:
        raise ValueError(
            f"to_categorical: class ids must be < num_classes={num_classes}, received {ids.max().item()}")
    out = np.zeros((ids.size, num_classes), dtype=floatx())
    out[np.arange(ids.size), ids] = 1
    return out.reshape(tuple(shape) + (num_classes,))


def normalize(x: Any, axis: int | None = -1, order: Any = 2) -> np.ndarray:
    r"""``x`` divided by its norm along ``axis``: :math:`x / \lVert x \rVert_{order}`.

    Slices whose norm is zero are returned unchanged (divided by one), as in Keras.

    Parameters
    ----------
    x : array_like
    axis : int, default -1
        The axis along which to take the norm (as ``np.linalg.norm``).
    order : int, float or str, default 2
        Order of the norm (``2`` for Euclidean length, ``1`` for the sum of absolute
        values, ``np.inf`` for the largest absolute value), as ``np.linalg.norm``'s ``ord``.

    Returns
    -------
    ndarray
        A float array (floatx when ``x`` is not already floating point) of the shape of
        ``x``, except that a 1-D ``x`` of shape ``(n,)`` gives shape ``(1, n)``, as
        Keras' ``normalize`` does for NumPy input.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.utils.normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    >>> npnet.utils.normalize(np.array([[1.0, 3.0]]), order=1)
    array([[0.25, 0.75]])
    >>> npnet.utils.normalize(np.array([3.0, 4.0]))   # 1-D in, one row out
    array([[0.6, 0.8]])
    """
    a = np.asarray(x)
    if a.dtype.kind not in "iufb":
        raise ValueError(f"normalize: `x` must be a numeric array, received dtype {a.dtype}")
    if a.dtype.kind != "f":
        a = a.astype(floatx())
    if a.ndim == 0:
        raise ValueError("normalize: `x` must have at least one axis, received a scalar")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, numbers.Integral)
                             or not -a.ndim <= axis < a.ndim):
        raise ValueError(f"normalize: `axis` must be an int in [-{a.ndim}, {a.ndim}), received {axis!r}")
    try:
        norm = np.atleast_1d(np.linalg.norm(a, order, axis))
    except ValueError as exc:
        raise ValueError(f"normalize: invalid `order` {order!r} for `axis` {axis!r}: {exc}") from None
    norm = norm.astype(a.dtype, copy=True)
    norm[norm == 0] = 1
    return a / np.expand_dims(norm, -1 if axis is None else axis)
