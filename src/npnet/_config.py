"""Global settings: the default floating-point type ("floatx") and the seed source.

The seed source is where npnet takes entropy for anything random that was given no seed
(initial weights, Dropout masks, fit's shuffling, augmentation): fresh entropy from the
operating system, or, after :func:`set_random_seed`, a stream derived from that seed.
"""

from __future__ import annotations

import random
import threading

import numpy as np

__all__ = ["floatx", "set_floatx", "set_random_seed", "fresh_rng", "fresh_seed"]

_FLOATX = "float32"
_ALLOWED = ("float16", "float32", "float64")


def floatx() -> str:
    """Return the default float type for parameters and activations.

    Returns
    -------
    str
        One of ``"float16"``, ``"float32"`` (the default) or ``"float64"``.

    Examples
    --------
    >>> import npnet
    >>> npnet.floatx()
    'float32'
    """
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the default float type used for new weights and for training batches.

    Parameters
    ----------
    value : {"float16", "float32", "float64"}
        The new default. Layers built afterwards create their weights in this type,
        and ``fit``/``evaluate``/``predict`` cast each batch to it.

    Raises
    ------
    ValueError
        If ``value`` is not one of the allowed names.
    """
    global _FLOATX
    name = str(np.dtype(value)) if isinstance(value, type) else value
    if name not in _ALLOWED:
        raise ValueError(f"set_floatx: `value` must be one of {list(_ALLOWED)}, received {value!r}")
    _FLOATX = name


_SEED_LOCK = threading.Lock()
_SEED_STREAM: np.random.Generator | None = None


def set_random_seed(seed: int) -> None:
    """Seed everything random in npnet that has no seed of its own, and Python's and NumPy's
    global random state.

    Afterwards, building a model and fitting it without explicit seeds gives the same
    weights and the same history each time the program runs the same steps after the
    same call. Explicit seeds (``seed=`` of a layer, an initializer, a model or ``fit``)
    keep their own streams. Like Keras, this also calls ``random.seed(seed)`` and
    ``np.random.seed(seed)``.

    Parameters
    ----------
    seed : int
        In ``[0, 2**32)`` (NumPy's limit for its global seed).

    Raises
    ------
    TypeError
        If ``seed`` is not an int.
    ValueError
        If it is out of range.

    Examples
    --------
    >>> import npnet
    >>> npnet.utils.set_random_seed(1)
    >>> a = npnet.layers.Dense(2)(npnet.Input(shape=(3,)))
    >>> w1 = a.node.layer.params["kernel"].copy()
    >>> npnet.utils.set_random_seed(1)
    >>> b = npnet.layers.Dense(2)(npnet.Input(shape=(3,)))
    >>> bool((b.node.layer.params["kernel"] == w1).all())
    True
    """
    global _SEED_STREAM
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed: `seed` must be an int, received {seed!r} of type {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"set_random_seed: `seed` must be in [0, 2**32), received {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    with _SEED_LOCK:
        _SEED_STREAM = np.random.default_rng(seed)


def fresh_rng() -> np.random.Generator:
    """A generator for one random thing that was given no seed: from the stream of
    :func:`set_random_seed` when it was called, else from fresh OS entropy."""
    with _SEED_LOCK:
        if _SEED_STREAM is None:
            return np.random.default_rng()
        return np.random.default_rng(_SEED_STREAM.integers(2**63))


def fresh_seed() -> int:
    """An integer seed drawn like :func:`fresh_rng`."""
    return int(fresh_rng().integers(2**63))


def _seed_state() -> np.random.Generator | None:
    """The seeded stream (for tests that restore it)."""
    return _SEED_STREAM


def _set_seed_state(state: np.random.Generator | None) -> None:
    global _SEED_STREAM
    with _SEED_LOCK:
        _SEED_STREAM = state
