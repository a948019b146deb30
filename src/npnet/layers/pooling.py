"""Pooling over NHWC batches (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
GlobalMaxPooling2D) and over ``(batch, steps, channels)`` sequences (the 1-D versions).

Output sizes follow Keras: ``padding="valid"`` gives :math:`\\lfloor (i - p) / s \\rfloor + 1`,
``padding="same"`` gives :math:`\\lceil i / s \\rceil` with the padding split as in
:mod:`npnet.layers.conv`. ``strides`` defaults to ``pool_size``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _parallel
from .._validation import check_bool, check_choice, check_data_format, check_tuple
from .base import InputSpec, Layer
from .conv import _windows, conv_output_size, same_padding

__all__ = [
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "MaxPooling1D",
    "MaxPooling2D",
]

_LAYOUT = "(batch, height, width, channels)"
_LAYOUT_1D = "(batch, steps, channels)"


class _Pooling2D(Layer):
    _build_spec = InputSpec(ndim=4, layout=_LAYOUT)

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid", data_format: str | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.pool_size = check_tuple(pool_size, "pool_size", 2, owner=owner)
        self.strides = self.pool_size if strides is None else check_tuple(strides, "strides", 2, owner=owner)
        self.padding = check_choice(padding, "padding", ["valid", "same"], owner=owner)
        self.data_format = check_data_format(data_format, _LAYOUT, owner=owner)

    def _geometry(self, h: int, w: int):
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        out = (conv_output_size(h, ph, sh, self.padding), conv_output_size(w, pw, sw, self.padding))
        pads = (same_padding(h, ph, sh), same_padding(w, pw, sw)) if self.padding == "same" else ((0, 0), (0, 0))
        return out, pads

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner}: expected input of rank 4 {_LAYOUT}, received shape {tuple(input_shape)}")
        h, w = input_shape[1:3]
        (oh, ow), _ = self._geometry(1 << 30 if h is None else h, 1 << 30 if w is None else w)  # None: varies
        if oh < 1 or ow < 1:
            raise ValueError(f"{self._owner}: pool {self.pool_size} is larger than the input {tuple(input_shape[1:3])}")
        self.input_spec = InputSpec(ndim=4, layout=_LAYOUT)
        super().build(input_shape)

    def _tiles(self, x: np.ndarray) -> bool:
        """Whether windows tile the input exactly (stride == pool, sizes divide, no padding)."""
        return (self.strides == self.pool_size and self.padding == "valid" and self.pool_size[0] * self.pool_size[1] < 256
                and x.shape[1] % self.pool_size[0] == 0 and x.shape[2] % self.pool_size[1] == 0)

    def _scatter(self, per_offset, out_hw, xshape, pads, dtype) -> np.ndarray:
        """Sum per-offset window gradients back into the (padded) input; crop the padding."""
        (ph, pw), (sh, sw), (oh, ow) = self.pool_size, self.strides, out_hw
        dxp = np.zeros(xshape, dtype=dtype)
        for i in range(ph):
            for j in range(pw):
                dxp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :] += per_offset(i, j)
        (pt, pb), (pl, pr) = pads
        return dxp[:, pt : xshape[1] - pb, pl : xshape[2] - pr, :]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (oh, ow), _ = self._geometry(1 if h is None else h, 1 if w is None else w)
        return (n, None if h is None else oh, None if w is None else ow, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """Maximum over each ``pool_size`` window.

    The forward pass keeps a running maximum over the ``ph * pw`` window offsets, each a
    strided view of the (padded) input, and records which offset won (the first maximal
    element of each window). The backward pass routes ``dy`` to that offset, one strided
    write per offset. When windows tile the input exactly (the usual 2x2, stride 2) no
    padding or scatter-add is needed.

    The cache of a call is ``(mode, arg, input shape, padded input shape, pads)``:
    ``arg`` holds the winning offset ``i * pw + j`` of each window, and ``mode`` is
    ``"tile"`` or ``"window"``.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : int, (int, int) or None, default None (``pool_size``)
    padding : {"valid", "same"}
    data_format : {None, "channels_last"}
        Inputs are NHWC; ``"channels_first"`` is refused.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> npnet.layers.MaxPooling2D(2)(x)[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    def forward(self, x, training=False):
        x = self._enter(x)
        n, h, w, c = x.shape
        (oh, ow), pads = self._geometry(h, w)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        (pt, pb), (pl, pr) = pads
        if self._tiles(x):
            return self._forward_tiled(x, oh, ow)
        xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf) if pt + pb + pl + pr else x
        y = np.array(xp[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :])
        arg = np.zeros(y.shape, dtype=np.int32)
        better = np.empty(y.shape, dtype=bool)
        for i in range(ph):
            for j in range(pw):
                if i == 0 and j == 0:
                    continue
                v = xp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
                # Offsets come in increasing order, so "later and strictly greater" can be
                # recorded with a maximum (np.copyto with where= is several times slower).
                np.greater(v, y, out=better)
                np.maximum(y, v, out=y)
                np.maximum(arg, better * np.int32(i * pw + j), out=arg)
        return y, ("window", arg, x.shape, xp.shape, pads)

    def _forward_tiled(self, x: np.ndarray, oh: int, ow: int) -> tuple[np.ndarray, tuple]:
        n, h, w, c = x.shape
        y = self._new_array("y", (n, oh, ow, c), x.dtype)
        arg = self._new_array("arg", (n, oh, ow, c), np.int16)
        _parallel.run(lambda a, b: self._tiled_part(x[a:b], y[a:b], arg[a:b]), n, x.size)
        return y, ("tile", arg, x.shape, x.shape, ((0, 0), (0, 0)))

    def _tiled_part(self, x: np.ndarray, y: np.ndarray, arg: np.ndarray) -> None:
        # Reduce the ph rows of each window first (long contiguous runs), then the pw
        # columns; remember the winning row and column of each window.
        n, oh, ow, c = y.shape
        ph, pw = self.pool_size
        rows = x.reshape(n * oh, ph, ow * pw * c)
        rmax = rows[:, 0].copy()
        rarg = np.zeros(rmax.shape, dtype=np.int16)
        better = np.empty(rmax.shape, dtype=bool)
        for i in range(1, ph):
            np.greater(rows[:, i], rmax, out=better)
            np.maximum(rmax, rows[:, i], out=rmax)
            np.maximum(rarg, better * np.int16(i), out=rarg)  # i grows: a maximum records it
        cols = rmax.reshape(n * oh, ow, pw, c)
        rsel = rarg.reshape(n * oh, ow, pw, c)
        y2, arg2 = y.reshape(n * oh, ow, c), arg.reshape(n * oh, ow, c)
        np.copyto(y2, cols[:, :, 0])
        np.multiply(rsel[:, :, 0], np.int16(pw), out=arg2)
        better = better.reshape(n * oh, ow, pw, c)[:, :, 0]
        for j in range(1, pw):
            np.greater(cols[:, :, j], y2, out=better)
            np.maximum(y2, cols[:, :, j], out=y2)
            # arg = where(better, row_j * pw + j, arg), as arithmetic (faster than where=)
            arg2 += better * (rsel[:, :, j] * np.int16(pw) + np.int16(j) - arg2)

    def backward(self, cache, dy):
        self._require_cache(cache)
        mode, arg, xshape, xpshape, pads = cache
        ph, pw = self.pool_size
        n, oh, ow, c = dy.shape
        if mode == "tile":
            # Windows do not overlap: each input element gets at most one gradient.
            dx = self._new_array("dx", xshape, dy.dtype)

            def part(a: int, b: int) -> None:
                hit = np.empty(arg[a:b].shape, dtype=bool)
                for i in range(ph):
                    for j in range(pw):
                        np.equal(arg[a:b], i * pw + j, out=hit)
                        np.multiply(dy[a:b], hit, out=dx[a:b, i::ph, j::pw, :])

            _parallel.run(part, n, dx.size)
            return dx
        zero = np.zeros((), dtype=dy.dtype)
        return self._scatter(lambda i, j: np.where(arg == i * pw + j, dy, zero), (oh, ow), xpshape, pads, dy.dtype)


