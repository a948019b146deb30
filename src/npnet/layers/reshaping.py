r"""Resizing layers: UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D, Cropping2D.

Sequences are ``(batch, steps, channels)`` and images ``(batch, height, width, channels)``
(Keras' ``channels_last``). None of these layers has parameters; each backward pass is
the adjoint of its forward copy: repeating sums the gradient back, padding crops it and
cropping pads it with zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_choice, check_data_format, check_int, check_tuple, owner_prefix
from .base import Layer, _FixedRank

__all__ = ["Cropping2D", "UpSampling1D", "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D"]

_SEQ = "(batch, steps, channels)"
_IMG = "(batch, height, width, channels)"
_INTERPOLATIONS = ("bicubic", "bilinear", "lanczos3", "lanczos5", "nearest")


def _pairs(value: Any, name: str, owner: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras' 2-D padding or cropping argument: an int, a 2-tuple of ints (symmetric height,
    width) or ``((top, bottom), (left, right))``; every number >= 0."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        (a, b) = check_tuple(value, name, 2, minimum=0, owner=owner)
        return ((a, b), (a, b))
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) != 2 or isinstance(value, str):
        raise ValueError(f"{owner_prefix(owner)}`{name}` must be an int, a tuple of 2 ints (height, width) or a "
                         f"tuple of 2 pairs ((top, bottom), (left, right)), received {value!r}")
    height = check_tuple(items[0], name, 2, minimum=0, owner=owner)
    width = check_tuple(items[1], name, 2, minimum=0, owner=owner)
    return ((height[0], height[1]), (width[0], width[1]))


def _add(size: int | None, extra: int) -> int | None:
    return None if size is None else size + extra


def _times(size: int | None, factor: int) -> int | None:
    return None if size is None else size * factor


class _Resize(_FixedRank, Layer):
    """Base of the layers below: inputs of one rank (``_ndim``, ``_layout``)."""

    _ndim = 4
    _layout = _IMG


class UpSampling1D(_Resize):
    r"""Repeat each step ``size`` times: ``(batch, steps, c)`` to ``(batch, steps * size, c)``.

    .. math:: y_{n,t,c} = x_{n,\lfloor t / r \rfloor,c}, \qquad
              dx_{n,j,c} = \sum_{i=0}^{r-1} dy_{n,\,j r + i,\,c}

    with :math:`r` = ``size``. The cache of a call is the input shape.

    Parameters
    ----------
    size : int, default 2
        The number of copies of each step, >= 1.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([1., 2., 3.]).reshape(1, 3, 1)
    >>> npnet.layers.UpSampling1D(2)(x)[0, :, 0]
    array([1., 1., 2., 2., 3., 3.])
    """

    _ndim = 3
    _layout = _SEQ

    def __init__(self, size: int = 2, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.size = check_int(size, "size", minimum=1, owner=type(self).__name__)

    def forward(self, x, training=False):
        x = self._enter(x)
        return np.repeat(x, self.size, axis=1), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        n, steps, c = cache
        return dy.reshape(n, steps, self.size, c).sum(axis=2)

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        return (n, _times(steps, self.size), c)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling2D(_Resize):
    r"""Repeat each row ``size[0]`` times and each column ``size[1]`` times (nearest-neighbour
    upsampling): ``(batch, h, w, c)`` to ``(batch, h * size[0], w * size[1], c)``.

    .. math:: y_{n,i,j,c} = x_{n,\lfloor i / r_h \rfloor,\lfloor j / r_w \rfloor,c}, \qquad
              dx_{n,a,b,c} = \sum_{p<r_h,\,q<r_w} dy_{n,\,a r_h + p,\,b r_w + q,\,c}

    The cache of a call is the input shape.

    Parameters
    ----------
    size : int or tuple of 2 ints, default (2, 2)
    data_format : {"channels_last", None}
        ``"channels_first"`` is refused.
    interpolation : {"nearest"}
        Keras' other choices (``"bilinear"``, ...) are refused with a clear error.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([[1., 2.], [3., 4.]]).reshape(1, 2, 2, 1)
    >>> npnet.layers.UpSampling2D((1, 2))(x)[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [3., 3., 4., 4.]])
    """

    def __init__(self, size: Any = (2, 2), data_format: str | None = None, interpolation: str = "nearest",
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.size = check_tuple(size, "size", 2, owner=owner)
        self.data_format = check_data_format(data_format, _IMG, owner=owner)
        if not isinstance(interpolation, str):
            raise TypeError(f"{owner}: `interpolation` must be a string, received {interpolation!r}")
        interpolation = interpolation.lower()
        if interpolation in _INTERPOLATIONS and interpolation != "nearest":
            raise ValueError(f"{owner}: `interpolation` {interpolation!r} is not supported; npnet has "
                             "'nearest' only")
        self.interpolation = check_choice(interpolation, "interpolation", ["nearest"], owner=owner)

    def forward(self, x, training=False):
        x = self._enter(x)
        n, h, w, c = x.shape
        rh, rw = self.size
        y = np.broadcast_to(x[:, :, None, :, None, :], (n, h, rh, w, rw, c)).reshape(n, h * rh, w * rw, c)
        return y, x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        n, h, w, c = cache
        rh, rw = self.size
        return dy.reshape(n, h, rh, w, rw, c).sum(axis=(2, 4))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, _times(h, self.size[0]), _times(w, self.size[1]), c)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


class ZeroPadding1D(_Resize):
    r"""Add ``padding[0]`` zero steps at the start and ``padding[1]`` at the end:
    ``(batch, steps, c)`` to ``(batch, left + steps + right, c)``.

    The gradient is ``dy`` with the padded steps cut off:
    :math:`dx_{n,t,c} = dy_{n,\,t + \text{left},\,c}`. The cache of a call is the input shape.

    Parameters
    ----------
    padding : int or tuple of 2 ints (left, right), default 1
    data_format : {"channels_last", None}
        ``"channels_first"`` is refused.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([1., 2.]).reshape(1, 2, 1)
    >>> npnet.layers.ZeroPadding1D((1, 2))(x)[0, :, 0]
    array([0., 1., 2., 0., 0.])
    """

    _ndim = 3
    _layout = _SEQ

    def __init__(self, padding: Any = 1, data_format: str | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        left, right = check_tuple(padding, "padding", 2, minimum=0, owner=owner)
        self.padding = (left, right)
        self.data_format = check_data_format(data_format, _SEQ, owner=owner)

    def forward(self, x, training=False):
        x = self._enter(x)
        return np.pad(x, ((0, 0), self.padding, (0, 0))), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        left, steps = self.padding[0], cache[1]
        return dy[:, left : left + steps, :].copy()

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        return (n, _add(steps, sum(self.padding)), c)

    def get_config(self):
        return {**super().get_config(), "padding": list(self.padding), "data_format": self.data_format}


class ZeroPadding2D(_Resize):
    r"""Add rows of zeros above and below and columns of zeros left and right:
    ``(batch, h, w, c)`` to ``(batch, top + h + bottom, left + w + right, c)``.

    The gradient is ``dy`` with the padded rows and columns cut off:
    :math:`dx_{n,i,j,c} = dy_{n,\,i + \text{top},\,j + \text{left},\,c}`. The cache of a call
    is the input shape.

    Parameters
    ----------
    padding : int, tuple of 2 ints or tuple of 2 pairs, default (1, 1)
        An int pads all four sides alike; ``(ph, pw)`` pads ``ph`` rows above and below and
        ``pw`` columns left and right; ``((top, bottom), (left, right))`` sets each side.
    data_format : {"channels_last", None}
        ``"channels_first"`` is refused.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.ones((1, 1, 2, 1))
    >>> npnet.layers.ZeroPadding2D(((0, 1), (1, 0)))(x)[0, :, :, 0]
    array([[0., 1., 1.],
           [0., 0., 0.]])
    """

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.padding = _pairs(padding, "padding", owner)
        self.data_format = check_data_format(data_format, _IMG, owner=owner)

    def forward(self, x, training=False):
        x = self._enter(x)
        return np.pad(x, ((0, 0), *self.padding, (0, 0))), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        _, h, w, _ = cache
        (top, _), (left, _) = self.padding
        return dy[:, top : top + h, left : left + w, :].copy()

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, _add(h, sum(self.padding[0])), _add(w, sum(self.padding[1])), c)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding],
                "data_format": self.data_format}


class Cropping2D(_Resize):
    r"""Cut rows off the top and bottom and columns off the left and right:
    ``(batch, h, w, c)`` to ``(batch, h - top - bottom, w - left - right, c)``.

    .. math:: y_{n,i,j,c} = x_{n,\,i + \text{top},\,j + \text{left},\,c}

    The gradient is ``dy`` padded back with zeros where the input was cut. The cache of a
    call is the input shape.

    Parameters
    ----------
    cropping : int, tuple of 2 ints or tuple of 2 pairs, default ((0, 0), (0, 0))
        As ``padding`` in :class:`ZeroPadding2D`. At least one row and one column must remain.
    data_format : {"channels_last", None}
        ``"channels_first"`` is refused.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.arange(12.0).reshape(1, 3, 4, 1)
    >>> npnet.layers.Cropping2D(((1, 0), (1, 2)))(x)[0, :, :, 0]
    array([[5.],
           [9.]])
    """

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: str | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.cropping = _pairs(cropping, "cropping", owner)
        self.data_format = check_data_format(data_format, _IMG, owner=owner)

    def _check_fits(self, input_shape) -> None:
        for size, crop in zip(input_shape[1:3], self.cropping):
            if size is not None and sum(crop) >= size:
                raise ValueError(
                    f"{self._owner}: `cropping` {[list(c) for c in self.cropping]} leaves nothing of an input of "
                    f"shape {tuple(input_shape)}; each cropped height and width must be smaller than the input's")

    def forward(self, x, training=False):
        x = self._enter(x)
        self._check_fits(x.shape)
        _, h, w, _ = x.shape
        (top, bottom), (left, right) = self.cropping
        return x[:, top : h - bottom, left : w - right, :].copy(), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        return np.pad(dy, ((0, 0), *self.cropping, (0, 0)))

    def compute_output_shape(self, input_shape):
        self._check_fits(input_shape)
        n, h, w, c = input_shape
        return (n, _add(h, -sum(self.cropping[0])), _add(w, -sum(self.cropping[1])), c)

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping],
                "data_format": self.data_format}
