"""Layers. Each class documents its forward formula, its derivative and its shapes."""

from ._symbolic import Input, InputLayer, SymbolicTensor
from .activation import ACTIVATIONS, ELU, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Softplus, Swish, Tanh
from .base import InputSpec, Layer, get_layer_class, layer_classes, register_layer
from .conv import Conv2D
from .conv1d import Conv1D
from .core import Activation, Dense, Dropout, Flatten, Rescaling, Reshape
from .merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Add",
    "Average",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dot",
    "Dropout",
    "ELU",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "InputSpec",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "Multiply",
    "ReLU",
    "Rescaling",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Subtract",
    "SymbolicTensor",
    "Swish",
    "Tanh",
    "add",
    "average",
    "concatenate",
    "dot",
    "get_layer_class",
    "layer_classes",
    "maximum",
    "minimum",
    "multiply",
    "register_layer",
    "subtract",
]
