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
    with pytest.raises(TypeError, match="`target` must be an npnet Layer or Model"):
        check_gradients(lambda x: x, np.ones((1, 1)))
    with pytest.raises(ValueError, match="a loss needs targets `y`"):
        check_gradients(npnet.layers.Dense(1), np.ones((1, 1)), loss="mse")
