"""The tape: what a training pass records and how its backward pass is found."""

import numpy as np
import pytest

import npnet
from npnet import layers as L


class Spy(L.Layer):
    """Identity that records, for each backward call, whether dx was asked for."""

    def __init__(self, name=None):
        super().__init__(name=name)
        self.asked = []

    def forward(self, x, training=False):
        return self._enter(x), ()

    def backward(self, cache, dy):
        self.asked.append(self.compute_input_grad)
        return dy if self.compute_input_grad else None


def test_no_input_gradient_is_computed_before_the_first_layer_with_parameters():
    first, middle, last = Spy(name="first"), Spy(name="middle"), Spy(name="last")
    model = npnet.Sequential([npnet.Input(shape=(3,)), first, L.Dense(2), middle, L.Dense(2), last])
    model.compile(npnet.SGD(0.1), "mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), batch_size=4, verbose=0, seed=0)
    assert first.asked == [] and middle.asked == [True] and last.asked == [True]
    # The identity before any parameter gets no gradient at all: its output needs none.


def test_a_shared_layer_gets_the_sum_of_its_gradients_and_one_optimizer_update():
    # y = d(d(x)) with d(x) = w x (one weight, no bias): dL/dw for L = sum(y) is 2 w x.
    d = L.Dense(1, use_bias=False, kernel_initializer="ones", name="d")
    x = npnet.Input(shape=(1,))
    model = npnet.Model(x, d(d(x)))
    d.params["kernel"][:] = 3.0
    model.compile(npnet.SGD(1.0), "mae")  # d mae / d y = sign(y - t) / n = 1 for y > t
    model.fit(np.array([[2.0]]), np.array([[0.0]]), batch_size=1, verbose=0, seed=0)
    # gradient 2 * w * x = 12, so w = 3 - 12 = -9
    assert d.params["kernel"][0, 0] == pytest.approx(-9.0)


def test_fan_out_and_identity_layers_sum_gradients():
    # y = x + identity(x) + 2 x, so dy/dx = 4. With the mean absolute error against targets
    # far below y, dL/dy = 1 / (batch * features) = 1/2 per element, so dL/dx = 2.
    x = npnet.Input(shape=(2,))
    twice = L.Dense(2, use_bias=False, kernel_initializer="zeros", name="twice")
    model = npnet.Model(x, L.add([x, L.Linear()(x), twice(x)]))
    twice.params["kernel"][:] = 2 * np.eye(2)
    report = npnet.testing.check_gradients(model, np.array([[1.0, 2.0]]), np.array([[-50.0, -50.0]]), loss="mae")
    assert report.passed and report.entries[0].name == "x"
    np.testing.assert_allclose(report.entries[0].analytic, [[2.0, 2.0]], rtol=1e-12)
    # dL/dkernel[i, j] = x_i * dL/dy_j = x_i / 2
    np.testing.assert_allclose(report.entries[1].analytic, [[0.5, 0.5], [1.0, 1.0]], rtol=1e-12)


def test_an_output_used_twice_by_the_loss_and_a_layer_is_not_fused():
    x = npnet.Input(shape=(3,))
    probs = L.Dense(3, activation="softmax", name="probs")(x)
    again = L.Dense(3, activation="softmax", name="again")(probs)
    model = npnet.Model(x, [probs, again])
    model.compile("sgd", "sparse_categorical_crossentropy")
    data = np.random.default_rng(0).normal(size=(4, 3))
    assert model._fused_outputs(data) == [False, True]
    npnet.testing.check_gradients(model, data, [np.array([0, 1, 2, 0]), np.array([1, 1, 0, 2])])
