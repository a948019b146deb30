"""Core layers: Dense, Activation, Flatten, Reshape, Dropout, SpatialDropout1D,
SpatialDropout2D, Rescaling (and Input, from the symbolic module)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from .._validation import as_rng, check_data_format, check_float, check_int, check_seed
from ._symbolic import Input, InputLayer
from .activation import ACTIVATIONS, _Activated, get_activation
from .base import InputSpec, Layer, _FixedRank, set_weight_options, weight_options_config

__all__ = ["Input", "InputLayer", "Dense", "Activation", "Flatten", "Reshape", "Dropout", "SpatialDropout1D",
           "SpatialDropout2D", "Rescaling"]


def _refuse_unsupported(owner: str, **options: Any) -> None:
    """Keras arguments npnet accepts only at their default None (``lora_rank``,
    ``lora_alpha``, ``quantization_config``): anything else is refused by name."""
    for arg, value in options.items():
        if value is not None:
            raise ValueError(f"{owner}: `{arg}` is not supported (no LoRA or quantization in npnet): "
                             f"expected None, received {value!r}")


def _set_named_weight_options(layer: Layer, owner: str, initializers: dict[str, Any] | None = None,
                              **options: Any) -> None:
    """Check the initializer arguments and store the regularizer and constraint arguments
    (see ``set_weight_options``); an error names the argument: "`bias_regularizer` of Dense: ..."."""
    for arg, value in (initializers or {}).items():
        _initializers.get(value, owner=f"`{arg}` of {owner}")
    for arg, value in options.items():
        set_weight_options(layer, f"`{arg}` of {owner}", **{arg: value})


class Dense(_Activated, Layer):
    r"""Fully connected layer: ``y = activation(x @ kernel + bias)``.

    Shapes: ``x`` is ``(batch, ..., in)``, ``kernel`` is ``(in, units)``, ``bias`` is
    ``(units,)`` and ``y`` is ``(batch, ..., units)``. Leading axes beyond the batch are
    treated as more batch, as in Keras.

    Backward, with :math:`z = xW + b`:

    .. math::
        \frac{\partial L}{\partial W} = x^\top \frac{\partial L}{\partial z}, \quad
        \frac{\partial L}{\partial b} = \sum_{\text{batch}} \frac{\partial L}{\partial z}, \quad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial z} W^\top

    Parameters
    ----------
    units : int
        Output size.
    activation : str, function, activation layer or None
        Applied after the affine map: a name (``"relu"``, ``"softmax"``, ...), the
        :mod:`npnet.activations` function of that name, or a primitive activation layer
        such as ``npnet.layers.LeakyReLU(0.1)``.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or Initializer
        Defaults ``"glorot_uniform"`` and ``"zeros"``, as Keras.
    kernel_regularizer, bias_regularizer : str or Regularizer, optional
        Weight penalties added to the training loss (see :mod:`npnet.regularizers`).
    activity_regularizer : str or Regularizer, optional
        Penalty on the output, divided by the batch size.
    kernel_constraint, bias_constraint : str or Constraint, optional
        Projections applied after each optimizer update (see :mod:`npnet.constraints`).
    lora_rank, lora_alpha, quantization_config : None
        Keras' LoRA and quantization options: only None is accepted.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> layer = npnet.layers.Dense(3)
    >>> layer(np.ones((2, 5), dtype="float32")).shape
    (2, 3)
    >>> layer.params["kernel"].shape
    (5, 3)
    """

    _build_spec = InputSpec(min_ndim=2, layout="(batch, features)")
    supports_masking = True

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, lora_rank: int | None = None,
                 lora_alpha: float | None = None, quantization_config: Any = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        _refuse_unsupported(owner, lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config)
        self.units = check_int(units, "units", minimum=1, owner=owner)
        _set_named_weight_options(self, owner, {"kernel_initializer": kernel_initializer,
                                                "bias_initializer": bias_initializer})
        self._set_affine(activation, use_bias, kernel_initializer, bias_initializer)
        _set_named_weight_options(self, owner, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                                  bias_constraint=bias_constraint)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{self._owner}: expected input of rank >= 2 (batch, features), received shape {tuple(input_shape)}")
        n_in = input_shape[-1]
        self.add_weight("kernel", (n_in, self.units), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: n_in})
        super().build(input_shape)

    # The affine part on its own, so that a model can fuse a softmax activation into a
    # cross-entropy loss. Its cache is x.
    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._enter(x)
        z = x @ self.params["kernel"]
        if self.use_bias:
            z += self.params["bias"]
        return z, x

    def _linear_backward(self, x: np.ndarray, dz: np.ndarray) -> np.ndarray | None:
        if x.ndim == 2:
            np.matmul(x.T, dz, out=self.grads["kernel"])
        else:
            self.grads["kernel"][...] = x.reshape(-1, x.shape[-1]).T @ dz.reshape(-1, dz.shape[-1])
        if self.use_bias:
            np.sum(dz.reshape(-1, dz.shape[-1]), axis=0, out=self.grads["bias"])
        if not self.compute_input_grad:
            return None
        return dz @ self.params["kernel"].T

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            **weight_options_config(self, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                    "kernel_constraint", "bias_constraint"),
        }


class Activation(Layer):
    """Apply an activation by name: ``Activation("relu")`` is ``ReLU()``.

    Parameters
    ----------
    activation : str or function
        One of ``npnet.layers.ACTIVATIONS``, or the function of that name in
        :mod:`npnet.activations` (``Activation(npnet.activations.relu)``); saved by name.
    """

    supports_masking = True

    def __init__(self, activation: Any, name: str | None = None, trainable: bool = True) -> None:
        from .. import activations as _fns

        super().__init__(name=name, trainable=trainable)
        if callable(activation) and not isinstance(activation, Layer):
            activation = _fns._name_of(activation) or activation
        if not isinstance(activation, str):
            raise TypeError(f"Activation: `activation` must be a name such as 'relu' or an npnet.activations "
                            f"function, received {activation!r} of type {type(activation).__name__}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Activation: unknown activation {activation!r}; expected one of the names "
                             f"{sorted(ACTIVATIONS)} or the npnet.activations function of that name")
        self.activation = activation
        self._act = get_activation(activation)

    def build(self, input_shape):
        self._act.build(input_shape)
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        return self._act.forward(x, training)

    def backward(self, cache, dy):
        self._require_cache(cache)
        return self._act.backward(cache, dy)

    def _fusion(self, cache, inputs):
        return self._act._fusion(cache, inputs)

    def _backward_from_logits(self, cache, dz):
        return dz

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class Flatten(Layer):
    """Flatten everything but the batch axis: ``(batch, d1, d2, ...)`` to ``(batch, d1*d2*...)``.

    On NHWC images the order is row, column, channel (C order), as in Keras.

    Parameters
    ----------
    data_format : {None, "channels_last"}
        Only channels-last inputs are supported; ``"channels_first"`` (which in Keras
        moves the channels last before flattening) is refused.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.layers.Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def __init__(self, data_format: str | None = None, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.data_format = check_data_format(data_format, "channels-last", owner=owner)

    def build(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ValueError(
                f"{self._owner}: cannot flatten input of shape {tuple(input_shape)} with a size that varies (None); "
                "reduce the varying axis first, for example with GlobalAveragePooling1D")
        self.input_spec = InputSpec(min_ndim=2, sample_shape=tuple(input_shape[1:]))
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy.reshape(cache)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (batch axis excluded; one entry may be -1)."""

    def __init__(self, target_shape: tuple[int, ...], name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        try:
            target = tuple(int(s) for s in target_shape)
        except (TypeError, ValueError):
            raise TypeError(f"Reshape: `target_shape` must be a tuple of ints, received {target_shape!r}") from None
        if not target or sum(s == -1 for s in target) > 1 or any(s == 0 or s < -1 for s in target):
            raise ValueError(
                f"Reshape: `target_shape` must hold positive ints and at most one -1, received {target_shape!r}"
            )
        self.target_shape = target

    def _resolved(self, input_shape) -> tuple[int | None, ...]:
        """The target with its -1 worked out; None for it while an input size varies (the
        call works it out from the batch it gets, as Keras does)."""
        if any(d is None for d in input_shape[1:]):
            return tuple(None if s == -1 else s for s in self.target_shape)
        size = int(np.prod(input_shape[1:]))
        known = int(np.prod([s for s in self.target_shape if s != -1]))
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(
                    f"{self._owner}: cannot reshape samples of shape {tuple(input_shape[1:])} to {self.target_shape}"
                )
            return tuple(size // known if s == -1 else s for s in self.target_shape)
        if known != size:
            raise ValueError(
                f"{self._owner}: cannot reshape samples of shape {tuple(input_shape[1:])} ({size} values) "
                f"to {self.target_shape} ({known} values)"
            )
        return self.target_shape

    def build(self, input_shape):
        self._target = self._resolved(input_shape)
        self.input_spec = InputSpec(min_ndim=2, sample_shape=tuple(input_shape[1:]))
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        varying = self.input_spec is not None and None in (self.input_spec.sample_shape or ())
        target = self._resolved(x.shape) if varying else self._target
        return x.reshape((x.shape[0],) + tuple(target)), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy.reshape(cache)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolved(input_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    r"""Inverted dropout: in training, zero each element with probability ``rate`` and
    scale the rest by :math:`1 / (1 - rate)`; at inference, the identity.

    With a ``noise_shape``, one keep-or-drop draw is made per element of the noise
    shape and broadcast over the input, as in Keras: ``noise_shape=(None, 1, None)`` on
    ``(batch, steps, features)`` drops the same features at every step. A ``None``
    entry takes the input's size on that axis. With :math:`m` the broadcast mask of 0s
    and 1s,

    .. math:: y = x \odot \frac{m}{1 - rate}, \qquad dx = dy \odot \frac{m}{1 - rate}.

    The cache of a call is the scaled mask in the noise shape (``None`` at inference).

    Parameters
    ----------
    rate : float in [0, 1)
        Fraction of inputs to drop.
    noise_shape : tuple of int or None, optional
        Shape of the drawn mask, one entry per input axis: each entry is ``None`` (the
        input's size), 1 (the draw is shared along that axis) or the input's size.
    seed : int, optional
        Seed of the mask stream. Without it the layer takes a stream from ``fit(seed=...)``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> layer = npnet.layers.Dropout(0.5, noise_shape=(None, 1, None), seed=0)
    >>> y = layer(np.ones((2, 3, 4)), training=True)
    >>> bool((y == y[:, :1, :]).all())  # the same features are dropped at every step
    True
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.rate = check_float(rate, "rate", low=0.0, high=1.0, high_inclusive=False, owner=type(self).__name__)
        self.noise_shape = _check_noise_shape(noise_shape, type(self).__name__)
        self.seed = check_seed(seed, owner=type(self).__name__)
        self._rng = as_rng(seed)

    def _seed_from(self, rng, epoch):
        if self.seed is None:
            self._rng = np.random.default_rng(rng.integers(2**63))
        else:
            self._rng = np.random.default_rng([self.seed, epoch])

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The concrete noise shape for an input of ``shape`` (None entries filled in)."""
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"{self._owner}: `noise_shape` {self.noise_shape} has {len(self.noise_shape)} "
                             f"entries, expected one per axis of the input of shape {shape}")
        out = tuple(size if n is None else n for n, size in zip(self.noise_shape, shape))
        if any(n not in (1, size) for n, size in zip(out, shape)):
            raise ValueError(f"{self._owner}: `noise_shape` {self.noise_shape} does not broadcast to the input "
                             f"of shape {shape}; each entry must be None, 1 or the input's size")
        return out

    def forward(self, x, training=False):
        x = self._enter(x)
        if not training or self.rate == 0.0:
            return x, (None,)
        shape = self._mask_shape(x.shape)
        keep = 1.0 - self.rate
        mask = (self._rng.random(shape, dtype=np.float32) < keep).astype(x.dtype) * np.asarray(1.0 / keep, dtype=x.dtype)
        return x * mask, (mask,)

    def backward(self, cache, dy):
        self._require_cache(cache)
        (mask,) = cache
        return dy if mask is None else dy * mask

    def get_config(self):
        noise = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise, "seed": self.seed}


def _check_noise_shape(value: Any, owner: str) -> tuple[int | None, ...] | None:
    """Keras' ``noise_shape``: None, or a sequence of positive ints and Nones."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{owner}: `noise_shape` must be a tuple of ints or None entries, received {value!r}")
    out: list[int | None] = []
    for entry in value:
        if entry is None:
            out.append(None)
            continue
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, (int, np.integer)):
            raise TypeError(f"{owner}: `noise_shape` must hold ints or None, received {value!r}")
        if entry < 1:
            raise ValueError(f"{owner}: `noise_shape` entries must be >= 1 or None, received {value!r}")
        out.append(int(entry))
    if not out:
        raise ValueError(f"{owner}: `noise_shape` must have one entry per input axis, received {value!r}")
    return tuple(out)


class _SpatialDropout(_FixedRank, Dropout):
    """Dropout of whole channels: the noise shape is (batch, 1, ..., 1, channels)."""

    _ndim = 3
    _layout = "(batch, steps, channels)"

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(rate, seed=seed, name=name, trainable=trainable)

    def _mask_shape(self, shape):
        self._check_rank(shape)
        return (shape[0],) + (1,) * (self._ndim - 2) + (shape[-1],)

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        return config


class SpatialDropout1D(_SpatialDropout):
    r"""Dropout of whole feature channels of a sequence ``(batch, steps, channels)``: one
    draw per sample and channel, shared by every step (noise shape ``(batch, 1, channels)``),
    as Keras' SpatialDropout1D. Formula and backward as in :class:`Dropout`.

    Parameters
    ----------
    rate : float in [0, 1)
    seed : int, optional

    Examples
    --------
    >>> import numpy as np, npnet
    >>> y = npnet.layers.SpatialDropout1D(0.5, seed=0)(np.ones((2, 5, 3)), training=True)
    >>> bool((y == y[:, :1, :]).all())
    True
    """


class SpatialDropout2D(_SpatialDropout):
    r"""Dropout of whole feature maps of NHWC images: one draw per sample and channel,
    shared by every pixel (noise shape ``(batch, 1, 1, channels)``), as Keras'
    SpatialDropout2D. Formula and backward as in :class:`Dropout`.

    Parameters
    ----------
    rate : float in [0, 1)
    data_format : {None, "channels_last"}
        Only channels-last images are supported; ``"channels_first"`` is refused.
    seed : int, optional

    Examples
    --------
    >>> import numpy as np, npnet
    >>> y = npnet.layers.SpatialDropout2D(0.5, seed=0)(np.ones((2, 3, 3, 4)), training=True)
    >>> bool((y == y[:, :1, :1, :]).all())
    True
    """

    _ndim = 4
    _layout = "(batch, height, width, channels)"

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        owner = type(self).__name__
        self.data_format = check_data_format(data_format, self._layout, owner=owner)
        super().__init__(rate, seed=seed, name=name, trainable=trainable)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Rescaling(Layer):
    r"""Affine rescaling of inputs: ``y = x * scale + offset`` (for example ``scale=1/255``).

    Backward: :math:`dx = dy \cdot scale`. No parameters.

    Parameters
    ----------
    scale : float
    offset : float, default 0
    """

    supports_masking = True

    def __init__(self, scale: float, offset: float = 0.0, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.scale = check_float(scale, "scale", owner=type(self).__name__)
        self.offset = check_float(offset, "offset", owner=type(self).__name__)

    def forward(self, x, training=False):
        x = self._enter(x)
        y = x * self.scale
        if self.offset:
            y += self.offset
        return y, ()

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
