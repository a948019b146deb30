"""Run memory-bound NumPy work on several cores.

NumPy runs an element-wise operation on one core, one whole array at a time, but it
releases the GIL inside the loop. Large arrays are therefore cut into contiguous chunks
along their first axis: each chunk goes through all the steps of a layer while it is
still in the CPU cache, and the chunks are handed to a small thread pool. Matrix
products are left alone: BLAS has threads of its own.

The chunks depend only on the array's size, never on the thread count, so a reduction
summed chunk by chunk gives the same bits with one thread or with eight.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

__all__ = ["get_num_threads", "set_num_threads", "spans", "run", "total"]

#: Chunks hold about this many elements (1 MB of float32): small enough that the
#: temporaries of a chunk stay in the CPU cache, large enough to amortize the call overhead.
CHUNK_ELEMENTS = 1 << 18
#: At most this many chunks per array.
MAX_CHUNKS = 64

T = TypeVar("T")


def _threads_from_env() -> int:
    raw = os.environ.get("NPNET_NUM_THREADS")
    if raw is None or raw.strip() == "":
        return max(1, min(4, os.cpu_count() or 1))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"NPNET_NUM_THREADS: expected a positive integer, received {raw!r}") from None
    if value < 1:
        raise ValueError(f"NPNET_NUM_THREADS: expected a positive integer, received {raw!r}")
    return value


_THREADS = _threads_from_env()
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    # A forked child has none of the parent's worker threads: it starts its own pool.
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def get_num_threads() -> int:
    """Return the number of threads npnet uses for element-wise work.

    The default is ``$NPNET_NUM_THREADS``, else the number of CPUs up to 4. Matrix
    products use BLAS's own threads (``OPENBLAS_NUM_THREADS`` and friends).

    Examples
    --------
    >>> import npnet
    >>> npnet.get_num_threads() >= 1
    True
    """
    return _THREADS


def set_num_threads(n: int) -> None:
    """Set the number of threads npnet uses for element-wise work.

    Results do not depend on this number: every array is cut into the same chunks
    whatever the thread count, and only the number of workers changes.

    Parameters
    ----------
    n : int
        At least 1; 1 runs everything on the calling thread.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` is smaller than 1.
    """
    global _THREADS, _POOL
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: `n` must be an integer, received {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: `n` must be at least 1, received {n}")
    with _POOL_LOCK:
        if n != _THREADS and _POOL is not None:
            # Another thread may be running chunks on the old pool: it finishes them (a
            # chunk it had yet to hand over runs on that thread), and the old workers
            # exit when they are done.
            _POOL.shutdown(wait=False)
            _POOL = None
        _THREADS = n


def spans(length: int, elements: int) -> list[tuple[int, int]]:
    """Split ``range(length)`` (the first axis of an array of ``elements`` items) into chunks.

    Chunks of about :data:`CHUNK_ELEMENTS` elements, at most :data:`MAX_CHUNKS` of them;
    one chunk for small arrays.
    """
    pieces = max(1, min(MAX_CHUNKS, length, round(elements / CHUNK_ELEMENTS)))
    bounds = [length * k // pieces for k in range(pieces + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run(fn: Callable[[int, int], T], length: int, elements: int) -> list[T]:
    """Call ``fn(start, stop)`` on every chunk of :func:`spans`, in parallel; return the results in order.

    Every chunk has finished (or was never started) when this returns or raises: no
    worker is still writing into the caller's arrays once an exception, a
    ``KeyboardInterrupt`` included, reaches the caller. The first exception of a chunk
    is raised after the others are done.
    """
    chunks = spans(length, elements)
    if len(chunks) == 1 or _THREADS == 1:
        return [fn(a, b) for a, b in chunks]
    global _POOL
    with _POOL_LOCK:  # several threads may run models at once; they share one pool
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="npnet")
        pool = _POOL
    futures: list[Future[T]] = []
    try:
        for a, b in chunks:
            try:
                futures.append(pool.submit(fn, a, b))
            except RuntimeError:  # set_num_threads shut this pool down meanwhile: run the chunk here
                futures.append(_done(fn, a, b))
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()  # chunks not started yet never start
        _wait_all(futures)
        raise


def _done(fn: Callable[[int, int], T], a: int, b: int) -> Future[T]:
    """A finished future holding ``fn(a, b)`` or its exception."""
    future: Future[T] = Future()
    try:
        future.set_result(fn(a, b))
    except Exception as e:
        future.set_exception(e)
    return future


def _wait_all(futures: list[Future[Any]]) -> None:
    """Wait until every future has finished or was cancelled; a Ctrl-C meanwhile is
    raised once they all have."""
    interrupted: BaseException | None = None
    while True:
        try:
            wait(futures)
            break
        except KeyboardInterrupt as e:
            interrupted = e
    if interrupted is not None:
        raise interrupted


def total(parts: list[Any]) -> Any:
    """Sum partial results in chunk order (a fixed order, so the bits never change)."""
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out
