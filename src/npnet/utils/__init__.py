"""Utilities Keras code reaches for first: array helpers, seeding, and data sources."""

from __future__ import annotations

__all__: list[str] = []
