"""One declarative harness run over every layer class: forward shape, gradients against
central differences, config round trip, dtype kept, bad input rejected, and the cache
contract (the cache belongs to the call; backward sets the gradients, never adds to them)."""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet.layers import (
    Add,
    Average,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dot,
    Dropout,
    Maximum,
    MaxPooling2D,
    Minimum,
    Multiply,
    Subtract,
)
from npnet.testing import check_gradients

from ..strategies import away_from_zero, seeds, well_apart

# The deprecated rms_scaling warns on every construction; its warning is tested with the layer.
pytestmark = pytest.mark.filterwarnings("ignore:LayerNormalization. `rms_scaling=True` is deprecated:UserWarning")


@dataclass
class Case:
    make: Callable[[], npnet.layers.Layer]
    # draw(data) -> sample shape without the batch axis; for a merge layer, a list of them
    sample_shape: Callable
    # output shape from the full input shape (from the list of them for a merge layer)
    expected: Callable
    # the sample shape (or list of them) of the tests that draw nothing
    example: tuple | list = (4,)
    training: bool = False
    margin: float = 0.1
    min_batch: int = 1
    # values well apart from each other: no ties in a max-pool window or a Maximum
    distinct: bool = False
    # integer ids in [0, ids) instead of floats (an Embedding): not differentiable
    ids: int | None = None


# ---------------------------------------------------------------- sample shapes
def feat(data):
    return (data.draw(st.integers(1, 5)),)


def feat_nd(data):
    return tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))


def img(data, minimum):
    """(H, W, C) with H, W >= minimum."""
    return (data.draw(st.integers(minimum, minimum + 4)), data.draw(st.integers(minimum, minimum + 4)),
            data.draw(st.integers(1, 3)))


def seq(data, minimum):
    """(steps, channels) with steps >= minimum."""
    return (data.draw(st.integers(minimum, minimum + 5)), data.draw(st.integers(1, 3)))


def even_seq(data):
    return (2 * data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)))


def even_img(data):
    return (2 * data.draw(st.integers(1, 3)), 2 * data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))


def several(n):
    """``n`` inputs of one drawn sample shape (element-wise merges)."""
    return lambda data: [feat_nd(data)] * n


def concat_samples(axis, n):
    """``n`` inputs of one drawn sample shape, except along ``axis`` (batch axis counted)."""
    def draw(data):
        base = feat_nd(data)
        k = axis % (len(base) + 1) - 1  # the axis within a sample
        return [base[:k] + (data.draw(st.integers(1, 3)),) + base[k + 1:] for _ in range(n)]
    return draw


def dot_samples(axes):
    """Two 3-D inputs whose ``axes`` share one drawn size; the other sizes drawn too."""
    def draw(data):
        d = data.draw(st.integers(1, 4))
        shapes = []
        for ax in axes:
            s = [data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))]
            s[ax - 1] = d
            shapes.append(tuple(s))
        return shapes
    return draw


def attention_samples(data):
    """Query (T, dq), value (S, dv) and key (S, dk) with T, S, dq, dv, dk drawn."""
    t, s = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    return [(t, data.draw(st.integers(1, 4))), (s, data.draw(st.integers(1, 4))), (s, data.draw(st.integers(1, 4)))]


def vectors(data):
    d = data.draw(st.integers(1, 5))
    return [(d,), (d,)]


# ---------------------------------------------------------------- expected output shapes
def same(shape):
    return shape


def first(shapes):
    return shapes[0]


def conv_shape(s, kernel, stride, padding, filters, dilation=1):
    """Keras' formulas, written independently of the library."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    out = []
    for size, kk in zip(s[1:3], k):
        eff = dilation * (kk - 1) + 1
        out.append(-(-size // stride) if padding == "same" else (size - eff) // stride + 1)
    return (s[0], out[0], out[1], filters)


def conv1d_shape(s, kernel, stride, padding, filters, dilation=1):
    """Keras' formulas for Conv1D, written independently of the library ("causal" pads
    dilation * (kernel - 1) zeros on the left only)."""
    eff = dilation * (kernel - 1) + 1
    out = -(-s[1] // stride) if padding in ("same", "causal") else (s[1] - eff) // stride + 1
    return (s[0], out, filters)


def conv_transpose_shape(s, kernel, stride, padding, filters, output_padding=None, dilation=1):
    """Keras' compute_conv_transpose_output_shape, written independently of the library."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    out = []
    for size, kk in zip(s[1:3], k):
        eff = dilation * (kk - 1) + 1
        if padding == "valid":
            extra = max(eff, stride) - eff if output_padding is None else output_padding
            out.append((size - 1) * stride + eff + extra)
        else:
            out.append(size * stride if output_padding is None else (size - 1) * stride + eff % 2 + output_padding)
    return (s[0], out[0], out[1], filters)


def concat_shape(axis):
    def expected(shapes):
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)
    return expected


def batch_dot_shape(axes):
    """Keras' batch_dot: the remaining axes of the first input, then those of the second."""
    def expected(shapes):
        (a, b), (ax, ay) = shapes, axes
        return (a[0],) + tuple(d for i, d in enumerate(a[1:], 1) if i != ax) + tuple(
            d for i, d in enumerate(b[1:], 1) if i != ay)
    return expected


def per_sample(shapes):
    """One number per sample: (batch, 1)."""
    return (shapes[0][0], 1)


IMAGE = (6, 6, 2)
SEQUENCE = (6, 2)
SEQUENCE = (7, 2)

