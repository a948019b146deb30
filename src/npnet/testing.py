"""Public numerical gradient checking.

:func:`check_gradients` compares a layer's (or a whole model's) backward pass with central differences computed in float64:

.. math:: \\frac{\\partial L}{\\partial \\theta_i} \\approx \\frac{L(\\theta + \\epsilon e_i) - L(\\theta - \\epsilon e_i)}{2 \\epsilon}

for every element of the input and of every parameter, or of a loss's ``y_pred``. Use it
on your own layers and losses::

    from npnet.testing import check_gradients
    report = check_gradients(MyLayer(), x)   # raises GradientCheckError on a mismatch
    print(report)
    check_gradients(MyLoss(), y_true=y, y_pred=p)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_float, check_int
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
    abs_tol: float = 0.0
    repeat_max_diff: float = 0.0
    repeatable: bool = True


@dataclass
class GradientCheckReport:
    """Settings and one :class:`GradientEntry` per checked array. ``str(report)`` is a readable table."""

    target: str
    eps: float
    atol: float
    rtol: float
    training: bool
    objective: str
    input_shape: tuple
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
                f"max rel={e.max_rel_err:.3e} worst at {idx}: analytic={a:.8g} numeric={n:.8g} "
                f"abs tol={e.abs_tol:.1e}"
            )
            if not e.repeatable:
                lines.append(
                    f"       {e.name}: a second backward on the same cache gave a different gradient (max "
                    f"difference {e.repeat_max_diff:.3e}): backward must set self.grads[k], never add to it")
        for e in self.entries:
            if not e.passed and e.analytic.size <= 64:
                lines.append(f"  {e.name} analytic:\n{np.array2string(e.analytic, precision=6)}")
                lines.append(f"  {e.name} numeric:\n{np.array2string(e.numeric, precision=6)}")
        return "\n".join(lines)


def _as64(obj: Any) -> None:
    """Convert a layer's arrays (params, grads, state) to float64 in place."""
    for d in ("params", "grads", "state"):
        arrays = getattr(obj, d, None)
        if isinstance(arrays, dict):
            for k in list(arrays):
                arrays[k] = np.asarray(arrays[k], dtype=np.float64)


def _all_layers(root: Layer) -> list[Any]:
    """``root``, every layer inside it, and their helper layers (a Dense layer's activation)."""
    found: list[Any] = []
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found.append(obj)
        stack.extend(layer for _, layer in obj._children())
        stack.extend(v for v in vars(obj).values() if isinstance(v, Layer))
    return found


def _generators(objs: list[Any]) -> list[tuple[Any, str, Any]]:
    found = []
    for obj in objs:
        for k, v in vars(obj).items():
            if isinstance(v, np.random.Generator):
                found.append((obj, k, copy.deepcopy(v.bit_generator.state)))
    return found


def _input64(value: Any) -> np.ndarray:
    """A float input in float64; integer and boolean inputs (ids for an Embedding) stay as
    they are: they are not differentiable, and their gradient is not checked."""
    arr = np.array(value)
    return arr if arr.dtype.kind in "iub" else arr.astype(np.float64)


def _inputs64(x: Any) -> tuple[Any, list[np.ndarray], list[str]]:
    """``x`` (an array, a list or a dict of arrays) in float64: structure, arrays, names."""
    if isinstance(x, dict):
        arrays = [_input64(v) for v in x.values()]
        return dict(zip(x, arrays)), arrays, [f"x[{k!r}]" for k in x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, np.ndarray) for v in x):
        arrays = [_input64(v) for v in x]
        return list(arrays), arrays, [f"x[{i}]" for i in range(len(arrays))]
    arr = _input64(x)
    return arr, [arr], ["x"]


_NOISE = 64 * float(np.finfo(np.float64).eps)