class AveragePooling2D(_Pooling2D):
    """Mean over each ``pool_size`` window; with ``padding="same"``, padded positions are
    left out of the mean (as Keras does).

    The cache of a call is ``(mode, count, input shape, padded input shape, pads)``, with
    ``count`` the number of real (unpadded) elements in each window.

    Arguments as in :class:`MaxPooling2D`.
    """

    def forward(self, x, training=False):
        x = self._enter(x)
        n, h, w, c = x.shape
        (oh, ow), pads = self._geometry(h, w)
        (ph, pw) = self.pool_size
        if self._tiles(x):
            count = np.asarray(ph * pw, dtype=x.dtype)
            return x.reshape(n, oh, ph, ow, pw, c).mean(axis=(2, 4)), ("tile", count, x.shape, x.shape, pads)
        (pt, pb), (pl, pr) = pads
        xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        ones = np.pad(np.ones((1, h, w, 1), dtype=x.dtype), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        count = _windows(ones, self.pool_size, self.strides, (1, 1), (oh, ow)).sum(axis=(-1, -2))
        total = _windows(xp, self.pool_size, self.strides, (1, 1), (oh, ow)).sum(axis=(-1, -2))
        return total / count, ("window", count, x.shape, xp.shape, pads)

    def backward(self, cache, dy):
        self._require_cache(cache)
        mode, count, xshape, xpshape, pads = cache
        (ph, pw) = self.pool_size
        n, oh, ow, c = dy.shape
        g = dy / count
        if mode == "tile":
            g = g[:, :, None, :, None, :]
            return np.broadcast_to(g, (n, oh, ph, ow, pw, c)).reshape(xshape).astype(dy.dtype, copy=False)
        return self._scatter(lambda i, j: g, (oh, ow), xpshape, pads, dy.dtype)


class GlobalAveragePooling2D(Layer):
    r"""Mean over height and width: ``(batch, h, w, c)`` to ``(batch, c)``, or
    ``(batch, 1, 1, c)`` with ``keepdims=True``.

    .. math:: y_{n,c} = \frac{1}{h w} \sum_{i,j} x_{n,i,j,c}, \qquad dx_{n,i,j,c} = dy_{n,c} / (h w)

    The cache of a call is the input shape.

    Parameters
    ----------
    data_format : {None, "channels_last"}
        Inputs are NHWC; ``"channels_first"`` is refused.
    keepdims : bool, default False
        Keep the pooled height and width as axes of size 1, as Keras does.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> npnet.layers.GlobalAveragePooling2D()(x)
    array([[3., 4.]])
    >>> npnet.layers.GlobalAveragePooling2D(keepdims=True)(x).shape
    (1, 1, 1, 2)
    """

    _build_spec = InputSpec(ndim=4, layout=_LAYOUT)

    def __init__(self, data_format: str | None = None, keepdims: bool = False, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.data_format = check_data_format(data_format, _LAYOUT, owner=owner)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise TypeError(f"{owner}: `keepdims` must be True or False, received {keepdims!r}")
        self.keepdims = check_bool(keepdims, "keepdims", owner=owner)

    def _out(self, y: np.ndarray) -> np.ndarray:
        return y[:, None, None, :] if self.keepdims else y

    def _dy(self, dy: np.ndarray) -> np.ndarray:
        return dy[:, 0, 0, :] if self.keepdims else dy

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner}: expected input of rank 4 {_LAYOUT}, received shape {tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=4, layout=_LAYOUT)
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        return self._out(x.mean(axis=(1, 2))), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        shape = cache
        n, h, w, c = shape
        g = self._dy(dy) / np.asarray(h * w, dtype=dy.dtype)
        return np.broadcast_to(g[:, None, None, :], shape).astype(dy.dtype, copy=True)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    """Maximum over height and width: ``(batch, h, w, c)`` to ``(batch, c)``, or
    ``(batch, 1, 1, c)`` with ``keepdims=True``; the gradient goes to the first maximal
    position.

    The cache of a call is ``(arg, input shape)``, ``arg`` being the flat position of each
    maximum. Arguments as in :class:`GlobalAveragePooling2D`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> npnet.layers.GlobalMaxPooling2D(keepdims=True)(x)[0, 0, 0]
    array([6., 7.])
    """

    def forward(self, x, training=False):
        x = self._enter(x)
        n, h, w, c = x.shape
        flat = x.reshape(n, h * w, c)
        arg = flat.argmax(axis=1)
        return self._out(np.take_along_axis(flat, arg[:, None, :], axis=1)[:, 0, :]), (arg, x.shape)

    def backward(self, cache, dy):
        self._require_cache(cache)
        arg, shape = cache
        n, h, w, c = shape
        d = np.zeros((n, h * w, c), dtype=dy.dtype)
        np.put_along_axis(d, arg[:, None, :], self._dy(dy)[:, None, :], axis=1)
        return d.reshape(shape)


# ---------------------------------------------------------------- 1-D: (batch, steps, channels)


class _Pooling1D(Layer):
    """A 1-D pooling is the 2-D one on ``(batch, steps, 1, channels)`` with a ``(pool, 1)``
    window: the forward and backward passes are those of :attr:`_kind`, run on that view."""

    _build_spec = InputSpec(ndim=3, layout=_LAYOUT_1D)
    _kind: type[_Pooling2D]

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid", data_format: str | None = None,
                 name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.pool_size = check_tuple(pool_size, "pool_size", 1, owner=owner)
        self.strides = self.pool_size if strides is None else check_tuple(strides, "strides", 1, owner=owner)
        self.padding = check_choice(padding, "padding", ["valid", "same"], owner=owner)
        self.data_format = check_data_format(data_format, _LAYOUT_1D, owner=owner)
        # The 2-D pooling doing the work; named explicitly so it takes no automatic name.
        self._pool2d = self._kind((self.pool_size[0], 1), (self.strides[0], 1), self.padding,
                                  name=f"{self.name}_2d")

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self._owner}: expected input of rank 3 {_LAYOUT_1D}, "
                             f"received shape {tuple(input_shape)}")
        steps = input_shape[1]
        if steps is not None and conv_output_size(steps, self.pool_size[0], self.strides[0], self.padding) < 1:
            raise ValueError(f"{self._owner}: pool {self.pool_size[0]} is larger than the input's "
                             f"{steps} steps")
        self.input_spec = InputSpec(ndim=3, layout=_LAYOUT_1D)
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        y, cache = self._pool2d.forward(x[:, :, None, :], training)
        return y[:, :, 0, :], cache

    def backward(self, cache, dy):
        self._require_cache(cache)
        return self._pool2d.backward(cache, dy[:, :, None, :])[:, :, 0, :]

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        if steps is None:  # a sequence of varying length
            return (n, None, c)
        return (n, conv_output_size(steps, self.pool_size[0], self.strides[0], self.padding), c)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling1D(_Pooling1D):
    r"""Maximum over each window of ``pool_size`` steps, moved by ``strides`` steps.

    .. math:: y_{n,t,c} = \max_{0 \le i < p} x_{n,\,t s + i - l,\,c}

    with :math:`p` the pool size, :math:`s` the stride and :math:`l` the zeros added on the
    left by ``padding="same"`` (padded cells never win). The gradient goes to the first
    maximal step of each window, summed where windows overlap. Output length:
    :math:`\lfloor (T - p) / s \rfloor + 1` for ``"valid"``, :math:`\lceil T / s \rceil`
    for ``"same"``; ``strides`` defaults to ``pool_size``.

    Parameters
    ----------
    pool_size : int or tuple of 1 int, default 2
    strides : int, tuple of 1 int or None, default None (``pool_size``)
    padding : {"valid", "same"}
    data_format : {"channels_last", None}
        Inputs are ``(batch, steps, channels)``; ``"channels_first"`` is refused.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([1., 2., 3., 4., 5.]).reshape(1, 5, 1)
    >>> npnet.layers.MaxPooling1D(2, strides=1)(x)[0, :, 0]
    array([2., 3., 4., 5.])
    >>> npnet.layers.MaxPooling1D(2, strides=1, padding="same")(x)[0, :, 0]
    array([2., 3., 4., 5., 5.])
    """

    _kind = MaxPooling2D


