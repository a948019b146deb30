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
    it = iter(leaves)

    def rebuild(s: Any) -> Any:
        if isinstance(s, (list, tuple)):
            return type(s)(rebuild(v) for v in s)
        if isinstance(s, dict):
            return {k: rebuild(v) for k, v in s.items()}
        return next(it)

    return rebuild(structure)
