"""Embedding and Masking: lookups, gradients, masks, bad input."""

import numpy as np
import pytest

import npnet
from npnet.layers import Embedding, Masking
from npnet.testing import check_gradients

IDS = np.array([[1, 2, 2, 0], [6, 1, 0, 0]])


def test_embedding_looks_up_rows_of_the_table():
    layer = Embedding(7, 3)
    y = layer(IDS)
    table = layer.params["embeddings"]
    assert y.shape == (2, 4, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0, 1], table[2])
    np.testing.assert_array_equal(y[1, 0], table[6])


def test_embedding_default_initializer_is_uniform_on_plus_minus_005():
    layer = Embedding(500, 40)
    layer(IDS)
    t = layer.params["embeddings"]
    assert t.min() >= -0.05 and t.max() < 0.05
    np.testing.assert_allclose(t.std(), 0.1 / np.sqrt(12), rtol=0.02)  # std of U(-0.05, 0.05)


def test_embedding_gradient_sums_the_rows_of_a_repeated_id():
    layer = Embedding(7, 3)
    y, cache = layer.forward(IDS, training=True)
    dy = np.random.default_rng(0).normal(size=y.shape).astype(np.float32)
    assert layer.backward(cache, dy) is None  # ids are not differentiable
    expected = np.zeros((7, 3), dtype=np.float32)
    for b in range(2):
        for t in range(4):
            expected[IDS[b, t]] += dy[b, t]
    np.testing.assert_allclose(layer.grads["embeddings"], expected, rtol=1e-6)
    assert not layer.grads["embeddings"][3].any()  # an id not in the batch gets nothing
    # set, never added to
    layer.backward(cache, dy)
    np.testing.assert_allclose(layer.grads["embeddings"], expected, rtol=1e-6)


def test_embedding_gradient_matches_central_differences():
    assert check_gradients(Embedding(7, 3), IDS).passed


def test_embedding_accepts_float_ids_as_a_model_casts_them():
    layer = Embedding(7, 3)
    np.testing.assert_array_equal(layer(IDS.astype(np.float32)), layer(IDS))


