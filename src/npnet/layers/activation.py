"""Activation layers: element-wise (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, Swish)
and Softmax. Each keeps the one array its derivative needs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _parallel
from .._validation import check_bool, check_float, check_int
from .base import Layer

__all__ = [
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Swish",
    "Softmax",
    "Linear",
    "get_activation",
    "ACTIVATIONS",
]


def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` as rows of one sample each, to cut into chunks: a view when ``a`` is
    contiguous (always so for the arrays a layer creates), else a contiguous copy."""
    return a.reshape(len(a), -1) if a.ndim >= 2 else a.reshape(-1)


class _Elementwise(Layer):
    """An element-wise activation: the output has the input's shape (and keeps its mask)."""

    supports_masking = True


class Linear(_Elementwise):
    """Identity: ``y = x``, ``dx = dy``."""

    def forward(self, x, training=False):
        return self._enter(x), ()

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy


class ReLU(_Elementwise):
    r"""Rectified linear unit.

    .. math:: y = \max(x, 0), \qquad \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} \cdot [x > 0]

    The cache is the boolean mask ``x > 0``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.layers.ReLU()(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
    """

    def forward(self, x, training=False):
        x = self._enter(x)
        mask, y = self._new_array("mask", x.shape, bool), self._new_array("y", x.shape, x.dtype)
        xs, ms, ys = _rows(x), _rows(mask), _rows(y)

        def part(a: int, b: int) -> None:
            np.greater(xs[a:b], 0, out=ms[a:b])
            np.maximum(xs[a:b], 0, out=ys[a:b])

        _parallel.run(part, len(xs), x.size)
        return y, mask

    def backward(self, cache, dy):
        self._require_cache(cache)
        dx = self._new_array("dx", dy.shape, dy.dtype)
        ds, ms, dxs = _rows(dy), _rows(cache), _rows(dx)
        _parallel.run(lambda a, b: np.multiply(ds[a:b], ms[a:b], out=dxs[a:b]), len(ds), dy.size)
        return dx


