"""Argument and array checks that share one message format.

Every message names who complains (a function, a layer as ``Dense 'dense_1'``, or an
argument), what was expected and what was received.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._config import floatx, fresh_rng


def owner_prefix(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def check_int(value: Any, name: str, *, minimum: int | None = None, owner: str | None = None) -> int:
    """Return ``value`` as an int, or raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner_prefix(owner)}`{name}` must be an integer, received {value!r} "
            f"of type {type(value).__name__}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner_prefix(owner)}`{name}` must be >= {minimum}, received {value}")
    return value


def check_bool(value: Any, name: str, *, owner: str | None = None) -> bool:
    """Return ``value`` if it is a bool (NumPy bools included), or raise naming the argument."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner_prefix(owner)}`{name}` must be True or False, received {value!r}")
    return bool(value)


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    owner: str | None = None,
) -> float:
    """Return ``value`` as a finite Python float inside the given interval, or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner_prefix(owner)}`{name}` must be a number, received {value!r} "
            f"of type {type(value).__name__}"
        )
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range, such as 10**400
        value = math.inf if value > 0 else -math.inf
    ok = np.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'[' if low_inclusive and low is not None else '('}{lo}, {hi}{']' if high_inclusive and high is not None else ')'}"
        raise ValueError(f"{owner_prefix(owner)}`{name}` must be in {interval}, received {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str], *, owner: str | None = None) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise listing them."""
    choices = list(choices)
    # Compared only with choices of its own type: an array or a list never matches (and
    # never makes `in` ask an array for its truth value).
    if not any(isinstance(value, type(c)) and value == c for c in choices):
        raise ValueError(
            f"{owner_prefix(owner)}`{name}` must be one of {choices}, received {value!r}"
        )
    return value


def check_data_format(value: Any, layout: str, *, owner: str | None = None) -> str:
    """Keras' ``data_format``: None or ``"channels_last"`` (returned as ``"channels_last"``);
    ``"channels_first"`` is refused, naming the ``layout`` npnet takes instead."""
    if isinstance(value, str) and value == "channels_first":
        raise ValueError(f"{owner_prefix(owner)}`data_format` 'channels_first' is not supported; npnet takes "
                         f"{layout} inputs only (data_format='channels_last')")
    return "channels_last" if value is None else check_choice(value, "data_format", ["channels_last"], owner=owner)


def check_verbose(value: Any, name: str = "verbose", *, owner: str | None = None) -> int:
    """A verbosity level: an int >= 0 (True and False count as 1 and 0)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_int(value, name, minimum=0, owner=owner)


def check_name(value: Any, name: str = "name", *, owner: str | None = None) -> str | None:
    """A name argument: a string or None."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{owner_prefix(owner)}`{name}` must be a string or None, received {value!r} "
                        f"of type {type(value).__name__}")
    return value


def check_path(value: Any, name: str, *, owner: str | None = None) -> str:
    """A file or folder path: a non-empty str, bytes or os.PathLike; returned as a str."""
    import os

    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{owner_prefix(owner)}`{name}` must be a str or path, received {value!r} "
                        f"of type {type(value).__name__}")
    path = os.fsdecode(os.fspath(value))
    if not path or "\x00" in path:
        raise ValueError(f"{owner_prefix(owner)}`{name}` must be a non-empty path without NUL characters, "
                         f"received {value!r}")
    return path


def check_tuple(value: Any, name: str, length: int, *, minimum: int = 1, owner: str | None = None) -> tuple[int, ...]:
    """Accept an int or a sequence of ``length`` ints, each >= ``minimum``; return a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items = (int(value),) * length
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(
                f"{owner_prefix(owner)}`{name}` must be an int or a tuple of {length} ints, "
                f"received {value!r}"
            ) from None
        if len(items) != length:
            raise ValueError(
                f"{owner_prefix(owner)}`{name}` must be an int or a tuple of {length} ints, "
                f"received {value!r}"
            )
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(
                f"{owner_prefix(owner)}`{name}` must contain integers, received {value!r}"
            )
        if item < minimum:
            raise ValueError(
                f"{owner_prefix(owner)}`{name}` must contain integers >= {minimum}, received {value!r}"
            )
    return tuple(int(i) for i in items)


def as_rng(seed: Any, name: str = "seed", owner: str | None = None) -> np.random.Generator:
    """Resolve ``seed`` (None, an int >= 0 or a Generator) to a ``np.random.Generator``.

    This is the single place where npnet turns seeds into random streams; nothing uses
    NumPy's global random state. Without a seed the stream comes from the seed source
    (see :func:`npnet.utils.set_random_seed`).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return fresh_rng()
    return np.random.default_rng(check_int(seed, name, minimum=0, owner=owner))


