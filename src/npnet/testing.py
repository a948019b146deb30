"""Public numerical gradient checking.

:func:`check_gradients` compares a layer's (or a whole model's) hand-written backward
pass with central differences computed in float64:

.. math:: \\frac{\\partial L}{\\partial \\theta_i} \\approx \\frac{L(\\theta + \\epsilon e_i) - L(\\theta - \\epsilon e_i)}{2 \\epsilon}

for every element of the input and of every parameter. Use it on your own layers::

    from npnet.testing import check_gradients
    report = check_gradients(MyLayer(), x)   # raises GradientCheckError on a mismatch
    print(report)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .layers.base import Layer
from .losses import Loss
from .losses import get as _get_loss

__all__ = ["check_gradients", "GradientCheckReport", "GradientCheckError", "GradientEntry"]


class GradientCheckError(AssertionError):
    """Raised by :func:`check_gradients` when an analytic gradient disagrees with the numerical one."""


@dataclass
class GradientEntry:
    """Comparison for one array (the input ``x`` or one parameter)."""

    name: str
    shape: tuple[int, ...]
    analytic: np.ndarray
    numeric: np.ndarray
    checked: int
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple[int, ...]
    passed: bool


@dataclass
class GradientCheckReport:
    """Settings and one :class:`GradientEntry` per checked array. ``str(report)`` is a readable table."""

    target: str
    eps: float
    atol: float
    rtol: float
    training: bool
    objective: str
    input_shape: tuple[int, ...]
    entries: list[GradientEntry] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.entries)

    def __str__(self) -> str:
        lines = [
            f"gradient check of {self.target}: {'PASSED' if self.passed else 'FAILED'}",
            f"  settings: eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g}, training={self.training}, "
            f"objective={self.objective}, input shape={self.input_shape}, float64 central differences",
        ]
        for e in self.entries:
            status = "ok  " if e.passed else "FAIL"
            idx = e.worst_index
            a = float(e.analytic[idx]) if e.analytic.size else float("nan")
            n = float(e.numeric[idx]) if e.numeric.size else float("nan")
            lines.append(
                f"  {status} {e.name:<20} shape={e.shape} checked={e.checked} max|a-n|={e.max_abs_err:.3e} "
                f"max rel={e.max_rel_err:.3e} worst at {idx}: analytic={a:.8g} numeric={n:.8g}"
            )
        for e in self.entries:
            if not e.passed and e.analytic.size <= 64:
                lines.append(f"  {e.name} analytic:\n{np.array2string(e.analytic, precision=6)}")
                lines.append(f"  {e.name} numeric:\n{np.array2string(e.numeric, precision=6)}")
        return "\n".join(lines)


def _as64(obj: Any) -> None:
    """Convert a layer's arrays (params, grads, state, nested activation) to float64 in place."""
    for d in ("params", "grads", "state"):
        arrays = getattr(obj, d, None)
        if isinstance(arrays, dict):
            for k in list(arrays):
                arrays[k] = np.asarray(arrays[k], dtype=np.float64)


def _generators(objs: list[Any]) -> list[tuple[Any, str, Any]]:
    found = []
    for obj in objs:
        for k, v in vars(obj).items():
            if isinstance(v, np.random.Generator):
                found.append((obj, k, copy.deepcopy(v.bit_generator.state)))
    return found


