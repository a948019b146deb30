"""npnet: a Keras-like deep-learning library in NumPy with hand-written, gradient-checked backprop."""

from . import callbacks, initializers, layers, losses, metrics, optimizers, saving, schedules, testing
from ._config import floatx, set_floatx
from .layers import (
    ELU,
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    LeakyReLU,
    ReLU,
    Rescaling,
    Reshape,
    Sigmoid,
    Softmax,
    Softplus,
    Swish,
    Tanh,
    register_layer,
)
from .losses import BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError, SparseCategoricalCrossentropy
from .model import Sequential
from .optimizers import SGD, Adam, AdamW, RMSprop
from .saving import load_model

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Activation",
    "Adam",
    "AdamW",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "ELU",
    "Flatten",
    "Input",
    "LeakyReLU",
    "MeanSquaredError",
    "RMSprop",
    "ReLU",
    "Rescaling",
    "Reshape",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "SparseCategoricalCrossentropy",
    "Swish",
    "Tanh",
    "callbacks",
    "floatx",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "register_layer",
    "saving",
    "schedules",
    "set_floatx",
    "testing",
]
