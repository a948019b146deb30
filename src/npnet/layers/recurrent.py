r"""Recurrent layers over ``(batch, timesteps, features)`` sequences: SimpleRNN, LSTM, GRU.

Each layer runs its cell over the time steps with a hand-written backward pass through
time. The loop plumbing is shared (:class:`_Recurrent`); each cell writes its step and the
derivative of its step.

How a call runs, with :math:`T` steps, batch :math:`n`, :math:`D` features, :math:`U`
units and :math:`k` blocks of :math:`U` columns in the kernels (1, 4 or 3):

1. The input projection of every step at once, one GEMM:
   ``xw = x @ kernel + bias`` of shape ``(T, n, k U)`` (time first).
2. One GEMM per step for the recurrence, ``h_{t-1} @ recurrent_kernel``, and the cell's
   element-wise math.
3. Backward walks the steps in reverse and keeps the gradient of every step's
   pre-activations; the kernel, recurrent kernel and bias gradients are then single
   GEMMs (or sums) over the stacked steps, and ``dx`` one more GEMM.

Masks (Keras' rule): at a step whose mask entry is False the states are carried over
unchanged, and the output of that step is the carried state (the previous output, or
the initial state for a leading masked step).

``go_backwards=True`` reads the sequence from its last step to its first and, with
``return_sequences=True``, returns the outputs in that reversed order, as Keras does.

Dropout (training only): one mask per sequence, the same at every step: ``dropout``
on the inputs, ``recurrent_dropout`` on the state fed to the recurrent kernel.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from .. import initializers as _initializers
from .._validation import as_rng, check_bool, check_float, check_int, check_seed
from .activation import Linear, Sigmoid, Tanh, _saved_form, get_activation
from .base import InputSpec, Layer, weight_options_config
from .core import _set_named_weight_options

__all__ = ["SimpleRNN", "LSTM", "GRU"]

_LAYOUT = "(batch, timesteps, features)"


# ---------------------------------------------------------------- activations, in place
class _Fn:
    """An ``activation=`` argument applied in place to a block of pre-activations.

    ``apply(z)`` overwrites ``z`` with ``f(z)`` and returns what the derivative needs;
    ``grad(kept, dy, out)`` writes ``dy * f'(z)`` into ``out``. Tanh, sigmoid and linear
    take the derivative from the output; any other activation layer runs its own
    forward and backward.
    """

    def __init__(self, identifier: Any, owner: str) -> None:
        self.layer = get_activation(identifier, owner=owner)
        kind = type(self.layer)
        self.kind = ("linear" if self.layer is None or kind is Linear else "tanh" if kind is Tanh
                     else "sigmoid" if kind is Sigmoid else "layer")

    def apply(self, z: np.ndarray) -> Any:
        if self.kind == "tanh":
            np.tanh(z, out=z)
        elif self.kind == "sigmoid":  # 1 / (1 + e^-z) = (1 + tanh(z / 2)) / 2, without overflow
            np.multiply(z, 0.5, out=z)
            np.tanh(z, out=z)
            np.multiply(z, 0.5, out=z)
            np.add(z, 0.5, out=z)
        elif self.kind == "layer":
            y, kept = cast(Layer, self.layer).forward(z.copy())  # its cache may be its input
            z[...] = y
            return kept
        return z

    def grad(self, kept: Any, dy: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.kind == "tanh":  # 1 - y^2
            np.multiply(kept, kept, out=out)
            np.subtract(1, out, out=out)
            out *= dy
        elif self.kind == "sigmoid":  # y (1 - y)
            np.subtract(1, kept, out=out)
            out *= kept
            out *= dy
        elif self.kind == "linear":
            out[...] = dy
        else:
            out[...] = cast(Layer, self.layer).backward(kept, dy)
        return out


class _UnitForgetBias(_initializers.Initializer):
    """The LSTM bias with ones for the forget gate: ``[init(U), 1, init(2 U)]``."""

    def __init__(self, inner: _initializers.Initializer) -> None:
        super().__init__()
        self.inner = inner

    def __call__(self, shape, dtype=None, rng=None):
        units = int(shape[0]) // 4
        parts = [self.inner((units,), dtype, rng), np.ones(units, dtype=dtype or "float32"),
                 self.inner((2 * units,), dtype, rng)]
        return np.concatenate(parts).astype(dtype or parts[0].dtype, copy=False)


def _carry(keep: np.ndarray | None, new: np.ndarray, old: np.ndarray, out: np.ndarray) -> None:
    """``out = new`` where the step is real (``keep`` True), else ``old``."""
    if keep is None:
        out[...] = new
    else:
        np.copyto(out, old)
        np.copyto(out, new, where=keep)


def _split_masked(d: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The part of a state gradient that reaches this step's cell, and the part that
    skips it (to the previous state) at masked steps."""
    if keep is None:
        return d, None
    return d * keep, d * ~keep


