"""Utilities Keras code reaches for first: array helpers, seeding, and data sources."""

from __future__ import annotations

from ._dataset import PyDataset

__all__: list[str] = ["PyDataset"]
