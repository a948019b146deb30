"""Layers. Each class documents its forward formula, its derivative and its shapes."""

from .activation import ACTIVATIONS, ELU, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Softplus, Swish, Tanh
from .base import InputSpec, Layer, get_layer_class, layer_classes, register_layer
from .core import Activation, Dense, Dropout, Flatten, Input, Rescaling, Reshape

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Dense",
    "Dropout",
    "ELU",
    "Flatten",
    "Input",
    "InputSpec",
    "Layer",
    "LeakyReLU",
    "Linear",
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
