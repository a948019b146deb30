"""Multi-head attention (Vaswani et al., 2017), as Keras 3's ``MultiHeadAttention``, with a
hand-written backward pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import as_rng, check_bool, check_float, check_int, check_seed
from ._symbolic import SymbolicTensor, any_symbolic
from .base import Layer, weight_options_config
from .core import _set_named_weight_options

__all__ = ["MultiHeadAttention"]

#: The value a masked score takes before the softmax (Keras' large negative number).
_MASKED_SCORE = -1e9
#: The mask arguments, in the order they follow query, value and key in the input list.
_MASK_ARGS = ("query_mask", "value_mask", "key_mask", "attention_mask")


def _bhts(a: np.ndarray) -> np.ndarray:
    """Scores kept as ``(s, b, h, t)`` seen as ``(b, h, t, s)`` (a view)."""
    return a.transpose(1, 2, 3, 0)


class MultiHeadAttention(Layer):
    r"""Multi-head scaled dot-product attention, as Keras 3's ``MultiHeadAttention``.

    ``query`` of shape ``(batch, T, dq)`` attends to ``value`` of shape ``(batch, S, dv)``
    through ``key`` of shape ``(batch, S, dk)`` (``key`` defaults to ``value``;
    ``mha(x, x)`` is self-attention). With :math:`h` heads of size ``key_dim`` :math:`d`
    and ``value_dim`` :math:`e`, for each head:

    .. math::
        Q = \frac{x_q W_Q + b_Q}{\sqrt d}, \quad K = x_k W_K + b_K, \quad V = x_v W_V + b_V,

        P = \operatorname{softmax}_{\text{mask}}(Q K^\top), \qquad C = \operatorname{dropout}(P)\, V,

    and the output is :math:`y = \sum_{\text{heads}} C W_O + b_O`, of shape
    ``(batch, T, dq)`` (or ``(batch, T, *output_shape)``). The masked softmax sets masked
    scores to :math:`-10^9` before the softmax and masked probabilities to 0 after it, so
    a query step with nothing to attend to gets all-zero weights (and the output bias).

    Backward (per head, :math:`D = dC` reshaped, :math:`\tilde P` the probabilities after
    dropout with mask :math:`M`):

    .. math::
        dV = \tilde P^\top D, \quad dP = (D V^\top) \odot M \;(+\, dP_{\text{returned}}), \quad
        dS = P \odot \left(dP - \textstyle\sum_j P_{\cdot j}\, dP_{\cdot j}\right),

        dQ = dS\, K / \sqrt d, \quad dK = dS^\top Q,

    then each projection's backward as :class:`Dense`'s.

    Weights, in Keras' order and shapes (so they move between the two unchanged):
    ``query_kernel (dq, h, d)``, ``query_bias (h, d)``, ``key_kernel (dk, h, d)``,
    ``key_bias (h, d)``, ``value_kernel (dv, h, e)``, ``value_bias (h, e)``,
    ``output_kernel (h, e, *out)``, ``output_bias (*out,)``.

    Parameters
    ----------
    num_heads : int
        Number of attention heads.
    key_dim : int
        Size of each head for query and key.
    value_dim : int, optional
        Size of each head for value; default ``key_dim``.
    dropout : float in [0, 1), default 0
        Dropout rate on the attention probabilities, in training.
    use_bias : bool, default True
    output_shape : int or tuple of int, optional
        The output's shape after the batch and time axes; default the query's last dimension.
    attention_axes : None
        Attention over the time axis of ``(batch, time, features)`` inputs, the only kind
        supported (``1`` or ``(1,)`` mean the same).
    sliding_window : int, optional
        If given, query step :math:`i` attends only to key steps :math:`j` with
        :math:`|i - j| < \text{sliding\_window}` (with ``use_causal_mask``, the last ones).
    flash_attention : None or False
        Accepted for Keras compatibility; there is no flash attention in NumPy.
    kernel_initializer, bias_initializer : str or Initializer
        Defaults ``"glorot_uniform"`` and ``"zeros"``, for all four projections.
    kernel_regularizer, bias_regularizer : str or Regularizer, optional
    activity_regularizer : str or Regularizer, optional
        Penalty on the layer's output.
    kernel_constraint, bias_constraint : str or Constraint, optional
    seed : int, optional
        Seed of the dropout stream.

    Notes
    -----
    Call it as ``mha(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)``.

    - ``query_mask`` ``(batch, T)``, ``value_mask`` and ``key_mask`` ``(batch, S)``: True for
      a real step; by default the masks attached to ``query``, ``value`` and ``key`` (for
      example by ``Embedding(mask_zero=True)``).
    - ``attention_mask`` ``(batch, T, S)`` (or ``(T, S)``): True where query step ``i`` may
      attend to key step ``j``. All masks given are combined with a logical and, as is the
      causal mask ``j <= i`` with ``use_causal_mask=True``.
    - ``return_attention_scores=True`` returns ``[output, scores]``, ``scores`` being the
      attention probabilities ``(batch, num_heads, T, S)`` before dropout.

    The output carries the mask of ``query``.

    ``forward`` takes the list ``[query, value, key]`` (``key`` may be ``value`` itself),
    followed by the mask tensors named in ``mask_args`` (a comma-separated string such as
    ``"attention_mask"``): the form a functional model records.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> mha = npnet.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    >>> mha(x, x).shape
    (3, 5, 8)
    >>> out, scores = mha(x, x, use_causal_mask=True, return_attention_scores=True)
    >>> scores.shape
    (3, 2, 5, 5)
    >>> float(scores[0, 0, 0, 1])  # the first step attends to itself only
    0.0
    >>> mha.params["query_kernel"].shape
    (8, 2, 4)
    """

    _multi_input = True
    supports_masking = True

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: Any = None, attention_axes: Any = None,
                 sliding_window: int | None = None, flash_attention: bool | None = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, seed: int | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.num_heads = check_int(num_heads, "num_heads", minimum=1, owner=owner)
        self.key_dim = check_int(key_dim, "key_dim", minimum=1, owner=owner)
        self.value_dim = self.key_dim if value_dim is None else check_int(value_dim, "value_dim", minimum=1,
                                                                           owner=owner)
        self.dropout = check_float(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False, owner=owner)
        self.use_bias = check_bool(use_bias, "use_bias", owner=owner)
        if output_shape is not None:
            shape = (output_shape,) if isinstance(output_shape, (int, np.integer)) else output_shape
            try:
                shape = tuple(shape)
            except TypeError:
                raise TypeError(f"{owner}: `output_shape` must be an int or a tuple of ints, "
                                f"received {output_shape!r}") from None
            if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
                raise ValueError(f"{owner}: `output_shape` must be a positive int or a non-empty tuple of "
                                 f"positive ints, received {output_shape!r}")
            output_shape = tuple(int(s) for s in shape)
        self.output_shape = output_shape
        if attention_axes is not None:
            axes = (attention_axes,) if isinstance(attention_axes, (int, np.integer)) else attention_axes
            if not (isinstance(axes, (list, tuple)) and len(axes) == 1 and not isinstance(axes[0], bool)
                    and axes[0] in (1, -2)):
                raise ValueError(
                    f"{owner}: `attention_axes` other than the time axis of (batch, time, features) inputs are "
                    f"not supported; use None, received {attention_axes!r}")
            attention_axes = (1,)
        self.attention_axes = attention_axes
        if sliding_window is not None:
            sliding_window = check_int(sliding_window, "sliding_window", minimum=1, owner=owner)
        self.sliding_window = sliding_window
        if flash_attention not in (None, False):
            raise ValueError(f"{owner}: `flash_attention` must be None or False (there is no flash attention "
                             f"in NumPy), received {flash_attention!r}")
        self.flash_attention = flash_attention
        _set_named_weight_options(self, owner, {"kernel_initializer": kernel_initializer,
                                                "bias_initializer": bias_initializer},
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                                  bias_constraint=bias_constraint)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.seed = check_seed(seed, owner=owner)
        self._rng = as_rng(seed)

    # ------------------------------------------------------------------ calling
    # Keras' call signature: `value` comes second, where Layer.__call__ has `training`.
    def __call__(self, query: Any, value: Any = None, key: Any = None, query_mask: Any = None,  # type: ignore[override]
                 value_mask: Any = None, key_mask: Any = None, attention_mask: Any = None,
                 return_attention_scores: bool = False, training: bool | None = None,
                 use_causal_mask: bool = False, **kwargs: Any) -> Any:
        """Attend from ``query`` to ``value`` (see the class docstring for the arguments)."""
        options: dict[str, Any] = dict(kwargs)
        if check_bool(return_attention_scores, "return_attention_scores", owner=self._owner):
            options["return_attention_scores"] = True
        if check_bool(use_causal_mask, "use_causal_mask", owner=self._owner):
            options["use_causal_mask"] = True
        masks = dict(zip(_MASK_ARGS, (query_mask, value_mask, key_mask, attention_mask)))
        if isinstance(query, (list, tuple)):
            # The packed form [query, value, key, *mask tensors] (how a functional model replays a call).
            if value is not None or key is not None or any(m is not None for m in masks.values()):
                raise TypeError(f"{self._owner}: give either the list [query, value, key] or separate "
                                "query, value and key arguments, not both")
            return super().__call__(list(query), training=training, **options)
        if value is None:
            raise TypeError(f"{self._owner}: missing `value`: call it as mha(query, value), "
                            "or mha(x, x) for self-attention")
        inputs = [query, value, value if key is None else key]
        symbolic = any_symbolic(inputs)
        given = []
        for arg, m in masks.items():
            if m is None:
                continue
            if isinstance(m, SymbolicTensor):
                inputs.append(m)
                given.append(arg)
            elif symbolic:
                raise TypeError(
                    f"{self._owner}: in a functional model `{arg}` must be a symbolic tensor (an npnet.Input or "
                    f"a layer's output), received {type(m).__name__}")
            else:
                options[arg] = m
        if given:
            options["mask_args"] = ",".join(given)
        return super().__call__(inputs, training=training, **options)

    def _check_arity(self, inputs: Any) -> bool:
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"{self._owner}: expected query and value, received one {type(inputs).__name__}; "
                            "call it as mha(query, value), or mha(x, x) for self-attention")
        if len(inputs) < 3:
            raise ValueError(f"{self._owner}: expected the list [query, value, key, *masks], "
                             f"received a list of {len(inputs)}")
        return True

    # ------------------------------------------------------------------ shapes
    def _check_build_shapes(self, shapes: list[tuple]) -> None:
        self._check_shapes(shapes)

    def _check_shapes(self, shapes: list[tuple]) -> None:
        """Ranks, the shared length of value and key, and (once built) the feature sizes."""
        self._check_arity(shapes)
        for what, s in zip(("query", "value", "key"), shapes):
            if len(s) != 3:
                raise ValueError(f"{self._owner}: expected {what} of rank 3 (batch, steps, features), "
                                 f"received shape {tuple(s)}")
        q, v, k = (tuple(s) for s in shapes[:3])
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError(f"{self._owner}: value and key must have the same number of steps, "
                             f"received value shape {v} and key shape {k}")
        if self.built:
            for what, s, d in zip(("query", "value", "key"), (q, v, k), self._dims):
                if s[-1] != d:
                    raise ValueError(f"{self._owner}: expected {what} with last dimension {d}, received shape {s}")

    def build(self, input_shape):
        q, v, k = input_shape[:3]
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self.output_shape or (q[-1],)
        weights = [("query", (q[-1], h, kd), (h, kd)), ("key", (k[-1], h, kd), (h, kd)),
                   ("value", (v[-1], h, vd), (h, vd)), ("output", (h, vd) + tuple(out), tuple(out))]
        for what, kernel, bias in weights:
            self.add_weight(f"{what}_kernel", kernel, self.kernel_initializer,
                            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
            if self.use_bias:
                self.add_weight(f"{what}_bias", bias, self.bias_initializer,
                                regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._dims = (q[-1], v[-1], k[-1])
        super().build([tuple(s) for s in input_shape])

    def compute_output_shape(self, input_shape, return_attention_scores=False, use_causal_mask=False,
                             mask_args=""):
        self._check_shapes(list(input_shape))
        q, v = tuple(input_shape[0]), tuple(input_shape[1])
        out = q[:-1] + tuple(self.output_shape or (q[-1],))
        if return_attention_scores:
            return [out, (q[0], self.num_heads, q[1], v[1])]
        return out

    def compute_mask(self, inputs, mask=None):
        """The output carries the query's mask (the scores, if returned, none)."""
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    # ------------------------------------------------------------------ masks
    def _combined_mask(self, batch: int, t: int, s: int, masks: dict[str, Any],
                       use_causal_mask: bool) -> np.ndarray | None:
        """Keras' ``_compute_attention_mask``: every mask given, as ``(batch or 1, T, S)``
        booleans combined with a logical and; None when there is none."""
        parts = []
        expected = {"query_mask": (batch, t), "value_mask": (batch, s), "key_mask": (batch, s)}
        for arg, want in expected.items():
            m = masks.get(arg)
            if m is None:
                continue
            m = np.asarray(m)
            if m.shape != want:
                raise ValueError(f"{self._owner}: expected {arg} of shape {want}, received shape {m.shape}")
            m = m.astype(bool, copy=False)
            parts.append(m[:, :, None] if arg == "query_mask" else m[:, None, :])
        if use_causal_mask or self.sliding_window is not None:
            i = np.arange(t)[:, None]
            j = np.arange(s)[None, :]
            if use_causal_mask:
                parts.append((i >= j)[None])
            if self.sliding_window is not None:
                parts.append((np.abs(i - j) < self.sliding_window)[None])
        m = masks.get("attention_mask")
        if m is not None:
            m = np.asarray(m)
            if m.shape == (t, s):
                m = m[None]
            if m.ndim != 3 or m.shape[1:] != (t, s) or m.shape[0] not in (1, batch):
                raise ValueError(f"{self._owner}: expected attention_mask of shape (batch, T, S) = "
                                 f"{(batch, t, s)}, received shape {m.shape}")
            parts.append(m.astype(bool, copy=False))
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return np.broadcast_to(out, (out.shape[0] if out.shape[0] == batch else 1, t, s))

    # ------------------------------------------------------------------ computation
    def forward(self, x, training=False, mask=None, *, query_mask=None, value_mask=None, key_mask=None,
                attention_mask=None, return_attention_scores=False, use_causal_mask=False, mask_args=""):
        """``x = [query, value, key, *mask tensors named in mask_args]``; ``mask`` holds the
        masks attached to those inputs (the query's, value's and key's are used)."""
        self._check_arity(x)
        xs = [a if isinstance(a, np.ndarray) else np.asarray(a) for a in x]
        names = [n for n in mask_args.split(",") if n] if mask_args else []
        if len(names) != len(xs) - 3 or any(n not in _MASK_ARGS for n in names):
            raise ValueError(f"{self._owner}: `mask_args` {mask_args!r} must name the {len(xs) - 3} mask "
                             f"tensors after query, value and key, each one of {list(_MASK_ARGS)}")
        masks = dict(zip(_MASK_ARGS, (query_mask, value_mask, key_mask, attention_mask)))
        for n, m in zip(names, xs[3:]):
            if masks[n] is not None:
                raise TypeError(f"{self._owner}: `{n}` given twice")
            masks[n] = m
        attached = list(mask) if isinstance(mask, (list, tuple)) else []
        for n, m in zip(_MASK_ARGS[:3], attached[:3]):
            if masks[n] is None:
                masks[n] = m
        query, value, key = xs[:3]
        shapes = [a.shape for a in xs[:3]]
        if not self.built:
            self._check_build_shapes(shapes)
            self._build_from([(None,) + tuple(s[1:]) for s in shapes])
        self._check_shapes(shapes)
        if not query.shape[0] == value.shape[0] == key.shape[0]:
            raise ValueError(f"{self._owner}: query, value and key must have the same batch size, "
                             f"received shapes {[tuple(s) for s in shapes]}")
        b, t, dq = query.shape
        s = value.shape[1]
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        p_ = self.params
        dtype = p_["query_kernel"].dtype
        scale = np.asarray(1.0 / math.sqrt(self.key_dim), dtype=dtype)

        def project(a, what, d):  # (batch, steps, features) @ (features, h * d) + bias -> (batch, steps, h, d)
            w = p_[f"{what}_kernel"]
            a2 = a.reshape(-1, a.shape[-1])
            y = self._new_array(what, (a2.shape[0], h * d), np.result_type(a2, w))
            np.matmul(a2, w.reshape(w.shape[0], -1), out=y)
            if self.use_bias:
                y += p_[f"{what}_bias"].reshape(-1)
            return y.reshape(a.shape[0], a.shape[1], h, d)

        q = project(query, "query", kd)
        q *= scale
        k = project(key, "key", kd)
        v = project(value, "value", vd)
        # The scores are kept as (s, b, h, t): `_bhts` views them as (b, h, t, s), and the
        # softmax over s then reduces along the first axis, across long contiguous rows,
        # which NumPy does several times faster than over a short last axis. Writing
        # K Q^T into that layout costs nothing: matmul takes the strided `out`.
        scores = self._new_array("scores", (s, b, h, t), q.dtype)
        np.matmul(k.transpose(0, 2, 1, 3), q.transpose(0, 2, 3, 1), out=scores.transpose(1, 2, 0, 3))
        m = self._combined_mask(b, t, s, masks, bool(use_causal_mask))
        p = self._masked_softmax(scores, None if m is None else m.transpose(2, 0, 1)[:, :, None, :])
        drop = None
        pd = p
        if training and self.dropout > 0.0:
            keep = 1.0 - self.dropout
            drop = (self._rng.random(p.shape, dtype=np.float32) < keep).astype(dtype)
            drop *= np.asarray(1.0 / keep, dtype=dtype)
            pd = p * drop
        ctx = self._new_array("context", (b, t, h, vd), pd.dtype)
        np.matmul(_bhts(pd), v.transpose(0, 2, 1, 3), out=ctx.transpose(0, 2, 1, 3))  # P V per head
        ctx2 = ctx.reshape(b * t, h * vd)
        wo = p_["output_kernel"]
        y = self._new_array("y", (b * t, int(np.prod(wo.shape[2:]))), np.result_type(ctx2, wo))
        np.matmul(ctx2, wo.reshape(h * vd, -1), out=y)
        if self.use_bias:
            y += p_["output_bias"].reshape(-1)
        y = y.reshape((b, t) + wo.shape[2:])
        cache = (query, key, value, q, k, v, p, drop, pd, ctx2, len(xs) - 3, bool(return_attention_scores))
        if return_attention_scores:
            return [y, np.ascontiguousarray(_bhts(p))], cache
        return y, cache

    @staticmethod
    def _masked_softmax(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Softmax over the first axis (s) of ``(s, b, h, t)`` scores, in place; masked scores
        become -1e9 before it and 0 after it (a fully masked row gives zeros, as Keras'
        ``Softmax`` with a mask)."""
        if mask is not None:
            np.copyto(scores, np.asarray(_MASKED_SCORE, dtype=scores.dtype), where=~mask)
        flat = scores.reshape(scores.shape[0], -1)
        flat -= flat.max(axis=0)
        np.exp(flat, out=flat)
        flat /= flat.sum(axis=0)
        if mask is not None:
            np.copyto(scores, np.zeros((), dtype=scores.dtype), where=~mask)
        return scores

    def backward(self, cache, dy):
        self._require_cache(cache)
        query, key, value, q, k, v, p, drop, pd, ctx2, n_masks, with_scores = cache
        dscores = None
        if with_scores:
            dy, dscores = dy
        b, t, h, kd = q.shape
        s, vd = v.shape[1], v.shape[3]
        p_, g_ = self.params, self.grads
        scale = np.asarray(1.0 / math.sqrt(self.key_dim), dtype=q.dtype)
        wo = p_["output_kernel"].reshape(h * vd, -1)
        dy2 = dy.reshape(b * t, -1)
        np.matmul(ctx2.T, dy2, out=g_["output_kernel"].reshape(h * vd, -1))
        if self.use_bias:
            np.sum(dy2, axis=0, out=g_["output_bias"].reshape(-1))
        dctx = self._new_array("dcontext", (b * t, h * vd), np.result_type(dy2, wo))
        np.matmul(dy2, wo.T, out=dctx)
        dctx = dctx.reshape(b, t, h, vd).transpose(0, 2, 1, 3)  # (b, h, t, e)
        dv = self._new_array("dv", (b, s, h, vd), dctx.dtype)
        np.matmul(pd.transpose(1, 2, 0, 3), dctx, out=dv.transpose(0, 2, 1, 3))  # P^T dC
        dp = self._new_array("dscores", p.shape, dctx.dtype)  # (s, b, h, t), as the scores
        np.matmul(v.transpose(0, 2, 1, 3), dctx.transpose(0, 1, 3, 2), out=dp.transpose(1, 2, 0, 3))  # (dC V^T)^T
        if drop is not None:
            dp *= drop
        if dscores is not None:
            dp += dscores.transpose(3, 0, 1, 2)
        # Softmax backward in closed form: dS = P * (dP - sum_s P dP); masked P is 0.
        dp *= p
        ds = dp
        flat = ds.reshape(s, -1)
        flat -= p.reshape(s, -1) * flat.sum(axis=0)
        dq = self._new_array("dq", (b, t, h, kd), ds.dtype)
        np.matmul(_bhts(ds), k.transpose(0, 2, 1, 3), out=dq.transpose(0, 2, 1, 3))  # dS K
        dq *= scale
        dk = self._new_array("dk", (b, s, h, kd), ds.dtype)
        np.matmul(ds.transpose(1, 2, 0, 3), q.transpose(0, 2, 1, 3), out=dk.transpose(0, 2, 1, 3))  # dS^T Q
        need = self.compute_input_grad
        dx = [self._project_backward(a, what, d, need)
              for a, what, d in ((query, "query", dq), (value, "value", dv), (key, "key", dk))]
        if not need:
            return None
        return dx + [None] * n_masks

    def _project_backward(self, a: np.ndarray, what: str, d: np.ndarray, need: bool) -> np.ndarray | None:
        """Backward of ``a @ kernel + bias``: set the kernel and bias gradients, return ``da``."""
        w = self.params[f"{what}_kernel"]
        a2 = a.reshape(-1, a.shape[-1])
        d2 = d.reshape(a2.shape[0], -1)
        np.matmul(a2.T, d2, out=self.grads[f"{what}_kernel"].reshape(w.shape[0], -1))
        if self.use_bias and what == "key":
            # Exactly 0: a key bias adds q . b to every score of a query row, which the
            # softmax ignores (each row of dS sums to 0); the sum would only show rounding.
            self.grads["key_bias"][...] = 0
        elif self.use_bias:
            np.sum(d2, axis=0, out=self.grads[f"{what}_bias"].reshape(-1))
        if not need:
            return None
        da = self._new_array(f"d{what}_input", a2.shape, np.result_type(d2, w))
        np.matmul(d2, w.reshape(w.shape[0], -1).T, out=da)
        return da.reshape(a.shape)

    # ------------------------------------------------------------------ randomness and config
    def _seed_from(self, rng, epoch):
        if self.seed is None:
            self._rng = np.random.default_rng(rng.integers(2**63))
        else:
            self._rng = np.random.default_rng([self.seed, epoch])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "attention_axes": None if self.attention_axes is None else list(self.attention_axes),
            "sliding_window": self.sliding_window,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            **weight_options_config(self, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                    "kernel_constraint", "bias_constraint"),
            "seed": self.seed,
        }
