"""npnet: a Keras-like deep-learning library in NumPy with hand-written, gradient-checked backprop."""

from . import callbacks, initializers, layers, losses, metrics, optimizers, saving, schedules, testing
from ._config import floatx, set_floatx
from ._parallel import get_num_threads, set_num_threads
from .layers import (
    ELU,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Input,
    LeakyReLU,
    MaxPooling2D,
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
    "AveragePooling2D",
    "BatchNormalization",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Input",
    "LeakyReLU",
    "MaxPooling2D",
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
    "get_num_threads",
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
    "set_num_threads",
    "testing",
]