def _sample(size: int, max_checks: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(size)
    if max_checks is not None and size > max_checks:
        indices = np.sort(rng.choice(size, size=max_checks, replace=False))
    mask = np.zeros(size, dtype=bool)
    mask[indices] = True
    return indices, mask


def _difference(plus: tuple, minus: tuple) -> tuple[float, float]:
    """``objective(+eps) - objective(-eps)`` and the magnitude its rounding error scales with.

    An objective is ``(value, magnitude, terms)``. With ``terms`` (the projected outputs
    ``o * r``), the difference is taken term by term: a term the perturbed element does not
    reach is computed identically both times and cancels exactly, so only the terms it
    reaches add rounding noise, and a gradient far smaller than the whole objective is
    still resolved."""
    if plus[2] is None:
        return plus[0] - minus[0], max(plus[1], minus[1])
    diff = magnitude = 0.0
    for tp, tm in zip(plus[2], minus[2]):
        changed = tp != tm
        if changed.any():
            diff += float(np.sum(tp[changed] - tm[changed]))
            magnitude += float(np.sum(np.abs(tp[changed]) + np.abs(tm[changed])))
    return diff, magnitude


def _numeric(arr: np.ndarray, indices: np.ndarray, eps: float, objective: Any) -> tuple[np.ndarray, float]:
    """Central differences of ``objective() -> (value, magnitude, terms)`` for the elements
    ``indices`` of ``arr`` (perturbed in place and restored), and the largest magnitude seen."""
    numeric = np.zeros_like(arr)
    flat, num_flat = arr.reshape(-1), numeric.reshape(-1)
    magnitude = 0.0
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        plus = objective()
        flat[i] = old - eps
        minus = objective()
        flat[i] = old
        diff, m = _difference(plus, minus)
        num_flat[i] = diff / (2 * eps)
        magnitude = max(magnitude, m)
    return numeric, magnitude


def _compare(name: str, arr: np.ndarray, analytic: np.ndarray, numeric: np.ndarray, mask: np.ndarray,
             checked: int, magnitude: float, eps: float, atol: float, rtol: float,
             again: np.ndarray | None) -> GradientEntry:
    """One report entry. An element passes if ``|a - n| <= rtol |n| + abs_tol`` with
    ``abs_tol = min(atol, max(atol * s, noise))``: ``s`` is the largest gradient element of
    the array (analytic or numeric), so a gradient far smaller than ``atol`` is still
    compared at its own scale, and ``noise`` is the rounding error of the central
    differences, ``64 * machine epsilon * |objective| / eps``."""
    a = analytic.reshape(-1)
    n = numeric.reshape(-1)
    err = np.where(mask, np.abs(a - n), 0.0)
    scale = float(max(np.abs(np.where(mask, a, 0.0)).max(initial=0.0), np.abs(n).max(initial=0.0)))
    noise = _NOISE * magnitude / eps
    abs_tol = min(atol, max(atol * scale, noise))
    tol = abs_tol + rtol * np.abs(n)
    rel = np.where(mask, err / np.maximum(np.abs(n), 1e-12), 0.0)
    worst = int(np.argmax(err - tol)) if a.size else 0
    repeat_diff, repeatable = 0.0, True
    if again is not None:
        repeat_diff = float(np.abs(analytic - again).max(initial=0.0))
        repeatable = repeat_diff <= 1e-9 * float(np.abs(analytic).max(initial=0.0))
    return GradientEntry(
        name=name, shape=tuple(arr.shape), analytic=analytic, numeric=numeric, checked=checked,
        max_abs_err=float(err.max(initial=0.0)), max_rel_err=float(rel.max(initial=0.0)),
        worst_index=tuple(int(i) for i in np.unravel_index(worst, arr.shape)) if arr.size else (),
        passed=bool(np.all(err <= tol)) and repeatable, abs_tol=abs_tol, repeat_max_diff=repeat_diff,
        repeatable=repeatable,
    )


def _check_loss(loss: Loss, y_true: Any, y_pred: Any, sample_weight: Any, eps: float, atol: float, rtol: float,
                max_checks: int | None, rng: np.random.Generator) -> GradientCheckReport:
    """:func:`check_gradients` for a :class:`~npnet.losses.Loss`: ``backward()`` against
    central differences of ``forward`` with respect to ``y_pred``."""
    name = type(loss).__name__
    if y_true is None or y_pred is None:
        raise ValueError(f"check_gradients: checking the loss {name} needs `y_true` and `y_pred` "
                         f"(check_gradients(loss, y_true=..., y_pred=...))")
    lo = copy.deepcopy(loss)
    pred = np.array(y_pred, dtype=np.float64)

    def objective() -> tuple[float, float, None]:
        value = float(lo(y_true, pred, sample_weight))
        return value, abs(value), None

    objective()
    analytic = np.asarray(lo.backward())
    if analytic.shape != pred.shape:
        raise ValueError(f"check_gradients: {name}.backward() returned shape {analytic.shape}, expected the shape "
                         f"of y_pred {pred.shape}")
    analytic = np.array(analytic, dtype=np.float64)
    again = np.array(lo.backward(), dtype=np.float64)
    indices, mask = _sample(pred.size, max_checks, rng)
    numeric, magnitude = _numeric(pred, indices, eps, objective)
    report = GradientCheckReport(target=name, eps=eps, atol=atol, rtol=rtol, training=False,
                                 objective=f"loss {name}" + (" with sample_weight" if sample_weight is not None
                                                            else ""), input_shape=tuple(pred.shape))
    report.entries.append(_compare("y_pred", pred, analytic, numeric, mask, int(indices.size), magnitude, eps,
                                   atol, rtol, again))
    return report


def check_gradients(
    target: Any,
    x: Any = None,
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
    y_true: Any = None,
    y_pred: Any = None,
    sample_weight: Any = None,
) -> GradientCheckReport:
    """Check the backward pass of a layer, a model or a loss numerically.

    The target is deep-copied and converted to float64, so the original is untouched.
    Any layer works: a primitive, a composite layer, or a model of any kind (Sequential,
    functional, subclassed) with any number of inputs and outputs. For composites and
    models the analytic gradients come from the tape, exactly as ``fit`` computes them.

    For a :class:`~npnet.losses.Loss`, pass ``y_true=`` and ``y_pred=`` (and optionally
    ``sample_weight=``): its ``backward()`` is compared with central differences of its
    ``forward`` with respect to ``y_pred``.

    Analytic gradients are computed twice from the same forward cache and must agree: a
    backward that adds to ``self.grads[k]`` instead of setting it fails.

    Parameters
    ----------
    target : Layer, Model or Loss
    x : array, list of arrays or dict of arrays
        An input batch (several arrays for a model with several inputs or a merge layer).
        Required for a layer or model.
    y : array, list or dict, optional
        Targets; with ``loss`` (or a compiled model's losses) the objective is that loss.
    loss : str or Loss, optional
        Without a loss, the objective is ``sum_k sum(output_k * R_k)`` for fixed random
        ``R_k``, which exercises every output element.
    eps : float, default 1e-6
        Central-difference step.
    atol, rtol : float
        An element passes if ``|analytic - numeric| <= abs_tol + rtol * |numeric|``, where
        ``abs_tol = min(atol, max(atol * s, noise))``: ``s`` is the largest gradient element
        of that array, so a wrong gradient far smaller than ``atol`` still fails, and
        ``noise`` is the rounding error of the central differences
        (``64 * 2.2e-16 * |objective| / eps``), so a correct tiny gradient still passes.
    training : bool, default False
        Run forward in training mode (batch statistics, dropout masks: random streams are
        rewound before every evaluation so each sees the same mask).
    max_checks : int, optional
        Check at most this many randomly chosen elements per array (for big layers).
    seed : int, default 0
        Seed of ``R`` and of the element sample.
    raise_on_failure : bool, default True
        Raise :class:`GradientCheckError` (with the report as message) on a mismatch.
    y_true, y_pred, sample_weight : array, optional
        Targets, predictions and weights when ``target`` is a loss.

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
    >>> check_gradients(npnet.losses.Huber(), y_true=np.zeros((3, 2)), y_pred=x[:, :2]).passed
    True
    """
    from . import _tape
    from .models import Model
    from .models._structure import flatten

    eps = check_float(eps, "eps", low=0.0, low_inclusive=False, owner="check_gradients")
    atol = check_float(atol, "atol", low=0.0, owner="check_gradients")
    rtol = check_float(rtol, "rtol", low=0.0, owner="check_gradients")
    if max_checks is not None:
        max_checks = check_int(max_checks, "max_checks", minimum=1, owner="check_gradients")
    rng = np.random.default_rng(seed)
    if isinstance(target, Loss):
        if x is not None or y is not None or loss is not None:
            raise ValueError("check_gradients: for a loss pass y_true= and y_pred= (x, y and loss are for layers)")
        report = _check_loss(target, y_true, y_pred, sample_weight, eps, atol, rtol, max_checks, rng)
        if raise_on_failure and not report.passed:
            raise GradientCheckError(str(report))
        return report
    if not isinstance(target, Layer):
        raise TypeError(f"check_gradients: `target` must be an npnet Layer, Model or Loss, received {target!r}")
    if x is None:
        raise ValueError("check_gradients: `x` (an input batch) is required for a layer or model")
    if y_true is not None or y_pred is not None or sample_weight is not None:
        raise ValueError("check_gradients: y_true, y_pred and sample_weight are for a loss; for a layer pass x, "
                         "y and loss")
    inputs, xs, x_names = _inputs64(x)
    is_model = isinstance(target, Model)
    t: Any = copy.deepcopy(target)
    if not t.built:
        if t._is_composite():
            t(copy.deepcopy(inputs))
        else:
            t(inputs if isinstance(inputs, list) else inputs[:1])
    objs = _all_layers(t)
    for obj in objs:
        _as64(obj)
    gens = _generators(objs)

    loss_obj: Loss | None = None
    if loss is not None:
        loss_obj = _get_loss(loss)
    if y is not None and loss_obj is None and not (is_model and t.compiled):
        raise ValueError("check_gradients: targets `y` need a `loss` (or a compiled model)")
    if loss_obj is not None and y is None:
        raise ValueError("check_gradients: a loss needs targets `y`")
    use_model_loss = is_model and y is not None
    ys: list[Any] = []

    def rewind() -> None:
        for obj, k, state in gens:
            getattr(obj, k).bit_generator.state = copy.deepcopy(state)

    def run_forward(tape: Any) -> list[np.ndarray]:
        rewind()
        with _tape.running(_tape.Run(training=training, tape=tape)):
            if tape is not None:
                for a in xs:
                    tape.add_source(a)
            return flatten(t(inputs, training=training))

    out0 = run_forward(None)
    if use_model_loss:
        if loss_obj is not None:
            t.compile(optimizer="sgd", loss=loss_obj)
        if t._heads is None:
            t._heads = t._make_heads(t._output_names(t(inputs)))
        ys = t._target_arrays(y, t._heads, "check_gradients")
    projections = [rng.normal(size=o.shape) for o in out0]

    def objective_and_seeds(outs: list[np.ndarray], tape: Any, grads: bool) -> tuple[float, float, dict, dict, Any]:
        """The objective, its magnitude (for the rounding-noise estimate), the seeds, and
        the projected output terms (None for a loss)."""
        if use_model_loss:
            value, _, seeds, fused = t._loss(outs, ys, tape, grads=grads)
            return value, abs(value), seeds, fused, None
        if loss_obj is None:
            terms = [o * r for o, r in zip(outs, projections)]
            value = float(sum(np.sum(v) for v in terms))
            magnitude = float(sum(np.sum(np.abs(v)) for v in terms))
            return value, magnitude, {id(o): r for o, r in zip(outs, projections)} if grads else {}, {}, terms
        if len(outs) != 1:
            raise ValueError("check_gradients: `loss` works with one output; compile the model with one loss per output")
        value = float(loss_obj.forward(y, outs[0]))
        return value, abs(value), {id(outs[0]): loss_obj.backward()} if grads else {}, {}, None

    def objective() -> tuple[float, float, Any]:
        tape = _tape.Tape(strict=False)
        outs = run_forward(tape)
        with _tape.running(_tape.Run(training=training, tape=tape)):
            value, magnitude, _, _, terms = objective_and_seeds(outs, tape, grads=False)
            return value, magnitude, terms

    checked = [a for a in xs if a.dtype.kind == "f"]  # integer ids have no gradient
    # Analytic pass, along the tape; twice on the same caches, to catch a backward that
    # adds to self.grads[k] instead of setting it.
    tape = _tape.Tape(input_grads=True)
    outs = run_forward(tape)
    with _tape.running(_tape.Run(training=training, tape=tape)):
        _, _, seeds, fused, _ = objective_and_seeds(outs, tape, grads=True)

    def analytic_pass() -> list[np.ndarray]:
        with _tape.running(_tape.Run(training=training, tape=tape)):
            grads_in, visited = tape.backward({k: np.array(v) for k, v in seeds.items()},
                                              {k: np.array(v) for k, v in fused.items()}, want={id(a) for a in xs})
        found = []
        for a in checked:
            g = grads_in.get(id(a))
            found.append(np.zeros_like(a) if g is None else np.array(g, dtype=np.float64))
        for _, layer, key in t._weight_entries():
            if key in layer.params:
                found.append(np.array(layer.grads[key], dtype=np.float64) if id(layer) in visited
                             else np.zeros_like(layer.params[key]))
        return found

    first, second = analytic_pass(), analytic_pass()
    arrays: list[tuple[str, np.ndarray]] = [(n, a) for n, a in zip(x_names, xs) if a.dtype.kind == "f"]
    arrays += [(path, layer.params[key]) for path, layer, key in t._weight_entries() if key in layer.params]

    report = GradientCheckReport(
        target=f"{type(target).__name__} '{target.name}'", eps=eps, atol=atol, rtol=rtol, training=training,
        objective=("loss " + type(loss_obj).__name__ if loss_obj is not None else
                   "compiled loss" if use_model_loss else "sum(output * R)"),
        input_shape=tuple(xs[0].shape) if len(xs) == 1 else tuple(tuple(a.shape) for a in xs),
    )
    for (name, arr), analytic, again in zip(arrays, first, second):
        indices, mask = _sample(arr.size, max_checks, rng)
        numeric, magnitude = _numeric(arr, indices, eps, objective)
        report.entries.append(_compare(name, arr, analytic, numeric, mask, int(indices.size), magnitude, eps,
                                       atol, rtol, again))
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report
