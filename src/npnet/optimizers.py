"""Optimizers with the update rules of Keras 3.

``step(params, grads)`` updates the arrays of ``params`` in place. Per-parameter state
(momentum, moment estimates) lives in lists aligned with the parameter list and is
created on the first step, in the parameters' dtype. Updates run in place on
preallocated buffers, so a step allocates no temporaries per parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _parallel
from . import schedules as _schedules
from ._validation import check_float

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get"]

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
    """

    _slot_names: tuple[str, ...] = ()

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
        return float(lr(self.iterations)) if callable(lr) else lr

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
            if arrays is None or len(arrays) != len(params):
                raise ValueError(f"{type(self).__name__}: optimizer state for slot {name!r} does not match the model")
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
        slots = {name: arrays[i] for name, arrays in self.slots.items()}
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


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (Nesterov) momentum.

    With velocity :math:`v` (zero at the start), momentum :math:`\mu` and rate :math:`\eta`:

    .. math::
        v \leftarrow \mu v - \eta g, \qquad
        p \leftarrow p + v \ \ \text{(plain)}, \qquad
        p \leftarrow p + \mu v - \eta g \ \ \text{(Nesterov)}

    Without momentum it is :math:`p \leftarrow p - \eta g`.
    """

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=type(self).__name__)
        self.nesterov = bool(nesterov)
        self._slot_names = ("velocity",) if self.momentum else ()

    def _update(self, p, g, slots, buf, lr):
        if not self.momentum:
            np.multiply(g, lr, out=buf)
            p -= buf
            return
        v = slots["velocity"]
        v *= self.momentum
        np.multiply(g, lr, out=buf)
        v -= buf
        if self.nesterov:
            # p += momentum * v - lr * g, with buf holding lr * g
            p -= buf
            np.multiply(v, self.momentum, out=buf)
            p += buf
        else:
            p += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), in Keras' form with :math:`\hat\epsilon`.

    At step :math:`t` (1 on the first update):

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        p \leftarrow p - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \frac{m}{\sqrt{v} + \epsilon}

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    beta_1, beta_2 : float, defaults 0.9 and 0.999
    epsilon : float, default 1e-7
    """

    _slot_names = ("m", "v")

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_float(beta_1, "beta_1", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.beta_2 = check_float(beta_2, "beta_2", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)

    def _prepare(self, lr):
        t = self.iterations + 1
        self._alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def _update(self, p, g, slots, buf, lr):
        m, v = slots["m"], slots["v"]
        # m = b1 * m + (1 - b1) * g, written as m = b1 * (m - g) + g: no temporaries.
        m -= g
        m *= self.beta_1
        m += g
        np.multiply(g, g, out=buf)
        v -= buf
        v *= self.beta_2
        v += buf
        np.sqrt(v, out=buf)
        buf += self.epsilon
        np.divide(m, buf, out=buf)
        buf *= self._alpha
        p -= buf

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter): before the Adam update,
    :math:`p \leftarrow p - \eta \lambda p`. Default :math:`\lambda` = ``weight_decay`` = 0.004, as Keras."""

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    r"""RMSprop: :math:`s \leftarrow \rho s + (1 - \rho) g^2`, :math:`p \leftarrow p - \eta g / (\sqrt{s} + \epsilon)`.

    With ``momentum`` :math:`\mu > 0` the step goes through a velocity
    :math:`u \leftarrow \mu u + \eta g / (\sqrt{s} + \epsilon)`, :math:`p \leftarrow p - u`.
    """

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.rho = check_float(rho, "rho", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, owner=owner)
        self.epsilon = check_float(epsilon, "epsilon", low=0.0, low_inclusive=False, owner=owner)
        self._slot_names = ("s", "u") if self.momentum else ("s",)

    def _update(self, p, g, slots, buf, lr):
        s = slots["s"]
        np.multiply(g, g, out=buf)
        s -= buf
        s *= self.rho
        s += buf
        np.sqrt(s, out=buf)
        buf += self.epsilon
        np.divide(g, buf, out=buf)
        buf *= lr
        if self.momentum:
            u = slots["u"]
            u *= self.momentum
            u += buf
            p -= u
        else:
            p -= buf

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon}


_BY_NAME: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}


def get(identifier: Any) -> Optimizer:
    """Return an optimizer from a Keras name (``"adam"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"``),
    a ``{"class_name", "config"}`` dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"compile: unknown optimizer {identifier!r}; known names: {sorted(_BY_NAME)}")


def serialize(opt: Optimizer) -> dict[str, Any]:
    """Return a JSON-safe ``{"class_name", "config"}`` description (inverse of ``get``)."""
    return {"class_name": type(opt).__name__, "config": opt.get_config()}