def check_gradients(
    target: Any,
    x: Any,
    y: Any = None,
    loss: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    training: bool = False,
    max_checks: int | None = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradientCheckReport:
    """Check the backward pass of a layer or a ``Sequential`` model numerically.

    The target is deep-copied and converted to float64, so the original is untouched.

    Parameters
    ----------
    target : Layer or Sequential
    x : array
        An input batch.
    y : array, optional
        Targets; with ``loss`` (or a compiled model's loss) the objective is that loss.
    loss : str or Loss, optional
        Without a loss, the objective is ``sum(output * R)`` for a fixed random ``R``,
        which exercises every output element.
    eps : float, default 1e-6
        Central-difference step.
    atol, rtol : float
        An element passes if ``|analytic - numeric| <= atol + rtol * |numeric|``.
    training : bool, default False
        Run forward in training mode (batch statistics, dropout masks: random streams are
        rewound before every evaluation so each sees the same mask).
    max_checks : int, optional
        Check at most this many randomly chosen elements per array (for big layers).
    seed : int, default 0
        Seed of ``R`` and of the element sample.
    raise_on_failure : bool, default True
        Raise :class:`GradientCheckError` (with the report as message) on a mismatch.

    Returns
    -------
    GradientCheckReport

    Examples
    --------
    >>> import numpy as np, npnet
    >>> from npnet.testing import check_gradients
    >>> x = np.random.default_rng(0).normal(size=(3, 4))
    >>> check_gradients(npnet.layers.Dense(2, activation="tanh"), x).passed
    True
    """
    from .model import Sequential

    rng = np.random.default_rng(seed)
    x64 = np.array(x, dtype=np.float64)
    is_model = isinstance(target, Sequential)
    if not is_model and not isinstance(target, Layer):
        raise TypeError(f"check_gradients: `target` must be an npnet Layer or Sequential, received {target!r}")
    t = copy.deepcopy(target)
    layers = t.layers if is_model else [t]
    if is_model:
        if not t.built:
            t.build((None,) + x64.shape[1:])
    elif not t.built:
        t.forward(np.zeros_like(x64[:1]))
    objs: list[Any] = []
    for layer in layers:
        layer.compute_input_grad = True
        stack = [layer]
        while stack:
            obj = stack.pop()
            objs.append(obj)
            _as64(obj)
            for v in vars(obj).values():
                if isinstance(v, Layer):
                    stack.append(v)
    gens = _generators(objs)

    loss_obj: Loss | None = None
    if loss is not None:
        loss_obj = _get_loss(loss)
    elif is_model and t.compiled and y is not None:
        loss_obj = t.loss
    if loss_obj is not None and y is None:
        raise ValueError("check_gradients: a loss needs targets `y`")
    fused = False
    if is_model and loss_obj is not None:
        t.loss = loss_obj
        fused = t._fused()

    def rewind() -> None:
        for obj, k, state in gens:
            getattr(obj, k).bit_generator.state = copy.deepcopy(state)

    def run_forward(inp: np.ndarray) -> np.ndarray:
        rewind()
        if is_model:
            return t._forward(inp, training, fused)
        return t.forward(inp, training)

    out0 = run_forward(x64)
    proj = rng.normal(size=out0.shape)

    def objective(inp: np.ndarray) -> float:
        out = run_forward(inp)
        if loss_obj is None:
            return float(np.sum(out * proj))
        if is_model:
            return float(t._loss(y, out, fused)[0])
        return float(loss_obj.forward(y, out))

    # Analytic pass.
    out = run_forward(x64)
    if loss_obj is None:
        dy = proj
        if is_model:
            d = dy
            for layer in reversed(t.layers):
                d = layer.backward(d)
            dx = d
        else:
            dx = t.backward(dy)
    elif is_model:
        t._loss(y, out, fused)
        dx = t._backward(fused)
    else:
        loss_obj.forward(y, out)
        dx = t.backward(loss_obj.backward())

    arrays: list[tuple[str, np.ndarray, np.ndarray]] = [("x", x64, np.array(dx, dtype=np.float64))]
    for layer in layers:
        for k, p in layer.params.items():
            name = f"{layer.name}.{k}" if is_model else k
            arrays.append((name, p, layer.grads[k].copy()))

    report = GradientCheckReport(
        target=f"{type(target).__name__} '{target.name}'", eps=eps, atol=atol, rtol=rtol, training=training,
        objective="loss " + type(loss_obj).__name__ if loss_obj is not None else "sum(output * R)",
        input_shape=tuple(x64.shape),
    )
    for name, arr, analytic in arrays:
        numeric = np.zeros_like(arr)
        flat = arr.reshape(-1)
        indices = np.arange(flat.size)
        if max_checks is not None and flat.size > max_checks:
            indices = np.sort(rng.choice(flat.size, size=max_checks, replace=False))
        mask = np.zeros(flat.size, dtype=bool)
        mask[indices] = True
        num_flat = numeric.reshape(-1)
        for i in indices:
            old = flat[i]
            flat[i] = old + eps
            plus = objective(x64)
            flat[i] = old - eps
            minus = objective(x64)
            flat[i] = old
            num_flat[i] = (plus - minus) / (2 * eps)
        a = analytic.reshape(-1)
        err = np.where(mask, np.abs(a - num_flat), 0.0)
        tol = atol + rtol * np.abs(num_flat)
        rel = np.where(mask, err / np.maximum(np.abs(num_flat), 1e-12), 0.0)
        excess = err - tol
        worst = int(np.argmax(excess)) if flat.size else 0
        report.entries.append(GradientEntry(
            name=name, shape=tuple(arr.shape), analytic=analytic, numeric=numeric, checked=int(indices.size),
            max_abs_err=float(err.max(initial=0.0)), max_rel_err=float(rel.max(initial=0.0)),
            worst_index=tuple(int(i) for i in np.unravel_index(worst, arr.shape)) if arr.size else (),
            passed=bool(np.all(err <= tol)),
        ))
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report
