"""Utilities Keras code reaches for first: array helpers, seeding, and data sources."""

from __future__ import annotations

from .._config import set_random_seed
from ._dataset import PyDataset
from ._numerical import normalize, to_categorical
from ._split import split_dataset

__all__: list[str] = ["PyDataset", "normalize", "set_random_seed", "split_dataset", "to_categorical"]
