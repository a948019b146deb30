"""``PyDataset``: a data set written in Python that hands out whole batches by index."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import Any

from .._validation import check_bool, check_int

__all__ = ["PyDataset"]


class PyDataset:
    """Base class of a data set that builds its batches in Python, one index at a time.

    Subclass it, call ``super().__init__(**kwargs)`` in ``__init__``, and define
    ``__len__`` (the number of batches) and ``__getitem__(index)``, which returns batch
    ``index`` as ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, where each part
    is an array, or a list or dict of arrays for a model with several inputs or outputs.
    ``on_epoch_end()`` is called after each epoch, for example to reshuffle the samples.
    A data set with no ``__len__`` (or whose ``num_batches`` is None) is endless: ``fit``
    then needs ``steps_per_epoch``.

    Give one to :meth:`npnet.Model.fit`, :meth:`~npnet.Model.evaluate` or
    :meth:`~npnet.Model.predict` as ``x``, with no ``y``.

    Parameters
    ----------
    workers : int, default 1
    use_multiprocessing : bool, default False
    max_queue_size : int, default 10
        Keras' arguments for loading batches in parallel, accepted and kept for
        compatibility. npnet reads the batches serially, in the calling thread.

    Notes
    -----
    ``fit(..., shuffle=True)`` (the default) visits the batch indices of each epoch in
    a new random order, drawn from ``fit``'s ``seed``; the samples inside a batch are
    whatever ``__getitem__`` returns, so mixing them is up to the data set (for example
    in ``on_epoch_end``).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> class Batches(npnet.utils.PyDataset):
    ...     def __init__(self, x, y, batch_size, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.x, self.y, self.batch_size = x, y, batch_size
    ...     def __len__(self):
    ...         return -(-len(self.x) // self.batch_size)
    ...     def __getitem__(self, index):
    ...         rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
    ...         return self.x[rows], self.y[rows]
    >>> x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
    >>> data = Batches(x, (x[:, 0] > 0).astype(int), batch_size=8)
    >>> len(data), data[2][0].shape
    (3, (4, 3))
    >>> model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="softmax")], seed=0)
    >>> model.compile("sgd", "sparse_categorical_crossentropy")
    >>> history = model.fit(data, epochs=2, verbose=0, seed=0)
    >>> len(history.history["loss"])
    2
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        owner = type(self).__name__
        self._workers = check_int(workers, "workers", minimum=0, owner=owner)
        self._use_multiprocessing = check_bool(use_multiprocessing, "use_multiprocessing", owner=owner)
        self._max_queue_size = check_int(max_queue_size, "max_queue_size", minimum=1, owner=owner)

    def _warn_if_super_not_called(self) -> None:
        if not hasattr(self, "_workers"):
            self._workers, self._use_multiprocessing, self._max_queue_size = 1, False, 10
            warnings.warn(
                f"{type(self).__name__}: a PyDataset subclass should call super().__init__(**kwargs) in its "
                "__init__", stacklevel=3)

    @property
    def workers(self) -> int:
        """The ``workers`` given to the constructor (npnet reads batches serially)."""
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = check_int(value, "workers", minimum=0, owner=type(self).__name__)

    @property
    def use_multiprocessing(self) -> bool:
        """The ``use_multiprocessing`` given to the constructor (unused by npnet)."""
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = check_bool(value, "use_multiprocessing", owner=type(self).__name__)

    @property
    def max_queue_size(self) -> int:
        """The ``max_queue_size`` given to the constructor (unused by npnet)."""
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = check_int(value, "max_queue_size", minimum=1, owner=type(self).__name__)

    @property
    def num_batches(self) -> int | None:
        """The number of batches: ``len(self)``, or None for an endless data set."""
        if hasattr(self, "__len__"):
            return len(self)  # type: ignore[arg-type]
        return None

    def __getitem__(self, index: int) -> Any:
        """Batch number ``index``: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``."""
        raise NotImplementedError(f"{type(self).__name__}: a PyDataset must define __getitem__(index)")

    def __iter__(self) -> Iterator[Any]:
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch."""
