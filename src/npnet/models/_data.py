"""Where the batches of ``fit``, ``evaluate`` and ``predict`` come from.

- Arrays (in memory or memory-mapped) are cut into batches by ``Model`` itself.
- A *data source* hands out whole batches: a Python generator or iterator, or an
  :class:`npnet.utils.PyDataset`. :class:`Source` wraps either, and :class:`Stream`
  cuts its batches into epochs with Keras' ``steps_per_epoch`` rules.

Also here: Keras' unpacking of a batch into ``(x, y, sample_weight)``, and the checks
that turn ``sample_weight`` and ``class_weight`` into one weight array per output.
"""

from __future__ import annotations

import numbers
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._config import floatx
from .._validation import check_array_like
from ..utils._dataset import PyDataset

__all__ = ["is_source", "Source", "Stream", "unpack", "sample_weight_arrays", "class_weight_array"]


def is_source(x: Any) -> bool:
    """Whether ``x`` hands out batches itself: a PyDataset, a generator or an iterator."""
    if isinstance(x, PyDataset) or isinstance(x, types.GeneratorType):
        return True
    return hasattr(x, "__next__") and hasattr(x, "__iter__") and not isinstance(x, np.ndarray)


def unpack(data: Any, owner: str, what: str) -> tuple[Any, Any, Any]:
    """Keras' reading of one batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``
    (a list counts as a tuple); anything else that is not a tuple is ``x`` alone."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if 1 <= len(data) <= 3:
        return (tuple(data) + (None, None))[:3]  # type: ignore[return-value]
    raise ValueError(
        f"{owner}: each batch of {what} must be x, (x,), (x, y) or (x, y, sample_weight); "
        f"received a {type(data).__name__} of {len(data)} items")


class Source:
    """A generator, iterator or PyDataset, read one pass at a time.

    A PyDataset can be read again and again (``num_batches`` per pass, or endless); a
    generator only once (``one_shot``). The first batch is read ahead to build the model.
    """

    def __init__(self, data: Any, owner: str, what: str) -> None:
        self.data, self.owner, self.what = data, owner, what
        self.dataset = data if isinstance(data, PyDataset) else None
        if self.dataset is not None:
            n = self.dataset.num_batches
            self.num_batches = None if n is None else int(n)
            if self.num_batches == 0:
                raise ValueError(f"{owner}: {what} (a {type(data).__name__}) has no batches: its len() is 0")
            self._iter: Iterator[Any] | None = None
        else:
            self.num_batches = None
            self._iter = iter(data)
        self.one_shot = self.dataset is None
        self._pending: list[Any] = []

    def first(self) -> Any:
        """The first batch, without using it up."""
        if self.dataset is not None:
            return self.dataset[0]
        if not self.ready():
            raise ValueError(f"{self.owner}: {what_of(self)} yielded no batches")
        return self._pending[0]

    def ready(self) -> bool:
        """Whether another batch can be read (reads one ahead from a generator)."""
        if self.dataset is not None:
            return True
        if not self._pending:
            assert self._iter is not None
            try:
                self._pending.append(next(self._iter))
            except StopIteration:
                return False
        return True

    def new_pass(self, rng: np.random.Generator | None, shuffle: bool) -> Iterator[Any]:
        """Batches of one pass; a PyDataset's batch order is shuffled with ``rng`` when asked."""
        if self.dataset is None:
            return self._rest()
        return self._indexed(rng, shuffle)

    def _rest(self) -> Iterator[Any]:
        while self._pending or self.ready():
            yield self._pending.pop(0)

    def _indexed(self, rng: np.random.Generator | None, shuffle: bool) -> Iterator[Any]:
        assert self.dataset is not None
        n = self.num_batches
        if n is None:
            index = 0
            while True:
                yield self.dataset[index]
                index += 1
        order = rng.permutation(n) if shuffle and rng is not None else range(n)
        for index in order:
            yield self.dataset[int(index)]

    def on_epoch_begin(self) -> None:
        if self.dataset is not None:
            self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        if self.dataset is not None:
            self.dataset.on_epoch_end()