# ---------------------------------------------------------------- the shared loop
def _check_use_cudnn(value: Any, owner: str) -> Any:
    """Keras' ``use_cudnn``: "auto" or False run npnet's loop; True (cuDNN required) is refused."""
    if not any(value is v or (isinstance(v, str) and isinstance(value, str) and value == v)
               for v in ("auto", True, False)):
        raise ValueError(f"{owner}: `use_cudnn` must be 'auto', True or False, received {value!r}")
    if value is True:
        raise ValueError(f"{owner}: `use_cudnn=True` asks for cuDNN, which npnet (NumPy on the CPU) does not "
                         "have; pass use_cudnn='auto' or False")
    return value


class _Recurrent(Layer):
    """Loop plumbing shared by SimpleRNN, LSTM and GRU (see the module docstring).

    A subclass sets ``_blocks`` (column blocks of ``U`` in the kernels), ``_states``
    (names of the states), and writes ``_scan(xw, states, keep, rmask)`` and
    ``_scan_backward(kept, dseq, dfinal, keep, rmask)``.
    """

    _blocks = 1
    _states: tuple[str, ...] = ("h",)
    _build_spec = InputSpec(ndim=3, layout=_LAYOUT)
    supports_masking = True
    kernel_initializer: Any
    recurrent_initializer: Any
    bias_initializer: Any

    def _setup(self, units: Any, activation: Any, recurrent_activation: Any, use_bias: Any,
               initializers: dict[str, Any], options: dict[str, Any], dropout: Any, recurrent_dropout: Any,
               seed: Any, return_sequences: Any, return_state: Any, go_backwards: Any, stateful: Any,
               unroll: Any) -> None:
        owner = type(self).__name__
        self.units = check_int(units, "units", minimum=1, owner=owner)
        self._act = _Fn(activation, owner)
        self.activation = _saved_form(activation)
        if recurrent_activation is not None or self._blocks > 1:
            self._rec = _Fn(recurrent_activation, owner)
            self.recurrent_activation = _saved_form(recurrent_activation)
        self.use_bias = check_bool(use_bias, "use_bias", owner=type(self).__name__)
        _set_named_weight_options(self, owner, initializers)
        for name, value in initializers.items():
            setattr(self, name, value)
        _set_named_weight_options(self, owner, **options)
        self.dropout = check_float(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.recurrent_dropout = check_float(recurrent_dropout, "recurrent_dropout", low=0.0, high=1.0,
                                             high_inclusive=False, owner=owner)
        self.seed = check_seed(seed, owner=owner)
        self._rng = as_rng(seed)
        self.return_sequences = check_bool(return_sequences, "return_sequences", owner=type(self).__name__)
        self.return_state = check_bool(return_state, "return_state", owner=type(self).__name__)
        self.go_backwards = check_bool(go_backwards, "go_backwards", owner=type(self).__name__)
        if stateful:
            raise ValueError(
                f"{owner}: `stateful=True` is not supported; keep the state yourself: call the layer with "
                "return_state=True and pass the returned states back as initial_state=")
        self.stateful = False
        # unroll is accepted for Keras compatibility; the loop is the same either way
        self.unroll = check_bool(unroll, "unroll", owner=type(self).__name__)

    def _seed_from(self, rng, epoch):
        if self.seed is None:
            self._rng = np.random.default_rng(rng.integers(2**63))
        else:
            self._rng = np.random.default_rng([self.seed, epoch])

    # ------------------------------------------------------------ calling with initial states
    def __call__(self, inputs: Any, training: bool | None = None, initial_state: Any = None, **kwargs: Any) -> Any:
        """Apply the layer: ``layer(x)``, or ``layer(x, initial_state=[h0])`` (``[h0, c0]``
        for an LSTM), which is the same as ``layer([x, h0])``."""
        if initial_state is not None:
            if isinstance(inputs, (list, tuple)):
                raise TypeError(f"{self._owner}: pass the initial state either in the input list or as "
                                "initial_state=, not both")
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            inputs = [inputs, *states]
        return super().__call__(inputs, training=training, **kwargs)

    def _check_arity(self, inputs: Any) -> bool:
        if not isinstance(inputs, (list, tuple)):
            return False
        if len(inputs) != 1 + len(self._states):
            names = ", ".join(self._states)
            raise ValueError(
                f"{self._owner}: expected {len(self._states)} initial state{'s' if len(self._states) > 1 else ''} "
                f"[{names}], received {len(inputs) - 1}")
        return True

    def _check_state_shapes(self, seq_shape: tuple, state_shapes: list[tuple]) -> None:
        for name, s in zip(self._states, state_shapes):
            if len(s) != 2 or s[1] != self.units or (s[0] is not None and seq_shape[0] is not None
                                                     and s[0] != seq_shape[0]):
                raise ValueError(
                    f"{self._owner}: expected initial state {name!r} of shape ({seq_shape[0]}, {self.units}) "
                    f"(batch, units), received {tuple(s)}")

    # symbolic calls with a list (sequence and initial states)
    def _check_build_shapes(self, shapes: list[tuple]) -> None:
        self._check_arity(shapes)
        self._check_build_spec(shapes[0])

    def _check_shapes(self, shapes: list[tuple]) -> None:
        self._check_arity(shapes)
        self._check_spec(shapes[0])
        self._check_state_shapes(shapes[0], shapes[1:])

    # ------------------------------------------------------------ building
    def _bias_shape(self) -> tuple[int, ...]:
        return (self._blocks * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape):
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        if len(input_shape) != 3:
            raise ValueError(f"{self._owner}: expected input of rank 3 {_LAYOUT}, received shape {tuple(input_shape)}")
        d, width = input_shape[-1], self._blocks * self.units
        self.add_weight("kernel", (d, width), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                        regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint)
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(ndim=3, axes={-1: d}, layout=_LAYOUT)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        n, steps = input_shape[0], input_shape[1]
        out = (n, steps, self.units) if self.return_sequences else (n, self.units)
        if self.return_state:
            return [out] + [(n, self.units) for _ in self._states]
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The input mask for ``return_sequences=True``, else None; with ``return_state``
        a list: that, then None for each state (as Keras)."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        out = mask if self.return_sequences else None
        return [out] + [None] * len(self._states) if self.return_state else out

    # ------------------------------------------------------------ forward and backward
    def _input_bias(self) -> np.ndarray | None:
        return self.params["bias"] if self.use_bias else None

    def _input_bias_grad(self) -> np.ndarray | None:
        return self.grads["bias"] if self.use_bias else None

    def _inputs(self, x: Any) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """The sequence (built and checked) and the initial states given, if any."""
        if isinstance(x, (list, tuple)):
            self._check_arity(x)
            seq = self._enter(x[0])
            states = [a if isinstance(a, np.ndarray) else np.asarray(a) for a in x[1:]]
            self._check_state_shapes(seq.shape, [a.shape for a in states])
            return seq, states
        return self._enter(x), None

    def _keep_mask(self, mask: Any, shape: tuple) -> np.ndarray | None:
        """The mask as ``(T, n, 1)`` booleans in processing order, or None if every step is real."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != tuple(shape[:2]):
            raise ValueError(f"{self._owner}: expected a mask of shape {tuple(shape[:2])} (batch, timesteps), "
                             f"received {m.shape}")
        m = m.astype(bool, copy=False)
        if m.all():
            return None
        keep = np.ascontiguousarray(m.T[:, :, None])
        return keep[::-1] if self.go_backwards else keep

    def _dropout_mask(self, rate: float, shape: tuple[int, int], dtype: Any) -> np.ndarray:
        keep = 1.0 - rate
        return (self._rng.random(shape, dtype=np.float32) < keep).astype(dtype) * np.asarray(1.0 / keep, dtype=dtype)

    def forward(self, x, training=False, mask=None):
        seq, given = self._inputs(x)
        n, steps, d = seq.shape
        if steps == 0:
            raise ValueError(f"{self._owner}: expected at least one time step, received shape {seq.shape}")
        kernel = self.params["kernel"]
        dtype = np.result_type(seq.dtype, kernel.dtype) if seq.dtype.kind == "f" else kernel.dtype
        keep = self._keep_mask(mask, seq.shape)
        xt = seq.transpose(1, 0, 2)  # time first: every step is one contiguous (n, D) block
        if self.go_backwards:
            xt = xt[::-1]
        dmask = rmask = None
        if training and self.dropout > 0:
            dmask = self._dropout_mask(self.dropout, (n, d), dtype)
            xt = xt * dmask
        if training and self.recurrent_dropout > 0:
            rmask = self._dropout_mask(self.recurrent_dropout, (n, self.units), dtype)
        xt = np.ascontiguousarray(xt, dtype=dtype)
        # 1. the input projection of all steps: one GEMM
        # (an array kept between batches while fit trains: no page faults for a fresh one)
        xw = self._new_array("xw", (steps, n, kernel.shape[1]), dtype)
        np.matmul(xt.reshape(steps * n, d), kernel, out=xw.reshape(steps * n, kernel.shape[1]))
        if self.use_bias:
            xw += self._input_bias()
        states = [np.zeros((n, self.units), dtype) for _ in self._states] if given is None else \
            [np.asarray(s, dtype=dtype) for s in given]
        # 2. the recurrence
        outputs, finals, kept = self._scan(xw, states, keep, rmask)
        if self.return_sequences:
            y = np.ascontiguousarray(outputs.transpose(1, 0, 2))
        else:
            y = outputs[-1].copy()
        out = [y] + [s.copy() for s in finals] if self.return_state else y
        cache = (xt, dmask, rmask, keep, kept, given is not None)
        return out, cache

    def backward(self, cache, dy):
        self._require_cache(cache)
        xt, dmask, rmask, keep, kept, has_states = cache
        steps, n, d = xt.shape
        dys = list(dy) if self.return_state else [dy]
        dseq = None
        dfinal = [np.zeros((n, self.units), xt.dtype) for _ in self._states]
        if self.return_sequences:
            dseq = np.ascontiguousarray(dys[0].transpose(1, 0, 2), dtype=xt.dtype)
        else:
            dfinal[0] += dys[0]
        if self.return_state:
            for acc, g in zip(dfinal, dys[1:]):
                acc += g
        # 3. backward through time: the gradient of every step's input projection
        dxw, dstates = self._scan_backward(kept, dseq, dfinal, keep, rmask)
        dxw2 = dxw.reshape(steps * n, dxw.shape[-1])
        np.matmul(xt.reshape(steps * n, d).T, dxw2, out=self.grads["kernel"])
        bias_grad = self._input_bias_grad()
        if bias_grad is not None:
            np.sum(dxw2, axis=0, out=bias_grad)
        if not self.compute_input_grad:
            return None
        dxt = (dxw2 @ self.params["kernel"].T).reshape(steps, n, d)
        if dmask is not None:
            dxt *= dmask
        if self.go_backwards:
            dxt = dxt[::-1]
        dx = np.ascontiguousarray(dxt.transpose(1, 0, 2))
        return [dx, *dstates] if has_states else dx

    def _scan(self, xw: np.ndarray, states: list[np.ndarray], keep: np.ndarray | None,
              rmask: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray], Any]:
        """Run the cell: ``(outputs (T, n, U), final states, what backward needs)``."""
        raise NotImplementedError

    def _scan_backward(self, kept: Any, dseq: np.ndarray | None, dfinal: list[np.ndarray],
                       keep: np.ndarray | None, rmask: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Set the recurrent gradients; return ``d xw`` (T, n, k U) and the initial states' gradients."""
        raise NotImplementedError

    def _recurrent_grad(self, hs: np.ndarray, rmask: np.ndarray | None, dz: np.ndarray, out: np.ndarray) -> None:
        """``out = sum_t (h_{t-1} * rmask)^T dz_t``: one GEMM over the stacked steps."""
        if rmask is not None:
            hs = hs * rmask
        steps, n, u = hs.shape
        np.matmul(hs.reshape(steps * n, u).T, dz.reshape(steps * n, dz.shape[-1]), out=out)

    # ------------------------------------------------------------ config
    def get_config(self):
        config = {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
        }
        if hasattr(self, "recurrent_activation"):
            config["recurrent_activation"] = self.recurrent_activation
        config.update({
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            **weight_options_config(self, "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                                    "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                                    "bias_constraint"),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
        })
        return config


_COMMON_DOC = """units : int
        Size of the state and of the output.
    use_bias : bool, default True
    kernel_initializer : str or Initializer, default "glorot_uniform"
    recurrent_initializer : str or Initializer, default "orthogonal"
    bias_initializer : str or Initializer, default "zeros"
    kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer : optional
        Weight and output penalties (see :mod:`npnet.regularizers`).
    kernel_constraint, recurrent_constraint, bias_constraint : optional
        Projections after each optimizer update (see :mod:`npnet.constraints`).
    dropout : float in [0, 1), default 0
        Fraction of the input features dropped in training (one mask per sequence).
    recurrent_dropout : float in [0, 1), default 0
        Fraction of the state dropped before the recurrent kernel in training.
    seed : int, optional
        Seed of the dropout masks.
    return_sequences : bool, default False
        Return the output of every step ``(batch, timesteps, units)`` instead of the last
        ``(batch, units)``.
    return_state : bool, default False
        Also return the final states: ``[output, *states]``.
    go_backwards : bool, default False
        Read the sequence from its end; the returned sequence is in that reversed order.
    stateful : bool, default False
        Only False is supported.
    unroll : bool, default False
        Accepted and ignored (the loop is the same either way).

    initial_state : list of arrays, optional
        A call argument, ``layer(x, initial_state=[h0])`` (``[h0, c0]`` for an LSTM), each
        ``(batch, units)``; arrays or symbolic tensors. Default zeros.
    mask : ndarray of bool, optional
        A call argument ``(batch, timesteps)``, True for a real step; it also arrives with
        its input (from ``Embedding(mask_zero=True)`` or ``Masking``).
"""


def _shared_arguments(cls: type) -> type:
    """Put the arguments every recurrent layer shares into ``cls``'s docstring."""
    cls.__doc__ = (cls.__doc__ or "").replace("<the arguments shared by the recurrent layers>", _COMMON_DOC.strip())
    return cls


# ---------------------------------------------------------------- SimpleRNN
@_shared_arguments
class SimpleRNN(_Recurrent):
    r"""Fully connected recurrent layer: the output is fed back as the next state.

    With :math:`W` = ``kernel`` ``(features, units)``, :math:`U` = ``recurrent_kernel``
    ``(units, units)`` and :math:`b` = ``bias``:

    .. math::
        h_t = \phi(x_t W + h_{t-1} U + b)

    Backward through time, with :math:`\delta_t = \partial L / \partial (x_t W + h_{t-1} U + b)`:

    .. math::
        \delta_t = \big(\tfrac{\partial L}{\partial h_t}\big) \odot \phi'(\cdot), \qquad
        \frac{\partial L}{\partial h_{t-1}} \mathrel{+}= \delta_t U^\top, \qquad
        \frac{\partial L}{\partial U} = \sum_t h_{t-1}^\top \delta_t

    Parameters
    ----------
    activation : str, function or activation layer, default "tanh"
        :math:`\phi`; None means linear.
    <the arguments shared by the recurrent layers>
    Examples
    --------
    >>> import numpy as np, npnet
    >>> rnn = npnet.layers.SimpleRNN(4, return_sequences=True)
    >>> rnn(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 5, 4)
    >>> [w.shape for w in rnn.get_weights()]
    [(3, 4), (4, 4), (4,)]
    """

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", recurrent_initializer: Any = "orthogonal",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False, seed: int | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self._setup(units, activation, None, use_bias,
                    {"kernel_initializer": kernel_initializer, "recurrent_initializer": recurrent_initializer,
                     "bias_initializer": bias_initializer},
                    {"kernel_regularizer": kernel_regularizer, "recurrent_regularizer": recurrent_regularizer,
                     "bias_regularizer": bias_regularizer, "activity_regularizer": activity_regularizer,
                     "kernel_constraint": kernel_constraint, "recurrent_constraint": recurrent_constraint,
                     "bias_constraint": bias_constraint},
                    dropout, recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll)

    def _scan(self, xw, states, keep, rmask):
        steps, n, u = xw.shape
        rk = self.params["recurrent_kernel"]
        hs = np.empty((steps + 1, n, u), xw.dtype)  # hs[t] = h_{t-1}; hs[0] the initial state
        hs[0] = states[0]
        rec = np.empty((n, u), xw.dtype)
        acts = []
        for t in range(steps):
            h = hs[t]
            np.matmul(h if rmask is None else h * rmask, rk, out=rec)
            a = xw[t]
            a += rec
            acts.append(self._act.apply(a))  # a now holds the new state
            _carry(None if keep is None else keep[t], a, h, hs[t + 1])
        return hs[1:], [hs[steps]], (xw, hs, acts)

    def _scan_backward(self, kept, dseq, dfinal, keep, rmask):
        new, hs, acts = kept
        steps, n, u = new.shape
        rk = self.params["recurrent_kernel"]
        da = np.empty_like(new)
        dh = dfinal[0]
        for t in range(steps - 1, -1, -1):
            if dseq is not None:
                dh = dh + dseq[t]
            dnew, skip = _split_masked(dh, None if keep is None else keep[t])
            self._act.grad(acts[t], dnew, da[t])
            dh = da[t] @ rk.T
            if rmask is not None:
                dh *= rmask
            if skip is not None:
                dh += skip
        self._recurrent_grad(hs[:-1], rmask, da, self.grads["recurrent_kernel"])
        return da, [dh]