CASES = {
    "Dense": Case(lambda: npnet.layers.Dense(3), feat, lambda s: s[:-1] + (3,)),
    "Dense_relu": Case(lambda: npnet.layers.Dense(4, activation="relu", kernel_initializer="he_normal"),
                       feat, lambda s: s[:-1] + (4,)),
    "Dense_softmax_nobias": Case(lambda: npnet.layers.Dense(3, activation="softmax", use_bias=False),
                                 feat, lambda s: s[:-1] + (3,)),
    "Dense_3d": Case(lambda: npnet.layers.Dense(2, activation="tanh"),
                     lambda d: (d.draw(st.integers(1, 3)), d.draw(st.integers(1, 4))), lambda s: s[:-1] + (2,),
                     example=(3, 4)),
    "Dense_regularized": Case(lambda: npnet.layers.Dense(
        3, kernel_regularizer="l2", bias_regularizer=npnet.regularizers.L1L2(0.1, 0.2), activity_regularizer="l1",
        kernel_constraint=npnet.constraints.MaxNorm(1.5), bias_constraint="non_neg"), feat, lambda s: s[:-1] + (3,)),
    "ReLU": Case(lambda: npnet.layers.ReLU(), feat_nd, same),
    "LeakyReLU": Case(lambda: npnet.layers.LeakyReLU(negative_slope=0.2), feat_nd, same),
    "ELU": Case(lambda: npnet.layers.ELU(alpha=1.5), feat_nd, same),
    "Sigmoid": Case(lambda: npnet.layers.Sigmoid(), feat_nd, same),
    "Tanh": Case(lambda: npnet.layers.Tanh(), feat_nd, same),
    "Softplus": Case(lambda: npnet.layers.Softplus(), feat_nd, same),
    "Swish": Case(lambda: npnet.layers.Swish(), feat_nd, same),
    "Linear": Case(lambda: npnet.layers.Linear(), feat_nd, same),
    "Softmax": Case(lambda: npnet.layers.Softmax(), feat_nd, same),
    "Softmax_axis1": Case(lambda: npnet.layers.Softmax(axis=1), lambda d: (d.draw(st.integers(1, 4)), 2), same,
                          example=(3, 2)),
    "Activation": Case(lambda: npnet.layers.Activation("tanh"), feat_nd, same),
    "Flatten": Case(lambda: npnet.layers.Flatten(), feat_nd, lambda s: (s[0], int(np.prod(s[1:])))),
    "Reshape": Case(lambda: npnet.layers.Reshape((-1, 2)), lambda d: (2 * d.draw(st.integers(1, 4)),),
                    lambda s: (s[0], s[1] // 2, 2)),
    "Rescaling": Case(lambda: npnet.layers.Rescaling(1 / 255, offset=-0.5), feat_nd, same),
    "Conv2D_valid": Case(lambda: npnet.layers.Conv2D(2, 3), lambda d: img(d, 3),
                         lambda s: conv_shape(s, 3, 1, "valid", 2), example=IMAGE),
    "Conv2D_same_stride": Case(lambda: npnet.layers.Conv2D(3, (2, 3), strides=2, padding="same", activation="tanh"),
                               lambda d: img(d, 2), lambda s: conv_shape(s, (2, 3), 2, "same", 3), example=IMAGE),
    "Conv2D_dilated": Case(lambda: npnet.layers.Conv2D(2, 2, dilation_rate=2, use_bias=False), lambda d: img(d, 3),
                           lambda s: conv_shape(s, 2, 1, "valid", 2, dilation=2), example=IMAGE),
    "Conv2D_regularized": Case(lambda: npnet.layers.Conv2D(
        2, 2, kernel_regularizer=npnet.regularizers.L2(0.5), activity_regularizer="l1_l2",
        kernel_constraint=npnet.constraints.UnitNorm(axis=(0, 1, 2)), bias_constraint="min_max_norm"),
        lambda d: img(d, 2), lambda s: conv_shape(s, 2, 1, "valid", 2), example=IMAGE),
    "Conv2D_grouped": Case(lambda: npnet.layers.Conv2D(4, 2, groups=2, padding="same", activation="tanh"),
                           lambda d: (d.draw(st.integers(2, 5)), d.draw(st.integers(2, 5)),
                                      2 * d.draw(st.integers(1, 2))),
                           lambda s: conv_shape(s, 2, 1, "same", 4), example=(5, 4, 4)),
    "Embedding": Case(lambda: npnet.layers.Embedding(6, 3), lambda d: (d.draw(st.integers(1, 5)),),
                      lambda s: s + (3,), ids=6),
    "Embedding_2d_ids_masked": Case(lambda: npnet.layers.Embedding(4, 2, mask_zero=True),
                                    lambda d: (d.draw(st.integers(1, 3)), d.draw(st.integers(1, 3))),
                                    lambda s: s + (2,), example=(3, 2), ids=4),
    "Masking": Case(lambda: npnet.layers.Masking(), lambda d: seq(d, 1), same, example=SEQUENCE),
    "Conv2DTranspose_valid": Case(lambda: npnet.layers.Conv2DTranspose(2, 3), lambda d: img(d, 1),
                                  lambda s: conv_transpose_shape(s, 3, 1, "valid", 2), example=IMAGE),
    "Conv2DTranspose_same_stride": Case(
        lambda: npnet.layers.Conv2DTranspose(3, (2, 3), strides=2, padding="same", activation="tanh"),
        lambda d: img(d, 1), lambda s: conv_transpose_shape(s, (2, 3), 2, "same", 3), example=IMAGE),
    "Conv2DTranspose_output_padding": Case(
        lambda: npnet.layers.Conv2DTranspose(2, 3, strides=3, padding="same", output_padding=1, use_bias=False),
        lambda d: img(d, 1), lambda s: conv_transpose_shape(s, 3, 3, "same", 2, output_padding=1), example=IMAGE),
    "Conv2DTranspose_valid_stride_padded": Case(
        lambda: npnet.layers.Conv2DTranspose(2, 2, strides=3, output_padding=2, activation="sigmoid"),
        lambda d: img(d, 1), lambda s: conv_transpose_shape(s, 2, 3, "valid", 2, output_padding=2), example=IMAGE),
    "Conv2DTranspose_dilated": Case(lambda: npnet.layers.Conv2DTranspose(2, 2, dilation_rate=2, padding="same"),
                                    lambda d: img(d, 1), lambda s: conv_transpose_shape(s, 2, 1, "same", 2, dilation=2),
                                    example=IMAGE),
    "Conv2DTranspose_regularized": Case(lambda: npnet.layers.Conv2DTranspose(
        2, 2, strides=2, kernel_regularizer=npnet.regularizers.L2(0.5), activity_regularizer="l1_l2",
        kernel_constraint=npnet.constraints.UnitNorm(axis=(0, 1, 3)), bias_constraint="min_max_norm"),
        lambda d: img(d, 1), lambda s: conv_transpose_shape(s, 2, 2, "valid", 2), example=IMAGE),
    "DepthwiseConv2D_valid": Case(lambda: npnet.layers.DepthwiseConv2D(3), lambda d: img(d, 3),
                                  lambda s: conv_shape(s, 3, 1, "valid", s[3]), example=IMAGE),
    "DepthwiseConv2D_same_stride_multiplier": Case(
        lambda: npnet.layers.DepthwiseConv2D((2, 3), strides=2, padding="same", depth_multiplier=3, activation="tanh"),
        lambda d: img(d, 1), lambda s: conv_shape(s, (2, 3), 2, "same", 3 * s[3]), example=IMAGE),
    "DepthwiseConv2D_dilated_stride": Case(
        lambda: npnet.layers.DepthwiseConv2D(2, strides=2, dilation_rate=2, depth_multiplier=2, use_bias=False),
        lambda d: img(d, 3), lambda s: conv_shape(s, 2, 2, "valid", 2 * s[3], dilation=2), example=IMAGE),
    "DepthwiseConv2D_regularized": Case(lambda: npnet.layers.DepthwiseConv2D(
        2, depthwise_regularizer=npnet.regularizers.L2(0.5), bias_regularizer="l1", activity_regularizer="l1_l2",
        depthwise_constraint=npnet.constraints.UnitNorm(axis=(0, 1)), bias_constraint="min_max_norm"),
        lambda d: img(d, 2), lambda s: conv_shape(s, 2, 1, "valid", s[3]), example=IMAGE),
    "SeparableConv2D_valid": Case(lambda: npnet.layers.SeparableConv2D(2, 3), lambda d: img(d, 3),
                                  lambda s: conv_shape(s, 3, 1, "valid", 2), example=IMAGE),
    "SeparableConv2D_same_stride_multiplier": Case(
        lambda: npnet.layers.SeparableConv2D(3, (3, 2), strides=2, padding="same", depth_multiplier=2,
                                             activation="sigmoid"),
        lambda d: img(d, 1), lambda s: conv_shape(s, (3, 2), 2, "same", 3), example=IMAGE),
    "SeparableConv2D_dilated_nobias": Case(
        lambda: npnet.layers.SeparableConv2D(2, 2, dilation_rate=2, padding="same", use_bias=False),
        lambda d: img(d, 1), lambda s: conv_shape(s, 2, 1, "same", 2, dilation=2), example=IMAGE),
    "SeparableConv2D_regularized": Case(lambda: npnet.layers.SeparableConv2D(
        2, 2, depthwise_regularizer="l2", pointwise_regularizer=npnet.regularizers.L1(0.2), bias_regularizer="l2",
        activity_regularizer="l1", depthwise_constraint="non_neg", pointwise_constraint=npnet.constraints.MaxNorm(1.0),
        bias_constraint="non_neg"), lambda d: img(d, 2), lambda s: conv_shape(s, 2, 1, "valid", 2), example=IMAGE),
    "Conv1D_valid": Case(lambda: npnet.layers.Conv1D(2, 3), lambda d: seq(d, 3),
                         lambda s: conv1d_shape(s, 3, 1, "valid", 2), example=SEQUENCE),
    "Conv1D_same_stride": Case(lambda: npnet.layers.Conv1D(3, 2, strides=2, padding="same", activation="tanh"),
                               lambda d: seq(d, 1), lambda s: conv1d_shape(s, 2, 2, "same", 3), example=SEQUENCE),
    "Conv1D_causal_dilated": Case(lambda: npnet.layers.Conv1D(2, 3, padding="causal", dilation_rate=2,
                                                              activation="sigmoid"),
                                  lambda d: seq(d, 1), lambda s: conv1d_shape(s, 3, 1, "causal", 2, dilation=2),
                                  example=SEQUENCE),
    "Conv1D_causal_stride": Case(lambda: npnet.layers.Conv1D(2, 3, strides=2, padding="causal", use_bias=False),
                                 lambda d: seq(d, 1), lambda s: conv1d_shape(s, 3, 2, "causal", 2),
                                 example=SEQUENCE),
    "Conv1D_dilated": Case(lambda: npnet.layers.Conv1D(2, 2, dilation_rate=2, use_bias=False), lambda d: seq(d, 3),
                           lambda s: conv1d_shape(s, 2, 1, "valid", 2, dilation=2), example=SEQUENCE),
    "Conv1D_regularized": Case(lambda: npnet.layers.Conv1D(
        2, 2, kernel_regularizer=npnet.regularizers.L2(0.5), activity_regularizer="l1_l2",
        kernel_constraint=npnet.constraints.UnitNorm(axis=(0, 1)), bias_constraint="min_max_norm"),
        lambda d: seq(d, 2), lambda s: conv1d_shape(s, 2, 1, "valid", 2), example=SEQUENCE),
    "MaxPooling2D_tile": Case(lambda: npnet.layers.MaxPooling2D(2), even_img,
                              lambda s: (s[0], s[1] // 2, s[2] // 2, s[3]), example=IMAGE, distinct=True),
    "MaxPooling2D_same": Case(lambda: npnet.layers.MaxPooling2D(3, strides=2, padding="same"), lambda d: img(d, 1),
                              lambda s: (s[0], -(-s[1] // 2), -(-s[2] // 2), s[3]), example=IMAGE, distinct=True),
    "AveragePooling2D_tile": Case(lambda: npnet.layers.AveragePooling2D(2), even_img,
                                  lambda s: (s[0], s[1] // 2, s[2] // 2, s[3]), example=IMAGE, distinct=True),
    "AveragePooling2D_same": Case(lambda: npnet.layers.AveragePooling2D(2, strides=1, padding="same"),
                                  lambda d: img(d, 1), same, example=IMAGE, distinct=True),
    "GlobalAveragePooling2D": Case(lambda: npnet.layers.GlobalAveragePooling2D(), lambda d: img(d, 1),
                                   lambda s: (s[0], s[3]), example=IMAGE, distinct=True),
    "GlobalMaxPooling2D": Case(lambda: npnet.layers.GlobalMaxPooling2D(), lambda d: img(d, 1),
                               lambda s: (s[0], s[3]), example=IMAGE, distinct=True),
    "GlobalAveragePooling2D_keepdims": Case(lambda: npnet.layers.GlobalAveragePooling2D(keepdims=True),
                                            lambda d: img(d, 1), lambda s: (s[0], 1, 1, s[3]), example=IMAGE,
                                            distinct=True),
    "GlobalMaxPooling2D_keepdims": Case(lambda: npnet.layers.GlobalMaxPooling2D(keepdims=True), lambda d: img(d, 1),
                                        lambda s: (s[0], 1, 1, s[3]), example=IMAGE, distinct=True),
    "MaxPooling1D_tile": Case(lambda: npnet.layers.MaxPooling1D(2), even_seq,
                              lambda s: (s[0], s[1] // 2, s[2]), example=SEQUENCE, distinct=True),
    "MaxPooling1D_same": Case(lambda: npnet.layers.MaxPooling1D(3, strides=2, padding="same"), lambda d: seq(d, 1),
                              lambda s: (s[0], -(-s[1] // 2), s[2]), example=SEQUENCE, distinct=True),
    "AveragePooling1D_valid": Case(lambda: npnet.layers.AveragePooling1D(3, strides=2), lambda d: seq(d, 3),
                                   lambda s: (s[0], (s[1] - 3) // 2 + 1, s[2]), example=SEQUENCE, distinct=True),
    "AveragePooling1D_same": Case(lambda: npnet.layers.AveragePooling1D(2, strides=1, padding="same"),
                                  lambda d: seq(d, 1), same, example=SEQUENCE, distinct=True),
    "GlobalAveragePooling1D": Case(lambda: npnet.layers.GlobalAveragePooling1D(), lambda d: seq(d, 1),
                                   lambda s: (s[0], s[2]), example=SEQUENCE, distinct=True),
    "GlobalMaxPooling1D_keepdims": Case(lambda: npnet.layers.GlobalMaxPooling1D(keepdims=True), lambda d: seq(d, 1),
                                        lambda s: (s[0], 1, s[2]), example=SEQUENCE, distinct=True),
    "GlobalMaxPooling1D": Case(lambda: npnet.layers.GlobalMaxPooling1D(), lambda d: seq(d, 1),
                               lambda s: (s[0], s[2]), example=SEQUENCE, distinct=True),
    "UpSampling1D": Case(lambda: npnet.layers.UpSampling1D(3), lambda d: seq(d, 1),
                         lambda s: (s[0], 3 * s[1], s[2]), example=SEQUENCE),
    "UpSampling2D": Case(lambda: npnet.layers.UpSampling2D((2, 3)), lambda d: img(d, 1),
                         lambda s: (s[0], 2 * s[1], 3 * s[2], s[3]), example=IMAGE),
    "ZeroPadding1D": Case(lambda: npnet.layers.ZeroPadding1D((2, 1)), lambda d: seq(d, 1),
                          lambda s: (s[0], s[1] + 3, s[2]), example=SEQUENCE),
    "ZeroPadding2D": Case(lambda: npnet.layers.ZeroPadding2D(((1, 0), (2, 3))), lambda d: img(d, 1),
                          lambda s: (s[0], s[1] + 1, s[2] + 5, s[3]), example=IMAGE),
    "Cropping2D": Case(lambda: npnet.layers.Cropping2D(((1, 0), (0, 2))), lambda d: img(d, 3),
                       lambda s: (s[0], s[1] - 1, s[2] - 2, s[3]), example=IMAGE),
    "BatchNormalization_train": Case(lambda: npnet.layers.BatchNormalization(), lambda d: img(d, 1), same,
                                     example=IMAGE, training=True, min_batch=2),
    "BatchNormalization_infer": Case(lambda: npnet.layers.BatchNormalization(momentum=0.5), feat_nd, same),
    "BatchNormalization_regularized": Case(lambda: npnet.layers.BatchNormalization(
        gamma_regularizer="l2", beta_regularizer=npnet.regularizers.L1(0.3), gamma_constraint="non_neg",
        beta_constraint=npnet.constraints.MaxNorm(2.0)), feat_nd, same),
    "BatchNormalization_initializers": Case(lambda: npnet.layers.BatchNormalization(
        gamma_initializer="random_uniform", beta_initializer="random_normal", moving_mean_initializer="ones",
        moving_variance_initializer=npnet.initializers.Constant(2.0)), feat_nd, same),
    "LayerNormalization": Case(lambda: npnet.layers.LayerNormalization(), feat_nd, same),
    "LayerNormalization_multi_axis": Case(lambda: npnet.layers.LayerNormalization(axis=[1, -1], epsilon=0.01),
                                          lambda d: (d.draw(st.integers(1, 3)), d.draw(st.integers(1, 3)),
                                                     d.draw(st.integers(1, 3))), same, example=(2, 3, 2)),
    "LayerNormalization_plain": Case(lambda: npnet.layers.LayerNormalization(axis=(1, 2), center=False, scale=False),
                                     lambda d: (d.draw(st.integers(1, 3)), d.draw(st.integers(1, 3))), same,
                                     example=(3, 2), training=True),
    "LayerNormalization_regularized": Case(lambda: npnet.layers.LayerNormalization(
        gamma_initializer="glorot_uniform", beta_initializer="he_normal", gamma_regularizer="l2",
        beta_regularizer=npnet.regularizers.L1(0.3), gamma_constraint="non_neg",
        beta_constraint=npnet.constraints.MaxNorm(2.0)), feat_nd, same),
    "LayerNormalization_rms": Case(lambda: npnet.layers.LayerNormalization(rms_scaling=True, axis=-2),
                                   lambda d: (d.draw(st.integers(1, 4)), d.draw(st.integers(1, 3))), same,
                                   example=(3, 2)),
    "SimpleRNN": Case(lambda: npnet.layers.SimpleRNN(3), lambda d: seq(d, 1), lambda s: (s[0], 3), example=SEQUENCE),
    "SimpleRNN_sequences_backwards": Case(lambda: npnet.layers.SimpleRNN(2, return_sequences=True, go_backwards=True),
                                          lambda d: seq(d, 1), lambda s: (s[0], s[1], 2), example=SEQUENCE),
    "SimpleRNN_initial_state": Case(lambda: npnet.layers.SimpleRNN(3, activation="sigmoid", use_bias=False),
                                    lambda d: [seq(d, 1), (3,)], lambda s: (s[0][0], 3), example=[SEQUENCE, (3,)]),
    "LSTM": Case(lambda: npnet.layers.LSTM(3), lambda d: seq(d, 1), lambda s: (s[0], 3), example=SEQUENCE),
    "LSTM_sequences": Case(lambda: npnet.layers.LSTM(2, return_sequences=True, unit_forget_bias=False),
                           lambda d: seq(d, 1), lambda s: (s[0], s[1], 2), example=SEQUENCE),
    "LSTM_initial_state": Case(lambda: npnet.layers.LSTM(3, go_backwards=True), lambda d: [seq(d, 1), (3,), (3,)],
                               lambda s: (s[0][0], 3), example=[SEQUENCE, (3,), (3,)]),
    "LSTM_regularized": Case(lambda: npnet.layers.LSTM(
        2, kernel_regularizer="l2", recurrent_regularizer=npnet.regularizers.L1(0.1), bias_regularizer="l1",
        activity_regularizer="l2", kernel_constraint=npnet.constraints.MaxNorm(2.0), recurrent_constraint="non_neg",
        bias_constraint="max_norm"), lambda d: seq(d, 1), lambda s: (s[0], 2), example=SEQUENCE),
    "LSTM_dropout_train": Case(lambda: npnet.layers.LSTM(3, dropout=0.3, recurrent_dropout=0.3, seed=2,
                                                         return_sequences=True),
                               lambda d: seq(d, 1), lambda s: (s[0], s[1], 3), example=SEQUENCE, training=True),
    "GRU": Case(lambda: npnet.layers.GRU(3), lambda d: seq(d, 1), lambda s: (s[0], 3), example=SEQUENCE),
    "GRU_reset_before_sequences": Case(lambda: npnet.layers.GRU(2, reset_after=False, return_sequences=True),
                                       lambda d: seq(d, 1), lambda s: (s[0], s[1], 2), example=SEQUENCE),
    "GRU_initial_state": Case(lambda: npnet.layers.GRU(3, use_bias=False, go_backwards=True),
                              lambda d: [seq(d, 1), (3,)], lambda s: (s[0][0], 3), example=[SEQUENCE, (3,)]),
    "GRU_dropout_train": Case(lambda: npnet.layers.GRU(2, dropout=0.4, recurrent_dropout=0.2, seed=1),
                              lambda d: seq(d, 1), lambda s: (s[0], 2), example=SEQUENCE, training=True),
    "Dropout_infer": Case(lambda: npnet.layers.Dropout(0.5, seed=3), feat_nd, same),
    "Dropout_train": Case(lambda: npnet.layers.Dropout(0.3, seed=3), feat_nd, same, training=True),
    "Dropout_noise_shape_train": Case(lambda: npnet.layers.Dropout(0.4, noise_shape=(None, 1, None), seed=3),
                                      lambda d: seq(d, 1), same, example=SEQUENCE, training=True),
    "SpatialDropout1D_train": Case(lambda: npnet.layers.SpatialDropout1D(0.4, seed=1), lambda d: seq(d, 1), same,
                                   example=SEQUENCE, training=True),
    "SpatialDropout2D_train": Case(lambda: npnet.layers.SpatialDropout2D(0.4, seed=2), lambda d: img(d, 1), same,
                                   example=IMAGE, training=True),
    # merge layers: a list of inputs in, a list of input gradients out
    "Add": Case(lambda: Add(), several(2), first, example=[(4,)] * 2),
    "Subtract": Case(lambda: Subtract(), several(2), first, example=[(4,)] * 2),
    "Multiply_3": Case(lambda: Multiply(), several(3), first, example=[(4,)] * 3),
    "Average_3": Case(lambda: Average(), several(3), first, example=[(4,)] * 3),
    "Maximum_3": Case(lambda: Maximum(), several(3), first, example=[(4,)] * 3, distinct=True),
    "Minimum_3": Case(lambda: Minimum(), several(3), first, example=[(4,)] * 3, distinct=True),
    "Concatenate_last": Case(lambda: Concatenate(), concat_samples(-1, 2), concat_shape(-1),
                             example=[(4,), (2,)]),
    "Concatenate_axis1": Case(lambda: Concatenate(axis=1), concat_samples(1, 3), concat_shape(1),
                              example=[(2, 3), (1, 3), (3, 3)]),
    "Dot_vectors": Case(lambda: Dot(axes=-1), vectors, per_sample, example=[(4,)] * 2),
    "Dot_axes22": Case(lambda: Dot(axes=(2, 2)), dot_samples((2, 2)), batch_dot_shape((2, 2)),
                       example=[(2, 3), (4, 3)]),
    "Dot_axes12": Case(lambda: Dot(axes=(1, 2)), dot_samples((1, 2)), batch_dot_shape((1, 2)),
                       example=[(3, 2), (4, 3)]),
    "Dot_normalize": Case(lambda: Dot(axes=-1, normalize=True), vectors, per_sample, example=[(4,)] * 2),
    "Dot_normalize_axes12": Case(lambda: Dot(axes=(1, 2), normalize=True), dot_samples((1, 2)),
                                 batch_dot_shape((1, 2)), example=[(3, 2), (4, 3)]),
    # attention: the list [query, value, key] in, [dquery, dvalue, dkey] out
    "MultiHeadAttention": Case(lambda: npnet.layers.MultiHeadAttention(2, 3), attention_samples, first,
                               example=[(3, 4), (5, 2), (5, 3)]),
    "MultiHeadAttention_dropout": Case(lambda: npnet.layers.MultiHeadAttention(
        2, 2, value_dim=3, dropout=0.4, seed=2, use_bias=False, output_shape=3), attention_samples,
        lambda s: s[0][:-1] + (3,), example=[(3, 4), (5, 2), (5, 3)], training=True),
    "MultiHeadAttention_regularized": Case(lambda: npnet.layers.MultiHeadAttention(
        1, 2, kernel_regularizer="l2", bias_regularizer=npnet.regularizers.L1(0.1), activity_regularizer="l1",
        kernel_constraint=npnet.constraints.MaxNorm(2.0), bias_constraint="non_neg", sliding_window=2),
        attention_samples, first, example=[(3, 4), (3, 2), (3, 3)]),
}

# Registered classes that are not layers to put in the harness: the models (Model,
# Functional, Sequential) are Layer subclasses with their own tests (tests/models), and
# InputLayer is the layer behind npnet.Input, never called on data by users.
# Composite layers (no forward or backward of their own) are tested in their own files.
NOT_IN_HARNESS = (npnet.Model, npnet.layers.InputLayer, npnet.layers.TimeDistributed, npnet.layers.Bidirectional)


# ---------------------------------------------------------------- inputs
def _as_list(x):
    """An input (or input gradient) as a list: merge layers take and give lists."""
    return x if isinstance(x, list) else [x]


def _inputs(rng, case, batch, samples):
    """A batch of ``batch`` samples: one array, or a list of them for a merge layer."""
    multi = isinstance(samples, list)
    shapes = [(batch,) + tuple(s) for s in (samples if multi else [samples])]
    if case.ids is not None:
        arrays = [rng.integers(0, case.ids, size=s) for s in shapes]
    elif case.distinct:
        arrays = well_apart(rng, shapes)
    else:
        arrays = [away_from_zero(rng, s, margin=case.margin) for s in shapes]
    return arrays if multi else arrays[0]


def _draw_input(data, case):
    batch = data.draw(st.integers(case.min_batch, 4))
    samples = case.sample_shape(data)
    return _inputs(np.random.default_rng(data.draw(seeds)), case, batch, samples)


def _example(case, dtype, batch=2):
    x = _inputs(np.random.default_rng(0), case, batch, case.example)
    return [a.astype(dtype) for a in x] if isinstance(x, list) else x.astype(dtype)


def _shapes(x):
    """The input shape as a layer sees it: a tuple, or a list of tuples."""
    return [a.shape for a in x] if isinstance(x, list) else x.shape


def _unknown_batch(shape):
    return [(None,) + s[1:] for s in shape] if isinstance(shape, list) else (None,) + shape[1:]


def _first_samples(x):
    return [a[:1] for a in x] if isinstance(x, list) else x[:1]


# ---------------------------------------------------------------- the harness
def test_every_layer_class_is_in_the_harness():
    covered = {type(case.make()).__name__ for case in CASES.values()}
    names = {name for name, cls in npnet.layers.layer_classes().items()
             if cls.__module__.startswith("npnet.") and not issubclass(cls, NOT_IN_HARNESS)}
    missing = names - covered
    assert not missing, f"layer classes without harness cases: {sorted(missing)}"


@pytest.mark.parametrize("key", sorted(CASES))
@given(data=st.data())
def test_forward_shape_matches_compute_output_shape(key, data):
    case = CASES[key]
    x = _draw_input(data, case)
    x = [a.astype(np.float32) for a in x] if isinstance(x, list) else x.astype(np.float32)
    layer = case.make()
    y = layer(x, training=case.training)
    assert y.shape == case.expected(_shapes(x))
    assert layer.compute_output_shape(_unknown_batch(_shapes(x))) == (None,) + y.shape[1:]


@pytest.mark.parametrize("key", sorted(CASES))
@given(data=st.data())
def test_gradients_match_central_differences(key, data):
    case = CASES[key]
    x = _draw_input(data, case)
    report = check_gradients(case.make(), x, training=case.training, atol=1e-6, rtol=1e-5)
    assert report.passed
    xs = _as_list(x)
    names = [f"x[{i}]" for i in range(len(xs))] if isinstance(x, list) else ["x"]
    if case.ids is None:
        assert [(e.name, e.checked) for e in report.entries[:len(xs)]] == [(n, a.size) for n, a in zip(names, xs)]
    else:  # ids have no gradient; every weight is checked
        assert [e.name for e in report.entries] == ["embeddings"] and report.entries[0].checked > 0


@pytest.mark.parametrize("key", sorted(CASES))
def test_config_round_trip_rebuilds_an_equal_layer(key):
    case = CASES[key]
    x = _example(case, np.float32)
    layer = case.make()
    y = layer(x)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(_first_samples(x))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), y)


@pytest.mark.parametrize("key", sorted(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_through_forward_and_backward(key, dtype):
    npnet.set_floatx(dtype)
    case = CASES[key]
    layer = case.make()
    y, cache = layer.forward(_example(case, dtype), training=True)
    dx = layer.backward(cache, np.ones_like(y))
    assert y.dtype == np.dtype(dtype)
    for d in _as_list(dx):
        assert d is None if case.ids is not None else d.dtype == np.dtype(dtype)
    for k, g in layer.grads.items():
        assert g.dtype == np.dtype(dtype), k
        assert layer.params[k].dtype == np.dtype(dtype), k


@pytest.mark.parametrize("key", sorted(CASES))
def test_backward_sets_the_gradients_rather_than_adding_to_them(key):
    case = CASES[key]
    layer = case.make()
    y, cache = layer.forward(_example(case, np.float32), training=case.training)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    dx = [None if d is None else d.copy() for d in _as_list(layer.backward(cache, dy))]
    grads = {k: g.copy() for k, g in layer.grads.items()}
    again = _as_list(layer.backward(cache, dy))  # the same cache: the same gradients, not twice them
    for a, b in zip(again, dx, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert grads.keys() == layer.grads.keys() == layer.params.keys()
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, grads[k], err_msg=k)


@pytest.mark.parametrize("key", sorted(CASES))
def test_backward_without_a_cache_is_a_clear_error(key):
    layer = CASES[key].make()
    message = (f"{type(layer).__name__} '{layer.name}': backward() needs the cache returned by forward(); "
               "call y, cache = layer.forward(x, training=True) first")
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer.backward(None, np.ones((2, 3), np.float32))


# ---------------------------------------------------------------- the cache belongs to the call
@pytest.mark.parametrize("make, shape", [
    (lambda: Dense(3, activation="tanh"), (4, 5)),
    (lambda: Conv2D(2, 3, padding="same"), (2, 5, 5, 2)),
    (lambda: npnet.layers.Conv1D(2, 3, padding="causal"), (2, 5, 2)),
    (lambda: npnet.layers.Conv2DTranspose(2, 3, strides=2, padding="same"), (2, 3, 4, 2)),
    (lambda: npnet.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (2, 5, 5, 2)),
    (lambda: npnet.layers.SeparableConv2D(3, 3, strides=2, activation="tanh"), (2, 5, 5, 2)),
    (lambda: BatchNormalization(), (4, 3, 3, 2)),
    (lambda: MaxPooling2D(2), (2, 4, 4, 2)),
    (lambda: Dropout(0.5, seed=1), (4, 6)),
    (lambda: Multiply(), [(4, 3), (4, 3)]),
    (lambda: npnet.layers.LSTM(3, return_sequences=True, dropout=0.3, seed=1), (4, 5, 2)),
    (lambda: npnet.layers.GRU(3), [(4, 5, 2), (4, 3)]),
    (lambda: npnet.layers.MultiHeadAttention(2, 3, dropout=0.3, seed=1), [(4, 3, 5), (4, 6, 2), (4, 6, 5)]),
], ids=["dense", "conv2d", "conv1d", "conv2d_transpose", "depthwise", "separable", "batch_norm", "max_pooling",
        "dropout", "multiply", "lstm", "gru_state", "attention"])
def test_the_cache_belongs_to_the_call(make, shape):
    """Two forward calls, then backward with the first one's cache: exactly what a single
    call on the first input gives. Nothing of a call is kept on the layer."""
    rng = np.random.default_rng(0)

    def batch():
        arrays = [rng.normal(size=s).astype(np.float32) for s in _as_list(shape)]
        return arrays if isinstance(shape, list) else arrays[0]

    x1, x2 = batch(), batch()
    layer = make()
    layer(_first_samples(x1))  # build
    fresh = copy.deepcopy(layer)  # same weights, same state, same random stream

    y1, cache1 = layer.forward(x1, training=True)
    y1_kept = y1.copy()
    y2, _ = layer.forward(x2, training=True)
    assert not np.array_equal(y1, y2)
    dy = rng.normal(size=y1.shape).astype(np.float32)
    dx = layer.backward(cache1, dy)

    y_ref, cache_ref = fresh.forward(x1, training=True)
    dx_ref = fresh.backward(cache_ref, dy)
    np.testing.assert_array_equal(y1, y1_kept)  # the second call did not write into the first's output
    np.testing.assert_array_equal(y1, y_ref)
    for a, b in zip(_as_list(dx), _as_list(dx_ref), strict=True):
        np.testing.assert_array_equal(a, b)
    assert layer.grads.keys() == fresh.grads.keys()
    for k in fresh.grads:
        np.testing.assert_array_equal(layer.grads[k], fresh.grads[k], err_msg=k)


@pytest.mark.parametrize("make", [
    lambda: npnet.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False),
    lambda: npnet.layers.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2),
    lambda: npnet.layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1),
    lambda: npnet.layers.Conv2DTranspose(4, 2, strides=3, output_padding=2),
    lambda: Conv2D(3, 3, strides=2, padding="same"),
], ids=["depthwise", "separable", "transpose_same", "transpose_valid", "conv2d"])
def test_arrays_kept_between_training_batches_leak_nothing(make):
    """In fit, a layer's output, input-gradient and scratch arrays are reused batch after
    batch: filled with NaN between two batches, they must not change the second one."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 9, 9, 3)).astype(np.float32)
    layer = make()
    layer(x[:1])
    kept = {}

    def batch():
        with npnet._tape.running(npnet._tape.Run(training=True, buffers=kept)):
            y, cache = layer.forward(x, training=True)
            dx = layer.backward(cache, np.ones_like(y))
            return y.copy(), dx.copy(), {k: g.copy() for k, g in layer.grads.items()}

    y1, dx1, grads1 = batch()
    assert kept
    for buf in kept.values():
        buf.fill(np.nan)
    y2, dx2, grads2 = batch()
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(dx2, dx1)
    for k in grads1:
        np.testing.assert_array_equal(grads2[k], grads1[k], err_msg=k)


# ---------------------------------------------------------------- bad input
def test_dense_rejects_wrong_feature_size_naming_the_layer():
    layer = npnet.layers.Dense(3, name="dense_1")
    layer(np.zeros((2, 4096), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'dense_1': expected input with last dimension 4096, "
                                         r"received shape \(64, 4095\)"):
        layer(np.zeros((64, 4095), np.float32))


def test_dense_rejects_rank_one_input():
    with pytest.raises(ValueError, match=r"Dense '.*': expected input of rank >= 2 \(batch, features\)"):
        npnet.layers.Dense(3)(np.zeros(5, np.float32))


def test_dense_rejects_a_list_of_inputs():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match=re.escape(
            "Dense 'd': expected a single input tensor, received a list of 2; merge them first, "
            "for example with npnet.layers.Concatenate()")):
        npnet.layers.Dense(3, name="d")([x, x])


def test_flatten_rejects_changed_sample_shape():
    layer = npnet.layers.Flatten(name="flat")
    layer(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Flatten 'flat': expected input of shape \(batch, 3, 4\), received shape \(2, 3, 5\)"):
        layer(np.zeros((2, 3, 5)))


def test_reshape_rejects_incompatible_size():
    with pytest.raises(ValueError, match=r"cannot reshape samples of shape \(5,\) to \(-1, 2\)"):
        npnet.layers.Reshape((-1, 2))(np.zeros((2, 5)))


@pytest.mark.parametrize("make, shapes, message", [
    (lambda: Add(name="m"), [(2, 3)], "Add 'm': expected a list of at least 2 inputs, received 1"),
    (lambda: Concatenate(name="m"), [(2, 3)], "Concatenate 'm': expected a list of at least 2 inputs, received 1"),
    (lambda: Subtract(name="m"), [(2, 3)] * 3, "Subtract 'm': expected a list of exactly 2 inputs, received 3"),
    (lambda: Dot(-1, name="m"), [(2, 3)] * 3, "Dot 'm': expected a list of exactly 2 inputs, received 3"),
    (lambda: Maximum(name="m"), [(2, 3), (2, 4)],
     "Maximum 'm': inputs must have the same shape, received [(2, 3), (2, 4)] (input 1 differs from input 0)"),
    (lambda: Average(name="m"), [(2, 3), (2, 3), (2, 3, 1)],
     "Average 'm': inputs must have the same shape, received [(2, 3), (2, 3), (2, 3, 1)] (input 2 differs from input 0)"),
    (lambda: Multiply(name="m"), [(2, 3), (3, 3)],
     "Multiply 'm': inputs must have the same batch size, received [(2, 3), (3, 3)]"),
    (lambda: Concatenate(name="m"), [(2, 3, 4), (2, 2, 4)],
     "Concatenate 'm': inputs must match except along axis -1, received [(2, 3, 4), (2, 2, 4)]"),
    (lambda: Concatenate(name="m"), [(2, 3), (2, 3, 1)],
     "Concatenate 'm': inputs must have the same rank, received [(2, 3), (2, 3, 1)]"),
    (lambda: Concatenate(axis=2, name="m"), [(2, 3), (2, 3)],
     "Concatenate 'm': `axis` 2 is out of range for inputs of rank 2"),
    (lambda: Dot(-1, name="m"), [(2, 3), (2, 4)],
     "Dot 'm': the contracted axes differ in size: (2, 3) axis 1 against (2, 4) axis 1"),
    (lambda: Dot((1, 3), name="m"), [(2, 3, 4), (2, 3, 4)],
     "Dot 'm': axis 3 is out of range for an input of shape (2, 3, 4)"),
], ids=["add_one", "concatenate_one", "subtract_three", "dot_three", "maximum_shapes", "average_rank",
        "multiply_batch", "concatenate_shapes", "concatenate_rank", "concatenate_axis", "dot_sizes", "dot_axis"])
def test_merge_layers_reject_bad_inputs(make, shapes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()([np.zeros(s, np.float32) for s in shapes])


@pytest.mark.parametrize("cls", [Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
                                 lambda name: Dot(-1, name=name)],
                         ids=["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"])
def test_merge_layers_reject_a_single_array(cls):
    layer = cls(name="m")
    with pytest.raises(TypeError, match=re.escape(
            f"{type(layer).__name__} 'm': expected a list of input tensors, received one ndarray")):
        layer(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("factory, match", [
    (lambda: npnet.layers.Dense(0), r"Dense: `units` must be >= 1, received 0"),
    (lambda: npnet.layers.Dense(2.5), r"Dense: `units` must be an integer"),
    (lambda: npnet.layers.Dense(2, activation="relu6"), r"unknown activation 'relu6'; known names: \["),
    (lambda: npnet.layers.Dense(2, kernel_initializer="nope"), r"unknown initializer 'nope'; known names"),
    (lambda: npnet.layers.Dropout(1.0), r"Dropout: `rate` must be in \[0, 1\), received 1.0"),
    (lambda: npnet.layers.Dropout(0.5, seed=-1), r"Dropout: `seed` must be >= 0"),
    (lambda: npnet.layers.LeakyReLU(negative_slope=-1), r"`negative_slope` must be in \[0, inf\)"),
    (lambda: npnet.layers.Activation("gelu"), r"Activation: unknown activation 'gelu'"),
    (lambda: npnet.layers.Reshape((0, 2)), r"Reshape: `target_shape` must hold positive ints"),
    (lambda: Concatenate(axis=0), r"Concatenate: `axis` cannot be 0, the batch axis"),
    (lambda: Dot(axes=0), r"Dot: `axes` cannot include 0, the batch axis, received 0"),
    (lambda: Dot(axes=(1, 0)), r"Dot: `axes` cannot include 0, the batch axis, received \(1, 0\)"),
    (lambda: Dot(axes=(1, 2, 3)), r"Dot: `axes` must be an int or a pair of ints, received \(1, 2, 3\)"),
    (lambda: Dot(axes=-1, normalize="yes"), r"Dot: `normalize` must be True or False, received 'yes'"),
    (lambda: npnet.layers.Dense(2, lora_rank=4), r"Dense: `lora_rank` is not supported \(no LoRA or quantization "
                                                 r"in npnet\): expected None, received 4"),
    (lambda: npnet.layers.Dense(2, lora_alpha=2.0), r"Dense: `lora_alpha` is not supported"),
    (lambda: npnet.layers.Dense(2, quantization_config="int8"), r"Dense: `quantization_config` is not supported"),
    (lambda: npnet.layers.Conv2D(2, 3, lora_rank=2), r"Conv2D: `lora_rank` is not supported"),
    (lambda: npnet.layers.Conv1D(2, 3, lora_alpha=1.0), r"Conv1D: `lora_alpha` is not supported"),
])
def test_bad_constructor_arguments_are_named(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_backward_before_forward_is_a_clear_error():
    layer = npnet.layers.Dense(2, name="d")
    with pytest.raises(RuntimeError, match=re.escape(
            "Dense 'd': backward() needs the cache returned by forward(); "
            "call y, cache = layer.forward(x, training=True) first")):
        layer.backward(None, np.ones((1, 2)))


# ---------------------------------------------------------------- values by hand
def test_dropout_is_identity_at_inference_and_inverted_in_training():
    x = np.ones((1000, 50), np.float32)
    layer = npnet.layers.Dropout(0.25, seed=0)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)


def test_dropout_noise_shape_broadcasts_one_draw_along_the_axes_of_size_one():
    r = np.random.default_rng(0)
    x = r.uniform(1.0, 2.0, size=(8, 5, 6)).astype(np.float32)
    layer = npnet.layers.Dropout(0.5, noise_shape=(None, 1, None), seed=4)
    y, cache = layer.forward(x, training=True)
    scaled = y / x  # 0 or 1 / (1 - rate) = 2 everywhere
    assert set(np.unique(scaled).round(5)) == {0.0, 2.0}
    # one draw per (sample, feature), shared by all 5 steps
    np.testing.assert_array_equal(scaled, np.broadcast_to(scaled[:, :1, :], x.shape))
    assert 0 < (scaled[:, 0, :] == 0).sum() < 48
    (mask,) = cache
    assert mask.shape == (8, 1, 6)  # the cache holds the mask in the noise shape
    dy = r.normal(size=x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(cache, dy), dy * scaled, rtol=1e-6)
    # a fixed size: noise_shape (1, None, None) drops the same entries in every sample
    same_everywhere = npnet.layers.Dropout(0.5, noise_shape=(1, None, None), seed=1)(x, training=True) / x
    np.testing.assert_array_equal(same_everywhere, np.broadcast_to(same_everywhere[:1], x.shape))
    # at inference, the identity
    np.testing.assert_array_equal(layer(x), x)


def test_dropout_noise_shape_gradient_config_and_saving(tmp_path):
    layer = npnet.layers.Dropout(0.3, noise_shape=[None, 1, None], seed=2)
    assert layer.noise_shape == (None, 1, None)
    config = layer.get_config()
    assert config["noise_shape"] == [None, 1, None]
    assert npnet.layers.Dropout.from_config(config).get_config() == config
    x = np.random.default_rng(1).normal(size=(3, 4, 2))
    assert npnet.testing.check_gradients(layer, x, training=True).passed
    model = npnet.Sequential([npnet.Input(shape=(4, 2)), layer, npnet.layers.Dense(1)], seed=0)
    model.save(tmp_path / "d.npnet")
    assert npnet.load_model(tmp_path / "d.npnet").layers[0].noise_shape == (None, 1, None)


@pytest.mark.parametrize("cls, shape, kept_shape", [
    (npnet.layers.SpatialDropout1D, (6, 7, 5), (6, 1, 5)),
    (npnet.layers.SpatialDropout2D, (6, 3, 4, 5), (6, 1, 1, 5)),
])
def test_spatial_dropout_drops_whole_channels(cls, shape, kept_shape):
    x = np.random.default_rng(0).uniform(1.0, 2.0, size=shape).astype(np.float32)
    layer = cls(0.5, seed=3)
    y, (mask,) = layer.forward(x, training=True)
    assert mask.shape == kept_shape
    scaled = y / x
    np.testing.assert_array_equal(scaled, np.broadcast_to(mask, shape))
    assert set(np.unique(mask)) == {0.0, 2.0}
    np.testing.assert_array_equal(layer(x), x)
    config = layer.get_config()
    assert "noise_shape" not in config and config["rate"] == 0.5 and config["seed"] == 3
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("factory, x_shape, error, match", [
    (lambda: npnet.layers.Dropout(0.5, noise_shape="abc"), None, TypeError,
     r"Dropout: `noise_shape` must be a tuple of ints or None entries, received 'abc'"),
    (lambda: npnet.layers.Dropout(0.5, noise_shape=3), None, TypeError, r"Dropout: `noise_shape` must be a tuple"),
    (lambda: npnet.layers.Dropout(0.5, noise_shape=(None, 1.5)), None, TypeError,
     r"Dropout: `noise_shape` must hold ints or None, received \(None, 1.5\)"),
    (lambda: npnet.layers.Dropout(0.5, noise_shape=(None, 0)), None, ValueError,
     r"Dropout: `noise_shape` entries must be >= 1 or None, received \(None, 0\)"),
    (lambda: npnet.layers.Dropout(0.5, noise_shape=()), None, ValueError, r"Dropout: `noise_shape` must have one"),
    (lambda: npnet.layers.Dropout(0.5, noise_shape=(None, 1), name="d"), (2, 3, 4), ValueError,
     r"Dropout 'd': `noise_shape` \(None, 1\) has 2 entries, expected one per axis of the input of shape "
     r"\(2, 3, 4\)"),
    (lambda: npnet.layers.Dropout(0.5, noise_shape=(None, 3), name="d"), (2, 4), ValueError,
     r"Dropout 'd': `noise_shape` \(None, 3\) does not broadcast to the input of shape \(2, 4\)"),
    (lambda: npnet.layers.SpatialDropout1D(0.5, name="s"), (2, 4), ValueError,
     r"SpatialDropout1D 's': expected input of rank 3"),
    (lambda: npnet.layers.SpatialDropout2D(0.5, name="s"), (2, 4, 3), ValueError,
     r"SpatialDropout2D 's': expected input of rank 4"),
    (lambda: npnet.layers.SpatialDropout2D(0.5, data_format="channels_first"), None, ValueError,
     r"SpatialDropout2D: `data_format` 'channels_first' is not supported"),
    (lambda: npnet.layers.SpatialDropout1D(1.0), None, ValueError, r"SpatialDropout1D: `rate` must be in"),
])
def test_bad_dropout_arguments(factory, x_shape, error, match):
    with pytest.raises(error, match=match):
        layer = factory()
        layer(np.ones(x_shape, np.float32), training=True)


def test_relu_forward_values_by_hand():
    y = npnet.layers.ReLU()(np.array([[-2.0, -0.5, 0.5, 3.0]]))
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.5, 3.0]])


def test_softmax_is_stable_for_huge_logits():
    y = npnet.layers.Softmax()(np.array([[1e4, 0.0, -1e4]], np.float32))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[1.0, 0.0, 0.0]], atol=1e-7)


def test_sigmoid_is_stable_for_huge_inputs():
    y = npnet.layers.Sigmoid()(np.array([[-1e4, 0.0, 1e4]]))
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])


A = np.array([[1.0, -2.0, 3.0], [0.0, 4.0, -1.0]])
B = np.array([[4.0, 5.0, -6.0], [2.0, -3.0, -1.5]])
C = np.array([[0.5, 7.0, 0.0], [-1.0, 1.0, 2.0]])


@pytest.mark.parametrize("cls, inputs, expected", [
    (Add, [A, B], [[5.0, 3.0, -3.0], [2.0, 1.0, -2.5]]),
    (Add, [A, B, C], [[5.5, 10.0, -3.0], [1.0, 2.0, -0.5]]),
    (Subtract, [A, B], [[-3.0, -7.0, 9.0], [-2.0, 7.0, 0.5]]),
    (Multiply, [A, B, C], [[2.0, -70.0, 0.0], [0.0, -12.0, 3.0]]),
    (Average, [A, B], [[2.5, 1.5, -1.5], [1.0, 0.5, -1.25]]),
    (Average, [A, B, C], [[5.5 / 3, 10 / 3, -1.0], [1 / 3, 2 / 3, -0.5 / 3]]),
    (Maximum, [A, B, C], [[4.0, 7.0, 3.0], [2.0, 4.0, 2.0]]),
    (Minimum, [A, B, C], [[0.5, -2.0, -6.0], [-1.0, -3.0, -1.5]]),
], ids=["add", "add3", "subtract", "multiply3", "average", "average3", "maximum3", "minimum3"])
def test_elementwise_merges_by_hand(cls, inputs, expected):
    np.testing.assert_allclose(cls()(inputs), expected, rtol=1e-15)


def test_maximum_and_minimum_route_the_gradient_to_the_first_extremum():
    a = np.array([[1.0, 5.0, 2.0]])
    b = np.array([[3.0, 5.0, -1.0]])  # a tie in the middle: the gradient goes to the first input
    dy = np.array([[10.0, 20.0, 30.0]])
    y, cache = Maximum().forward([a, b])
    np.testing.assert_array_equal(y, [[3.0, 5.0, 2.0]])
    da, db = Maximum().backward(cache, dy)
    np.testing.assert_array_equal(da, [[0.0, 20.0, 30.0]])
    np.testing.assert_array_equal(db, [[10.0, 0.0, 0.0]])
    y, cache = Minimum().forward([a, b])
    np.testing.assert_array_equal(y, [[1.0, 5.0, -1.0]])
    da, db = Minimum().backward(cache, dy)
    np.testing.assert_array_equal(da, [[10.0, 20.0, 0.0]])
    np.testing.assert_array_equal(db, [[0.0, 0.0, 30.0]])


def test_concatenate_joins_along_its_axis_and_splits_the_gradient_back():
    a, b = np.zeros((2, 3)), np.ones((2, 1))
    y = Concatenate()([a, b])
    assert y.shape == (2, 4)
    np.testing.assert_array_equal(y, [[0, 0, 0, 1], [0, 0, 0, 1]])

    r = np.random.default_rng(0)
    xs = [r.normal(size=(2, n, 4)) for n in (3, 1, 2)]
    layer = Concatenate(axis=1)
    y, cache = layer.forward(xs)
    assert y.shape == (2, 6, 4)
    np.testing.assert_array_equal(y[:, 3:4], xs[1])
    assert Concatenate(axis=-1)([r.normal(size=(2, 3, n)) for n in (4, 1)]).shape == (2, 3, 5)
    dy = r.normal(size=y.shape)
    dxs = layer.backward(cache, dy)
    assert [d.shape for d in dxs] == [(2, 3, 4), (2, 1, 4), (2, 2, 4)]
    np.testing.assert_array_equal(np.concatenate(dxs, axis=1), dy)


def test_dot_of_vectors_gives_one_number_per_sample():
    a = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [-1.0, 2.0, 0.5]])
    b = np.array([[4.0, 5.0, 6.0], [1.0, 1.0, 1.0], [2.0, 0.0, 4.0]])
    y = Dot(axes=-1)([a, b])
    assert y.shape == (3, 1)
    np.testing.assert_array_equal(y, [[32.0], [1.0], [0.0]])
    assert Dot(axes=1).compute_output_shape([(None, 3), (None, 3)]) == (None, 1)


def test_dot_with_normalize_gives_cosine_similarities():
    a = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0], [2.0, 0.0]])
    b = np.array([[0.0, 2.0], [4.0, 3.0], [-2.0, -2.0], [5.0, 0.0]])
    y = Dot(axes=-1, normalize=True)([a, b])
    np.testing.assert_allclose(y, [[0.0], [0.96], [-1.0], [1.0]], atol=1e-15)


def test_dot_of_3d_inputs_contracts_the_given_axes():
    r = np.random.default_rng(0)
    a, b = r.normal(size=(2, 3, 4)), r.normal(size=(2, 5, 3))
    np.testing.assert_allclose(Dot(axes=(1, 2))([a, b]), np.einsum("ndp,nqd->npq", a, b), rtol=1e-12)
    c = r.normal(size=(2, 5, 4))
    np.testing.assert_allclose(Dot(axes=(2, 2))([a, c]), np.einsum("npd,nqd->npq", a, c), rtol=1e-12)


def test_average_of_integer_inputs_is_a_float_mean():
    np.testing.assert_array_equal(npnet.layers.Average()([np.array([[1, 2]]), np.array([[3, 5]])]), [[2.0, 3.5]])


def test_forward_called_directly_checks_single_or_list_input():
    with pytest.raises(TypeError, match=r"Add 'a1': expected a list of input tensors, received one ndarray"):
        npnet.layers.Add(name="a1").forward(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"Dense 'd1': expected a single input tensor, received a list of 2"):
        npnet.layers.Dense(2, name="d1").forward([np.ones((2, 3)), np.ones((2, 3))])
