"""Ctrl-C during training: a step finishes (or is undone), then training stops.

Python turns Ctrl-C (SIGINT) into a ``KeyboardInterrupt`` raised in the main thread
between any two bytecodes: in the middle of an optimizer update, some weights would
have moved and others not. While ``fit`` runs, :func:`handling_interrupts` puts a
handler in front of the one that was there: outside a step it hands the signal on at
once; inside a step (:func:`step`) it notes the signal, and hands it on when the step
is over. The handler is installed from the main thread only (signals reach no other
thread), and only when the one in place is a Python function (by default Python's own,
which raises ``KeyboardInterrupt``); the previous handler is put back when ``fit`` ends.

An exception raised *inside* a step, not by a signal (a ``KeyboardInterrupt`` raised by
code, a ``FloatingPointError`` under ``np.seterr(all="raise")``), cannot wait. For it,
:class:`Undo` keeps copies of the arrays a step changes, and puts them back.

The signal state below is touched by the main thread only.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["handling_interrupts", "step", "Undo"]

_previous: Any = None  # the handler ours stands in front of
_installed = 0  # nesting depth of handling_interrupts in the main thread
_critical = 0  # nesting depth of step in the main thread
_pending: tuple[int, Any] | None = None  # a signal received inside a step


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _hand_on(signum: int, frame: Any) -> None:
    if callable(_previous):
        _previous(signum, frame)


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _critical:
        _pending = (signum, frame)
        return
    _hand_on(signum, frame)


@contextmanager
def handling_interrupts() -> Iterator[None]:
    """Hold Ctrl-C during each :func:`step` of the block (main thread only)."""
    global _previous, _installed, _pending
    if not _in_main_thread():
        yield
        return
    if _installed:
        _installed += 1
        try:
            yield
        finally:
            _installed -= 1
        return
    try:
        current = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):  # pragma: no cover - no signals in this interpreter
        current = None
    if not callable(current):  # SIG_IGN, SIG_DFL or a handler not set from Python: leave it
        yield
        return
    _previous, _installed, _pending = current, 1, None
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        _installed = 0
        if signal.getsignal(signal.SIGINT) is _handler:
            signal.signal(signal.SIGINT, current)
        _previous = None
        pending, _pending = _pending, None
        if pending is not None:  # cannot happen outside a step, but never drop a Ctrl-C
            current(*pending)


@contextmanager
def step() -> Iterator[None]:
    """A block that Ctrl-C does not cut in two: a signal received inside it takes effect
    when it ends (raising ``KeyboardInterrupt`` there, by default)."""
    global _critical, _pending
    if not _installed or not _in_main_thread():
        yield
        return
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
        if not _critical and _pending is not None:
            pending, _pending = _pending, None
            _hand_on(*pending)


class Undo:
    """Copies of the arrays one training step changes, to put back if the step fails.

    The copies are kept between steps (one allocation per array for a whole ``fit``).
    """

    def __init__(self) -> None:
        self._copies: dict[int, np.ndarray] = {}
        self._saved: list[tuple[np.ndarray, np.ndarray]] = []
        self._slots: list[tuple[Any, str, np.ndarray]] = []

    def clear(self) -> None:
        self._saved = []
        self._slots = []

    def save(self, arrays: Iterable[np.ndarray]) -> None:
        """Remember the current values of ``arrays``."""
        for a in arrays:
            copy = self._copies.get(id(a))
            if copy is None or copy.shape != a.shape or copy.dtype != a.dtype:
                copy = self._copies[id(a)] = np.empty_like(a)
            np.copyto(copy, a)
            self._saved.append((a, copy))

    def save_slots(self, owner: Any, slots: dict[str, Any]) -> None:
        """Remember which array ``owner`` holds under each key of ``slots`` and its values
        (a layer's ``state`` dict: a layer may replace an array instead of writing to it)."""
        for key, a in slots.items():
            if isinstance(a, np.ndarray):
                self._slots.append((slots, key, a))
                self.save([a])

    def restore(self) -> None:
        """Put every saved array back as it was when saved."""
        for slots, key, a in self._slots:
            slots[key] = a
        for a, copy in self._saved:
            if a.flags.writeable:
                np.copyto(a, copy)
        self.clear()
