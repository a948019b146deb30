"""Embedding (integer ids to dense vectors) and Masking (mark padded time steps)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import check_bool, check_float, check_int
from .base import InputSpec, Layer, set_weight_options, weight_options_config
from .core import _refuse_unsupported

__all__ = ["Embedding", "Masking"]


class Embedding(Layer):
    r"""Turn integer ids into dense vectors: row ``i`` of ``embeddings`` for id ``i``.

    Shapes: ids ``x`` of shape ``(batch, ...)`` (integers, or floats holding integers, as
    a model's inputs are cast to floats), ``embeddings`` of shape
    ``(input_dim, output_dim)``, output ``(batch, ..., output_dim)``.

    .. math::
        y_{b,t} = E_{x_{b,t}}, \qquad
        \frac{\partial L}{\partial E_i} = \sum_{(b,t):\, x_{b,t} = i} \frac{\partial L}{\partial y_{b,t}}

    An id seen several times collects the sum of its gradients. The ids are not
    differentiable: the layer returns no input gradient.

    Parameters
    ----------
    input_dim : int
        Size of the vocabulary: ids run from 0 to ``input_dim - 1``.
    output_dim : int
        Size of each vector.
    embeddings_initializer : str or Initializer, default "uniform"
        Keras' default: uniform on [-0.05, 0.05].
    embeddings_regularizer, embeddings_constraint : optional
        Penalty and projection of the table (see :mod:`npnet.regularizers`, :mod:`npnet.constraints`).
    activity_regularizer : optional
        Penalty on the output.
    mask_zero : bool, default False
        Whether id 0 is padding: the output carries a mask, False where the id is 0, which
        recurrent layers, pooling, attention and the loss respect. Id 0 then cannot stand
        for a real token, so the vocabulary needs ``input_dim = vocabulary size + 1``.
    weights : list of one ndarray, optional
        An initial table of shape ``(input_dim, output_dim)``.
    lora_rank, lora_alpha, quantization_config : None
        Keras' LoRA and quantization options: only None is accepted.
    input_length : int, optional
        Deprecated in Keras 3 and ignored, with a warning, as there.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> layer = npnet.layers.Embedding(10, 3, mask_zero=True)
    >>> y = layer(np.array([[4, 2, 0, 0]]))
    >>> y.shape
    (1, 4, 3)
    >>> layer.compute_mask(np.array([[4, 2, 0, 0]]))
    array([[ True,  True, False, False]])
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None, mask_zero: bool = False,
                 weights: Any = None, lora_rank: int | None = None, lora_alpha: float | None = None,
                 quantization_config: Any = None, activity_regularizer: Any = None, input_length: Any = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        _refuse_unsupported(owner, lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config)
        if input_length is not None:
            warnings.warn(f"{owner}: the argument `input_length` is deprecated in Keras 3 and ignored; "
                          "remove it", UserWarning, stacklevel=2)
        self.input_dim = check_int(input_dim, "input_dim", minimum=1, owner=owner)
        self.output_dim = check_int(output_dim, "output_dim", minimum=1, owner=owner)
        self.embeddings_initializer = _initializers.get(embeddings_initializer, owner=f"`embeddings_initializer` of {owner}")
        self.mask_zero = check_bool(mask_zero, "mask_zero", owner=owner)
        self.supports_masking = self.mask_zero
        for arg, value in (("embeddings_regularizer", embeddings_regularizer),
                           ("embeddings_constraint", embeddings_constraint),
                           ("activity_regularizer", activity_regularizer)):
            set_weight_options(self, f"`{arg}` of {owner}", **{arg: value})
        if weights is not None:
            table = weights[0] if isinstance(weights, (list, tuple)) and len(weights) == 1 else weights
            table = np.asarray(table)
            if table.shape != (self.input_dim, self.output_dim):
                raise ValueError(
                    f"{owner}: `weights` must be one array of shape ({self.input_dim}, {self.output_dim}), "
                    f"received shape {table.shape}")
            self._build_from((None, 1))
            self.set_weights([table])

    def build(self, input_shape):
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                        regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint)
        super().build(input_shape)

    def _ids(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"{self._owner}: expected ids of shape (batch, ...), received a scalar")
        if x.dtype.kind == "f":
            if not np.isfinite(x).all() or (x != np.round(x)).any():
                raise ValueError(f"{self._owner}: expected integer ids, received non-integer values of dtype {x.dtype}")
        elif x.dtype.kind not in "iu":
            raise TypeError(f"{self._owner}: expected integer ids, received dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= self.input_dim):
            bad = x.min() if x.min() < 0 else x.max()
            raise ValueError(
                f"{self._owner}: ids must lie in [0, {self.input_dim - 1}] (input_dim={self.input_dim}), "
                f"received {int(bad)}")
        return x.astype(np.intp, copy=False)

    def forward(self, x, training=False):
        ids = self._ids(x)
        if not self.built:
            self._build_from((None,) + ids.shape[1:])
        return self.params["embeddings"][ids], ids

    def backward(self, cache, dy):
        self._require_cache(cache)
        ids = cache
        grad = self.grads["embeddings"]
        grad.fill(0)
        # Sum the rows of dy that share an id: one sparse matrix product, without np.add.at.
        flat = ids.ravel()
        rows = dy.reshape(-1, self.output_dim)
        order = np.argsort(flat, kind="stable")
        uniq, starts = np.unique(flat[order], return_index=True)
        grad[uniq] = np.add.reduceat(rows[order], starts, axis=0) if uniq.size else 0
        return None

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
            **weight_options_config(self, "embeddings_regularizer", "embeddings_constraint", "activity_regularizer"),
        }


class Masking(Layer):
    r"""Mark time steps to skip: a step whose features all equal ``mask_value`` is masked.

    For input ``x`` of shape ``(batch, time, features)`` the mask is
    :math:`m_{b,t} = \exists f: x_{b,t,f} \ne v`; the output is ``x`` with masked steps
    set to 0 and carries the mask, which recurrent layers, pooling, attention and the loss
    respect.

    .. math::
        y_{b,t} = m_{b,t}\, x_{b,t}, \qquad \frac{\partial L}{\partial x_{b,t}} = m_{b,t} \frac{\partial L}{\partial y_{b,t}}

    Parameters
    ----------
    mask_value : float, default 0.0

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]], dtype="float32")
    >>> npnet.layers.Masking().compute_mask(x)
    array([[ True, False,  True]])
    """

    supports_masking = True
    _build_spec = InputSpec(min_ndim=2, layout="(batch, ..., features)")

    def __init__(self, mask_value: float = 0.0, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.mask_value = check_float(mask_value, "mask_value", owner=type(self).__name__)

    def build(self, input_shape):
        self.input_spec = InputSpec(min_ndim=2, layout="(batch, ..., features)")
        super().build(input_shape)

    def compute_mask(self, inputs, mask=None):
        return np.any(np.asarray(inputs) != self.mask_value, axis=-1)

    def forward(self, x, training=False):
        x = self._enter(x)
        keep = np.any(x != self.mask_value, axis=-1, keepdims=True)
        return np.where(keep, x, np.zeros((), dtype=x.dtype)), keep

    def backward(self, cache, dy):
        self._require_cache(cache)
        return np.where(cache, dy, np.zeros((), dtype=dy.dtype))

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
