"""Models: :class:`Model` (functional and subclassed), :class:`Sequential`, loading and cloning."""

from .cloning import clone_model
from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Functional", "Sequential", "clone_model", "load_model"]


def load_model(filepath, custom_objects=None, compile=True):  # noqa: A002 - Keras' argument name
    """Load a model written by ``model.save`` (see :func:`npnet.saving.load_model`)."""
    from ..saving import load_model as _load

    return _load(filepath, custom_objects=custom_objects, compile=compile)