class LeakyReLU(_Elementwise):
    r"""Leaky ReLU: :math:`y = x` for :math:`x > 0`, else :math:`\alpha x`.

    Parameters
    ----------
    negative_slope : float, default 0.3
        The slope :math:`\alpha` for negative inputs (the Keras layer's default). The
        activation *name* ``"leaky_relu"`` (``Dense(..., activation="leaky_relu")``) means
        Keras' function :func:`npnet.activations.leaky_relu`, whose slope is 0.2.
    """

    def __init__(self, negative_slope: float = 0.3, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.negative_slope = check_float(negative_slope, "negative_slope", low=0.0, owner=type(self).__name__)

    def forward(self, x, training=False):
        x = self._enter(x)
        mask = x > 0
        return np.where(mask, x, x * self.negative_slope), mask

    def backward(self, cache, dy):
        self._require_cache(cache)
        return np.where(cache, dy, dy * self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_Elementwise):
    r"""Exponential linear unit: :math:`y = x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`.

    The derivative for :math:`x \le 0` is :math:`y + \alpha`, so the cache is ``y``
    and the mask.
    """

    def __init__(self, alpha: float = 1.0, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.alpha = check_float(alpha, "alpha", low=0.0, owner=type(self).__name__)

    def forward(self, x, training=False):
        x = self._enter(x)
        mask = x > 0
        y = np.where(mask, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return y, (mask, y)

    def backward(self, cache, dy):
        self._require_cache(cache)
        mask, y = cache
        return np.where(mask, dy, dy * (y + self.alpha))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable for large |x|: exp is only taken of non-positive numbers.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


class Sigmoid(_Elementwise):
    r"""Logistic sigmoid :math:`y = 1 / (1 + e^{-x})`, with :math:`dx = dy \cdot y (1 - y)`.

    As the output of a model compiled with binary cross-entropy, the model skips this
    backward and uses the fused gradient with respect to the logits.
    """

    def forward(self, x, training=False):
        x = self._enter(x)
        y = _sigmoid(x)
        return y, y

    def backward(self, cache, dy):
        self._require_cache(cache)
        y = cache
        return dy * y * (1 - y)

    def _fusion(self, cache, inputs):
        return "sigmoid", inputs[0]

    def _backward_from_logits(self, cache, dz):
        return dz


class Tanh(_Elementwise):
    r"""Hyperbolic tangent, with :math:`dx = dy (1 - y^2)`."""

    def forward(self, x, training=False):
        x = self._enter(x)
        y = np.tanh(x)
        return y, y

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy * (1 - cache * cache)


class Softplus(_Elementwise):
    r"""Softplus :math:`y = \log(1 + e^x)`, computed stably; :math:`dx = dy \cdot \sigma(x)`."""

    def forward(self, x, training=False):
        x = self._enter(x)
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), x

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy * _sigmoid(cache)


class Swish(_Elementwise):
    r"""Swish / SiLU :math:`y = x \sigma(x)`; :math:`dx = dy\,(\sigma + x \sigma (1 - \sigma))`."""

    def forward(self, x, training=False):
        x = self._enter(x)
        s = _sigmoid(x)
        return x * s, (x, s)

    def backward(self, cache, dy):
        self._require_cache(cache)
        x, s = cache
        return dy * (s + x * s * (1 - s))


class Softmax(Layer):
    r"""Softmax along ``axis``: :math:`y_i = e^{x_i - m} / \sum_j e^{x_j - m}`, :math:`m = \max_j x_j`.

    Backward: :math:`dx = y \odot (dy - \sum_j dy_j y_j)`.

    As the output of a model compiled with a cross-entropy loss, the model skips this
    backward and uses the fused, numerically stable gradient :math:`(p - y) / n` of the
    loss with respect to the logits.

    Parameters
    ----------
    axis : int, default -1
        The axis that sums to one.
    """

    supports_masking = True

    def __init__(self, axis: int = -1, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = check_int(axis, "axis", owner=type(self).__name__)

    def build(self, input_shape):
        super().build(input_shape)
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"{self._owner}: `axis` {self.axis} is out of range for input shape {tuple(input_shape)}")

    @staticmethod
    def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
        z = x - x.max(axis=axis, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=axis, keepdims=True)
        return z

    def forward(self, x, training=False):
        x = self._enter(x)
        y = self._softmax(x, self.axis)
        return y, y

    def backward(self, cache, dy):
        self._require_cache(cache)
        y = cache
        return y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))

    def _fusion(self, cache, inputs):
        return ("softmax", inputs[0]) if self.axis == -1 else None

    def _backward_from_logits(self, cache, dz):
        return dz

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class _Activated:
    """Mixin for layers computing ``y = activation(z)`` from an affine ``z``.

    The host class defines ``_linear(x) -> (z, cache)`` and
    ``_linear_backward(cache, dz) -> dx``, and an optional activation layer ``_act``.
    Keeping the affine part separate lets a model fuse a final softmax into the
    cross-entropy loss. The cache of a call is ``(affine cache, z, activation cache)``.
    """

    _act: Layer | None = None

    def _set_affine(self, activation: Any, use_bias: bool, kernel_initializer: Any, bias_initializer: Any) -> None:
        """Validate and store the arguments shared by Dense and Conv2D, unchanged."""
        from .. import initializers

        owner = type(self).__name__
        self._act = get_activation(activation, owner=owner)
        # Stored in its saved form: a name ("relu" also for npnet.activations.relu) or,
        # for an activation layer, its class and config.
        self.activation = _saved_form(activation)
        self.use_bias = check_bool(use_bias, "use_bias", owner=type(self).__name__)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer, owner=owner)
        initializers.get(bias_initializer, owner=owner)

    def forward(self, x, training=False):
        z, lin = self._linear(x)
        if self._act is None:
            return z, (lin, z, None)
        y, act = self._act.forward(z, training)
        if self._act.params:
            raise ValueError(
                f"{self._owner}: its activation layer {self._act.name!r} has weights, which the layer would not "
                "train; add that layer after this one instead (with activation=None)")
        return y, (lin, z, act)

    def backward(self, cache, dy):
        self._require_cache(cache)
        lin, _, act = cache
        dz = dy if self._act is None else self._act.backward(act, dy)
        return self._linear_backward(lin, dz)

    def _fusion(self, cache, inputs):
        if self._act is None:
            return None
        fused = self._act._fusion(None, [cache[1]])
        return fused

    def _backward_from_logits(self, cache, dz):
        return self._linear_backward(cache[0], dz)


