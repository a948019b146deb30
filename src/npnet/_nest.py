"""Nested structures (one value, lists, tuples, dicts) as flat lists, and back."""

from __future__ import annotations

from typing import Any

__all__ = ["flatten", "pack"]


def flatten(value: Any) -> list[Any]:
    """The leaves of ``value`` in order (dicts in key order)."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in flatten(item)]
    return [value]


def pack(structure: Any, leaves: list[Any]) -> Any:
    """``structure`` with its leaves replaced, in order, by ``leaves``."""
    return _rebuild(structure, iter(leaves))


def _rebuild(s: Any, it: Any) -> Any:
    # A module-level function, not a closure that calls itself: such a closure is a
    # reference cycle that would keep every batch's arrays alive until the next garbage
    # collection.
    if isinstance(s, (list, tuple)):
        return type(s)(_rebuild(v, it) for v in s)
    if isinstance(s, dict):
        return {k: _rebuild(v, it) for k, v in s.items()}
    return next(it)