def what_of(source: Source) -> str:
    return f"{source.what} (a {type(source.data).__name__})"


class Stream:
    """Epochs of batches, as Keras' epoch iterator cuts them.

    Without ``steps``, an epoch is one pass over the data. With ``steps``, an epoch is the
    next ``steps`` batches: a pass goes on from one epoch to the next, and when it ends
    inside an epoch, that epoch ends early (with a warning) and the next one starts a new
    pass. A generator that runs dry is used up: ``exhausted`` is then True.
    """

    def __init__(self, make_pass: Callable[[np.random.Generator | None, int], Iterator[Any]],
                 num_batches: int | None, steps: int | None, owner: str, what: str) -> None:
        self.make_pass, self.num_batches, self.steps = make_pass, num_batches, steps
        self.owner, self.what = owner, what
        self._it: Iterator[Any] | None = None
        self._seen = 0
        self.exhausted = False

    def reset(self) -> None:
        """Start the next epoch at a new pass (each validation pass starts at the first
        batch, as Keras' evaluation does; a generator goes on where it stopped)."""
        self._it = None

    @property
    def steps_per_epoch(self) -> int | None:
        return self.steps if self.steps is not None else self.num_batches

    def _ran_out(self) -> None:
        warnings.warn(
            f"{self.owner}: {self.what} ran out of batches before the {self.steps} steps of this epoch; "
            "the epoch ends early. Give a data source that yields at least steps x epochs batches",
            stacklevel=5)  # the caller of fit (wrapped by _trains_alone)

    def epoch(self, rng: np.random.Generator | None, skip: int = 0) -> Iterator[Any]:
        """The batches of one epoch, from batch ``skip`` on (a resumed run skips the batches
        it did before it stopped)."""
        if self.steps is None:
            count = 0
            for batch in self.make_pass(rng, skip):
                count += 1
                yield batch
            if count == 0:
                self.exhausted = True
            return
        if self._it is None:
            self._it, self._seen = self.make_pass(rng, 0), 0
        for i in range(self.steps):
            if self.num_batches is not None and self._seen >= self.num_batches:
                self._ran_out()
                break
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                self.exhausted = True
                self._ran_out()
                return
            self._seen += 1
            if i >= skip:
                yield batch
        if self.num_batches is not None and self._seen >= self.num_batches:
            self._it = None


def _weights(value: Any, n: int, owner: str, name: str) -> np.ndarray:
    """One checked weight array of shape (n,): finite and non-negative."""
    if isinstance(value, (numbers.Number, str)) or value is None:
        raise TypeError(f"{owner}: `{name}` must be an array of shape ({n},), received {value!r}")
    if not isinstance(value, (list, tuple)):
        check_array_like(value, name, owner)  # never walk an arbitrary object element by element
    try:
        w = np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{owner}: `{name}` could not be converted to an array: {exc}") from None
    if w.dtype == object or not (np.issubdtype(w.dtype, np.number) or w.dtype == bool) \
            or np.issubdtype(w.dtype, np.complexfloating):
        raise TypeError(f"{owner}: `{name}` must hold real numbers, received an array of dtype {w.dtype}")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim == 0 or w.shape[0] != n:
        raise ValueError(
            f"{owner}: `{name}` must have one weight per sample, shape ({n},) (or ({n}, steps) for an output "
            f"with time steps); received shape {w.shape}")
    raw = w
    with np.errstate(over="ignore", invalid="ignore"):
        w = w.astype(floatx(), copy=False)
    if not np.isfinite(w).all():
        i = int(np.flatnonzero(~np.isfinite(w))[0])
        if np.isfinite(raw[i]):
            raise ValueError(f"{owner}: `{name}` holds {float(raw[i])!r} at index {i}, which becomes infinity in "
                             f"{floatx()}, the type npnet computes in (npnet.floatx())")
        raise ValueError(f"{owner}: `{name}` contains NaN or infinity (first at index {i})")
    if (w < 0).any():
        i = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"{owner}: `{name}` must be >= 0, received {float(w[i])} at index {i}")
    return w


