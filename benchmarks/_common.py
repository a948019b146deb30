"""Shared set-up of the side-by-side benchmarks."""

from __future__ import annotations

import argparse
import os
import resource
import runpy
import time
from collections.abc import Callable


def parse_and_pin_threads(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add ``--batch-size`` and ``--threads``, parse, and give both libraries the same threads.

    Must run before NumPy or PyTorch is imported: BLAS reads its thread count at import.
    """
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    return args


def add_cpu_time(parser: argparse.ArgumentParser) -> None:
    """Add ``--cpu-time``: time steps by the process's CPU time (see :func:`step_clock`)."""
    parser.add_argument("--cpu-time", action="store_true",
                        help="time steps by the process's CPU time (with --threads 1, on a busy machine)")


def step_clock(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Callable[[], float]:
    """The clock steps are timed by: CPU time with ``--cpu-time`` (which needs one thread,
    as a thread pool's spinning counts as CPU time), else the wall clock."""
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1 (with more, a thread pool's spinning counts as CPU time)")
    return time.process_time if args.cpu_time else time.perf_counter


def npnet_train_step(model, x, y, fused: bool = True) -> Callable[[], None]:
    """One training step of a compiled npnet ``model`` on the batch ``(x, y)``, as ``fit``
    runs it (with the arrays ``fit`` keeps between batches, also reachable as the
    function's ``buffers``); ``fused`` checks that the softmax and its loss take the fused
    path, as they do in ``fit``."""
    if fused:
        assert model._fused_outputs(x[:2]) == [True]
    params, grads, owners = model._trainable_arrays()
    buffers: dict = {}

    def step() -> None:
        model._train_step(x, [y], params, grads, owners, buffers)

    step.buffers = buffers  # type: ignore[attr-defined]
    return step


def alternate(steps: dict[str, Callable[[int], None]], rounds: int, block: int = 1,
              clock: Callable[[], float] = time.perf_counter) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Run each library's step ``block`` times in turn, for ``rounds`` turns.

    Alternating keeps both libraries under the same machine load. ``steps[name](i)`` gets
    the round number ``i`` (from 1). Returns the seconds of every step (by ``clock``:
    wall time, or ``time.process_time`` for the CPU time of a one-thread run) and the page
    faults per step of each library: a fresh large array costs page faults, which can
    weigh as much as the arithmetic that fills it.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    faults = dict.fromkeys(steps, 0)
    for i in range(1, rounds + 1):
        for name, fn in steps.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(block):
                t0 = clock()
                fn(i)
                times[name].append(clock() - t0)
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return times, {name: faults[name] / len(times[name]) for name in steps}


def example_model(kind: str):
    """``build_model(kind, 0)`` of the Chinese-MNIST example script (run as a module, not as main)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "chinese_mnist.py")
    return runpy.run_path(path)["build_model"](kind, 0)


class StepProfile:
    """Seconds spent in each part of npnet's training step, measured by wrapping methods.

    ``wrap(obj, method, label)`` replaces ``obj.method`` (on the instance) with a timed
    call adding its seconds to ``label``; ``restore()`` puts every method back. Timers
    nest: a wrapped call inside another wrapped call counts in both labels, so subtract
    when a part contains another. ``layer_calls(model)`` wraps every layer's forward,
    backward and fused backward (the calls the tape makes), labelled ``(name, "forward")``
    and ``(name, "backward")``.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict = {}
        self._saved: list = []

    def wrap(self, obj, method: str, label) -> None:
        inner = getattr(obj, method)
        self.seconds.setdefault(label, 0.0)

        def timed(*args, **kwargs):
            t0 = self.clock()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += self.clock() - t0

        self._saved.append((obj, method, vars(obj).get(method)))
        setattr(obj, method, timed)

    def layer_calls(self, model) -> list:
        """Wrap the layer calls of ``model``; returns its layers with parameters or a forward."""
        layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
        for layer in layers:
            self.wrap(layer, "forward", (layer.name, "forward"))
            self.wrap(layer, "backward", (layer.name, "backward"))
            self.wrap(layer, "_backward_from_logits", (layer.name, "backward"))
        return layers

    def restore(self) -> None:
        for obj, method, own in reversed(self._saved):
            if own is None:
                delattr(obj, method)  # back to the class's method
            else:
                setattr(obj, method, own)
        self._saved.clear()


def fastest_block(seconds: list[float], block: int) -> float:
    """Mean seconds per step of the fastest block of ``block`` consecutive steps: on a busy
    machine, the closest figure to the library's speed when it has the cores to itself."""
    means = [sum(seconds[i:i + block]) / len(seconds[i:i + block]) for i in range(0, len(seconds), block)]
    return min(means)