# ---------------------------------------------------------------- LSTM
@_shared_arguments
class LSTM(_Recurrent):
    r"""Long short-term memory (Hochreiter and Schmidhuber, 1997), as Keras computes it.

    The kernels hold four blocks of ``units`` columns, in the order input gate
    :math:`i`, forget gate :math:`f`, cell candidate :math:`g` (Keras' ``c``) and output
    gate :math:`o`: ``kernel`` ``(features, 4 units)``, ``recurrent_kernel``
    ``(units, 4 units)``, ``bias`` ``(4 units,)``. With :math:`\sigma` the recurrent
    activation and :math:`\phi` the activation:

    .. math::
        [a_i, a_f, a_g, a_o] &= x_t W + h_{t-1} U + b \\
        i = \sigma(a_i), \quad f &= \sigma(a_f), \quad g = \phi(a_g), \quad o = \sigma(a_o) \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \phi(c_t)

    Backward through one step, from :math:`\partial h_t` and :math:`\partial c_t` (the
    gradient reaching :math:`c_t` from the next step):

    .. math::
        \partial o &= \partial h_t \odot \phi(c_t), \qquad
        \partial c = \partial c_t + \partial h_t \odot o \odot \phi'(c_t) \\
        \partial i &= \partial c \odot g, \quad \partial f = \partial c \odot c_{t-1}, \quad
        \partial g = \partial c \odot i, \quad \partial c_{t-1} = \partial c \odot f \\
        \partial a &= [\partial i\, \sigma'(a_i), \partial f\, \sigma'(a_f), \partial g\, \phi'(a_g),
        \partial o\, \sigma'(a_o)], \qquad \partial h_{t-1} = \partial a\, U^\top

    Parameters
    ----------
    activation : default "tanh"
        :math:`\phi`; None means linear.
    recurrent_activation : default "sigmoid"
        :math:`\sigma`, for the gates.
    unit_forget_bias : bool, default True
        Start the forget gate's bias at 1 (the rest from ``bias_initializer``).
    use_cudnn : {"auto", False}, default "auto"
        Both run npnet's own loop; True (cuDNN required) is refused.
    <the arguments shared by the recurrent layers>
    Examples
    --------
    >>> import numpy as np, npnet
    >>> lstm = npnet.layers.LSTM(4, return_state=True)
    >>> y, h, c = lstm(np.zeros((2, 5, 3), dtype="float32"))
    >>> y.shape, h.shape, c.shape
    ((2, 4), (2, 4), (2, 4))
    >>> [w.shape for w in lstm.get_weights()]
    [(3, 16), (4, 16), (16,)]
    """

    _blocks = 4
    _states = ("h", "c")

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: int | None = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, use_cudnn: Any = "auto", name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.use_cudnn = _check_use_cudnn(use_cudnn, type(self).__name__)
        self._setup(units, activation, recurrent_activation, use_bias,
                    {"kernel_initializer": kernel_initializer, "recurrent_initializer": recurrent_initializer,
                     "bias_initializer": bias_initializer},
                    {"kernel_regularizer": kernel_regularizer, "recurrent_regularizer": recurrent_regularizer,
                     "bias_regularizer": bias_regularizer, "activity_regularizer": activity_regularizer,
                     "kernel_constraint": kernel_constraint, "recurrent_constraint": recurrent_constraint,
                     "bias_constraint": bias_constraint},
                    dropout, recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll)
        self.unit_forget_bias = check_bool(unit_forget_bias, "unit_forget_bias", owner=type(self).__name__)

    def _bias_initializer(self):
        init = _initializers.get(self.bias_initializer, owner=self._owner)
        return _UnitForgetBias(init) if self.unit_forget_bias else init

    def _gate_constants(self, dtype: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """With the default activations (sigmoid gates, tanh cell), all four blocks go
        through one ``tanh``: :math:`\\sigma(z) = (1 + \\tanh(z / 2)) / 2`, so
        ``gates = tanh(a * scale) * scale + offset`` with ``scale`` 1/2 on the blocks
        i, f, o and 1 on g, ``offset`` 1/2 on i, f, o and 0 on g. None for other activations."""
        if self._rec.kind != "sigmoid" or self._act.kind != "tanh":
            return None
        u = self.units
        scale = np.full(4 * u, 0.5, dtype)
        scale[2 * u:3 * u] = 1
        offset = np.full(4 * u, 0.5, dtype)
        offset[2 * u:3 * u] = 0
        return scale, offset

    def _scan(self, xw, states, keep, rmask):
        steps, n, width = xw.shape
        u = width // 4
        rk = self.params["recurrent_kernel"]
        fused = self._gate_constants(xw.dtype)
        hs = self._new_array("hs", (steps + 1, n, u), xw.dtype)  # hs[t] = h_{t-1}
        cs = self._new_array("cs", (steps + 1, n, u), xw.dtype)  # cs[t] = c_{t-1}
        hs[0], cs[0] = states
        tanh_c = self._new_array("tanh_c", (steps, n, u), xw.dtype)  # phi(c_t) of the new cell state
        rec = np.empty((n, width), xw.dtype)
        ig = np.empty((n, u), xw.dtype)
        c_new = np.empty((n, u), xw.dtype)  # the cell's output at a step with a mask
        h_new = np.empty((n, u), xw.dtype)
        acts = []
        for t in range(steps):
            np.matmul(hs[t] if rmask is None else hs[t] * rmask, rk, out=rec)
            a = xw[t]  # becomes [i, f, g, o]
            a += rec
            i, f, g, o = a[:, :u], a[:, u:2 * u], a[:, 2 * u:3 * u], a[:, 3 * u:]
            if fused is not None:  # the four activations in one pass over the row
                a *= fused[0]
                np.tanh(a, out=a)
                a *= fused[0]
                a += fused[1]
            else:
                acts.append([self._rec.apply(i), self._rec.apply(f), self._act.apply(g), self._rec.apply(o)])
            c = cs[t + 1] if keep is None else c_new
            np.multiply(f, cs[t], out=c)  # c_t = f c_{t-1} + i g
            np.multiply(i, g, out=ig)
            c += ig
            tc = tanh_c[t]
            if fused is not None:
                np.tanh(c, out=tc)
            else:
                tc[...] = c
                acts[t].append(self._act.apply(tc))
            h = hs[t + 1] if keep is None else h_new
            np.multiply(o, tc, out=h)  # h_t = o phi(c_t)
            if keep is not None:
                _carry(keep[t], h, hs[t], hs[t + 1])
                _carry(keep[t], c, cs[t], cs[t + 1])
        return hs[1:], [hs[steps], cs[steps]], (xw, hs, cs, tanh_c, acts, fused)

    def _scan_backward(self, kept, dseq, dfinal, keep, rmask):
        gates, hs, cs, tanh_c, acts, fused = kept
        steps, n, width = gates.shape
        u = width // 4
        rk = self.params["recurrent_kernel"]
        da = self._new_array("dgates", gates.shape, gates.dtype)  # d(gate outputs), then d(their inputs)
        dh, dc = dfinal[0], dfinal[1].copy()
        dh_next = np.empty((n, u), gates.dtype)
        tmp = np.empty((n, u), gates.dtype)
        if fused is not None:
            # The activations' derivatives from their outputs, alpha y - y^2 + beta:
            # y (1 - y) for the sigmoid gates, 1 - y^2 for g; and o tanh'(c_t) for all steps.
            alpha = 2 * fused[1]  # 1 on i, f, o; 0 on g
            beta = 1 - alpha
            deriv = np.empty((n, width), gates.dtype)
            o_dtanh = self._new_array("o_dtanh", tanh_c.shape, tanh_c.dtype)
            np.multiply(tanh_c, tanh_c, out=o_dtanh)
            np.subtract(1, o_dtanh, out=o_dtanh)
            o_dtanh *= gates[:, :, 3 * u:]
        for t in range(steps - 1, -1, -1):
            if dseq is not None:
                dh = dh + dseq[t]
            m = None if keep is None else keep[t]
            dh, skip_h = _split_masked(dh, m)
            dc, skip_c = _split_masked(dc, m)
            g_t = gates[t]
            i, f, g, o = g_t[:, :u], g_t[:, u:2 * u], g_t[:, 2 * u:3 * u], g_t[:, 3 * u:]
            da_t = da[t]
            np.multiply(dh, tanh_c[t], out=da_t[:, 3 * u:])  # d o
            if fused is not None:  # d c_t += dh o phi'(c_t)
                np.multiply(dh, o_dtanh[t], out=tmp)
                dc += tmp
            else:
                dc += self._act.grad(acts[t][4], dh * o, tmp)
            np.multiply(dc, g, out=da_t[:, :u])  # d i
            np.multiply(dc, cs[t], out=da_t[:, u:2 * u])  # d f
            np.multiply(dc, i, out=da_t[:, 2 * u:3 * u])  # d g
            if fused is not None:  # through the activations
                np.subtract(alpha, g_t, out=deriv)
                deriv *= g_t
                deriv += beta
                da_t *= deriv
            else:
                for k, fn in enumerate((self._rec, self._rec, self._act, self._rec)):
                    block = da_t[:, k * u:(k + 1) * u]
                    fn.grad(acts[t][k], block.copy(), block)
            dc *= f  # d c_{t-1}
            dh = np.matmul(da_t, rk.T, out=dh_next)  # d h_{t-1}
            if rmask is not None:
                dh *= rmask
            if skip_h is not None:
                dh += skip_h
                dc += skip_c
        self._recurrent_grad(hs[:-1], rmask, da, self.grads["recurrent_kernel"])
        return da, [dh.copy(), dc]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


# ---------------------------------------------------------------- GRU
@_shared_arguments
class GRU(_Recurrent):
    r"""Gated recurrent unit (Cho et al., 2014), as Keras computes it.

    The kernels hold three blocks of ``units`` columns, in the order update gate
    :math:`z`, reset gate :math:`r`, candidate :math:`\tilde h`: ``kernel``
    ``(features, 3 units)``, ``recurrent_kernel`` ``(units, 3 units)``. With
    ``reset_after=True`` (the default, cuDNN's variant) the bias is ``(2, 3 units)``: an
    input bias :math:`b` and a recurrent bias :math:`b'`, and the reset gate is applied
    after the recurrent product:

    .. math::
        [x_z, x_r, x_h] &= x_t W + b, \qquad [r_z, r_r, r_h] = h_{t-1} U + b' \\
        z = \sigma(x_z + r_z), \quad r &= \sigma(x_r + r_r), \quad
        \tilde h = \phi(x_h + r \odot r_h) \\
        h_t &= z \odot h_{t-1} + (1 - z) \odot \tilde h

    With ``reset_after=False`` the bias is ``(3 units,)`` and the reset gate scales the
    state before its product: :math:`\tilde h = \phi(x_h + (r \odot h_{t-1}) U_h)`, with
    :math:`z, r` from :math:`h_{t-1} [U_z, U_r]`.

    Backward through one step, from :math:`\partial h_t`:

    .. math::
        \partial z &= \partial h_t \odot (h_{t-1} - \tilde h), \quad
        \partial a_h = \partial h_t \odot (1 - z) \odot \phi'(\cdot), \\
        \partial r &= \partial a_h \odot r_h, \quad \partial r_h = \partial a_h \odot r
        \quad (\text{reset\_after}), \\
        \partial h_{t-1} &= \partial h_t \odot z + [\partial a_z, \partial a_r, \partial r_h] U^\top

    Parameters
    ----------
    activation : default "tanh"
        :math:`\phi`; None means linear.
    recurrent_activation : default "sigmoid"
        :math:`\sigma`, for the gates.
    reset_after : bool, default True
    use_cudnn : {"auto", False}, default "auto"
        Both run npnet's own loop; True (cuDNN required) is refused.
    <the arguments shared by the recurrent layers>
    Examples
    --------
    >>> import numpy as np, npnet
    >>> gru = npnet.layers.GRU(4)
    >>> gru(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 4)
    >>> [w.shape for w in gru.get_weights()]
    [(3, 12), (4, 12), (2, 12)]
    """

    _blocks = 3

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: int | None = None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False, reset_after: bool = True,
                 use_cudnn: Any = "auto", name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.use_cudnn = _check_use_cudnn(use_cudnn, type(self).__name__)
        self._setup(units, activation, recurrent_activation, use_bias,
                    {"kernel_initializer": kernel_initializer, "recurrent_initializer": recurrent_initializer,
                     "bias_initializer": bias_initializer},
                    {"kernel_regularizer": kernel_regularizer, "recurrent_regularizer": recurrent_regularizer,
                     "bias_regularizer": bias_regularizer, "activity_regularizer": activity_regularizer,
                     "kernel_constraint": kernel_constraint, "recurrent_constraint": recurrent_constraint,
                     "bias_constraint": bias_constraint},
                    dropout, recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll)
        self.reset_after = check_bool(reset_after, "reset_after", owner=type(self).__name__)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if not self.use_bias:
            return None
        return self.params["bias"][0] if self.reset_after else self.params["bias"]

    def _input_bias_grad(self):
        if not self.use_bias:
            return None
        return self.grads["bias"][0] if self.reset_after else self.grads["bias"]

    def _scan(self, xw, states, keep, rmask):
        steps, n, width = xw.shape
        u = width // 3
        rk = self.params["recurrent_kernel"]
        after = self.reset_after
        hs = np.empty((steps + 1, n, u), xw.dtype)  # hs[t] = h_{t-1}
        hs[0] = states[0]
        # reset_after: the recurrent product of the candidate, r_h, before the reset gate;
        # otherwise (r * h_{t-1}) * rmask, the input of U_h
        held = np.empty((steps, n, u), xw.dtype)
        rec = np.empty((n, width if after else 2 * u), xw.dtype)
        h = np.empty((n, u), xw.dtype)
        acts = []
        for t in range(steps):
            hd = hs[t] if rmask is None else hs[t] * rmask
            a = xw[t]  # becomes [z, r, h~]
            if after:
                np.matmul(hd, rk, out=rec)
                if self.use_bias:
                    rec += self.params["bias"][1]
                a[:, :2 * u] += rec[:, :2 * u]
            else:
                np.matmul(hd, rk[:, :2 * u], out=rec)
                a[:, :2 * u] += rec
            z, r, hh = a[:, :u], a[:, u:2 * u], a[:, 2 * u:]
            kept = [self._rec.apply(z), self._rec.apply(r)]
            if after:
                held[t] = rec[:, 2 * u:]
                hh += r * held[t]
            else:
                np.multiply(r, hd, out=held[t])
                hh += held[t] @ rk[:, 2 * u:]
            kept.append(self._act.apply(hh))
            acts.append(kept)
            np.subtract(hs[t], hh, out=h)  # h_t = z h_{t-1} + (1 - z) h~ = h~ + z (h_{t-1} - h~)
            h *= z
            h += hh
            _carry(None if keep is None else keep[t], h, hs[t], hs[t + 1])
        return hs[1:], [hs[steps]], (xw, hs, held, acts)

    def _scan_backward(self, kept, dseq, dfinal, keep, rmask):
        gates, hs, held, acts = kept
        steps, n, width = gates.shape
        u = width // 3
        rk = self.params["recurrent_kernel"]
        after = self.reset_after
        da = np.empty_like(gates)  # d(input projection) = [dz, dr, dh~] pre-activations
        drec = np.empty_like(gates) if after else None  # d(h U + b'), reset_after
        dh = dfinal[0]
        for t in range(steps - 1, -1, -1):
            if dseq is not None:
                dh = dh + dseq[t]
            dh, skip = _split_masked(dh, None if keep is None else keep[t])
            g_t = gates[t]
            z, r, hh = g_t[:, :u], g_t[:, u:2 * u], g_t[:, 2 * u:]
            kz, kr, kh = acts[t]
            da_t = da[t]
            self._act.grad(kh, dh * (1 - z), da_t[:, 2 * u:])  # through h~
            dah = da_t[:, 2 * u:]
            self._rec.grad(kz, dh * (hs[t] - hh), da_t[:, :u])  # through z
            if after:
                self._rec.grad(kr, dah * held[t], da_t[:, u:2 * u])  # through r
                dr_t = drec[t]
                dr_t[:, :2 * u] = da_t[:, :2 * u]
                np.multiply(dah, r, out=dr_t[:, 2 * u:])
                dhd = dr_t @ rk.T
            else:
                dheld = dah @ rk[:, 2 * u:].T  # d(r * hd)
                hd = hs[t] if rmask is None else hs[t] * rmask
                self._rec.grad(kr, dheld * hd, da_t[:, u:2 * u])
                dhd = da_t[:, :2 * u] @ rk[:, :2 * u].T + dheld * r
            if rmask is not None:
                dhd *= rmask
            dhd += dh * z
            if skip is not None:
                dhd += skip
            dh = dhd
        grad = self.grads["recurrent_kernel"]
        if after:
            self._recurrent_grad(hs[:-1], rmask, drec, grad)
            if self.use_bias:
                np.sum(drec.reshape(steps * n, width), axis=0, out=self.grads["bias"][1])
        else:
            self._recurrent_grad(hs[:-1], rmask, da[:, :, :2 * u], grad[:, :2 * u])
            np.matmul(held.reshape(steps * n, u).T, da[:, :, 2 * u:].reshape(steps * n, u), out=grad[:, 2 * u:])
        return da, [dh]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