class AveragePooling1D(_Pooling1D):
    r"""Mean over each window of ``pool_size`` steps, moved by ``strides`` steps.

    .. math:: y_{n,t,c} = \frac{1}{|W_t|} \sum_{j \in W_t} x_{n,j,c}

    with :math:`W_t` the real (unpadded) steps of window :math:`t`: with ``padding="same"``
    the padded cells are left out of the mean, as in Keras. The gradient is
    :math:`dx_{n,j,c} = \sum_{t : j \in W_t} dy_{n,t,c} / |W_t|`. Output lengths and
    arguments as in :class:`MaxPooling1D`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([1., 2., 3., 4., 5.]).reshape(1, 5, 1)
    >>> npnet.layers.AveragePooling1D(2)(x)[0, :, 0]
    array([1.5, 3.5])
    >>> npnet.layers.AveragePooling1D(2, padding="same")(x)[0, :, 0]
    array([1.5, 3.5, 5. ])
    """

    _kind = AveragePooling2D


class GlobalAveragePooling1D(Layer):
    r"""Mean over the steps: ``(batch, steps, c)`` to ``(batch, c)``, or ``(batch, 1, c)``
    with ``keepdims=True``.

    .. math:: y_{n,c} = \frac{1}{T} \sum_t x_{n,t,c}, \qquad dx_{n,t,c} = dy_{n,c} / T

    With a mask (from ``Embedding(mask_zero=True)`` or ``Masking``), the mean runs over
    the real steps only, as in Keras:

    .. math:: y_{n,c} = \frac{\sum_t m_{n,t} x_{n,t,c}}{\sum_t m_{n,t}}, \qquad
              dx_{n,t,c} = \frac{m_{n,t}\, dy_{n,c}}{\sum_t m_{n,t}}

    A sample with no real step gets 0 (Keras divides 0 by 0). The output has no mask.
    The cache of a call is the input shape and the step weights (None without a mask).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([[[1., 10.], [3., 20.]]])
    >>> npnet.layers.GlobalAveragePooling1D()(x)
    array([[ 2., 15.]])
    """

    _build_spec = InputSpec(ndim=3, layout=_LAYOUT_1D)
    supports_masking = True

    def __init__(self, data_format: str | None = None, keepdims: bool = False, name: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        self.data_format = check_data_format(data_format, _LAYOUT_1D, owner=owner)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise TypeError(f"{owner}: `keepdims` must be True or False, received {keepdims!r}")
        self.keepdims = check_bool(keepdims, "keepdims", owner=type(self).__name__)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self._owner}: expected input of rank 3 {_LAYOUT_1D}, "
                             f"received shape {tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=3, layout=_LAYOUT_1D)
        super().build(input_shape)

    def _out(self, y: np.ndarray) -> np.ndarray:
        return y[:, None, :] if self.keepdims else y

    def _dy(self, dy: np.ndarray) -> np.ndarray:
        return dy[:, 0, :] if self.keepdims else dy

    def forward(self, x, training=False, mask=None):
        x = self._enter(x)
        if mask is None:
            return self._out(x.mean(axis=1)), (x.shape, None)
        m = np.asarray(mask, dtype=bool)
        if m.shape != x.shape[:2]:
            raise ValueError(f"{self._owner}: expected a mask of shape {x.shape[:2]} (batch, steps), "
                             f"received shape {m.shape}")
        # weights[n, t] = m[n, t] / (number of real steps of sample n), 0 for an empty sample
        count = m.sum(axis=1, keepdims=True)
        weights = (m / np.maximum(count, 1)).astype(x.dtype)
        return self._out(np.matmul(weights[:, None, :], x)[:, 0, :]), (x.shape, weights)

    def backward(self, cache, dy):
        self._require_cache(cache)
        shape, weights = cache
        if weights is not None:
            return (weights[:, :, None] * self._dy(dy)[:, None, :]).astype(dy.dtype, copy=False)
        g = self._dy(dy) / np.asarray(shape[1], dtype=dy.dtype)
        return np.broadcast_to(g[:, None, :], shape).astype(dy.dtype, copy=True)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2]) if self.keepdims else (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling1D(GlobalAveragePooling1D):
    r"""Maximum over the steps: ``(batch, steps, c)`` to ``(batch, c)``, or ``(batch, 1, c)``
    with ``keepdims=True``.

    .. math:: y_{n,c} = \max_t x_{n,t,c}

    The gradient goes to the first maximal step. The cache of a call is ``(arg, input
    shape)``, ``arg`` being the step of each maximum.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> x = np.array([[[1., 10.], [3., 20.], [2., 5.]]])
    >>> npnet.layers.GlobalMaxPooling1D(keepdims=True)(x)
    array([[[ 3., 20.]]])
    """

    # As in Keras, the maximum ignores a mask (and drops it, with a warning).
    supports_masking = False

    def forward(self, x, training=False):
        x = self._enter(x)
        arg = x.argmax(axis=1)
        y = np.take_along_axis(x, arg[:, None, :], axis=1)[:, 0, :]
        return self._out(y), (arg, x.shape)

    def backward(self, cache, dy):
        self._require_cache(cache)
        arg, shape = cache
        d = np.zeros(shape, dtype=dy.dtype)
        np.put_along_axis(d, arg[:, None, :], self._dy(dy)[:, None, :], axis=1)
        return d
