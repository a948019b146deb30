"""Merge layers: combine a list of tensors into one (residual connections, fan-in).

Each is a primitive with a hand-written backward. Element-wise merges need inputs of the
same shape; :class:`Concatenate` needs equal shapes except along ``axis``; :class:`Dot`
contracts one axis of each of two inputs. Lowercase helpers (``add([a, b])``) build the
layer and call it at once, as in Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_bool, check_int
from .base import Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"]


class _Merge(Layer):
    """Base of the merge layers: a list of at least ``_min_inputs`` inputs."""

    _multi_input = True
    _min_inputs = 2
    _max_inputs: int | None = None
    supports_masking = True

    def compute_mask(self, inputs, mask=None):
        """A step is real where it is real in any input (Keras' rule); no mask if an input has none."""
        if mask is None or any(m is None for m in mask):
            return None
        return np.logical_or.reduce([np.asarray(m, dtype=bool) for m in mask])

    def _check_count(self, n: int) -> None:
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            want = (f"exactly {self._max_inputs}" if self._max_inputs == self._min_inputs
                    else f"at least {self._min_inputs}")
            raise ValueError(f"{self._owner}: expected a list of {want} inputs, received {n}")

    def _check_build_shapes(self, shapes: list[tuple]) -> None:
        self._check_shapes(shapes)

    def _check_shapes(self, shapes: list[tuple]) -> None:
        self._check_count(len(shapes))
        first = tuple(shapes[0][1:])
        for i, s in enumerate(shapes[1:], start=1):
            if tuple(s[1:]) != first:
                raise ValueError(
                    f"{self._owner}: inputs must have the same shape, received {[tuple(s) for s in shapes]} "
                    f"(input {i} differs from input 0)")

    def _enter_many(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        self._check_arity(xs)
        xs = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in xs]
        shapes = [x.shape for x in xs]
        if not self.built:
            self._check_build_shapes(shapes)
            self._build_from([(None,) + tuple(s[1:]) for s in shapes])
        self._check_shapes(shapes)
        n = {len(x) for x in xs}
        if len(n) > 1:
            raise ValueError(f"{self._owner}: inputs must have the same batch size, received {[x.shape for x in xs]}")
        return xs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


class Add(_Merge):
    r"""Sum of the inputs: :math:`y = \sum_i x_i`; each :math:`dx_i = dy`.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.layers.Add()([np.ones((1, 2)), np.full((1, 2), 2.0)])
    array([[3., 3.]])
    """

    def forward(self, x, training=False):
        xs = self._enter_many(x)
        y = xs[0] + xs[1]
        for a in xs[2:]:
            y += a
        return y, len(xs)

    def backward(self, cache, dy):
        self._require_cache(cache)
        return [dy] * cache


class Subtract(_Merge):
    r"""Difference of two inputs: :math:`y = x_0 - x_1`; :math:`dx_0 = dy`, :math:`dx_1 = -dy`."""

    _max_inputs = 2

    def forward(self, x, training=False):
        a, b = self._enter_many(x)
        return a - b, ()

    def backward(self, cache, dy):
        self._require_cache(cache)
        return [dy, -dy]


class Multiply(_Merge):
    r"""Element-wise product: :math:`y = \prod_i x_i`; :math:`dx_i = dy \prod_{j \ne i} x_j`."""

    def forward(self, x, training=False):
        xs = self._enter_many(x)
        y = xs[0] * xs[1]
        for a in xs[2:]:
            y = y * a
        return y, xs

    def backward(self, cache, dy):
        self._require_cache(cache)
        xs = cache
        out = []
        for i in range(len(xs)):
            g = dy
            for j, a in enumerate(xs):
                if j != i:
                    g = g * a
            out.append(g)
        return out


class Average(_Merge):
    r"""Mean of the inputs: :math:`y = \frac1n \sum_i x_i`; each :math:`dx_i = dy / n`."""

    def forward(self, x, training=False):
        xs = self._enter_many(x)
        y = xs[0] + xs[1]
        for a in xs[2:]:
            y += a
        if y.dtype.kind == "f":
            y *= np.asarray(1.0 / len(xs), dtype=y.dtype)
        else:
            y = y / len(xs)  # integer inputs give a float mean
        return y, len(xs)

    def backward(self, cache, dy):
        self._require_cache(cache)
        g = dy * np.asarray(1.0 / cache, dtype=dy.dtype)
        return [g] * cache


class _Extremum(_Merge):
    """Element-wise maximum or minimum. The gradient goes to the first input that attains
    the extremum (ties go to the earliest input)."""

    _pick: Any = None

    def forward(self, x, training=False):
        xs = self._enter_many(x)
        stacked = np.stack(xs)
        winner = self._pick(stacked, axis=0)
        y = np.take_along_axis(stacked, winner[None], axis=0)[0]
        return y, (winner, len(xs))

    def backward(self, cache, dy):
        self._require_cache(cache)
        winner, n = cache
        zero = np.zeros((), dtype=dy.dtype)
        return [np.where(winner == i, dy, zero) for i in range(n)]


class Maximum(_Extremum):
    r""":math:`y = \max_i x_i` element-wise; :math:`dx_i = dy` where input :math:`i` is the
    (first) maximum, else 0."""

    _pick = staticmethod(np.argmax)


class Minimum(_Extremum):
    r""":math:`y = \min_i x_i` element-wise; :math:`dx_i = dy` where input :math:`i` is the
    (first) minimum, else 0."""

    _pick = staticmethod(np.argmin)


class Concatenate(_Merge):
    r"""Join the inputs along ``axis``; the backward splits ``dy`` at the same offsets.

    Parameters
    ----------
    axis : int, default -1
        The axis to join along (not the batch axis).

    Examples
    --------
    >>> import numpy as np, npnet
    >>> npnet.layers.Concatenate()([np.zeros((2, 3)), np.ones((2, 1))]).shape
    (2, 4)
    """

    def __init__(self, axis: int = -1, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = check_int(axis, "axis", owner=type(self).__name__)
        if self.axis == 0:
            raise ValueError("Concatenate: `axis` cannot be 0, the batch axis")

    def _ax(self, ndim: int) -> int:
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self._owner}: `axis` {self.axis} is out of range for inputs of rank {ndim}")
        return self.axis % ndim

    def _check_shapes(self, shapes):
        self._check_count(len(shapes))
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ValueError(f"{self._owner}: inputs must have the same rank, received {[tuple(s) for s in shapes]}")
        ax = self._ax(len(shapes[0]))
        ref = [d for i, d in enumerate(shapes[0]) if i not in (0, ax)]
        for s in shapes[1:]:
            if [d for i, d in enumerate(s) if i not in (0, ax)] != ref:
                raise ValueError(
                    f"{self._owner}: inputs must match except along axis {self.axis}, "
                    f"received {[tuple(s) for s in shapes]}")

    def forward(self, x, training=False):
        xs = self._enter_many(x)
        ax = self._ax(xs[0].ndim)
        return np.concatenate(xs, axis=ax), (ax, [a.shape[ax] for a in xs])

    def backward(self, cache, dy):
        self._require_cache(cache)
        ax, sizes = cache
        return np.split(dy, np.cumsum(sizes)[:-1], axis=ax)

    def compute_output_shape(self, input_shape):
        ax = self._ax(len(input_shape[0]))
        out = list(input_shape[0])
        sizes = [s[ax] for s in input_shape]
        out[ax] = None if any(s is None for s in sizes) else int(sum(sizes))
        return tuple(out)

    def compute_mask(self, inputs, mask=None):
        """Keras' rule: each input's mask is extended over its own axes (all True where it
        has none), joined along ``axis``, and a step is real where any of its entries is."""
        if mask is None or all(m is None for m in mask):
            return None
        parts = []
        for x, m in zip(inputs, mask):
            x = np.asarray(x)
            if m is None:
                parts.append(np.ones(x.shape, dtype=bool))
            else:
                m = np.asarray(m, dtype=bool)
                parts.append(np.broadcast_to(m.reshape(m.shape + (1,) * (x.ndim - m.ndim)), x.shape))
        return np.concatenate(parts, axis=self._ax(np.asarray(inputs[0]).ndim)).any(axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    r"""Dot product of two inputs along one axis of each, sample by sample.

    For ``x`` of shape ``(batch, ..., d)`` and ``y`` of shape ``(batch, ..., d)`` with
    ``axes=-1``, each sample gives :math:`z = \sum_k x_{\cdot k} y_{\cdot k}` over the
    contracted axis and an outer product over the rest: ``(batch, n, d)`` and
    ``(batch, m, d)`` give ``(batch, n, m)``; two ``(batch, d)`` inputs give ``(batch, 1)``.

    Backward, with ``x`` and ``y`` moved to ``(batch, P, d)`` and ``(batch, d, Q)``:
    :math:`dx = dz\, y^\top`, :math:`dy = x^\top dz`.

    With ``normalize=True`` each input is first divided by its L2 norm along the
    contracted axis (:math:`\hat x = x / \sqrt{\max(\sum x^2, 10^{-12})}`), so the result
    is the cosine similarity; the backward of that step is
    :math:`dx = (d\hat x - \hat x \sum d\hat x\, \hat x) / \|x\|`.

    Parameters
    ----------
    axes : int or (int, int)
        The axis of each input to contract (not the batch axis).
    normalize : bool, default False
    """

    _max_inputs = 2

    def compute_mask(self, inputs, mask=None):
        return None

    def __init__(self, axes: Any, normalize: bool = False, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        owner = type(self).__name__
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"{owner}: `axes` must be an int or a pair of ints, received {axes!r}")
            pair = tuple(check_int(a, "axes", owner=owner) for a in axes)
        else:
            a = check_int(axes, "axes", owner=owner)
            pair = (a, a)
        if 0 in pair:
            raise ValueError(f"{owner}: `axes` cannot include 0, the batch axis, received {axes!r}")
        self.axes = pair
        self.normalize = check_bool(normalize, "normalize", owner=owner)

    def _resolved(self, shapes) -> tuple[int, int]:
        out = []
        for a, s in zip(self.axes, shapes):
            nd = len(s)
            if not -nd <= a < nd or a % nd == 0:
                raise ValueError(f"{self._owner}: axis {a} is out of range for an input of shape {tuple(s)}")
            out.append(a % nd)
        return out[0], out[1]

    def _check_shapes(self, shapes):
        self._check_count(len(shapes))
        ax, ay = self._resolved(shapes)
        if shapes[0][ax] != shapes[1][ay]:
            raise ValueError(
                f"{self._owner}: the contracted axes differ in size: {tuple(shapes[0])} axis {ax} against "
                f"{tuple(shapes[1])} axis {ay}")

    @staticmethod
    def _l2(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        sq = np.sum(a * a, axis=axis, keepdims=True)
        norm = np.sqrt(np.maximum(sq, np.asarray(1e-12, dtype=a.dtype)))
        return a / norm, norm

    def forward(self, x, training=False):
        a, b = self._enter_many(x)
        ax, ay = self._resolved([a.shape, b.shape])
        norms = None
        if self.normalize:
            (a, na), (b, nb) = self._l2(a, ax), self._l2(b, ay)
            norms = (a, na, b, nb)
        a3 = np.moveaxis(a, ax, -1)
        b3 = np.moveaxis(b, ay, 1)
        left, right = a3.shape[1:-1], b3.shape[2:]
        n, d = a3.shape[0], a3.shape[-1]
        am = a3.reshape(n, -1, d)
        bm = b3.reshape(n, d, -1)
        z = am @ bm
        out_shape = (n,) + left + right
        y = z.reshape(out_shape if len(out_shape) > 1 else (n, 1))
        return y, (am, bm, a3.shape, b3.shape, ax, ay, norms)

    def backward(self, cache, dy):
        self._require_cache(cache)
        am, bm, a3_shape, b3_shape, ax, ay, norms = cache
        dz = dy.reshape(am.shape[0], am.shape[1], bm.shape[2])
        da = np.moveaxis((dz @ np.swapaxes(bm, 1, 2)).reshape(a3_shape), -1, ax)
        db = np.moveaxis((np.swapaxes(am, 1, 2) @ dz).reshape(b3_shape), 1, ay)
        if norms is not None:
            ah, na, bh, nb = norms
            da = (da - ah * np.sum(da * ah, axis=ax, keepdims=True)) / na
            db = (db - bh * np.sum(db * bh, axis=ay, keepdims=True)) / nb
        return [da, db]

    def compute_output_shape(self, input_shape):
        ax, ay = self._resolved(input_shape)
        a, b = input_shape
        left = [d for i, d in enumerate(a) if i not in (0, ax)]
        right = [d for i, d in enumerate(b) if i not in (0, ay)]
        out = (a[0], *left, *right)
        return out if len(out) > 1 else (a[0], 1)

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}


def _helper(cls: type[_Merge], doc: str):
    def merge(inputs: list[Any], **kwargs: Any) -> Any:
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = f"{doc}: ``{cls.__name__}(**kwargs)(inputs)`` in one call."
    return merge


add = _helper(Add, "Sum a list of tensors")
subtract = _helper(Subtract, "Subtract the second tensor from the first")
multiply = _helper(Multiply, "Multiply a list of tensors element-wise")
average = _helper(Average, "Average a list of tensors")
maximum = _helper(Maximum, "Element-wise maximum of a list of tensors")
minimum = _helper(Minimum, "Element-wise minimum of a list of tensors")
concatenate = _helper(Concatenate, "Concatenate a list of tensors")


def dot(inputs: list[Any], axes: Any, **kwargs: Any) -> Any:
    """Dot product of two tensors: ``Dot(axes, **kwargs)(inputs)`` in one call."""
    return Dot(axes, **kwargs)(inputs)
