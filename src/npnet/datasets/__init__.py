"""Data set loaders. Archives are never shipped with npnet: each loader reads a file you
download, from a path."""

from . import chinese_mnist

__all__ = ["chinese_mnist"]