def check_seed(seed: Any, name: str = "seed", owner: str | None = None) -> int | None:
    """Validate a seed argument that is stored in a config (None or an int >= 0)."""
    if seed is None:
        return None
    return check_int(seed, name, minimum=0, owner=owner)


# Rows checked at a time in a large array: a memory-mapped file is never copied, cast or
# masked whole.
_CHUNK_BYTES = 1 << 24


def first_nonfinite(arr: np.ndarray, dtype: Any = None) -> tuple[int, ...] | None:
    """Index of the first entry of ``arr`` that is NaN or infinite once cast to ``dtype``
    (default: floatx), or None. Large arrays are checked in chunks of rows."""
    target = np.dtype(dtype or floatx())
    kind = arr.dtype.kind
    if kind not in "fiu" or arr.size == 0:
        return None
    if kind in "iu":
        info = np.iinfo(arr.dtype)
        if max(abs(int(info.min)), int(info.max)) < float(np.finfo(target).max):
            return None  # every integer of this type is finite in the target type
    cast = kind in "iu" or arr.dtype.itemsize > target.itemsize
    if arr.ndim == 0:
        arr = arr.reshape(1)
    row = max(1, arr[:1].nbytes)
    step = max(1, _CHUNK_BYTES // row)
    for lo in range(0, arr.shape[0], step):
        chunk = arr[lo:lo + step]
        if cast:
            with np.errstate(over="ignore", invalid="ignore"):
                chunk = chunk.astype(target)
        finite = np.isfinite(chunk)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            bad[0] += lo
            return tuple(int(i) for i in bad)
    return None


def check_finite(arr: np.ndarray, name: str, *, owner: str | None = None) -> None:
    """Raise if an entry of ``arr`` is NaN or infinite, or becomes infinite when cast to
    floatx (a float64 ``1e39`` in float32), naming the argument and the first index."""
    bad = first_nonfinite(arr)
    if bad is None:
        return
    value = float(arr[bad] if arr.ndim else arr[()])
    if not np.isfinite(value):
        raise ValueError(
            f"{owner_prefix(owner)}`{name}` contains NaN or infinity "
            f"(first at index {bad}); clean the data before training")
    raise ValueError(
        f"{owner_prefix(owner)}`{name}` holds {value!r} at index {bad}, which becomes infinity in "
        f"{floatx()}, the type npnet computes in (npnet.floatx()); scale the data, or call "
        "npnet.set_floatx('float64')")


def as_array(x: Any, name: str, *, owner: str | None = None, allow_int: bool = True) -> np.ndarray:
    """Convert ``x`` to a numeric ndarray, rejecting empty, non-numeric and non-finite input."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{owner_prefix(owner)}`{name}` could not be converted to an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(
            f"{owner_prefix(owner)}`{name}` must hold numbers, received an array of dtype {arr.dtype}"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{owner_prefix(owner)}`{name}` must be real, received dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{owner_prefix(owner)}`{name}` must have a batch dimension, received a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{owner_prefix(owner)}`{name}` is empty: received shape {arr.shape}")
    check_finite(arr, name, owner=owner)
    return arr


def check_array_like(value: Any, name: str, owner: str, expected: str | None = None) -> None:
    """Raise a TypeError at once if ``value`` is not an array, an array-like or a number.

    Converting an arbitrary object with ``np.asarray`` may walk it element by element
    (an object with ``__len__`` and ``__getitem__``), so such objects are refused first.
    """
    if isinstance(value, (np.ndarray, np.generic, numbers.Number, str, bytes)):
        return
    if any(hasattr(value, a) for a in ("__array__", "__array_interface__", "__array_struct__")):
        return
    hint = ""
    if hasattr(value, "__getitem__") and hasattr(value, "__len__"):
        hint = (" It has __len__ and __getitem__, like a data set that hands out batches: make its class "
                "inherit npnet.utils.PyDataset.")
    elif hasattr(value, "__next__"):
        hint = " An iterator or generator of batches goes alone in `x`, as fit(x=batches), with no `y`."
    expected = expected or ("an array, a list or dict of arrays, a generator of batches or an "
                            "npnet.utils.PyDataset")
    raise TypeError(f"{owner}: `{name}` must be {expected}; received an object of type {type(value).__name__}.{hint}")