ACTIVATIONS: dict[str, type[Layer]] = {
    "linear": Linear,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softplus": Softplus,
    "swish": Swish,
    "silu": Swish,
    "softmax": Softmax,
}

#: Arguments that make a layer compute what the function of that name computes with its
#: defaults (``activations.leaky_relu`` has slope 0.2, the ``LeakyReLU`` layer 0.3).
_NAME_ARGS: dict[str, dict[str, Any]] = {"leaky_relu": {"negative_slope": 0.2}}


def _custom_hint(identifier: Any) -> str:
    return (f"{identifier!r} is not one of npnet's activations ({sorted(ACTIVATIONS)}), and npnet needs a "
            "hand-written backward for every activation. Make it a layer: subclass npnet.layers.Layer with "
            "forward(x, training) -> (y, cache) and backward(cache, dy) -> dx (see the 'Write your own layer' "
            "guide), register it with npnet.register_layer, and pass an instance as activation=..., or add it "
            "after this layer, which then takes activation=None")


def get_activation(identifier: Any, owner: str | None = None) -> Layer | None:
    """The activation layer for an ``activation=`` argument; ``None`` stays ``None``.

    ``identifier`` is a name such as ``"relu"``, one of the functions of
    :mod:`npnet.activations` (the same as its name), a primitive activation layer (used
    as it is), or the saved form of one (``{"class_name": "LeakyReLU", "config": {...}}``).
    """
    from .. import activations as _fns

    if identifier is None:
        return None
    prefix = f"{owner}: " if owner else ""
    name = identifier if isinstance(identifier, str) else _fns._name_of(identifier)
    if name is not None and name in ACTIVATIONS:
        return ACTIVATIONS[name](name=f"{name}_activation", **_NAME_ARGS.get(name, {}))
    if isinstance(identifier, dict):
        try:
            identifier = _fns.deserialize(identifier)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{prefix}invalid activation {identifier!r}: {exc}") from None
        if not isinstance(identifier, Layer):
            raise ValueError(f"{prefix}invalid activation: the config names {identifier!r}, not a layer")
    if isinstance(identifier, Layer):
        if identifier._is_composite() or type(identifier).forward is Layer.forward:
            raise TypeError(
                f"{prefix}an activation layer must be a primitive layer with forward() and backward(), "
                f"received {identifier._owner}; add it after this layer instead (with activation=None)")
        if identifier.params:
            raise ValueError(
                f"{prefix}activation layer {identifier._owner} has weights, which this layer would not train; "
                "add it after this layer instead (with activation=None)")
        return identifier
    if callable(identifier):
        raise TypeError(f"{prefix}activation {_custom_hint(identifier)}")
    raise ValueError(f"{prefix}unknown activation {identifier!r}; known names: {sorted(ACTIVATIONS)}")


def _saved_form(identifier: Any) -> Any:
    """The saved form of a valid ``activation=`` argument: ``None``, a name, or a dict."""
    from .. import activations as _fns

    if identifier is None or isinstance(identifier, str):
        return identifier
    if isinstance(identifier, dict):
        return identifier
    return _fns.serialize(identifier)
