"""Masks attached to arrays, as Keras attaches ``_keras_mask`` to its tensors.

A mask says which time steps of a sequence are real: a boolean array of shape
``(batch, time)``, True for a real step, False for padding. A layer that makes one
(``Embedding(mask_zero=True)``, ``Masking``) attaches it to its output; a layer that
supports masking reads it from its input, passes it to its ``forward`` and attaches
its own output mask; the model's loss and metrics give masked steps no weight.

NumPy arrays cannot carry attributes, so the masks live in a side table keyed by the
identity of the array. An entry lives exactly as long as its array: a weak reference
removes it when the array is freed, so an ``id`` is never matched to a later array.
Each array has one producer, so two threads never attach different masks to the same
array.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import numpy as np

__all__ = ["any_masks", "get_mask", "set_mask", "mask_of"]

#: id(array) -> (weak reference to the array, mask)
_TABLE: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _forget(key: int, ref: weakref.ref) -> None:
    """Drop the entry of a freed array (unless a newer array took its id already)."""
    entry = _TABLE.get(key)
    if entry is not None and entry[0] is ref:
        _TABLE.pop(key, None)


def set_mask(array: Any, mask: np.ndarray | None) -> None:
    """Attach ``mask`` to ``array`` (``None`` removes any mask it had)."""
    if not isinstance(array, np.ndarray):
        return
    key = id(array)
    if mask is None:
        _TABLE.pop(key, None)
        return
    ref: weakref.ref = weakref.ref(array, functools.partial(_forget, key))
    _TABLE[key] = (ref, np.asarray(mask, dtype=bool))


def any_masks() -> bool:
    """Whether any live array has a mask."""
    return bool(_TABLE)


def get_mask(array: Any) -> np.ndarray | None:
    """The mask attached to ``array``, or None."""
    if not _TABLE:  # the common case: no masks anywhere
        return None
    entry = _TABLE.get(id(array))
    if entry is None or entry[0]() is not array:
        return None
    return entry[1]


def mask_of(value: Any) -> Any:
    """The masks of an array, or of each array in a list or tuple (None where absent)."""
    if isinstance(value, (list, tuple)):
        return [get_mask(v) for v in value]
    return get_mask(value)
