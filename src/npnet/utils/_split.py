"""``split_dataset``: cut arrays (or a tuple, list or dict of them) in two along the samples."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import as_rng

__all__ = ["split_dataset"]


def _leaves(dataset: Any, path: str) -> list[tuple[str, np.ndarray]]:
    """The arrays of ``dataset``, each with where it is (for messages)."""
    if isinstance(dataset, np.ndarray):
        return [(path, dataset)]
    if isinstance(dataset, (list, tuple)):
        if not dataset:
            raise ValueError(f"split_dataset: `{path}` is an empty {type(dataset).__name__}; give arrays")
        return [leaf for i, v in enumerate(dataset) for leaf in _leaves(v, f"{path}[{i}]")]
    if isinstance(dataset, dict):
        if not dataset:
            raise ValueError(f"split_dataset: `{path}` is an empty dict; give arrays")
        return [leaf for k, v in dataset.items() for leaf in _leaves(v, f"{path}[{k!r}]")]
    raise TypeError(
        f"split_dataset: `{path}` must be a NumPy array, or a tuple, list or dict of arrays, "
        f"received {type(dataset).__name__}")


def _take(dataset: Any, idx: np.ndarray) -> Any:
    if isinstance(dataset, np.ndarray):
        return dataset[idx]
    if isinstance(dataset, (list, tuple)):
        return type(dataset)(_take(v, idx) for v in dataset)
    return {k: _take(v, idx) for k, v in dataset.items()}


def _kind(size: Any, name: str) -> str | None:
    """"int", "float" or None for a split size; anything else is a TypeError."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (numbers.Integral, numbers.Real)):
        raise TypeError(f"split_dataset: `{name}` must be an int, a float or None, received {size!r}")
    return "int" if isinstance(size, numbers.Integral) else "float"


def _sizes(left_size: Any, right_size: Any, total: int) -> tuple[int, int]:
    """Keras' rules for the two sizes: ints count samples, floats are fractions in (0, 1),
    a None is the complement of the other; neither side may end up empty."""
    lk, rk = _kind(left_size, "left_size"), _kind(right_size, "right_size")
    if lk is None and rk is None:
        raise ValueError("split_dataset: give `left_size`, `right_size` or both; received neither")
    for size, kind, name in ((left_size, lk, "left_size"), (right_size, rk, "right_size")):
        if kind == "int" and not 0 < size < total:
            raise ValueError(
                f"split_dataset: `{name}` as an int must be in [1, {total - 1}] for {total} samples, received {size}")
        if kind == "float" and not 0 < size < 1:
            raise ValueError(f"split_dataset: `{name}` as a float must be in (0, 1), received {size}")
    if lk == rk == "float" and left_size + right_size > 1:
        raise ValueError(
            f"split_dataset: `left_size` + `right_size` must be <= 1, received {left_size} + {right_size}")
    def count(size: Any, kind: str | None) -> int | None:
        return None if kind is None else round(size * total) if kind == "float" else int(size)

    given_left, given_right = count(left_size, lk), count(right_size, rk)
    # at least one is given: a missing one is the complement of the other
    left = total - (given_right or 0) if given_left is None else given_left
    right = total - left if given_right is None else given_right
    if left + right > total:
        raise ValueError(
            f"split_dataset: `left_size` and `right_size` give {left} + {right} samples, more than the {total} "
            "in `dataset`")
    for side, n in (("left", left), ("right", right)):
        if n == 0:
            raise ValueError(
                f"split_dataset: with {total} samples, left_size={left_size!r} and right_size={right_size!r} "
                f"leave the {side} part empty")
    return int(left), int(right)


def split_dataset(dataset: Any, left_size: int | float | None = None, right_size: int | float | None = None,
                  shuffle: bool = False, seed: Any = None) -> tuple[Any, Any]:
    """Split a dataset in two along its first (sample) axis, for example into train and test.

    Parameters
    ----------
    dataset : ndarray, or tuple, list or dict of ndarrays
        Arrays with the same number of samples (``(x, y)``, ``{"image": x, "label": y}``;
        nesting is allowed).
    left_size, right_size : int or float, optional
        An int is a number of samples, a float in (0, 1) a fraction of them (rounded to
        the nearest count). One may be None: it is then the complement of the other.
        When both are given and add up to less than the whole, the samples between the
        two parts are left out, as in Keras.
    shuffle : bool, default False
        Shuffle the samples before splitting.
    seed : int or Generator, optional
        Seed of the shuffle. Without it the shuffle comes from npnet's seed source
        (:func:`npnet.utils.set_random_seed`).

    Returns
    -------
    left, right
        Two datasets of the structure of ``dataset``: the first ``left_size`` samples
        (after the shuffle) and the last ``right_size``.

    Raises
    ------
    TypeError
        If ``dataset`` is not arrays in a tuple, list or dict, or a size is not a number.
    ValueError
        For arrays of different lengths, empty data, sizes out of range, or sizes that
        leave a part empty or add up to more than the data.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x, y = np.arange(20).reshape(10, 2), np.arange(10)
    >>> (x_train, y_train), (x_test, y_test) = npnet.utils.split_dataset((x, y), left_size=0.8)
    >>> x_train.shape, y_test.tolist()
    ((8, 2), [8, 9])
    """
    leaves = _leaves(dataset, "dataset")
    lengths = []
    for path, a in leaves:
        if a.ndim == 0:
            raise ValueError(f"split_dataset: `{path}` is a scalar; every array needs a sample axis")
        lengths.append(a.shape[0])
    if len(set(lengths)) > 1:
        listed = ", ".join(f"{p}: {n}" for (p, _), n in zip(leaves, lengths))
        raise ValueError(f"split_dataset: every array must have the same number of samples, received {listed}")
    total = lengths[0]
    if total == 0:
        raise ValueError("split_dataset: `dataset` has no samples")
    left, right = _sizes(left_size, right_size, total)
    order = as_rng(seed, owner="split_dataset").permutation(total) if shuffle else np.arange(total)
    return _take(dataset, order[:left]), _take(dataset, order[total - right:])
