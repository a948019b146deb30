"""Checked arrays in nested structures (one array, a list, a dict): the inputs and targets of fit."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._nest import flatten, pack
from .._validation import as_array, check_array_like

__all__ = ["flatten", "pack", "as_arrays", "check_array_like", "fits"]

def _leaf(value: Any, name: str, owner: str) -> np.ndarray:
    check_array_like(value, name, owner)
    return as_array(value, name, owner=owner)  # checked in chunks: a memmap stays a memmap


def as_arrays(value: Any, name: str, owner: str) -> tuple[Any, list[np.ndarray]]:
    """Check every leaf of ``value`` and return ``(structure, leaves)``; all leaves must
    have the same number of samples. Memory-mapped arrays stay mapped (never copied)."""
    if value is None:
        raise ValueError(f"{owner}: `{name}` is required")
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float, bool)) for v in value):
        value = np.asarray(value)  # a plain list of numbers is one array, not several inputs
    leaves = flatten(value)
    if not leaves:
        raise ValueError(f"{owner}: `{name}` is empty")
    multi = len(leaves) > 1 or not isinstance(value, np.ndarray) and isinstance(value, (list, tuple, dict))
    arrays = []
    for i, leaf in enumerate(leaves):
        arrays.append(_leaf(leaf, f"{name}[{i}]" if multi else name, owner))
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) > 1:
        raise ValueError(
            f"{owner}: every array in `{name}` must have the same number of samples, "
            f"received {[a.shape[0] for a in arrays]}")
    return value, arrays


def fits(shape: tuple, expected: tuple) -> bool:
    """Whether a sample shape matches an input's, where None stands for any size (the
    length of a sequence, for example)."""
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))