@pytest.mark.parametrize("ids, match", [
    (np.array([[1, 7]]), r"Embedding 'e': ids must lie in \[0, 6\] \(input_dim=7\), received 7"),
    (np.array([[-1, 2]]), r"ids must lie in \[0, 6\].*received -1"),
    (np.array([[1.5, 2.0]]), "expected integer ids, received non-integer values"),
    (np.array([[np.nan, 2.0]]), "expected integer ids, received non-integer values"),
    (np.array([["a", "b"]]), "Embedding .e.: `inputs` must hold real numbers, received an array of dtype <U1"),
])
def test_embedding_rejects_bad_ids(ids, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Embedding(7, 3, name="e")(ids)


@pytest.mark.parametrize("kwargs, match", [
    ({"input_dim": 0, "output_dim": 3}, "input_dim"),
    ({"input_dim": 5, "output_dim": 2.5}, "output_dim"),
    ({"input_dim": 5, "output_dim": 3, "mask_zero": "yes"}, "mask_zero"),
    ({"input_dim": 5, "output_dim": 3, "embeddings_initializer": "nope"}, "embeddings_initializer"),
    ({"input_dim": 5, "output_dim": 3, "weights": [np.zeros((4, 3))]},
     r"`weights` must be one array of shape \(5, 3\), received shape \(4, 3\)"),
])
def test_embedding_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Embedding(**kwargs)


def test_embedding_weights_argument_sets_the_table():
    table = np.arange(15, dtype=np.float32).reshape(5, 3)
    layer = Embedding(5, 3, weights=[table])
    np.testing.assert_array_equal(layer(np.array([[4, 0]]))[0], table[[4, 0]])


def test_embedding_config_round_trip_and_save(tmp_path):
    layer = Embedding(9, 4, mask_zero=True, embeddings_regularizer="l2", name="emb")
    clone = Embedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = npnet.models.Sequential([npnet.Input(shape=(None,)), layer, npnet.layers.GlobalAveragePooling1D(),
                                     npnet.layers.Dense(2)])
    model.save(tmp_path / "m.npnet")
    loaded = npnet.models.load_model(tmp_path / "m.npnet")
    x = np.array([[3, 4, 0], [8, 0, 0]])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------- masks
def test_mask_zero_attaches_a_mask_that_dense_passes_on():
    from npnet._masks import get_mask

    y = Embedding(7, 3, mask_zero=True)(IDS)
    np.testing.assert_array_equal(get_mask(y), IDS != 0)
    z = npnet.layers.Dense(2)(y)
    np.testing.assert_array_equal(get_mask(z), IDS != 0)
    assert get_mask(Embedding(7, 3)(IDS)) is None


def test_masking_marks_steps_whose_features_all_equal_the_value():
    from npnet._masks import get_mask

    x = np.array([[[1.0, 2.0], [-1.0, -1.0], [3.0, -1.0]]], dtype=np.float32)
    y = Masking(mask_value=-1.0)(x)
    np.testing.assert_array_equal(get_mask(y), [[True, False, True]])
    np.testing.assert_array_equal(y, [[[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]]])
    # The output is x where a step is kept, 0 where it is masked: dx = dy at kept steps.
    # (Central differences cannot check this: a nudge unmasks a masked step.)
    layer = Masking(mask_value=-1.0)
    _, cache = layer.forward(x, training=True)
    dy = np.arange(6, dtype=np.float32).reshape(1, 3, 2) + 1
    np.testing.assert_array_equal(layer.backward(cache, dy), [[[1, 2], [0, 0], [5, 6]]])


def test_masking_config_and_bad_input():
    layer = Masking(0.5, name="mk")
    assert Masking.from_config(layer.get_config()).mask_value == 0.5
    with pytest.raises(ValueError, match=r"Masking 'mk': expected input of rank >= 2"):
        layer(np.zeros(3))
    with pytest.raises(TypeError, match="mask_value"):
        Masking("zero")


def test_global_average_pooling_1d_averages_the_real_steps_only():
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    pool = npnet.layers.GlobalAveragePooling1D()
    mask = np.array([[True, True, False, False], [True, False, True, False]])
    y, cache = pool.forward(x, mask=mask)
    np.testing.assert_allclose(y[0], x[0, :2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(y[1], x[1, [0, 2]].mean(axis=0), rtol=1e-6)
    dx = pool.backward(cache, np.ones((2, 3), dtype=np.float32))
    np.testing.assert_allclose(dx[0, :, 0], [0.5, 0.5, 0, 0])
    # a sample with no real step gives 0, not NaN
    y, _ = pool.forward(x, mask=np.zeros((2, 4), dtype=bool))
    assert np.array_equal(y, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"expected a mask of shape \(2, 4\)"):
        pool.forward(x, mask=np.ones((2, 3), dtype=bool))


def test_padded_and_unpadded_sequences_give_the_same_pooled_output():
    model = npnet.models.Sequential([npnet.Input(shape=(None,)), Embedding(9, 4, mask_zero=True),
                                     npnet.layers.Dense(5, activation="tanh"),
                                     npnet.layers.GlobalAveragePooling1D(), npnet.layers.Dense(2)], seed=0)
    short = model.predict(np.array([[3, 5, 7]]), verbose=0)
    padded = model.predict(np.array([[3, 5, 7, 0, 0, 0]]), verbose=0)
    # the same mean, summed in a different order in float32: equal to rounding
    np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-7)
    # while the unmasked mean over the padded steps differs by far more
    plain = npnet.models.Sequential([npnet.Input(shape=(None,)), Embedding(9, 4),
                                     npnet.layers.Dense(5, activation="tanh"),
                                     npnet.layers.GlobalAveragePooling1D(), npnet.layers.Dense(2)])
    plain.set_weights(model.get_weights())
    assert np.abs(plain.predict(np.array([[3, 5, 7, 0, 0, 0]]), verbose=0) - short).max() > 1e-4


def test_gradients_through_a_masked_model_match_central_differences():
    model = npnet.models.Sequential([npnet.Input(shape=(None,)), Embedding(7, 3, mask_zero=True),
                                     npnet.layers.Dense(4), npnet.layers.GlobalAveragePooling1D(),
                                     npnet.layers.Dense(2)])
    assert check_gradients(model, IDS).passed


def test_layers_without_masking_drop_the_mask_with_a_warning():
    from npnet._masks import get_mask

    y = Embedding(7, 3, mask_zero=True)(IDS)
    with pytest.warns(UserWarning, match="Flatten 'f' received an input with a mask, but does not support masking"):
        z = npnet.layers.Flatten(name="f")(y)
    assert get_mask(z) is None
    with pytest.warns(UserWarning, match="does not support masking"):
        npnet.layers.GlobalMaxPooling1D()(y)


def test_merge_layers_combine_masks_as_keras():
    from npnet._masks import get_mask

    a = Embedding(7, 3, mask_zero=True)(np.array([[1, 0, 2, 0]]))
    b = Embedding(7, 3, mask_zero=True)(np.array([[1, 1, 0, 0]]))
    np.testing.assert_array_equal(get_mask(npnet.layers.Add()([a, b])), [[True, True, True, False]])
    np.testing.assert_array_equal(get_mask(npnet.layers.Concatenate()([a, b])), [[True, True, True, False]])
    c = npnet.layers.Dense(3)(np.ones((1, 4, 3), dtype=np.float32))
    assert get_mask(npnet.layers.Add()([a, c])) is None  # an unmasked input: no mask
    joined = npnet.layers.Concatenate(axis=1)([a, b])
    np.testing.assert_array_equal(get_mask(joined), [[True, False, True, False, True, True, False, False]])


# ---------------------------------------------------------------- losses and metrics
def _per_step_model():
    model = npnet.models.Sequential([npnet.Input(shape=(None,)), Embedding(7, 3, mask_zero=True, name="emb"),
                                     npnet.layers.Dense(4, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_the_loss_is_the_mean_over_real_steps_as_keras_apply_mask():
    model = _per_step_model()
    y = np.array([[1, 2, 3, 0], [0, 1, 2, 2]])
    p = model.predict(IDS, verbose=0)
    per_step = -np.log(np.take_along_axis(p, y[..., None], axis=-1)[..., 0])
    real = IDS != 0
    expected = per_step[real].mean()  # sum over the 5 real steps / 5
    result = model.evaluate(IDS, y, batch_size=2, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)
    hits = (p.argmax(-1) == y)
    np.testing.assert_allclose(result["accuracy"], hits[real].mean(), rtol=1e-6)
    # with sample weights: Keras multiplies them in, and still divides by the real steps
    sw = np.array([2.0, 0.5])
    weighted = (per_step * sw[:, None])[real].sum() / real.sum()
    result = model.evaluate(IDS, y, sample_weight=sw, batch_size=2, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], weighted, rtol=1e-5)


def test_masked_steps_get_no_gradient_through_the_loss():
    model = _per_step_model()
    y = np.array([[1, 2, 3, 0], [0, 1, 2, 2]])
    assert check_gradients(model, IDS, y).passed
    # changing a target at a masked step changes nothing
    other = y.copy()
    other[0, 3], other[1, 2] = 3, 0
    a = model.evaluate(IDS, y, verbose=0)
    b = model.evaluate(IDS, other, verbose=0)
    assert a == b


def test_a_masked_sequence_model_learns_a_task_that_padding_would_spoil():
    # The label is whether the sequence holds more 1s than 2s; padding (0) of random
    # length must not count. A bag-of-embeddings model with a masked mean learns it.
    rng = np.random.default_rng(0)
    n, t = 600, 12
    lengths = rng.integers(3, t + 1, size=n)
    x = rng.integers(1, 3, size=(n, t))
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0
    y = ((x == 1).sum(1) > (x == 2).sum(1)).astype(int)
    npnet.utils.set_random_seed(0)
    model = npnet.models.Sequential([npnet.Input(shape=(None,)), Embedding(3, 8, mask_zero=True),
                                     npnet.layers.GlobalAveragePooling1D(), npnet.layers.Dense(2, activation="softmax")])
    model.compile(npnet.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:500], y[:500], epochs=30, batch_size=50, verbose=0, seed=0)
    assert model.evaluate(x[500:], y[500:], verbose=0, return_dict=True)["accuracy"] >= 0.9


def test_variable_length_input_in_a_functional_model():
    inp = npnet.Input(shape=(None,), dtype="int32")
    h = Embedding(7, 3, mask_zero=True)(inp)
    out = npnet.layers.Dense(2)(npnet.layers.GlobalAveragePooling1D()(h))
    model = npnet.Model(inp, out)
    assert model.predict(IDS, verbose=0).shape == (2, 2)
    assert model.predict(IDS[:, :2], verbose=0).shape == (2, 2)
    with pytest.raises(ValueError, match="expects shape"):
        model.predict(np.zeros((2, 3, 1)), verbose=0)


def test_input_shape_may_hold_none_but_not_other_values():
    assert npnet.Input(shape=(None, 8)).shape == (None, None, 8)
    with pytest.raises(ValueError, match="None for a size that varies"):
        npnet.Input(shape=(0, 8))


def test_a_layer_that_defines_compute_mask_supports_masking_as_in_keras():
    from npnet._masks import get_mask

    class MaskNegatives(npnet.layers.Layer):
        """Masks steps whose first feature is negative (identity otherwise)."""

        def forward(self, x, training=False):
            return x, ()

        def backward(self, cache, dy):
            return dy

        def compute_mask(self, inputs, mask=None):
            return np.asarray(inputs)[..., 0] >= 0

    x = np.array([[[1.0], [2.0], [-1.0]]], dtype=np.float32)
    assert MaskNegatives.supports_masking
    np.testing.assert_array_equal(get_mask(MaskNegatives()(x)), [[True, True, False]])


def test_a_composite_layer_with_compute_mask_masks_its_output():
    from npnet._masks import get_mask

    class PaddedEncoder(npnet.layers.Layer):
        """An Embedding without mask_zero, masked by the composite itself."""

        def __init__(self):
            super().__init__()
            self.embed = Embedding(7, 3)

        def call(self, ids):
            return self.embed(ids)

        def compute_mask(self, inputs, mask=None):
            return np.asarray(inputs) != 0

    encoder, lstm = PaddedEncoder(), npnet.layers.LSTM(2)
    out = encoder(IDS)
    np.testing.assert_array_equal(get_mask(out), IDS != 0)
    # the LSTM skips the padded step: [1, 2, 2, 0] reads as [1, 2, 2]
    np.testing.assert_allclose(lstm(encoder(IDS[:1])), lstm(encoder(IDS[:1, :3])), rtol=1e-6)


def test_a_mask_argument_in_a_functional_model_is_refused_clearly():
    inp = npnet.Input(shape=(4, 2))
    with pytest.raises(TypeError, match=r"LSTM 'l': a `mask` argument cannot be recorded in a functional model"):
        npnet.layers.LSTM(3, name="l")(inp, mask=np.ones((1, 4), dtype=bool))


def test_unknown_feature_sizes_are_named_when_weights_are_made():
    inp = npnet.Input(shape=(None, None))
    with pytest.raises(ValueError, match=r"LSTM 'l2': cannot create weight 'kernel' of shape \(None, 12\)"):
        npnet.layers.LSTM(3, name="l2")(inp)
    with pytest.raises(ValueError, match=r"Flatten 'fl': cannot flatten input of shape \(None, None, 3\)"):
        npnet.layers.Flatten(name="fl")(Embedding(7, 3)(npnet.Input(shape=(None,))))


def test_embedding_input_length_is_ignored_with_a_warning_as_in_keras():
    with pytest.warns(UserWarning, match=r"Embedding: the argument `input_length` is deprecated in Keras 3"):
        layer = Embedding(5, 2, input_length=4)
    assert "input_length" not in layer.get_config()
    assert layer(np.array([[1, 2, 3, 4]])).shape == (1, 4, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"lora_rank": 4}, r"Embedding: `lora_rank` is not supported \(no LoRA or quantization in npnet\): "
                       r"expected None, received 4"),
    ({"lora_alpha": 8.0}, r"Embedding: `lora_alpha` is not supported"),
    ({"quantization_config": {"mode": "int8"}}, r"Embedding: `quantization_config` is not supported"),
])
def test_embedding_refuses_lora_and_quantization(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Embedding(5, 2, **kwargs)
    Embedding(5, 2, lora_rank=None, lora_alpha=None, quantization_config=None)  # the defaults are accepted
