# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""Export to ONNX of the transposed, depthwise and separable convolutions and of the
resizing layers, in every configuration, on fixed and varying image sizes: every exported
model runs in onnxruntime and matches ``predict`` (max abs difference <= 1e-5, float32)."""

import itertools

import numpy as np
import pytest

import npnet

from .test_onnx import onnx, ort, run  # noqa: F401  (fixtures)

L = npnet.layers
TOL = 1e-5


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


# ==============================================================================
# Every geometry the layer tests use, several sizes and batches per exported graph
@pytest.fixture
def run_all(tmp_path, onnx, ort):
    """Export a model once, check it fully, then run it in onnxruntime on each batch of
    ``batches`` and compare with predict; return the graph and the outputs."""

    def go(model, batches, opset=None):
        path = tmp_path / "model.onnx"
        npnet.onnx.export(model, path, opset=opset)
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        outs = []
        for x in batches:
            x = np.asarray(x, dtype=np.float32)
            (got,) = sess.run(None, {name: x})
            want = model.predict(x, verbose=0)
            assert got.shape == want.shape
            assert got.dtype == np.float32
            assert np.abs(got - want).max() <= TOL, np.abs(got - want).max()
            outs.append(got)
        return proto, outs

    return go


def _batches(*shapes, seed=0):
    """For each shape (without the batch axis): random batches of 3 and of 1, zeros and
    larger values."""
    r = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        out += [r.normal(size=(3, *shape)), r.normal(size=(1, *shape)), np.zeros((2, *shape)),
                8 * r.normal(size=(2, *shape))]
    return [b.astype(np.float32) for b in out]


def _seq(*layers, shape, seed=0):
    return _randomize(npnet.Sequential([npnet.Input(shape=shape), *layers], seed=seed), seed)


def _random_biases(model, seed):
    """Random biases, the kernels left as initialized (the values of a deep network stay
    of order 1, so float32 rounding stays far below the tolerance)."""
    r = np.random.default_rng(seed + 100)
    for layer in model.layers:
        if "bias" in getattr(layer, "params", {}):
            layer.params["bias"][...] = r.normal(size=layer.params["bias"].shape) / 4


def _ops(proto):
    return [n.op_type for n in proto.graph.node]


# ---------------------------------------------------------------- Conv2DTranspose
TRANSPOSE_GEOMETRIES = [(s, d, p, op) for s, d, p, op in
                        itertools.product([1, 2, 3], [1, 2], ["valid", "same"], [None, 0, 1, 2])
                        if (s == 1 or d == 1) and (op is None or op < s)]


@pytest.mark.parametrize("kernel_size", [1, 2, 3, (2, 3)])
@pytest.mark.parametrize("stride, dilation, padding, output_padding", TRANSPOSE_GEOMETRIES)
def test_conv2d_transpose_every_geometry(run_all, kernel_size, stride, dilation, padding, output_padding):
    layer = L.Conv2DTranspose(3, kernel_size, strides=stride, padding=padding, output_padding=output_padding,
                              dilation_rate=dilation)
    model = _seq(layer, shape=(4, 5, 2))
    proto, _ = run_all(model, _batches((4, 5, 2)))
    assert "ConvTranspose" in _ops(proto)


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3},
    {"kernel_size": (2, 3), "strides": 2, "padding": "same", "activation": "tanh"},
    {"kernel_size": 3, "strides": 3, "padding": "same", "output_padding": 1, "use_bias": False},
    {"kernel_size": 2, "strides": 3, "output_padding": 2, "activation": "sigmoid"},
    {"kernel_size": 2, "dilation_rate": 2, "padding": "same"},
    {"kernel_size": (3, 2), "strides": (2, 3), "padding": "same", "output_padding": (1, 0), "activation": "relu"},
])
@pytest.mark.parametrize("opset", [13, 18])
def test_conv2d_transpose_with_varying_height_and_width(run_all, kwargs, opset):
    model = _seq(L.Conv2DTranspose(2, **kwargs), shape=(None, None, 3))
    run_all(model, _batches((4, 5, 3), (7, 2, 3), (2, 2, 3)), opset=opset)


def test_conv2d_transpose_window_and_output_padding_by_hand(run_all):
    # Kernel 2 of ones, stride 2: each input pixel v becomes a 2x2 block of v (the full
    # image is 2i wide). "same" with output_padding=1 and stride 3 on kernel 1: the output
    # is (i - 1) * 3 + 1 + 1 long, one zero (plus bias) after each pixel.
    model = _seq(L.Conv2DTranspose(1, 2, strides=2, kernel_initializer="ones", use_bias=False), shape=(1, 2, 1))
    model.layers[0].params["kernel"][...] = 1.0
    _, (got,) = run_all(model, [np.array([[[[1.0], [-2.0]]]])])
    np.testing.assert_array_equal(got[0, :, :, 0], [[1, 1, -2, -2], [1, 1, -2, -2]])

    model = _seq(L.Conv2DTranspose(1, 1, strides=(1, 3), padding="same", output_padding=(0, 1)), shape=(1, 2, 1))
    model.layers[0].params["kernel"][...] = 2.0
    model.layers[0].params["bias"][...] = 0.5
    _, (got,) = run_all(model, [np.array([[[[1.0], [3.0]]]])])
    np.testing.assert_array_equal(got[0, 0, :, 0], [2.5, 0.5, 0.5, 6.5, 0.5])


# ---------------------------------------------------------------- DepthwiseConv2D and SeparableConv2D
DEPTHWISE_GEOMETRIES = list(itertools.product([1, 2, 3], [1, 2], ["valid", "same"]))


@pytest.mark.parametrize("kernel_size", [1, 2, 3, (3, 2)])
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride, dilation, padding", DEPTHWISE_GEOMETRIES)
def test_depthwise_conv2d_every_geometry(run_all, kernel_size, multiplier, stride, dilation, padding):
    layer = L.DepthwiseConv2D(kernel_size, strides=stride, padding=padding, depth_multiplier=multiplier,
                              dilation_rate=dilation)
    proto, _ = run_all(_seq(layer, shape=(7, 8, 3)), _batches((7, 8, 3)))
    conv = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert [a.i for n in conv for a in n.attribute if a.name == "group"] == [3]


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("multiplier", [1, 3])
@pytest.mark.parametrize("stride, dilation, padding", DEPTHWISE_GEOMETRIES)
def test_separable_conv2d_every_geometry(run_all, kernel_size, multiplier, stride, dilation, padding):
    layer = L.SeparableConv2D(4, kernel_size, strides=stride, padding=padding, depth_multiplier=multiplier,
                              dilation_rate=dilation, activation="tanh")
    run_all(_seq(layer, shape=(7, 8, 3)), _batches((7, 8, 3)))


@pytest.mark.parametrize("make", [
    lambda: L.DepthwiseConv2D(3),
    lambda: L.DepthwiseConv2D((2, 3), strides=2, padding="same", depth_multiplier=3, activation="tanh"),
    lambda: L.DepthwiseConv2D(2, strides=2, dilation_rate=2, depth_multiplier=2, use_bias=False),
    lambda: L.DepthwiseConv2D(3, strides=2, dilation_rate=2, padding="same", depth_multiplier=2),
    lambda: L.DepthwiseConv2D((2, 3), strides=(3, 2), dilation_rate=(2, 3), padding="same"),
    lambda: L.SeparableConv2D(2, 3),
    lambda: L.SeparableConv2D(3, (3, 2), strides=2, padding="same", depth_multiplier=2, activation="sigmoid"),
    lambda: L.SeparableConv2D(2, 2, dilation_rate=2, padding="same", use_bias=False),
    lambda: L.SeparableConv2D(2, 3, strides=2, dilation_rate=2, padding="same", depth_multiplier=2),
], ids=["dw_valid", "dw_same_stride_multiplier", "dw_dilated_stride", "dw_same_dilated_stride",
        "dw_same_uneven", "sep_valid", "sep_same_stride", "sep_dilated_nobias", "sep_same_dilated_stride"])
@pytest.mark.parametrize("opset", [13, 18])
def test_depthwise_and_separable_with_varying_height_and_width(run_all, make, opset):
    # Odd and even sizes: "same" with a stride puts its extra zero before or after
    # depending on the size, which the graph works out at run time.
    model = _seq(make(), shape=(None, None, 3))
    run_all(model, _batches((7, 8, 3), (10, 9, 3), (11, 12, 3)), opset=opset)


def test_same_padding_with_dilation_and_a_varying_size_is_computed_in_the_graph(run_all):
    # onnxruntime's auto_pad refuses dilation; the graph pads with zeros it works out from
    # the input's shape: size 7, kernel 3, dilation 2, stride 2 -> out 4, (4-1)*2 + 5 - 7 = 4
    # zeros, 2 before and 2 after; size 8 -> 3 zeros, 1 before and 2 after.
    layer = L.DepthwiseConv2D((1, 3), strides=(1, 2), dilation_rate=(1, 2), padding="same", use_bias=False)
    model = _seq(layer, shape=(1, None, 1))
    layer.params["kernel"][...] = np.array([1.0, 10.0, 100.0]).reshape(1, 3, 1, 1)
    proto, (seven, eight) = run_all(model, [np.arange(1, 8).reshape(1, 1, 7, 1), np.arange(1, 9).reshape(1, 1, 8, 1)])
    assert "Pad" in _ops(proto)
    padded = [0, 0, 1, 2, 3, 4, 5, 6, 7, 0, 0]
    np.testing.assert_array_equal(seven.ravel(), [padded[i] + 10 * padded[i + 2] + 100 * padded[i + 4]
                                                  for i in (0, 2, 4, 6)])
    padded = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]
    np.testing.assert_array_equal(eight.ravel(), [padded[i] + 10 * padded[i + 2] + 100 * padded[i + 4]
                                                  for i in (0, 2, 4, 6)])


# ---------------------------------------------------------------- resizing layers
RESIZING_1D = [lambda: L.UpSampling1D(3), lambda: L.UpSampling1D(), lambda: L.UpSampling1D(1),
               lambda: L.ZeroPadding1D((2, 1)), lambda: L.ZeroPadding1D(), lambda: L.ZeroPadding1D((0, 3)),
               lambda: L.ZeroPadding1D(0)]
RESIZING_2D = [lambda: L.UpSampling2D((2, 3)), lambda: L.UpSampling2D(), lambda: L.UpSampling2D((1, 2)),
               lambda: L.UpSampling2D((3, 1)), lambda: L.UpSampling2D(1),
               lambda: L.ZeroPadding2D(((1, 0), (2, 3))), lambda: L.ZeroPadding2D(), lambda: L.ZeroPadding2D((1, 2)),
               lambda: L.ZeroPadding2D(0),
               lambda: L.Cropping2D(((1, 0), (0, 2))), lambda: L.Cropping2D(1), lambda: L.Cropping2D((0, 2)),
               lambda: L.Cropping2D(((0, 1), (1, 0))), lambda: L.Cropping2D()]


@pytest.mark.parametrize("make", RESIZING_1D)
@pytest.mark.parametrize("opset", [13, 18])
def test_resizing_1d(run_all, make, opset):
    run_all(_seq(make(), shape=(5, 2)), _batches((5, 2)), opset=opset)
    run_all(_seq(make(), shape=(None, 2)), _batches((5, 2), (1, 2), (9, 2)), opset=opset)


@pytest.mark.parametrize("make", RESIZING_2D)
@pytest.mark.parametrize("opset", [13, 18])
def test_resizing_2d(run_all, make, opset):
    run_all(_seq(make(), shape=(6, 7, 3)), _batches((6, 7, 3)), opset=opset)
    run_all(_seq(make(), shape=(None, None, 3)), _batches((6, 7, 3), (5, 5, 3), (9, 5, 3)), opset=opset)
    run_all(_seq(make(), shape=(None, 7, 3)), _batches((6, 7, 3), (4, 7, 3)), opset=opset)
    run_all(_seq(make(), shape=(6, None, 3)), _batches((6, 7, 3), (6, 5, 3)), opset=opset)


def test_resizing_values_by_hand(run_all):
    img = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).reshape(1, 2, 3, 1)
    model = _seq(L.UpSampling2D((2, 1)), L.ZeroPadding2D(((0, 1), (1, 0))), L.Cropping2D(((1, 0), (0, 2))),
                 shape=(None, None, 1))
    _, (got,) = run_all(model, [img])
    np.testing.assert_array_equal(got[0, :, :, 0], [[0, 1], [0, 4], [0, 4], [0, 0]])
    _, (got,) = run_all(_seq(L.UpSampling1D(2), L.ZeroPadding1D((1, 0)), shape=(None, 1)),
                    [np.array([1.0, -2.0]).reshape(1, 2, 1)])
    np.testing.assert_array_equal(got.ravel(), [0, 1, 1, -2, -2])


def test_resizing_layers_that_do_nothing_add_no_nodes(run_all):
    model = _seq(L.UpSampling2D(1), L.ZeroPadding2D(0), L.Cropping2D(0), L.Dense(2), shape=(3, 4, 2))
    proto, _ = run_all(model, _batches((3, 4, 2)))
    assert _ops(proto) == ["MatMul", "Add"]


def test_upsampling_interpolation_other_than_nearest_is_refused(onnx, tmp_path):
    # A layer whose interpolation was changed after construction: the converter writes
    # nearest-neighbour copies only, so it refuses rather than export a different formula.
    up = L.UpSampling2D(2, name="up")
    model = _seq(up, shape=(3, 3, 1))
    up.interpolation = "bilinear"
    with pytest.raises(ValueError, match=r"UpSampling2D 'up' has interpolation 'bilinear'; only 'nearest' exports"):
        npnet.onnx.export(model, tmp_path / "m.onnx")


# ---------------------------------------------------------------- models
def test_sequential_upsampling_network(run_all):
    model = npnet.Sequential([npnet.Input(shape=(8, 10, 3)), L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                 L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
                 L.SeparableConv2D(6, 3, padding="same", activation="relu"),
                 L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
                 L.UpSampling2D(2), L.ZeroPadding2D(1), L.Cropping2D(((2, 1), (1, 2))),
                 L.Conv2D(1, 1)], seed=1)
    _random_biases(model, 1)
    for opset in (13, 18):
        run_all(model, _batches((8, 10, 3)), opset=opset)


@pytest.mark.parametrize("opset", [13, 18])
def test_functional_model_with_branches_and_varying_size(run_all, opset):
    # The varying sizes are traced with two placeholder sizes, one odd: each branch keeps
    # the input's size for every size (a stride-2 "same" convolution after UpSampling2D(2)).
    inp = npnet.Input(shape=(None, None, 3), name="image")
    skip = L.SeparableConv2D(4, 3, padding="same", activation="relu")(inp)
    h = L.UpSampling2D(2)(inp)
    h = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu")(h)
    h = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(h)
    h = L.DepthwiseConv2D(2, strides=2)(h)
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(h)
    h = L.Cropping2D(((0, 1), (1, 0)))(h)
    h = L.Concatenate()([h, skip])
    out = L.Dense(2, name="mask_logits")(h)
    model = npnet.Model(inp, out, seed=3)
    _random_biases(model, 3)
    proto, _ = run_all(model, _batches((8, 6, 3), (5, 9, 3), (1, 1, 3)), opset=opset)
    assert [o.name for o in proto.graph.output] == ["mask_logits"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "image_dim1", "image_dim2", 3]


@pytest.mark.parametrize("opset", [13, 18])
def test_functional_sequence_model(run_all, opset):
    inp = npnet.Input(shape=(None, 2))
    h = L.ZeroPadding1D((2, 0))(inp)
    h = L.Conv1D(3, 3, activation="tanh")(h)
    h = L.UpSampling1D(2)(h)
    out = L.GlobalMaxPooling1D()(h)
    model = npnet.Model(inp, out, seed=4)
    _random_biases(model, 4)
    run_all(model, _batches((5, 2), (1, 2), (12, 2)), opset=opset)
