"""Layers. Each class documents its forward formula, its derivative and its shapes."""

from ._symbolic import Input, InputLayer, SymbolicTensor
from .activation import ACTIVATIONS, ELU, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Softplus, Swish, Tanh
from .attention import MultiHeadAttention
from .base import InputSpec, Layer, get_layer_class, layer_classes, register_layer
from .conv import Conv2D
from .conv1d import Conv1D
from .conv_transpose import Conv2DTranspose
from .core import Activation, Dense, Dropout, Flatten, Rescaling, Reshape, SpatialDropout1D, SpatialDropout2D
from .depthwise import DepthwiseConv2D, SeparableConv2D
from .embedding import Embedding, Masking
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
from .normalization import BatchNormalization, LayerNormalization
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from .recurrent import GRU, LSTM, SimpleRNN
from .reshaping import Cropping2D, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D
from .wrappers import Bidirectional, TimeDistributed

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Add",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dot",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GRU",
    "Input",
    "InputLayer",
    "InputSpec",
    "LSTM",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "Linear",
    "MaxPooling1D",
    "Masking",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "MultiHeadAttention",
    "Multiply",
    "ReLU",
    "Rescaling",
    "Reshape",
    "SeparableConv2D",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Softplus",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "Subtract",
    "SymbolicTensor",
    "Swish",
    "Tanh",
    "TimeDistributed",
    "UpSampling1D",
    "UpSampling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
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
