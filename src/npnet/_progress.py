"""Progress output for fit/evaluate/predict.

``verbose=1`` on a terminal: one bar per epoch, redrawn in place at most ten times a
second. ``verbose=1`` when the stream is not a terminal (CI, a pipe, a log file), and
``verbose=2``: one line per epoch. ``verbose=0``: nothing.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import numpy as np


def resolve_verbose(verbose: Any, owner: str) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"{owner}: `verbose` must be 'auto', 0, 1 or 2, received {verbose!r}")
    return int(verbose)


def _fmt(v: Any) -> str:
    """A logged value: a number to 4 decimals; an array (a per-class metric) element-wise."""
    if isinstance(v, np.ndarray):
        return np.array2string(v, precision=4, floatmode="fixed", separator=" ")
    return f"{v:.4f}"


def _fmt_values(values: dict[str, Any]) -> str:
    return "".join(f" - {k}: {_fmt(v)}" for k, v in values.items())


def _fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


class ProgressBar:
    """A Keras-style progress bar over ``target`` steps."""

    min_interval = 0.1
    width = 30

    def __init__(self, target: int, verbose: int, stream: IO[str] | None = None) -> None:
        self.target = target
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.mode = "none" if verbose == 0 else ("bar" if verbose == 1 and isatty else "line")
        self.start = time.perf_counter()
        self._last = 0.0
        self._prev_len = 0

    def _bar(self, step: int) -> str:
        done = int(self.width * step / max(self.target, 1))
        arrow = ">" if step < self.target else "="
        bar = "=" * max(done - 1, 0) + (arrow if done else "") + "." * (self.width - done)
        return f"{step}/{self.target} [{bar}]"

    def _write(self, text: str, end: str = "") -> None:
        pad = " " * max(self._prev_len - len(text), 0)
        self.stream.write("\r" + text + pad + end)
        self.stream.flush()
        self._prev_len = 0 if end else len(text)

    def update(self, step: int, values: dict[str, float]) -> None:
        """Redraw after ``step`` steps (throttled); only in bar mode."""
        if self.mode != "bar":
            return
        now = time.perf_counter()
        if step < self.target and now - self._last < self.min_interval:
            return
        self._last = now
        elapsed = now - self.start
        eta = elapsed / step * (self.target - step) if step else 0.0
        self._write(f"{self._bar(step)} - ETA: {_fmt_time(eta)}{_fmt_values(values)}")

    def finish(self, values: dict[str, float]) -> None:
        """Write the final line of the epoch (both modes)."""
        if self.mode == "none":
            return
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(self.target, 1)
        timing = f"{_fmt_time(elapsed)} {per_step * 1000:.0f}ms/step"
        if self.mode == "bar":
            self._write(f"{self._bar(self.target)} - {timing}{_fmt_values(values)}", end="\n")
        else:
            self.stream.write(f"{self.target}/{self.target} - {timing}{_fmt_values(values)}\n")
            self.stream.flush()
