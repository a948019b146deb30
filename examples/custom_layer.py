"""Write your own layer, check its gradients, train it, save and load it.

A ``Scale`` layer multiplies each feature by a learned factor: y = x * gamma.
Its backward pass follows from the chain rule:

    dL/dgamma = sum over the batch of dL/dy * x
    dL/dx     = dL/dy * gamma

Run: python examples/custom_layer.py
"""

import os
import tempfile

import numpy as np

import npnet
from npnet.layers import InputSpec, Layer
from npnet.testing import check_gradients


@npnet.register_layer  # lets npnet.load_model find the class by name; nothing is imported from files
class Scale(Layer):
    """Per-feature learned scale: ``y = x * gamma``, gamma of shape (features,)."""

    def __init__(self, initializer="ones", name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.initializer = initializer

    def build(self, input_shape):
        self.add_weight("gamma", (input_shape[-1],), self.initializer)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_shape[-1]})
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)  # builds on the first call and checks the shape
        self._x = x  # the only thing backward needs
        return x * self.params["gamma"]

    def backward(self, dy):
        self._require_forward("_x")
        self.grads["gamma"][...] = (dy * self._x).reshape(-1, dy.shape[-1]).sum(axis=0)
        return dy * self.params["gamma"]

    def get_config(self):
        return {**super().get_config(), "initializer": self.initializer}


def main():
    rng = np.random.default_rng(0)

    # 1. The gradient check: float64 central differences against backward().
    report = check_gradients(Scale(initializer="random_normal"), rng.normal(size=(4, 3)))
    print(report)

    # 2. Train it inside a model.
    x = rng.normal(size=(500, 8)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    model = npnet.Sequential([npnet.Input(shape=(8,)), Scale(), npnet.Dense(16, activation="relu"),
                              npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, verbose=0, seed=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    print(f"training accuracy: {acc:.3f}")

    # 3. Save and load: the registered class is found by name.
    path = os.path.join(tempfile.mkdtemp(), "scale.npnet")
    model.save(path)
    restored = npnet.load_model(path)
    assert np.array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    print(f"saved and restored {path}")
    return acc


if __name__ == "__main__":
    main()
