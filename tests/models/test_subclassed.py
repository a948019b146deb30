"""Subclassed models and composite layers: plain Python in call(), no backward written."""

import numpy as np
import pytest

import npnet
from npnet import layers as L


class Block(L.Layer):
    """x + Dense(tanh(Dense(x))): a residual block made of other layers."""

    def __init__(self, units, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.units = units
        self.inner = L.Dense(units, activation="tanh")
        self.outer = L.Dense(units)
        self.add = L.Add()

    def call(self, x, training=False):
        return self.add([x, self.outer(self.inner(x))])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Net(npnet.Model):
    """A stem, a Python loop over a list of blocks, an optional dropout, a head."""

    def __init__(self, width=16, depth=3, classes=2, dropout=0.0, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.width, self.depth, self.classes, self.dropout = width, depth, classes, dropout
        self.stem = L.Dense(width, activation="relu")
        self.blocks = [Block(width) for _ in range(depth)]
        self.extras = {"drop": L.Dropout(dropout, seed=0)}
        self.head = L.Dense(classes, activation="softmax")

    def call(self, inputs, training=False):
        h = self.stem(inputs)
        for block in self.blocks:
            h = block(h)
        if self.dropout > 0:
            h = self.extras["drop"](h, training=training)
        return self.head(h)

    def get_config(self):
        return {"width": self.width, "depth": self.depth, "classes": self.classes, "dropout": self.dropout,
                "name": self.name}


def _rings(n=600, seed=0):
    """Two concentric rings: not linearly separable."""
    r = np.random.default_rng(seed)
    radius = np.where(r.random(n) < 0.5, 1.0, 2.0)
    angle = r.uniform(0, 2 * np.pi, n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + r.normal(scale=0.1, size=(n, 2))
    return x.astype("float32"), (radius > 1.5).astype(int)


def test_layers_in_attributes_lists_and_dicts_are_tracked():
    net = Net(width=8, depth=2)
    net.build((None, 2))
    names = [path for path, _, _ in net._weight_entries()]
    assert names[:2] == ["stem/kernel", "stem/bias"] and "blocks/1/outer/kernel" in names
    # stem 2*8+8, two blocks of 2 * (8*8+8), head 8*2+2
    assert net.count_params() == 24 + 2 * 144 + 18 == sum(w.size for w in net.trainable_weights)
    assert [type(layer).__name__ for layer in net.layers] == ["Dense", "Block", "Block", "Dropout", "Dense"]
    assert len(net.weights) == 2 + 2 * 4 + 2 and net.non_trainable_weights == []


def test_a_subclassed_model_with_a_loop_over_blocks_learns_rings():
    x, y = _rings()
    net = Net(depth=3, dropout=0.1)
    net.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert not net.built
    history = net.fit(x, y, epochs=30, batch_size=32, validation_split=0.2, seed=0, verbose=0)
    assert net.built and history.history["val_accuracy"][-1] >= 0.97
    assert net._fused_outputs(x[:4]) == [True]
    # the same seed gives the same run, bit for bit
    again = Net(depth=3, dropout=0.1)
    again.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert again.fit(x, y, epochs=2, batch_size=32, seed=0, verbose=0).history["loss"] == \
        Net.fit(_fresh(), x, y, epochs=2, batch_size=32, seed=0, verbose=0).history["loss"]


def _fresh():
    net = Net(depth=3, dropout=0.1)
    net.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


def test_a_branch_not_taken_gets_no_update():
    class Switch(npnet.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = L.Dense(2, name="a"), L.Dense(2, name="b")
            self.use_b = False

        def call(self, x, training=False):
            return self.b(x) if self.use_b else self.a(x)

    model = Switch()
    x = np.ones((4, 3), np.float32)
    model(x)
    model.use_b = True
    model(x)  # builds b too
    model.use_b = False
    model.compile(npnet.SGD(0.1), "mse")
    before = model.b.get_weights()
    model.fit(x, np.zeros((4, 2)), epochs=2, verbose=0, seed=0)
    assert all(np.array_equal(p, q) for p, q in zip(before, model.b.get_weights()))


def test_composite_layer_inside_sequential_trains_and_saves(tmp_path):
    npnet.register_layer(Block)
    x, y = _rings(300, seed=1)
    model = npnet.Sequential([npnet.Input(shape=(2,)), L.Dense(16, activation="relu"), Block(16), Block(16),
                              L.Dense(2, activation="softmax")], seed=0)
    assert model.output_shape == (None, 2) and model.count_params() == 48 + 2 * 544 + 34
    model.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.layers[2].inner.get_weights()
    model.fit(x, y, epochs=25, verbose=0, seed=0)
    assert not np.array_equal(before[0], model.layers[2].inner.get_weights()[0])  # the inner layer trained
    assert model.evaluate(x, y, verbose=0)[1] >= 0.95
    model.save(tmp_path / "blocks.npnet")
    restored = npnet.load_model(tmp_path / "blocks.npnet")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_subclassed_model_saves_when_registered_and_loads_weights_always(tmp_path):
    x, y = _rings(200, seed=2)
    net = Net(width=8, depth=2)
    net.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy")
    net.fit(x, y, epochs=2, verbose=0, seed=0)
    with pytest.raises(ValueError, match="Net is a subclassed model; register it with @npnet.register_layer"):
        net.save(tmp_path / "net.npnet")
    net.save_weights(tmp_path / "net.weights.npnet")
    other = Net(width=8, depth=2)  # other automatic layer names; weights match by attribute path
    other.load_weights(tmp_path / "net.weights.npnet")
    np.testing.assert_array_equal(other.predict(x, verbose=0), net.predict(x, verbose=0))
    npnet.register_layer(Net)
    net.save(tmp_path / "net.npnet")
    restored = npnet.load_model(tmp_path / "net.npnet")
    assert type(restored) is Net and restored.depth == 2
    np.testing.assert_array_equal(restored.predict(x, verbose=0), net.predict(x, verbose=0))
    # training continues exactly: optimizer slots are restored by weight path
    a = net.fit(x, y, epochs=1, verbose=0, seed=5, shuffle=False).history["loss"]
    b = restored.fit(x, y, epochs=1, verbose=0, seed=5, shuffle=False).history["loss"]
    assert a == b


def test_unrecorded_arithmetic_in_call_is_a_clear_error_in_training():
    class Raw(npnet.Model):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = L.Dense(4), L.Dense(2, name="second")

        def call(self, x, training=False):
            return self.d2(self.d1(x) * 2.0)

    model = Raw()
    assert model.predict(np.ones((2, 3)), verbose=0).shape == (2, 2)  # inference works
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"Dense 'second': while training, its input must be a model input or the "
                                         r"output of another layer"):
        model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)


def test_frozen_sub_model_and_trainable_propagation():
    inner = npnet.Sequential([npnet.Input(shape=(3,)), L.Dense(3, name="i1"), L.BatchNormalization(name="bn")],
                             name="frozen")
    x = npnet.Input(shape=(3,))
    model = npnet.Model(x, L.Dense(1, name="out")(inner(x)))
    inner.trainable = False
    assert not inner.get_layer("i1").trainable
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 6
    model.compile(npnet.SGD(0.1), "mse")
    before = inner.get_layer("i1").get_weights()
    model.fit(np.random.default_rng(0).normal(size=(16, 3)), np.ones((16, 1)), epochs=2, verbose=0, seed=0)
    assert all(np.array_equal(p, q) for p, q in zip(before, inner.get_layer("i1").get_weights()))
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 4" in lines[0] and "Non-trainable params: 24" in lines[0]


def test_sequential_pop_and_building_from_data():
    model = npnet.Sequential([L.Dense(4), L.Dense(3), L.Dense(2)])
    assert model.pop().units == 2 and [layer.units for layer in model.layers] == [4, 3]
    model.compile("sgd", "mse")
    assert model.evaluate(np.ones((5, 6)), np.zeros((5, 3)), verbose=0) >= 0
    assert model.input_shape == (None, 6)
    with pytest.raises(ValueError, match="has no layers"):
        npnet.Sequential(name="empty").pop()


def test_numpy_arithmetic_on_an_output_is_a_clear_error_in_training():
    class Scaled(npnet.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(1)

        def call(self, x, training=False):
            return self.d(x) * 2.0

    model = Scaled()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"Scaled 'scaled': output 'output' was computed outside npnet's layers"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)


def test_one_softmax_output_under_two_losses_gets_both_gradients():
    x = npnet.Input(shape=(3,))
    probs = L.Dense(3, activation="softmax", name="probs")(x)
    model = npnet.Model(x, {"a": probs, "b": probs})
    model.compile("sgd", "sparse_categorical_crossentropy")
    data = np.random.default_rng(0).normal(size=(5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    assert model._fused_outputs(data) == [False, False]
    npnet.testing.check_gradients(model, data, {"a": labels, "b": labels})


def test_training_reaches_layers_called_without_it_as_in_keras():
    class Noisy(npnet.Model):
        def __init__(self):
            super().__init__()
            self.drop = L.Dropout(0.5, seed=0)

        def call(self, x):  # no `training` argument, and none passed on
            return self.drop(x)

    ones = np.ones((4, 8), np.float32)
    model = Noisy()
    np.testing.assert_array_equal(model(ones), ones)
    assert set(np.unique(model(ones, training=True))) == {0.0, 2.0}  # Monte Carlo dropout works

    class Quiet(npnet.Model):  # an explicit training=False inside fit reaches the layers inside the block
        def __init__(self):
            super().__init__()
            self.block = npnet.Sequential([L.Dropout(0.99, seed=0)])
            self.head = L.Dense(1, kernel_initializer="ones", use_bias=False)

        def call(self, x, training=False):
            return self.head(self.block(x, training=False))

    quiet = Quiet()
    quiet.compile(npnet.SGD(0.0), "mse")
    history = quiet.fit(ones, np.full((4, 1), 8.0), epochs=1, verbose=0, seed=0)
    assert history.history["loss"] == [0.0]  # dropout stayed off: 8 ones sum to exactly 8


def test_a_composite_layer_may_create_its_layers_in_build():
    class Residual(L.Layer):
        def build(self, input_shape):
            self.dense = L.Dense(input_shape[-1])
            self.add = L.Add()

        def call(self, x):
            return self.add([x, self.dense(x)])

    block = Residual()
    assert block(np.ones((2, 3))).shape == (2, 3) and block.count_params() == 12
    x = npnet.Input(shape=(5,))
    assert npnet.Model(x, Residual()(x)).count_params() == 30


def test_a_layer_first_built_during_training_is_refused():
    class Branchy(npnet.Model):
        def __init__(self):
            super().__init__()
            self.pos, self.neg = L.Dense(1, name="pos"), L.Dense(1, name="neg")

        def call(self, x, training=False):
            return self.pos(x) if float(np.asarray(x).sum()) > 0 else self.neg(x)

    model = Branchy()
    model.compile("sgd", "mse")
    x = np.concatenate([np.ones((4, 2)), -np.ones((4, 2))])
    with pytest.raises(RuntimeError, match=r"layers \['neg'\] were first built during training"):
        model.fit(x, np.zeros((8, 1)), batch_size=4, shuffle=False, verbose=0)


def test_validation_data_given_as_a_dict_is_matched_by_key():
    class Two(npnet.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.add = L.Dense(1), L.Dense(1), L.Add()

        def call(self, inputs, training=False):
            return self.add([self.a(inputs["img"]), self.b(inputs["meta"])])

    r = np.random.default_rng(0)
    data = {"img": r.normal(size=(40, 3)), "meta": 10 * r.normal(size=(40, 3))}
    y = data["img"].sum(1, keepdims=True)
    model = Two()
    model.compile(npnet.SGD(0.0), "mse")
    swapped = {"meta": data["meta"], "img": data["img"]}
    history = model.fit(data, y, epochs=1, verbose=0, seed=0, validation_data=(swapped, y))
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(data, y, verbose=0), rel=1e-6)


def test_a_subclassed_model_holding_a_sequential_reloads_its_optimizer(tmp_path):
    @npnet.register_layer
    class Holder(npnet.Model):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.body = npnet.Sequential([L.Dense(4, activation="tanh"), L.Dense(2)])  # automatic names

        def call(self, x, training=False):
            return self.body(x)

        def get_config(self):
            return {"name": self.name}

    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model = Holder()
    model.compile("adam", "mse")
    model.fit(x, x[:, :2], epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "holder.npnet")
    L.Dense(3)  # shift the automatic names: the reloaded layers get other ones
    restored = npnet.load_model(tmp_path / "holder.npnet")
    a = model.fit(x, x[:, :2], epochs=1, verbose=0, seed=1).history
    b = restored.fit(x, x[:, :2], epochs=1, verbose=0, seed=1).history
    assert a == b


def test_a_backward_that_rebinds_its_gradient_still_trains():
    class Scale(L.Layer):
        def build(self, input_shape):
            self.add_weight("gamma", (input_shape[-1],), "ones")
            super().build(input_shape)

        def forward(self, x, training=False):
            return self._enter(x) * self.params["gamma"], x

        def backward(self, cache, dy):
            self.grads["gamma"] = (dy * cache).sum(axis=0)  # a new array, not written in place
            return dy * self.params["gamma"]

    model = npnet.Sequential([npnet.Input(shape=(2,)), Scale()])
    model.compile(npnet.SGD(0.1), "mse")
    model.fit(np.ones((8, 2)), np.full((8, 2), 3.0), epochs=5, verbose=0, seed=0)
    assert np.all(model.layers[0].params["gamma"] > 1.5)


def test_model_from_config_takes_a_functional_config():
    x = npnet.Input(shape=(3,))
    model = npnet.Model(x, L.Dense(2)(x))
    clone = npnet.Model.from_config(model.get_config())
    assert isinstance(clone, npnet.models.Functional) and clone.count_params() == 8