def sample_weight_arrays(sample_weight: Any, names: list[str], has_loss: list[bool], n: int, owner: str,
                         name: str = "sample_weight") -> list[np.ndarray | None] | None:
    """``sample_weight`` as one array (or None) per output, by Keras' rules: one array for
    every output, or a list in output order, or a dict keyed by output name."""
    if sample_weight is None:
        return None
    if len(names) == 1:
        if isinstance(sample_weight, dict):
            if list(sample_weight) != names:
                raise ValueError(f"{owner}: `{name}` has keys {sorted(map(str, sample_weight))}, "
                                 f"the model's output is {names}")
            sample_weight = sample_weight[names[0]]
        elif isinstance(sample_weight, (list, tuple)) and len(sample_weight) == 1 \
                and not isinstance(sample_weight[0], numbers.Number):
            sample_weight = sample_weight[0]
        return [_weights(sample_weight, n, owner, name)]
    if isinstance(sample_weight, dict):
        unknown = sorted(set(map(str, sample_weight)) - set(names))
        if unknown:
            raise ValueError(f"{owner}: `{name}` names unknown outputs {unknown}; the outputs are {names}")
        values = [sample_weight.get(k) for k in names]
    elif isinstance(sample_weight, (list, tuple)) and sample_weight and all(
            v is None or not isinstance(v, numbers.Number) for v in sample_weight):
        if len(sample_weight) != len(names):
            raise ValueError(f"{owner}: `{name}` has {len(sample_weight)} arrays for {len(names)} outputs "
                             f"{names}; give one per output, or a single array for all of them")
        values = list(sample_weight)
    else:
        one = _weights(sample_weight, n, owner, name)
        return [one if loss else None for loss in has_loss]
    return [None if v is None else _weights(v, n, owner, f"{name}[{k!r}]") for v, k in zip(values, names)]


def check_class_weight(class_weight: Any, n_classes: int, owner: str) -> dict[int, float]:
    """``class_weight`` as ``{class id: weight}``, every id a class of the output."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{owner}: `class_weight` must be a dict of class id -> weight, "
                        f"received {type(class_weight).__name__}")
    out: dict[int, float] = {}
    for key, value in class_weight.items():
        try:
            k = int(key)
        except (TypeError, ValueError):
            k = None
        if k is None or isinstance(key, bool) or (isinstance(key, float) and key != k):
            raise ValueError(f"{owner}: `class_weight` keys must be integer class ids, received {key!r}")
        if not 0 <= k < n_classes:
            raise ValueError(f"{owner}: `class_weight` has class {k}, but the model's output has {n_classes} "
                             f"classes (0 to {n_classes - 1})")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)) \
                or value < 0:
            raise ValueError(f"{owner}: `class_weight` must map classes to finite weights >= 0, "
                             f"received {value!r} for class {k}")
        out[k] = float(value)
    return out


def class_weight_array(y: np.ndarray, class_weight: dict[int, float], owner: str) -> np.ndarray:
    """Keras' weight of each sample from its class: class ids of shape (n,) or (n, 1),
    or one-hot rows (their arg-max); classes not in ``class_weight`` weigh 1."""
    y = np.asarray(y)
    if y.ndim > 1:
        y = y[:, 0] if y.shape[-1] == 1 and y.ndim == 2 else np.argmax(y.reshape(len(y), -1), axis=-1)
    ids = np.round(y).astype(np.int64) if y.dtype.kind == "f" else y.astype(np.int64)
    table = np.ones(max(max(class_weight, default=0), int(ids.max(initial=0))) + 1, dtype=floatx())
    for k, v in class_weight.items():
        table[k] = v
    if ids.size and ids.min() < 0:
        raise ValueError(f"{owner}: `class_weight` needs class ids >= 0 in the targets, received {int(ids.min())}")
    return table[ids]
