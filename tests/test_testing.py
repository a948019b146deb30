import numpy as np
import pytest

import npnet
from npnet.testing import GradientCheckError, check_gradients


class WrongDense(npnet.layers.Dense):
    """A Dense layer whose kernel gradient forgets to transpose-multiply by the input."""

    def _linear_backward(self, cache, dz):
        dx = super()._linear_backward(cache, dz)
        self.grads["kernel"][...] = self.grads["kernel"] * 1.01
        return dx


class WrongReLU(npnet.layers.ReLU):
    def backward(self, cache, dy):
        return dy  # ignores the mask


def test_checker_rejects_a_wrong_parameter_gradient():
    x = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(GradientCheckError) as info:
        check_gradients(WrongDense(2), x)
    msg = str(info.value)
    assert "FAILED" in msg and "FAIL kernel" in msg and "ok   x" in msg
    assert "eps=1e-06" in msg and "analytic=" in msg and "numeric=" in msg


def test_checker_rejects_a_wrong_input_gradient():
    x = np.array([[-1.0, 2.0, -3.0]])
    report = check_gradients(WrongReLU(), x, raise_on_failure=False)
    assert not report.passed
    entry = report.entries[0]
    assert entry.name == "x"
    np.testing.assert_allclose(entry.numeric[0, [0, 2]], 0.0, atol=1e-8)
    assert entry.max_abs_err > 0.1


def test_checker_passes_correct_layers_and_leaves_the_original_untouched():
    layer = npnet.layers.Dense(2)
    x = np.random.default_rng(1).normal(size=(2, 3))
    layer(x.astype(np.float32))
    before = layer.get_weights()
    report = check_gradients(layer, x, loss="mse", y=np.zeros((2, 2)))
    assert report.passed and [e.name for e in report.entries] == ["x", "kernel", "bias"]
    assert layer.params["kernel"].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(before, layer.get_weights()))
    assert "PASSED" in str(report)


def test_max_checks_samples_elements():
    report = check_gradients(npnet.layers.Dense(20), np.ones((2, 30)), max_checks=10)
    assert [e.checked for e in report.entries] == [10, 10, 10]


def test_checker_argument_errors():
    with pytest.raises(TypeError, match="`target` must be an npnet Layer, Model or Loss"):
        check_gradients(lambda x: x, np.ones((1, 1)))
    with pytest.raises(ValueError, match="a loss needs targets `y`"):
        check_gradients(npnet.layers.Dense(1), np.ones((1, 1)), loss="mse")


class AddingScale(npnet.layers.Layer):
    """y = x * gamma, whose backward ADDS to its gradient instead of setting it."""

    def build(self, input_shape):
        self.add_weight("gamma", (input_shape[-1],), "ones")
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        return x * self.params["gamma"], x

    def backward(self, cache, dy):
        self.grads["gamma"] += (dy * cache).sum(axis=0)  # the bug: += instead of [...] =
        return dy * self.params["gamma"]


