"""Layers. Each class documents its forward formula, its derivative and its shapes."""

from .activation import ACTIVATIONS, ELU, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Softplus, Swish, Tanh
from .base import InputSpec, Layer, get_layer_class, layer_classes, register_layer
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, Input, Rescaling, Reshape
from .normalization import BatchNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputSpec",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPooling2D",
    "ReLU",
    "Rescaling",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
    "get_layer_class",
    "layer_classes",
    "register_layer",
]
