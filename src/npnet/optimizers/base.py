"""The optimizer base class: clipping, weight decay, state, the parallel in-place step.

``step(params, grads)`` updates the arrays of ``params`` in place. Per-parameter state
(momentum, moment estimates) lives in lists aligned with the parameter list and is
created on the first step, in the parameters' dtype. Updates run in place on
preallocated buffers, so a step allocates no temporaries per parameter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _parallel
from .. import schedules as _schedules
from .._config import floatx
from .._validation import check_float

__all__ = ["Optimizer"]


class Optimizer:
    """Base class.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
    weight_decay : float, optional
        Decoupled weight decay: before each update, ``p -= learning_rate * weight_decay * p``.
    clipnorm : float, optional
        Rescale each gradient whose L2 norm exceeds this value down to it.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Rescale all gradients together so that their joint L2 norm is at most this value.

    Notes
    -----
    A subclass names its per-parameter state in ``_slot_names`` (saved with the model),
    any extra scratch arrays in ``_scratch_names`` (never saved), computes per-step
    scalars in ``_prepare(lr)`` and updates one parameter in place in
    ``_update(p, g, slots, buf, lr)``; ``buf`` is a scratch array shaped like ``p``.
    """

    _slot_names: tuple[str, ...] = ()
    #: Slots that hold running sums or maxima of squared or absolute gradients, so are never
    #: negative; a saved file with a negative value there is refused.
    _nonnegative_slots: tuple[str, ...] = ()
    _scratch_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        owner = type(self).__name__
        if isinstance(learning_rate, _schedules.LearningRateSchedule):
            self._learning_rate: Any = learning_rate
        else:
            self._learning_rate = check_float(learning_rate, "learning_rate", low=0.0, owner=owner)
        self.weight_decay = None if weight_decay is None else check_float(weight_decay, "weight_decay", low=0.0, owner=owner)
        self.clipnorm = None if clipnorm is None else check_float(clipnorm, "clipnorm", low=0.0, low_inclusive=False, owner=owner)
        self.clipvalue = None if clipvalue is None else check_float(clipvalue, "clipvalue", low=0.0, low_inclusive=False, owner=owner)
        self.global_clipnorm = None if global_clipnorm is None else check_float(
            global_clipnorm, "global_clipnorm", low=0.0, low_inclusive=False, owner=owner)
        if sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError(f"{owner}: set at most one of `clipnorm`, `clipvalue` and `global_clipnorm`")
        self.iterations = 0
        self.slots: dict[str, list[np.ndarray]] = {}
        self._shapes: Any = None

    # ---------------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> float:
        """The rate used by the next step (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        if not callable(lr):
            return lr
        value = lr(self.iterations)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or float(value) < 0:
            raise ValueError(f"{type(self).__name__}: the learning-rate schedule {lr!r} must return a finite number "
                             f">= 0, received {value!r} at step {self.iterations}")
        if float(value) > float(np.finfo(floatx()).max):
            raise ValueError(f"{type(self).__name__}: the learning-rate schedule {lr!r} returned {value!r} at step "
                             f"{self.iterations}, which becomes infinity in {floatx()}")
        return float(value)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            raise TypeError(f"{type(self).__name__}: the learning rate is a schedule and cannot be set to a number")
        self._learning_rate = check_float(value, "learning_rate", low=0.0, owner=type(self).__name__)

    # ---------------------------------------------------------------- state
    def build(self, params: Sequence[np.ndarray]) -> None:
        """Create per-parameter state aligned with ``params``."""
        self._shapes = [(p.shape, p.dtype) for p in params]
        self.slots = {name: [np.zeros_like(p) for p in params] for name in self._slot_names}
        self._buf = [np.empty_like(p) for p in params]
        scratch = {name: [np.empty_like(p) for p in params] for name in self._scratch_names}
        # The arrays _update sees for parameter i: its slots and its scratch arrays.
        self._per_param = [{name: arrays[i] for name, arrays in (*self.slots.items(), *scratch.items())}
                           for i in range(len(params))]

    def _check_alignment(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        owner = type(self).__name__
        if len(params) != len(grads):
            raise ValueError(f"{owner}: received {len(params)} parameters but {len(grads)} gradients")
        if self._shapes is None:
            self.build(params)
        if len(params) != len(self._shapes) or any(
            p.shape != s for p, (s, _) in zip(params, self._shapes)
        ):
            raise ValueError(
                f"{owner}: the parameter list changed since the optimizer's first step "
                f"(was {[s for s, _ in self._shapes]}, received {[p.shape for p in params]}); "
                "use a new optimizer for a different model"
            )

    def get_state(self) -> dict[str, Any]:
        """Step count and the slot arrays (copies), for saving and resuming."""
        return {"iterations": self.iterations,
                "slots": {k: [a.copy() for a in v] for k, v in self.slots.items()}}

    def set_state(self, state: dict[str, Any], params: Sequence[np.ndarray]) -> None:
        """Restore :meth:`get_state` output for the parameter list ``params``."""
        self.build(params)
        for name in self._slot_names:
            arrays = state["slots"].get(name)
            if arrays is None:
                raise ValueError(f"{type(self).__name__}: the optimizer state has no slot {name!r} "
                                 f"(expected slots {list(self._slot_names)}, received {sorted(state['slots'])})")
            if len(arrays) != len(params):
                raise ValueError(f"{type(self).__name__}: optimizer state for slot {name!r} does not match the model "
                                 f"(expected {len(params)} arrays, received {len(arrays)})")
            for target, value in zip(self.slots[name], arrays):
                if target.shape != np.shape(value):
                    raise ValueError(
                        f"{type(self).__name__}: optimizer slot {name!r} expected shape {target.shape}, "
                        f"received {np.shape(value)}")
                np.copyto(target, value, casting="same_kind")
        self.iterations = int(state["iterations"])

    # ---------------------------------------------------------------- update
    def _clipped(self, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = math.sqrt(float(np.vdot(g, g)))
                out.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            return out
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
                return [g * scale for g in grads]
        return list(grads)

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Apply one update to every array of ``params`` in place.

        Large arrays are updated in contiguous chunks on npnet's thread pool (see
        :func:`npnet.set_num_threads`): NumPy releases the GIL inside element-wise
        operations, so the memory-bound update uses every core. Each element sees
        exactly the same operations either way.
        """
        self._check_alignment(params, grads)
        grads = self._clipped(grads)
        lr = self.learning_rate
        self._prepare(lr)
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.flags.c_contiguous and g.flags.c_contiguous:
                _parallel.run(lambda a, b: self._apply(i, p, g, (a, b), lr), p.size, p.size)
            else:
                self._apply(i, p, g, None, lr)
        self.iterations += 1

    def _apply(self, i: int, p: np.ndarray, g: np.ndarray, span: tuple[int, int] | None, lr: float) -> None:
        slots = self._per_param[i]
        buf = self._buf[i]
        if span is not None:
            a, b = span
            p, g, buf = p.reshape(-1)[a:b], g.reshape(-1)[a:b], buf.reshape(-1)[a:b]
            slots = {k: v.reshape(-1)[a:b] for k, v in slots.items()}
        if self.weight_decay:
            np.multiply(p, lr * self.weight_decay, out=buf)
            p -= buf
        self._update(p, g, slots, buf, lr)

    def _prepare(self, lr: float) -> None:
        """Hook computing per-step scalars (bias corrections)."""

    def _update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], buf: np.ndarray, lr: float) -> None:
        """Update ``p`` in place from ``g``, this parameter's ``slots`` and a scratch ``buf``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        lr = self._learning_rate
        return {
            "learning_rate": _schedules.serialize(lr) if isinstance(lr, _schedules.LearningRateSchedule) else lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.get(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r})"
