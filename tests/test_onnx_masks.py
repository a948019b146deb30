# ruff: noqa: F811  (the fixtures imported from test_onnx are parameters here)
"""Export to ONNX of masks: the masks Embedding, Masking and the merge layers make are
computed in the graph, and the layers that read them match ``predict`` in onnxruntime."""

import numpy as np
import pytest

import npnet

from .test_onnx import TOL, onnx, ort, run  # noqa: F401  (fixtures)

L = npnet.layers


def _ids(shape=(4, 7), vocab=9, seed=0):
    """Ids with right padding, left padding, a hole in the middle and an all-padding row."""
    r = np.random.default_rng(seed)
    ids = r.integers(1, vocab, size=shape).astype(np.float32)
    ids[0, -3:] = 0
    ids[1, :2] = 0
    ids[2, 3] = 0
    ids[3, :] = 0
    return ids


def _model(inputs, outputs):
    return npnet.Model(inputs, outputs)


@pytest.mark.parametrize("length", [7, None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_embedding_mask_reaches_global_average_pooling(run, length, keepdims):
    x = npnet.Input(shape=(length,), name="ids")
    h = L.Embedding(9, 3, mask_zero=True, name="emb")(x)
    h = L.Dense(4, activation="tanh", name="dense")(h)  # passes the mask on
    y = L.GlobalAveragePooling1D(keepdims=keepdims, name="avg")(h)
    model = _model(x, y)
    ids = _ids()
    want = model.predict(ids, verbose=0)
    # predict gives the mean over the real steps, not over all steps: the mask matters
    hv = npnet.Model(x, h).predict(ids, verbose=0)
    real = (ids != 0)[:, :, None]
    masked = (hv * real).sum(1, keepdims=keepdims) / np.maximum(real.sum(1, keepdims=keepdims), 1)
    assert np.abs(want - masked).max() < 1e-6
    assert np.abs(hv.mean(1, keepdims=keepdims) - want).max() > 1e-4
    run(model, ids)
    if length is None:
        run(model, _ids((4, 12), seed=1))


def test_all_padding_sample_gives_zeros_and_no_nan(run):
    x = npnet.Input(shape=(5,))
    y = L.GlobalAveragePooling1D()(L.Embedding(4, 2, mask_zero=True)(x))
    _, _, got = run(_model(x, y), np.zeros((2, 5), np.float32))
    assert np.all(got[0] == 0.0)


@pytest.mark.parametrize("mask_value", [0.0, -1.5])
def test_masking_layer_and_its_mask(run, mask_value):
    r = np.random.default_rng(3)
    xs = r.normal(size=(4, 6, 3)).astype(np.float32)
    xs[0, 4:] = mask_value
    xs[1, :1] = mask_value
    xs[2, 2, :] = mask_value
    xs[3, :, 0] = mask_value  # only one feature equal: still a real step
    x = npnet.Input(shape=(None, 3))
    m = L.Masking(mask_value=mask_value, name="masking")(x)
    y = L.GlobalAveragePooling1D()(L.Dense(2)(m))
    run(_model(x, [m, y]), xs)
    run(_model(x, [m, y]), xs[:, :4])


@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_merge_layers_join_the_masks_of_their_inputs(run, merge):
    a, b = npnet.Input(shape=(6,), name="a"), npnet.Input(shape=(6,), name="b")
    emb = L.Embedding(9, 3, mask_zero=True)
    h = merge()([emb(a), L.Embedding(9, 3, mask_zero=True)(b)])
    y = L.GlobalAveragePooling1D()(h)
    ia, ib = _ids((4, 6)), _ids((4, 6), seed=5)
    ib[0, :] = 0
    run(_model([a, b], y), [ia, ib])


def test_merge_with_an_unmasked_input_drops_the_mask(run):
    a, b = npnet.Input(shape=(6,), name="a"), npnet.Input(shape=(6, 3), name="b")
    h = L.Add()([L.Embedding(9, 3, mask_zero=True)(a), b])
    y = L.GlobalAveragePooling1D()(h)
    ia = _ids((4, 6))
    ib = np.random.default_rng(1).normal(size=(4, 6, 3)).astype(np.float32)
    run(_model([a, b], y), [ia, ib])


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("both", [True, False])
def test_concatenate_joins_masks_as_keras(run, axis, both):
    a, b = npnet.Input(shape=(6,), name="a"), npnet.Input(shape=(6,), name="b")
    ha = L.Embedding(9, 3, mask_zero=True)(a)
    hb = L.Embedding(9, 3, mask_zero=both)(b)
    y = L.GlobalAveragePooling1D()(L.Concatenate(axis=axis)([ha, hb]))
    run(_model([a, b], y), [_ids((4, 6)), _ids((4, 6), seed=2)])


def test_time_distributed_keeps_the_mask(run):
    x = npnet.Input(shape=(None,))
    h = L.TimeDistributed(L.Dense(3, activation="relu"))(L.Embedding(9, 4, mask_zero=True)(x))
    y = L.GlobalAveragePooling1D()(h)
    run(_model(x, y), _ids())
    run(_model(x, y), _ids((4, 11), seed=4))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional_without_a_mask(run, merge_mode):
    x = npnet.Input(shape=(None, 3))
    y = L.Bidirectional(L.SimpleRNN(4, return_sequences=True), merge_mode=merge_mode)(x)
    xs = np.random.default_rng(0).normal(size=(3, 5, 3)).astype(np.float32)
    run(_model(x, y), xs)
    run(_model(x, y), xs[:, :2])


def test_a_mask_made_outside_the_layers_is_refused(onnx, tmp_path):
    class MaskOnes(npnet.layers.Layer):  # a composite whose compute_mask makes a new array
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x, training=False):
            return self.dense(x)

        def compute_mask(self, inputs, mask=None):
            return np.ones(np.shape(inputs)[:2], dtype=bool)

    x = npnet.Input(shape=(4, 3))
    y = L.GlobalAveragePooling1D(name="avg")(MaskOnes()(x))
    with pytest.raises(ValueError, match=r"GlobalAveragePooling1D 'avg' reads a mask attached to the output of Dense"):
        npnet.onnx.export(_model(x, y), tmp_path / "m.onnx")


class _Gate(npnet.layers.Layer):
    """Zeroes masked steps; its converter below does not declare masks."""

    def forward(self, x, training=False, mask=None):
        return self._enter(x), ()

    def backward(self, cache, dy):
        return dy


def test_a_converter_that_does_not_take_masks_refuses_a_masked_call(onnx, tmp_path):
    from npnet.onnx._graph import _CONVERTERS

    npnet.onnx.register_converter(_Gate)(lambda ctx, layer, inputs, outputs, options: inputs[0])
    try:
        x = npnet.Input(shape=(5,))
        y = _Gate(name="gate")(L.Embedding(4, 2, mask_zero=True)(x))
        with pytest.warns(UserWarning, match="_Gate 'gate' received an input with a mask"), \
                pytest.raises(ValueError, match="_Gate 'gate' is called with a mask"):
            npnet.onnx.export(_model(x, y), tmp_path / "m.onnx")
    finally:
        del _CONVERTERS[_Gate]


def test_a_custom_mask_converter_is_used(run):
    from npnet.onnx._graph import _CONVERTERS, _MASK_CONVERTERS

    class Mark(npnet.layers.Layer):
        def forward(self, x, training=False):
            return self._enter(x), ()

        def backward(self, cache, dy):
            return dy

        def compute_mask(self, inputs, mask=None):
            return np.asarray(inputs)[..., 0] > 0

    npnet.onnx.register_converter(Mark)(lambda ctx, layer, inputs, outputs, options: inputs[0])

    @npnet.onnx.register_mask_converter(Mark)
    def _mark(ctx, layer, inputs, masks, outputs):
        first = ctx.node("Gather", [inputs[0], ctx.const(np.asarray(0, np.int64))], axis=-1)
        return ctx.node("Greater", [first, ctx.const(0.0)])

    try:
        x = npnet.Input(shape=(6, 2))
        y = L.GlobalAveragePooling1D()(Mark()(x))
        run(_model(x, y), np.random.default_rng(0).normal(size=(5, 6, 2)).astype(np.float32))
    finally:
        del _CONVERTERS[Mark], _MASK_CONVERTERS[Mark]


def test_register_mask_converter_rejects_bad_arguments():
    with pytest.raises(TypeError, match="expected a layer class"):
        npnet.onnx.register_mask_converter("Embedding")
    with pytest.raises(TypeError, match="expected a function"):
        npnet.onnx.register_mask_converter(L.Embedding)(3)


@pytest.mark.parametrize("opset", [13, 18])
def test_masks_at_both_ends_of_the_opset_range(run, opset):
    x = npnet.Input(shape=(6, 2))
    m = L.Masking(mask_value=0.0)(x)
    y = L.GlobalAveragePooling1D()(L.Concatenate()([m, L.Dense(2)(m)]))
    xs = np.random.default_rng(0).normal(size=(3, 6, 2)).astype(np.float32)
    xs[0, 3:] = 0
    run(_model(x, y), xs, opset=opset)


class _Scale(npnet.layers.Layer):
    """``x * scale`` with ``scale`` a call option."""

    def forward(self, x, training=False, scale=None):
        return self._enter(x) * scale, (scale,)

    def backward(self, cache, dy):
        return dy * cache[0]


class _ScaleBy(npnet.Model):
    def __init__(self, fixed):
        super().__init__()
        self.fixed, self.dense, self.scale = fixed, L.Dense(3), _Scale(name="scale")

    def call(self, x, training=False):
        h = self.dense(x)
        return self.scale(h, scale=np.full((1, 3), 2.0, np.float32) if self.fixed else h)


@pytest.fixture
def scale_converter():
    from npnet.onnx._graph import _CONVERTERS

    seen = []

    @npnet.onnx.register_converter(_Scale)
    def _scale(ctx, layer, inputs, outputs, options):
        seen.append(options["scale"])
        return ctx.node("Mul", [inputs[0], options["scale"]])

    yield seen
    del _CONVERTERS[_Scale]


def test_an_array_option_from_the_model_becomes_its_onnx_value(run, scale_converter):
    model = _ScaleBy(fixed=False)
    xs = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    model.predict(xs, verbose=0)
    run(model, xs)
    assert isinstance(scale_converter[0], str)


def test_a_numpy_array_option_is_refused(onnx, tmp_path, scale_converter):
    model = _ScaleBy(fixed=True)
    model.predict(np.ones((2, 2), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"_Scale 'scale' is called with `scale=` an array that no npnet layer"):
        npnet.onnx.export(model, tmp_path / "m.onnx")
