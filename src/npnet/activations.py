r"""Activation functions on arrays, under Keras' names, formulas and defaults.

Each function computes the forward values of one activation on a NumPy array. Every
activation here is also a layer with a hand-written backward (:mod:`npnet.layers`), and
passing one of these functions as a layer's activation (``Dense(8, activation=relu)``)
is the same as passing its name (``activation="relu"``): the layer uses the matching
activation layer and saves the name.

======================  ===========================================  =====================
function                formula                                      layer
======================  ===========================================  =====================
``linear(x)``           :math:`x`                                    ``Linear``
``relu(x)``             :math:`\max(x, 0)` (see its arguments)       ``ReLU``
``leaky_relu(x, 0.2)``  :math:`x` if :math:`x > 0` else :math:`a x`  ``LeakyReLU(0.2)``
``elu(x, 1.0)``         :math:`x` or :math:`a (e^x - 1)`             ``ELU``
``sigmoid(x)``          :math:`1 / (1 + e^{-x})`                     ``Sigmoid``
``tanh(x)``             :math:`\tanh x`                              ``Tanh``
``softplus(x)``         :math:`\log(1 + e^x)`                        ``Softplus``
``silu(x)``, ``swish``  :math:`x \sigma(x)`                          ``Swish``
``softmax(x, -1)``      :math:`e^{x_i} / \sum_j e^{x_j}`             ``Softmax``
======================  ===========================================  =====================

Examples
--------
>>> import numpy as np, npnet
>>> npnet.activations.leaky_relu(np.array([-1.0, 2.0]))
array([-0.2,  2. ])
>>> npnet.activations.get("swish") is npnet.activations.silu
True
>>> npnet.activations.serialize(npnet.activations.relu)
'relu'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._config import floatx

__all__ = [
    "elu",
    "leaky_relu",
    "linear",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "swish",
    "tanh",
    "get",
    "serialize",
    "deserialize",
]


def _float(x: Any) -> np.ndarray:
    """``x`` as a float array: float arrays keep their dtype, anything else becomes floatx."""
    a = np.asarray(x)
    return a if a.dtype.kind == "f" else a.astype(floatx())


def _scalar(value: float, a: np.ndarray) -> np.floating:
    """A Python number as a scalar of ``a``'s dtype, so float32 stays float32."""
    return a.dtype.type(value)


def linear(x: Any) -> np.ndarray:
    """Identity: returns ``x`` (as a float array).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.linear(np.array([-1.0, 2.0]))
    array([-1.,  2.])
    """
    return _float(x)


