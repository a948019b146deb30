# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""Export to ONNX of the transposed, depthwise and separable convolutions and of the
resizing layers, in every configuration, on fixed and varying image sizes."""

import itertools

import numpy as np
import pytest

import npnet

from .test_onnx import onnx, ort, run  # noqa: F401  (fixtures)

L = npnet.layers


def _randomize(model, seed=0):
    r = np.random.default_rng(seed)
    model.set_weights([0.5 * r.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _images(shape, seed=1):
    r = np.random.default_rng(seed)
    return [r.normal(size=shape).astype(np.float32), (5 * r.normal(size=(1,) + shape[1:])).astype(np.float32),
            np.zeros(shape, np.float32)]


TRANSPOSE = [dict(kernel_size=k, strides=s, padding=p, output_padding=o, dilation_rate=d)
             for k, s, p, o, d in itertools.product([1, 2, 3, (3, 2)], [1, 2, (3, 2)], ["valid", "same"],
                                                    [None, "max"], [1])
             if not (o == "max" and s == 1)] + [
    dict(kernel_size=3, dilation_rate=2, padding="valid"), dict(kernel_size=3, dilation_rate=2, padding="same"),
    dict(kernel_size=2, dilation_rate=(2, 3), padding="same")]


@pytest.mark.parametrize("kwargs", TRANSPOSE, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_conv2d_transpose(run, kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("output_padding") == "max":
        s = kwargs["strides"]
        kwargs["output_padding"] = tuple(x - 1 for x in ((s, s) if isinstance(s, int) else s))
    model = _randomize(npnet.Sequential([npnet.Input(shape=(5, 4, 3)), L.Conv2DTranspose(2, **kwargs)]))
    for xs in _images((2, 5, 4, 3)):
        run(model, xs)


@pytest.mark.parametrize("use_bias, activation", [(False, None), (True, "relu"), (True, "tanh")])
def test_conv2d_transpose_on_images_of_any_size(run, use_bias, activation):
    x = npnet.Input(shape=(None, None, 2))
    y = L.Conv2DTranspose(3, 3, strides=2, padding="same", use_bias=use_bias, activation=activation)(x)
    model = _randomize(npnet.Model(x, y))
    for h, w in [(3, 4), (6, 1), (7, 9)]:
        run(model, _images((2, h, w, 2))[0])


DEPTHWISE = [dict(kernel_size=k, strides=s, padding=p, depth_multiplier=m, dilation_rate=d)
             for k, s, p, m, d in [(3, 1, "valid", 1, 1), (3, 2, "same", 2, 1), ((3, 2), (2, 1), "valid", 3, 1),
                                   (2, 1, "same", 1, 2), (3, 1, "same", 2, (2, 1)), (1, 3, "same", 1, 1)]]


@pytest.mark.parametrize("kwargs", DEPTHWISE, ids=lambda k: "-".join(f"{v}" for v in k.values()))
@pytest.mark.parametrize("layer", ["depthwise", "separable"])
def test_depthwise_and_separable(run, kwargs, layer):
    if layer == "depthwise":
        conv = L.DepthwiseConv2D(activation="relu", **kwargs)
    else:
        conv = L.SeparableConv2D(4, activation="swish", **kwargs)
    model = _randomize(npnet.Sequential([npnet.Input(shape=(7, 6, 3)), conv]))
    for xs in _images((2, 7, 6, 3)):
        run(model, xs)


@pytest.mark.parametrize("layer", ["depthwise", "separable"])
def test_depthwise_and_separable_without_bias_on_images_of_any_size(run, layer):
    x = npnet.Input(shape=(None, None, 3))
    conv = (L.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False) if layer == "depthwise"
            else L.SeparableConv2D(2, 3, strides=2, padding="same", use_bias=False, depth_multiplier=2))
    model = _randomize(npnet.Model(x, conv(x)))
    for h, w in [(5, 8), (9, 4)]:
        run(model, _images((2, h, w, 3))[0])


@pytest.mark.parametrize("layer", [
    lambda: L.UpSampling2D(), lambda: L.UpSampling2D((3, 1)), lambda: L.UpSampling2D((1, 2)),
    lambda: L.ZeroPadding2D(), lambda: L.ZeroPadding2D(((0, 2), (3, 1))), lambda: L.ZeroPadding2D((2, 0)),
    lambda: L.Cropping2D(), lambda: L.Cropping2D(((0, 2), (1, 0))), lambda: L.Cropping2D(((2, 1), (0, 0))),
], ids=["up2", "up31", "up12", "pad1", "pad_pairs", "pad20", "crop1", "crop_pairs", "crop_top"])
def test_resizing_images_of_fixed_and_varying_size(run, layer):
    for shape in [(5, 6, 2), (None, None, 2)]:
        x = npnet.Input(shape=shape)
        model = npnet.Model(x, L.Conv2D(2, 1)(layer()(x)))
        for h, w in ([(5, 6)] if shape[0] else [(4, 5), (7, 3)]):
            for xs in _images((2, h, w, 2)):
                run(model, xs)


@pytest.mark.parametrize("layer", [lambda: L.UpSampling1D(), lambda: L.UpSampling1D(3), lambda: L.ZeroPadding1D(),
                                   lambda: L.ZeroPadding1D((0, 3)), lambda: L.ZeroPadding1D((2, 0))],
                         ids=["up2", "up3", "pad1", "pad03", "pad20"])
def test_resizing_sequences_of_fixed_and_varying_length(run, layer):
    for steps in (6, None):
        x = npnet.Input(shape=(steps, 3))
        model = npnet.Model(x, L.Conv1D(2, 2)(layer()(x)))
        for t in ([6] if steps else [3, 8]):
            for xs in _images((2, t, 3)):
                run(model, xs)


@pytest.mark.parametrize("opset", [13, 18])
def test_a_decoder_at_both_ends_of_the_opset_range(run, opset):
    x = npnet.Input(shape=(8, 8, 1))
    h = L.SeparableConv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    h = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(L.ZeroPadding2D(1)(h))
    h = L.Cropping2D(1)(h)
    h = L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu")(h)
    y = L.Conv2D(1, 1, activation="sigmoid")(L.UpSampling2D()(h))
    model = _randomize(npnet.Model(x, y))
    for xs in _images((3, 8, 8, 1)):
        run(model, xs, opset=opset)