class TinyScale(npnet.layers.Layer):
    """y = c x for a fixed tiny c; with ``factor`` != 1 the backward is wrong by that factor."""

    def __init__(self, c=1e-8, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.c, self.factor = c, factor

    def forward(self, x, training=False):
        return self._enter(x) * self.c, None

    def backward(self, cache, dy):
        return dy * (self.c * self.factor)


def test_checker_catches_a_backward_that_adds_to_its_gradients():
    # The first backward starts from zero gradients and is right; only a second one on the
    # same cache shows the accumulation.
    x = np.random.default_rng(0).normal(size=(3, 4))
    report = check_gradients(AddingScale(), x, raise_on_failure=False)
    assert not report.passed
    gamma = report.entries[1]
    assert gamma.name == "gamma" and not gamma.repeatable and report.entries[0].passed
    np.testing.assert_allclose(gamma.analytic, gamma.numeric, rtol=1e-6)  # the first pass alone looks fine
    assert gamma.repeat_max_diff == pytest.approx(np.abs(gamma.analytic).max())
    with pytest.raises(GradientCheckError, match=r"FAIL gamma[\s\S]*gamma: a second backward on the same cache "
                                                 r"gave a different gradient .*never add to it"):
        check_gradients(AddingScale(), x)


def test_checker_rejects_a_wrong_gradient_smaller_than_atol():
    # True gradient c * R ~ 1e-8, analytic twice that: |a - n| ~ 1e-8 is below atol = 1e-6,
    # but the tolerance follows the size of the gradient itself.
    x = np.random.default_rng(1).normal(size=(3, 4))
    report = check_gradients(TinyScale(factor=2.0), x, raise_on_failure=False)
    assert not report.passed
    entry = report.entries[0]
    assert entry.max_abs_err < 1e-6 and entry.abs_tol < 1e-12
    np.testing.assert_allclose(entry.analytic, 2 * entry.numeric, rtol=1e-6)
    msg = str(report)
    assert "FAIL x" in msg and "x analytic:" in msg and "x numeric:" in msg and "abs tol=" in msg
    # 1% wrong at the 1e-8 scale is caught too
    assert not check_gradients(TinyScale(factor=1.01), x, raise_on_failure=False).passed


def test_checker_passes_correct_tiny_gradients():
    x = np.random.default_rng(2).normal(size=(3, 4))
    for c in (1e-8, 1e-12):
        assert check_gradients(TinyScale(c=c), x).passed
    # tanh at |x| = 12: gradients ~ 1.5e-10 while the objective is ~ 1, so the central
    # differences carry rounding noise of the gradient's own size; the noise floor allows it.
    xs = np.array([[12.0, -12.0, 0.3], [12.5, -11.5, -0.2]])
    report = check_gradients(npnet.layers.Tanh(), xs)
    assert report.passed and np.abs(report.entries[0].analytic[:, :2]).max() < 1e-9


def test_checker_checks_a_loss():
    r = np.random.default_rng(3)
    y, p = r.normal(size=(4, 3)), r.normal(size=(4, 3))
    report = check_gradients(npnet.losses.Huber(delta=0.5), y_true=y, y_pred=p, sample_weight=r.uniform(size=4))
    assert report.passed and [e.name for e in report.entries] == ["y_pred"]
    assert "gradient check of Huber: PASSED" in str(report) and "with sample_weight" in str(report)
    labels = r.integers(0, 3, size=(2, 5))
    z = r.normal(size=(2, 5, 3))
    assert check_gradients(npnet.losses.SparseCategoricalCrossentropy(from_logits=True), y_true=labels,
                           y_pred=z).passed

    class HalfMSE(npnet.losses.Loss):
        def forward(self, y_true, y_pred, sample_weight=None):
            self._cache = y_pred - y_true
            return self.reduce(np.mean(self._cache ** 2, axis=-1), sample_weight)

        def backward(self):
            return self.reduce_gradient()[..., None] * self._cache / self._cache.shape[-1]  # forgot the 2

    with pytest.raises(GradientCheckError, match=r"gradient check of HalfMSE: FAILED[\s\S]*FAIL y_pred"):
        check_gradients(HalfMSE(), y_true=y, y_pred=p)


def test_checker_loss_argument_errors():
    loss = npnet.losses.MeanSquaredError()
    with pytest.raises(ValueError, match=r"checking the loss MeanSquaredError needs `y_true` and `y_pred`"):
        check_gradients(loss, y_pred=np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"for a loss pass y_true= and y_pred="):
        check_gradients(loss, np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"`x` \(an input batch\) is required"):
        check_gradients(npnet.layers.Dense(1))

    class Flat(npnet.losses.Loss):
        def forward(self, y_true, y_pred, sample_weight=None):
            return float(np.sum(y_pred))

        def backward(self):
            return np.ones(3)

    with pytest.raises(ValueError, match=r"Flat.backward\(\) returned shape \(3,\), expected the shape of y_pred "
                                         r"\(2, 1\)"):
        check_gradients(Flat(), y_true=np.ones((2, 1)), y_pred=np.ones((2, 1)))


class TinyGain(npnet.layers.Layer):
    """y = c * gamma * x with a tiny c; with ``factor`` != 1 the gradient of gamma is wrong."""

    def __init__(self, c=1e-7, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.c, self.factor = c, factor

    def build(self, input_shape):
        self.add_weight("gamma", (input_shape[-1],), "ones")
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        return self.c * self.params["gamma"] * x, x

    def backward(self, cache, dy):
        self.grads["gamma"][...] = self.factor * self.c * (dy * cache).sum(axis=0)
        return dy * self.c * self.params["gamma"]


def _beside_a_big_layer(tiny):
    inp = npnet.Input(shape=(4,))
    out = npnet.layers.Concatenate()([tiny(inp), npnet.layers.Dense(64, name="big")(inp)])
    return npnet.Model(inp, out, seed=0)


def test_a_tiny_wrong_gradient_beside_a_large_output_is_still_caught():
    # The tiny layer's gradients (~1e-7) are far below the rounding noise of the whole
    # objective (~70 x machine epsilon / eps ~ 1e-6); the central differences are taken term
    # by term, so the big layer's outputs, identical at +eps and -eps, add no noise.
    x = np.random.default_rng(0).normal(size=(8, 4))
    report = check_gradients(_beside_a_big_layer(TinyGain(name="tiny", factor=2.0)), x, raise_on_failure=False)
    assert not report.passed
    entry = next(e for e in report.entries if e.name.startswith("tiny"))
    assert not entry.passed and np.abs(entry.numeric).max() < 1e-6
    np.testing.assert_allclose(entry.analytic, 2 * entry.numeric, rtol=1e-4)
    assert check_gradients(_beside_a_big_layer(TinyGain(name="tiny")), x).passed


@pytest.mark.parametrize("kwargs, error, match", [
    ({"eps": 0}, ValueError, r"check_gradients: `eps` must be in \(0, inf\), received 0"),
    ({"eps": "1e-6"}, TypeError, r"check_gradients: `eps` must be a number"),
    ({"atol": -1.0}, ValueError, r"check_gradients: `atol` must be in \[0, inf\), received -1.0"),
    ({"rtol": float("nan")}, ValueError, r"check_gradients: `rtol`"),
    ({"max_checks": 0}, ValueError, r"check_gradients: `max_checks` must be >= 1"),
])
def test_checker_settings_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_gradients(npnet.layers.Dense(2), np.ones((2, 3)), **kwargs)


def test_a_weight_that_is_not_contiguous_is_still_perturbed_in_place():
    layer = npnet.layers.Dense(3)
    layer(np.ones((2, 4)))
    layer.params["kernel"] = np.asfortranarray(layer.params["kernel"])
    assert not layer.params["kernel"].flags.c_contiguous
    x = np.random.default_rng(0).normal(size=(2, 4))
    report = check_gradients(layer, x)
    entry = [e for e in report.entries if e.name.endswith("kernel")][0]
    assert report.passed and entry.checked == 12
