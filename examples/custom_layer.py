"""Write your own layers, check their gradients, train them, save and load them.

A ``Scale`` layer (a primitive) multiplies each feature by a learned factor:
y = x * gamma. Its backward pass follows from the chain rule:

    dL/dgamma = sum over the batch of dL/dy * x
    dL/dx     = dL/dy * gamma

A ``GatedBlock`` (a composite) is built out of other layers in ``call`` and needs no
backward: the model records the primitive calls and walks them in reverse.

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
        return x * self.params["gamma"], x  # the output, and the cache: the only thing backward needs

    def backward(self, cache, dy):
        self._require_cache(cache)
        x = cache
        self.grads["gamma"][...] = (dy * x).reshape(-1, dy.shape[-1]).sum(axis=0)
        return dy * self.params["gamma"]

    def get_config(self):
        return {**super().get_config(), "initializer": self.initializer}


@npnet.register_layer
class GatedBlock(Layer):
    """A composite layer: ``x * sigmoid(Dense(x))``, made of other layers, no backward."""

    def __init__(self, units, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.units = units
        self.gate = npnet.Dense(units, activation="sigmoid")
        self.multiply = npnet.layers.Multiply()

    def call(self, x, training=False):
        return self.multiply([x, self.gate(x)])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def main():
    rng = np.random.default_rng(0)

    # 1. The gradient checks: float64 central differences against backward(), and
    #    against the recorded backward pass of the composite.
    report = check_gradients(Scale(initializer="random_normal"), rng.normal(size=(4, 3)))
    print(report)
    print(check_gradients(GatedBlock(3), rng.normal(size=(4, 3))))

    # 2. Train it inside a model.
    x = rng.normal(size=(500, 8)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    model = npnet.Sequential([npnet.Input(shape=(8,)), Scale(), GatedBlock(8), npnet.Dense(16, activation="relu"),
                              npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, verbose=0, seed=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    print(f"training accuracy: {acc:.3f}")

    # 3. Save and load: the registered classes are found by name.
    path = os.path.join(tempfile.mkdtemp(), "scale.npnet")
    model.save(path)
    restored = npnet.load_model(path)
    assert np.array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    print(f"saved and restored {path}")
    return acc


if __name__ == "__main__":
    main()
