"""Weight initializers, by name or object, each seedable.

An initializer is called as ``init(shape, dtype=None, rng=None)``. If it was created
with a ``seed`` it always uses its own stream; otherwise it draws from ``rng`` (which a
model passes so that ``Sequential(seed=...)`` gives bit-identical weights), or from fresh
OS entropy.

Fan-in and fan-out follow Keras: for a Dense kernel of shape ``(in, out)`` they are
``in`` and ``out``; for a convolution kernel ``(kh, kw, in, out)`` they are
``kh * kw * in`` and ``kh * kw * out``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._config import floatx
from ._validation import as_rng, check_float, check_seed

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomNormal",
    "RandomUniform",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "Orthogonal",
    "get",
    "serialize",
]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement :meth:`sample`.

    Parameters
    ----------
    seed : int or None
        Seed for this initializer's own random stream. With ``None`` it draws from the
        generator passed at call time.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = check_seed(seed, owner=type(self).__name__)
        self._rng = None if seed is None else np.random.default_rng(seed)

    def __call__(self, shape: tuple[int, ...], dtype: str | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        dtype = dtype or floatx()
        gen = self._rng if self._rng is not None else as_rng(rng)
        with np.errstate(over="ignore"):
            out = np.asarray(self.sample(tuple(int(s) for s in shape), gen), dtype=dtype)
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            raise ValueError(f"{type(self).__name__}: the initial values overflow {np.dtype(dtype).name} "
                             f"(received {self!r}); choose values within the range of that type")
        return out

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros."""

    def sample(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    """Every element equal to ``value``."""

    def __init__(self, value: float = 0.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.value = check_float(value, "value", owner="Constant")

    def sample(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value, "seed": self.seed}


class RandomNormal(Initializer):
    """Normal with the given ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean = check_float(mean, "mean", owner="RandomNormal")
        self.stddev = check_float(stddev, "stddev", low=0.0, owner="RandomNormal")

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval = check_float(minval, "minval", owner="RandomUniform")
        self.maxval = check_float(maxval, "maxval", owner="RandomUniform")
        if self.maxval < self.minval or not math.isfinite(self.maxval - self.minval):
            raise ValueError(f"RandomUniform: `minval` must not exceed `maxval` and their difference must be "
                             f"finite, received minval={self.minval!r}, maxval={self.maxval!r}")

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    # Normal truncated at two standard deviations (redraws), as Keras' variance-scaling.
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


class GlorotUniform(Initializer):
    r"""Glorot (Xavier) uniform: :math:`U(-l, l)`, :math:`l = \sqrt{6 / (fan_{in} + fan_{out})}`."""

    def sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


class GlorotNormal(Initializer):
    r"""Glorot normal: truncated normal with :math:`\sigma = \sqrt{2 / (fan_{in} + fan_{out})} / 0.8796`."""

    def sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        return _truncated_normal(rng, math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978, shape)


class HeUniform(Initializer):
    r"""He uniform: :math:`U(-l, l)`, :math:`l = \sqrt{6 / fan_{in}}`; suits ReLU networks."""

    def sample(self, shape, rng):
        fan_in, _ = _fans(shape)
        limit = math.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape)


class HeNormal(Initializer):
    r"""He normal: truncated normal with :math:`\sigma = \sqrt{2 / fan_{in}} / 0.8796`."""

    def sample(self, shape, rng):
        fan_in, _ = _fans(shape)
        return _truncated_normal(rng, math.sqrt(2.0 / fan_in) / 0.87962566103423978, shape)


class Orthogonal(Initializer):
    r"""A (semi-)orthogonal matrix times ``gain``, as Keras' ``Orthogonal``.

    The shape is flattened to a matrix of ``prod(shape[:-1])`` rows and ``shape[-1]``
    columns. A normal matrix :math:`A` of shape ``(max(rows, cols), min(rows, cols))``
    is factored :math:`A = QR`; :math:`Q \operatorname{diag}(\operatorname{sign}(R_{ii}))`
    has orthonormal columns (transposed when there are fewer rows than columns, so that
    the rows are orthonormal), and is reshaped to ``shape`` and scaled by ``gain``.

    Parameters
    ----------
    gain : float, default 1.0
    seed : int, optional

    Examples
    --------
    >>> import numpy as np, npnet
    >>> w = npnet.initializers.Orthogonal(seed=0)((4, 4))
    >>> bool(np.allclose(w @ w.T, np.eye(4), atol=1e-6))
    True
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = check_float(gain, "gain", owner="Orthogonal")

    def sample(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have at least 2 dimensions, received {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return np.ascontiguousarray(self.gain * q.reshape(shape))  # C order, as every weight

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "orthogonal": Orthogonal,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}
# Keras' short aliases.
_BY_NAME.update({"uniform": RandomUniform, "normal": RandomNormal, "zero": Zeros, "one": Ones})


def get(identifier: Any, owner: str | None = None) -> Initializer:
    """Return an initializer from a name (``"he_normal"``), a config dict or an instance.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known names.
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    prefix = f"{owner}: " if owner else ""
    raise ValueError(
        f"{prefix}unknown initializer {identifier!r}; known names: {sorted(_BY_NAME)}"
    )


def serialize(identifier: Any) -> Any:
    """Return a JSON-safe form: names stay names, objects become ``{"class_name", "config"}``."""
    if isinstance(identifier, (str, dict)):  # a name, or a config already serialized
        return identifier
    return {"class_name": type(identifier).__name__, "config": identifier.get_config()}
