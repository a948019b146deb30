"""Global numeric settings: the default floating-point type ("floatx")."""

from __future__ import annotations

import numpy as np

__all__ = ["floatx", "set_floatx"]

_FLOATX = "float32"
_ALLOWED = ("float16", "float32", "float64")


def floatx() -> str:
    """Return the default float type for parameters and activations.

    Returns
    -------
    str
        One of ``"float16"``, ``"float32"`` (the default) or ``"float64"``.

    Examples
    --------
    >>> import npnet
    >>> npnet.floatx()
    'float32'
    """
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the default float type used for new weights and for training batches.

    Parameters
    ----------
    value : {"float16", "float32", "float64"}
        The new default. Layers built afterwards create their weights in this type,
        and ``fit``/``evaluate``/``predict`` cast each batch to it.

    Raises
    ------
    ValueError
        If ``value`` is not one of the allowed names.
    """
    global _FLOATX
    name = str(np.dtype(value)) if isinstance(value, type) else value
    if name not in _ALLOWED:
        raise ValueError(f"set_floatx: `value` must be one of {list(_ALLOWED)}, received {value!r}")
    _FLOATX = name