def relu(x: Any, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> np.ndarray:
    r"""Rectified linear unit, with Keras' optional slope, cap and threshold.

    With the defaults, :math:`\max(x, 0)`. In general, with slope :math:`a`, threshold
    :math:`t` and cap :math:`m`, Keras' steps:

    .. math::
        r = [x > t]\, x, \qquad f(x) = r - a \max(t - x, 0)

    with :math:`r` clipped to :math:`[0, m]` when a cap is given; so for :math:`t \ge 0`,
    :math:`f(x) = \min(x, m)` above the threshold and :math:`a (x - t)` at or below it.

    Parameters
    ----------
    x : array_like
    negative_slope : float, default 0.0
        Slope :math:`a` below the threshold.
    max_value : float, optional
        Largest output value :math:`m`.
    threshold : float, default 0.0
        Inputs at or below :math:`t` are mapped to :math:`a (x - t)`.

    Returns
    -------
    ndarray of the shape of ``x``

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])
    >>> npnet.activations.relu(x)
    array([ 0.,  0.,  0.,  5., 10.])
    >>> npnet.activations.relu(x, negative_slope=0.5)
    array([-5. , -2.5,  0. ,  5. , 10. ])
    >>> npnet.activations.relu(x, max_value=5.0)
    array([0., 0., 0., 5., 5.])
    >>> npnet.activations.relu(x, threshold=5.0)
    array([ 0.,  0.,  0.,  0., 10.])
    """
    a = _float(x)
    # Keras' formula, step by step: the part below the threshold, the rectified part
    # (x above the threshold, else 0), the cap, then the slope times the part below.
    if negative_slope != 0.0:
        below = np.maximum(_scalar(threshold, a) - a, _scalar(0.0, a))
    if threshold != 0.0:
        y = np.where(a > _scalar(threshold, a), a, _scalar(0.0, a))
    else:
        y = np.maximum(a, _scalar(0.0, a))
    if max_value is not None:
        y = np.clip(y, _scalar(0.0, a), _scalar(max_value, a))
    if negative_slope != 0.0:
        y = y - _scalar(negative_slope, a) * below
    return np.asarray(y, dtype=a.dtype)


def leaky_relu(x: Any, negative_slope: float = 0.2) -> np.ndarray:
    r"""Leaky ReLU: :math:`x` for :math:`x > 0`, else :math:`a x`.

    The default slope :math:`a = 0.2` is Keras' for the function (and so for
    ``activation="leaky_relu"``); the ``LeakyReLU`` layer's default is 0.3, also as Keras.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.leaky_relu(np.array([-2.0, 3.0]), negative_slope=0.5)
    array([-1.,  3.])
    """
    a = _float(x)
    return np.where(a > 0, a, a * _scalar(negative_slope, a))


def elu(x: Any, alpha: float = 1.0) -> np.ndarray:
    r"""Exponential linear unit: :math:`x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.elu(np.array([-1.0, 2.0])).round(6)
    array([-0.632121,  2.      ])
    """
    a = _float(x)
    return np.where(a > 0, a, _scalar(alpha, a) * np.expm1(np.minimum(a, _scalar(0.0, a))))


def sigmoid(x: Any) -> np.ndarray:
    r"""Logistic sigmoid :math:`1 / (1 + e^{-x})`, computed without overflow.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.sigmoid(np.array([0.0, 1000.0, -1000.0]))
    array([0.5, 1. , 0. ])
    """
    a = _float(x)
    e = np.exp(-np.abs(a))  # exp of non-positive numbers only
    one = _scalar(1.0, a)
    return np.where(a >= 0, one / (one + e), e / (one + e)).astype(a.dtype, copy=False)


def tanh(x: Any) -> np.ndarray:
    """Hyperbolic tangent.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.tanh(np.array([0.0]))
    array([0.])
    """
    return np.tanh(_float(x))


def softplus(x: Any) -> np.ndarray:
    r"""Softplus :math:`\log(1 + e^x)`, computed as :math:`\max(x, 0) + \log(1 + e^{-|x|})`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.softplus(np.array([0.0, 1000.0])).round(6).tolist()
    [0.693147, 1000.0]
    """
    a = _float(x)
    return np.maximum(a, _scalar(0.0, a)) + np.log1p(np.exp(-np.abs(a)))


def silu(x: Any) -> np.ndarray:
    r"""SiLU, also called swish: :math:`x \sigma(x)`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.silu(np.array([0.0, 1.0])).round(6)
    array([0.      , 0.731059])
    """
    a = _float(x)
    return a * sigmoid(a)


swish = silu


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    r"""Softmax along ``axis``: :math:`e^{x_i - m} / \sum_j e^{x_j - m}` with :math:`m = \max_j x_j`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.activations.softmax(np.array([[0.0, np.log(3.0)]]))
    array([[0.25, 0.75]])
    """
    a = _float(x)
    if a.ndim == 0:
        raise ValueError("softmax: expected an array with at least one axis, received a scalar")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"softmax: `axis` {axis} is out of range for an array of shape {a.shape}")
    z = np.exp(a - a.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


#: Names to functions, as Keras spells them (``swish`` is another name of ``silu``).
_BY_NAME: dict[str, Callable[..., np.ndarray]] = {
    "linear": linear,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softplus": softplus,
    "silu": silu,
    "swish": silu,
    "softmax": softmax,
}


def _name_of(fn: Any) -> str | None:
    """The name of one of the functions above, or None for anything else."""
    for name, f in _BY_NAME.items():
        if f is fn:
            return fn.__name__ if name == "swish" else name
    return None


def get(identifier: Any) -> Any:
    """The activation function for a name, or ``identifier`` itself if it is callable.

    Parameters
    ----------
    identifier : str, callable or None
        A name such as ``"relu"`` or ``"swish"``; ``None`` gives :func:`linear`.

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        For an unknown name or anything else that is not callable.

    Examples
    --------
    >>> import npnet
    >>> npnet.activations.get("relu") is npnet.activations.relu
    True
    >>> npnet.activations.get(None) is npnet.activations.linear
    True
    """
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]
        raise ValueError(f"activations.get: unknown activation {identifier!r}; known names: {sorted(_BY_NAME)}")
    if callable(identifier):
        return identifier
    raise ValueError(f"activations.get: could not interpret activation identifier {identifier!r}")


def serialize(activation: Any) -> Any:
    """The saved form of an activation: its name, or for an activation layer its class and config.

    Examples
    --------
    >>> import npnet
    >>> npnet.activations.serialize(npnet.activations.swish)
    'silu'
    >>> npnet.activations.serialize(npnet.layers.LeakyReLU(negative_slope=0.1))
    {'class_name': 'LeakyReLU', 'config': {'negative_slope': 0.1}}
    """
    from .layers.base import Layer

    name = _name_of(activation)
    if name is not None:
        return name
    if isinstance(activation, Layer):
        config = {k: v for k, v in activation.get_config().items() if k not in ("name", "trainable")}
        return {"class_name": type(activation).__name__, "config": config}
    raise ValueError(
        f"activations.serialize: {activation!r} is not one of npnet's activations; known names: {sorted(_BY_NAME)}")


def deserialize(config: Any, custom_objects: dict[str, type] | None = None) -> Any:
    """The inverse of :func:`serialize`: a function for a name, an activation layer for a dict.

    Examples
    --------
    >>> import npnet
    >>> npnet.activations.deserialize("tanh") is npnet.activations.tanh
    True
    >>> npnet.activations.deserialize({"class_name": "ELU", "config": {"alpha": 0.5}}).alpha
    0.5
    """
    if isinstance(config, str):
        return get(config)
    if isinstance(config, dict) and isinstance(config.get("class_name"), str) and isinstance(
            config.get("config", {}), dict):
        from .layers.base import get_layer_class

        name = config["class_name"]
        cls: Any = (custom_objects or {}).get(name) or get_layer_class(name)
        return cls.from_config(dict(config.get("config", {})))
    raise ValueError(
        "activations.deserialize: expected a name or a dict {'class_name': ..., 'config': {...}}, "
        f"received {config!r}")
