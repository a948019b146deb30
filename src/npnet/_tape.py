"""The tape: how a model written in plain Python finds its backward pass.

While a model runs in training mode, every call of a *primitive* layer (one with a
hand-written ``forward``/``backward``) is recorded in order on a :class:`Tape`: the layer,
the arrays that went in, the arrays that came out, and the cache its ``forward`` returned.
The backward pass walks the tape in reverse. It hands each call the gradient of its
outputs, and adds the input gradients the call returns into the gradients of the arrays
that fed it. A tensor used twice (a residual connection, a fan-out) therefore collects the
sum of its gradients, and a layer called twice (a shared layer) gets the sum of its
parameter gradients over both calls. Composite layers and models never appear on the
tape: their ``call`` is ordinary Python that calls primitives.

Regularizers hook in here too: a layer with an activity regularizer records the penalty
of each call's output on the tape (:meth:`Tape.add_penalty`), and the model's loss seeds
the backward pass with its gradient; the weight penalties the loss counted get their
gradients added once, at the end of :meth:`Tape.backward`.

Arrays are identified by ``id``. The tape keeps a reference to every array it records,
so an id cannot be reused while the tape lives.

Everything here is per thread: two threads running the same model each have their own
run and their own tape.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["Run", "Tape", "Entry", "current", "running"]

_local = threading.local()
_SERIALS = itertools.count()


def new_serial() -> int:
    """A number no run has had (for a layer called outside any run)."""
    return next(_SERIALS)


class Entry:
    """One recorded call of a primitive layer."""

    __slots__ = ("layer", "inputs", "outputs", "cache", "slot", "multi_in", "multi_out", "options", "training")

    def __init__(self, layer: Any, inputs: list[np.ndarray], outputs: list[np.ndarray], cache: Any, slot: int,
                 multi_in: bool, multi_out: bool, options: dict[str, Any] | None = None,
                 training: bool = False) -> None:
        self.layer, self.inputs, self.outputs, self.cache, self.slot = layer, inputs, outputs, cache, slot
        self.multi_in, self.multi_out = multi_in, multi_out
        #: The keyword arguments the call passed to ``forward`` (its mask, call options such
        #: as ``use_causal_mask``): what an exporter needs beyond the arrays.
        self.options = options or {}
        #: Whether the call ran in training mode (an exporter writes inference mode only).
        self.training = bool(training)


class Tape:
    """The primitive calls of one training pass, in order."""

    def __init__(self, strict: bool = True, input_grads: bool = False) -> None:
        #: Whether a layer may receive an array the tape does not know (a training pass must
        #: not: its gradient could not be followed; an evaluation pass may).
        self.strict = strict
        #: Whether the gradients of the model inputs are wanted (gradient checking).
        self.input_grads = input_grads
        #: ids of the arrays whose gradient the backward pass needs: those that depend on a
        #: layer with parameters (or on a model input whose gradient is wanted). A call whose
        #: inputs need none is asked for no input gradient (the first layers of a model).
        self.requires: set[int] = set()
        self.entries: list[Entry] = []
        self.sources: dict[int, np.ndarray] = {}  # id -> model input array
        self.producer: dict[int, int] = {}  # id of an output array -> index of the entry that made it
        self.consumers: dict[int, int] = {}  # id of an array -> number of recorded calls that read it
        #: Activity penalties of this pass: (array, regularizer, scale, value), value = scale * R(array).
        self.penalties: list[tuple[np.ndarray, Any, float, float]] = []
        #: Weight penalties (layer, key, regularizer) whose gradient ``backward`` adds; the
        #: model's loss sets them when it counts their values.
        self.weight_penalties: list[tuple[Any, str, Any]] = []

    def add_source(self, array: np.ndarray) -> None:
        self.sources[id(array)] = array
        if self.input_grads:
            self.requires.add(id(array))

    def knows(self, array: np.ndarray) -> bool:
        return id(array) in self.sources or id(array) in self.producer

    def add_penalty(self, array: np.ndarray, regularizer: Any, scale: float, value: float) -> None:
        """Record the activity penalty ``value = scale * regularizer(array)`` of a layer call."""
        self.penalties.append((array, regularizer, scale, value))
        # The penalty reads the array like a layer would: a loss is never fused with it.
        self.consumers[id(array)] = self.consumers.get(id(array), 0) + 1

    def record(self, entry: Entry) -> None:
        index = len(self.entries)
        self.entries.append(entry)
        for a in entry.inputs:
            self.consumers[id(a)] = self.consumers.get(id(a), 0) + 1
        needs = bool(entry.layer.params) or any(id(a) in self.requires for a in entry.inputs)
        for a in entry.outputs:
            self.producer[id(a)] = index
            if needs:
                self.requires.add(id(a))

    def backward(self, seeds: dict[int, np.ndarray], fused: dict[int, np.ndarray] | None = None,
                 want: set[int] | frozenset[int] = frozenset()) -> tuple[dict[int, np.ndarray], set[int]]:
        """Walk the tape in reverse from output gradients.

        Parameters
        ----------
        seeds : dict of id(array) to ndarray
            ``dL/dy`` for the model outputs that feed the loss.
        fused : dict of entry index to ndarray, optional
            Calls whose final softmax or sigmoid is fused into the loss: the gradient is
            ``dL/dz`` with respect to the logits, and the call skips its activation.
        want : set of id(array)
            Model inputs whose gradient the caller wants (gradient checking).

        Returns
        -------
        grads : dict of id(array) to ndarray
            Gradients of the wanted model inputs.
        visited : set of int
            ``id`` of every layer whose ``backward`` ran (its ``grads`` are this step's).
        """
        fused = fused or {}
        grads: dict[int, np.ndarray] = dict(seeds)
        visited: set[int] = set()
        run = current()
        for index in range(len(self.entries) - 1, -1, -1):
            e = self.entries[index]
            layer = e.layer
            if index in fused:
                dy: Any = fused[index]
            else:
                dys = [grads.pop(id(o), None) for o in e.outputs]
                if all(d is None for d in dys):
                    continue  # nothing downstream of this call reaches the loss
                if e.multi_out:
                    dy = [np.zeros_like(o) if d is None else d for o, d in zip(e.outputs, dys)]
                else:
                    dy = dys[0]
            need = any(id(a) in self.requires or id(a) in want for a in e.inputs)
            layer.compute_input_grad = need
            saved = None
            if id(layer) in visited:  # a shared layer: keep the gradients of its later calls
                saved = [g.copy() for g in layer.grads.values()]
            if run is not None:
                run.slot = e.slot
            arrays = dict(layer.grads)
            try:
                dx = layer._backward_from_logits(e.cache, dy) if index in fused else layer.backward(e.cache, dy)
            finally:
                layer.compute_input_grad = True
            for k, g in arrays.items():
                # A backward that assigned a new array instead of writing in place: copy it
                # into the array the optimizer holds, and put that array back.
                if layer.grads[k] is not g:
                    np.copyto(g, layer.grads[k], casting="same_kind")
                    layer.grads[k] = g
            if saved is not None:
                for g, s in zip(layer.grads.values(), saved):
                    g += s
            visited.add(id(layer))
            if not need or dx is None:
                continue
            dxs = dx if e.multi_in else [dx]
            if len(dxs) != len(e.inputs):
                raise RuntimeError(
                    f"{layer._owner}: backward returned {len(dxs)} input gradients for {len(e.inputs)} inputs")
            for a, g in zip(e.inputs, dxs):
                if g is None or not (id(a) in self.requires or id(a) in want):
                    continue
                k = id(a)
                grads[k] = grads[k] + g if k in grads else g
        self._add_weight_penalties(visited)
        return {k: v for k, v in grads.items() if k in want}, visited

    def _add_weight_penalties(self, visited: set[int]) -> None:
        """Add the gradient of each weight penalty to its weight's gradient, once per pass
        (a layer not reached from the loss gets zero gradients plus its penalty's)."""
        from .regularizers import gradient_of

        for layer, key, regularizer in self.weight_penalties:
            if id(layer) not in visited:
                for g in layer.grads.values():
                    g.fill(0)
                visited.add(id(layer))
            grad = layer.grads[key]
            grad += gradient_of(regularizer, layer.params[key], f"{layer._owner} weight {key!r}")


class Run:
    """The context of one pass through a model: its training flag, its tape (when
    recording), and the arrays layers may reuse between batches while ``fit`` runs."""

    def __init__(self, training: bool = False, tape: Tape | None = None, buffers: dict | None = None,
                 init_rng: np.random.Generator | None = None) -> None:
        self.training = training
        self.tape = tape
        self.buffers = buffers
        self.init_rng = init_rng
        self.slot = 0
        self.serial = next(_SERIALS)  # tells the passes apart (see Layer.losses)
        self._calls: dict[int, int] = {}

    def next_slot(self, layer: Any) -> int:
        """Number of earlier calls of ``layer`` in this pass (0 for its first call)."""
        n = self._calls.get(id(layer), 0)
        self._calls[id(layer)] = n + 1
        return n

    def buffer(self, layer: Any, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        """A kept array for ``key`` of this call of ``layer``, or None outside ``fit``."""
        if self.buffers is None:
            return None
        k = (id(layer), self.slot, key)
        buf = self.buffers.get(k)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            buf = self.buffers[k] = np.empty(shape, dtype=dtype)
        return buf


def current() -> Run | None:
    """This thread's innermost run, or None outside any model pass."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextmanager
def running(run: Run) -> Iterator[Run]:
    """Make ``run`` this thread's current run for the duration of the block."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(run)
    try:
        yield run
    finally:
        stack.pop()


def init_rng() -> np.random.Generator | None:
    """The generator for weights created during the current run (``fit(seed=...)``)."""
    run = current()
    return None if run is None else run.init_rng


def skipping_init() -> bool:
    """Whether this thread is loading a saved file (weights are placeholders until checked)."""
    return bool(getattr(_local, "skip_init", False))


@contextmanager
def skip_init() -> Iterator[None]:
    old = skipping_init()
    _local.skip_init = True
    try:
        yield
    finally:
        _local.skip_init = old
