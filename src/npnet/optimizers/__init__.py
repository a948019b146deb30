"""Optimizers with the update rules, argument names and defaults of Keras 3.

``step(params, grads)`` updates the arrays of ``params`` in place on preallocated
buffers. Each optimizer lives in its own module (``npnet.optimizers.adam``, ...);
learning-rate schedules are also reachable as ``npnet.optimizers.schedules``, Keras'
spelling.
"""

from __future__ import annotations

from typing import Any

from . import schedules
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .base import Optimizer
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Lion",
    "get",
    "serialize",
    "schedules",
]

_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
    "adadelta": Adadelta, "adamax": Adamax, "nadam": Nadam, "lion": Lion,
}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}


def get(identifier: Any) -> Optimizer:
    """Return an optimizer from a Keras name, a ``{"class_name", "config"}`` dict, or an instance.

    Names (any case): ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"``,
    ``"adadelta"``, ``"adamax"``, ``"nadam"``, ``"lion"``; each gives the optimizer with
    Keras' defaults.

    Examples
    --------
    >>> import npnet
    >>> npnet.optimizers.get("nadam")
    Nadam(learning_rate=0.001)
    """
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
