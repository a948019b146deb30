"""Graph gradients checked against an independent oracle: the forward AND backward passes
written out by hand in NumPy (chain rule step by step), never npnet's own backward code."""

import numpy as np
import pytest

import npnet
from npnet import layers as L
from npnet.testing import check_gradients


@pytest.fixture(autouse=True)
def f64():
    npnet.set_floatx("float64")
    try:
        yield
    finally:
        npnet.set_floatx("float32")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _p(model, name):
    """Copies of the parameters of the layer ``name`` (kernel W, bias b)."""
    p = model.get_layer(name).params
    return p["kernel"].copy(), p["bias"].copy()


def _fit_grads(model, layers, x, y):
    """The gradients one full-batch SGD(lr=1) step used: (before - after) / lr."""
    before = {(lay.name, k): v.copy() for lay in layers for k, v in lay.params.items()}
    n = len(x[0]) if isinstance(x, list) else len(x)
    hist = model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
    grads = {key: before[key] - lay.params[key[1]] for lay in layers for key in before if key[0] == lay.name}
    return grads, hist.history


def _close(actual, expected, rtol=1e-6):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-12)


# ---------------------------------------------------------------- two inputs, two heads
def _two_head_model(seed=0):
    a, b = npnet.Input(shape=(5,), name="a"), npnet.Input(shape=(5,), name="b")
    shared = L.Dense(4, activation="tanh", name="shared")
    ha, hb = shared(a), shared(b)  # weight tying
    mid = L.Dense(4, activation="tanh", name="mid")(ha)
    res = L.Add(name="res")([ha, mid])  # residual: ha reaches `res` directly and through `mid`
    cat = L.Concatenate(name="cat")([res, hb])
    cls = L.Dense(3, activation="softmax", name="cls")(cat)
    reg = L.Dense(1, name="reg")(cat)
    model = npnet.Model([a, b], [cls, reg], seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name in ("shared", "mid", "cls", "reg"):  # non-zero biases exercise every path
        bias = model.get_layer(name).params["bias"]
        bias[...] = rng.normal(scale=0.3, size=bias.shape)
    return model


def _two_head_data(n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.normal(size=(n, 5)), rng.integers(0, 3, n), rng.normal(size=(n, 1))


def _compile_two_head(model, lr=1.0):
    model.compile(npnet.SGD(learning_rate=lr), loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5})


def _hand_two_head(model, xa, xb, ycls, yreg, w1=1.0, w2=0.5):
    """Forward and backward of the two-head model, by hand."""
    Ws, bs = _p(model, "shared")
    Wm, bm = _p(model, "mid")
    Wc, bc = _p(model, "cls")
    Wr, br = _p(model, "reg")
    n = len(xa)
    # forward
    ha, hb = np.tanh(xa @ Ws + bs), np.tanh(xb @ Ws + bs)
    m = np.tanh(ha @ Wm + bm)
    r = ha + m
    c = np.concatenate([r, hb], axis=1)
    p = _softmax(c @ Wc + bc)
    out = c @ Wr + br
    l1 = float(np.mean(-np.log(p[np.arange(n), ycls])))
    l2 = float(np.mean((out - yreg) ** 2))
    # backward
    dzc = w1 * (p - np.eye(3)[ycls]) / n  # d(w1 * CE)/d logits
    dout = w2 * 2.0 * (out - yreg) / out.size  # d(w2 * mse)/d out
    g = {("cls", "kernel"): c.T @ dzc, ("cls", "bias"): dzc.sum(0),
         ("reg", "kernel"): c.T @ dout, ("reg", "bias"): dout.sum(0)}
    dc = dzc @ Wc.T + dout @ Wr.T  # both heads read c
    dr, dhb = dc[:, :4], dc[:, 4:]  # split the concatenation
    dzm = dr * (1 - m ** 2)  # residual path 1: through mid
    g[("mid", "kernel")], g[("mid", "bias")] = ha.T @ dzm, dzm.sum(0)
    dha = dr + dzm @ Wm.T  # residual path 2 (identity) + path 1
    dza, dzb = dha * (1 - ha ** 2), dhb * (1 - hb ** 2)
    g[("shared", "kernel")] = xa.T @ dza + xb.T @ dzb  # the two calls of the shared layer
    g[("shared", "bias")] = dza.sum(0) + dzb.sum(0)
    return w1 * l1 + w2 * l2, l1, l2, g


def test_two_input_two_head_model_check_gradients():
    model = _two_head_model()
    xa, xb, ycls, yreg = _two_head_data()
    report = check_gradients(model, [xa, xb])  # objective sum(out * R)
    names = {e.name for e in report.entries}
    assert {"x[0]", "x[1]", "shared/kernel", "shared/bias", "mid/kernel", "cls/kernel", "reg/bias"} <= names
    _compile_two_head(model)
    assert check_gradients(model, {"a": xa, "b": xb}, y={"cls": ycls, "reg": yreg}).passed
    assert check_gradients(model, [xa, xb], y=[ycls, yreg], seed=3).passed


def test_two_head_fit_step_matches_hand_written_backward():
    model = _two_head_model(seed=2)
    xa, xb, ycls, yreg = _two_head_data(n=7, seed=4)
    total, l1, l2, expected = _hand_two_head(model, xa, xb, ycls, yreg)
    _compile_two_head(model, lr=1.0)
    assert model.output_names == ["cls", "reg"]
    layers = [model.get_layer(k) for k in ("shared", "mid", "cls", "reg")]
    grads, history = _fit_grads(model, layers, [xa, xb], {"cls": ycls, "reg": yreg})
    assert set(grads) == set(expected)
    for key, g in expected.items():
        assert np.abs(g).max() > 1e-4, key  # every gradient is a real test
        _close(grads[key], g)
    _close(history["loss"][0], total, rtol=1e-10)
    _close(history["cls_loss"][0], l1, rtol=1e-10)
    _close(history["reg_loss"][0], l2, rtol=1e-10)


# ---------------------------------------------------------------- siamese, cosine similarity
def _siamese(seed=3):
    a, b = npnet.Input(shape=(6,), name="a"), npnet.Input(shape=(6,), name="b")
    tower = npnet.Sequential([L.Dense(8, name="t_in"), L.ReLU(name="t_relu"), L.Dense(4, name="t_out")],
                             name="tower")
    cos = L.Dot(axes=-1, normalize=True, name="cos")([tower(a), tower(b)])
    return npnet.Model([a, b], cos, seed=seed), tower


def test_siamese_cosine_similarity():
    model, tower = _siamese()
    rng = np.random.default_rng(5)
    n = 8
    xa, xb, t = rng.normal(size=(n, 6)), rng.normal(size=(n, 6)), rng.uniform(-0.9, 0.9, size=(n, 1))
    W1, b1 = _p(tower, "t_in")
    W2, b2 = _p(tower, "t_out")
    za, zb = xa @ W1 + b1, xb @ W1 + b1
    assert min(np.abs(za).min(), np.abs(zb).min()) > 1e-3  # away from the ReLU kink
    ra, rb = np.maximum(za, 0), np.maximum(zb, 0)
    ea, eb = ra @ W2 + b2, rb @ W2 + b2
    na, nb = np.linalg.norm(ea, axis=1, keepdims=True), np.linalg.norm(eb, axis=1, keepdims=True)
    cos = np.sum(ea * eb, axis=1, keepdims=True) / (na * nb)
    _close(model.predict([xa, xb], verbose=0), cos, rtol=1e-12)

    # The Dot layer alone: d mse / d ea and d eb by hand.
    dcos = 2.0 * (cos - t) / n
    dea = dcos * (eb / (na * nb) - cos * ea / na ** 2)
    deb = dcos * (ea / (na * nb) - cos * eb / nb ** 2)
    report = check_gradients(L.Dot(axes=-1, normalize=True), [ea, eb], y=t, loss="mse")
    _close(report.entries[0].analytic, dea, rtol=1e-9)
    _close(report.entries[1].analytic, deb, rtol=1e-9)

    model.compile(npnet.SGD(learning_rate=1.0), loss="mse")
    assert check_gradients(model, [xa, xb], y=t).passed
    assert check_gradients(model, [xa, xb]).passed

    # The whole siamese step: both tower calls add into the shared weights.
    dza, dzb = (dea @ W2.T) * (za > 0), (deb @ W2.T) * (zb > 0)
    expected = {("t_out", "kernel"): ra.T @ dea + rb.T @ deb, ("t_out", "bias"): dea.sum(0) + deb.sum(0),
                ("t_in", "kernel"): xa.T @ dza + xb.T @ dzb, ("t_in", "bias"): dza.sum(0) + dzb.sum(0)}
    grads, history = _fit_grads(model, [tower.get_layer("t_in"), tower.get_layer("t_out")], [xa, xb], t)
    for key, g in expected.items():
        _close(grads[key], g)
    _close(history["loss"][0], float(np.mean((cos - t) ** 2)), rtol=1e-10)


# ---------------------------------------------------------------- subclassed: loop and if
class Block(L.Layer):
    """x + tanh(Dense(x)): a composite with a residual Add."""

    def __init__(self, units, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.dense = L.Dense(units, activation="tanh")
        self.add = L.Add()

    def call(self, x, training=False):
        return self.add([x, self.dense(x)])


class Net(npnet.Model):
    def __init__(self, depth=3, width=4, gated=True, name=None):
        super().__init__(name=name)
        self.gated = gated
        self.stem = L.Dense(width, activation="tanh")
        self.blocks = [Block(width) for _ in range(depth)]
        self.gate = L.Dense(width, activation="sigmoid")
        self.mul = L.Multiply()
        self.head = L.Dense(2)

    def call(self, inputs, training=False):
        h = self.stem(inputs)
        for block in self.blocks:
            h = block(h)
        if self.gated:
            h = self.mul([h, self.gate(h)])
        return self.head(h)


@pytest.mark.parametrize("gated", [True, False])
def test_subclassed_loop_and_branch(gated):
    depth, width, n_in = 3, 4, 3
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(5, n_in))
        model = Net(depth=depth, width=width, gated=gated)
        model(x)
        model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
        assert check_gradients(model, x, seed=seed).passed
        assert check_gradients(model, x, y=rng.normal(size=(5, 2)), loss="mse", seed=seed).passed
    dense = (n_in * width + width) + depth * (width * width + width) + (width * 2 + 2)
    expected = dense + (width * width + width if gated else 0)
    assert model.count_params() == expected
    ids = {id(w) for w in model.weights}
    for block in model.blocks:
        assert id(block.dense.params["kernel"]) in ids and id(block.dense.params["bias"]) in ids
    assert len(model.weights) == 2 * (depth + 2 + int(gated))


# ---------------------------------------------------------------- fan-out
def test_fan_out_gradient_is_sum_of_three_paths():
    inp = npnet.Input(shape=(4,), name="x")
    h = L.Dense(3, activation="tanh", name="stem")(inp)
    p1 = L.Dense(2, activation="tanh", name="p1")(h)
    p2 = L.Dense(2, name="p2")(h)
    p3 = L.Dense(2, activation="sigmoid", name="p3")(h)
    model = npnet.Model(inp, L.add([p1, p2, p3]), seed=7)
    rng = np.random.default_rng(8)
    x, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    Ws, bs = _p(model, "stem")
    (W1, b1), (W2, b2), (W3, b3) = _p(model, "p1"), _p(model, "p2"), _p(model, "p3")
    hh = np.tanh(x @ Ws + bs)
    y1, y2, y3 = np.tanh(hh @ W1 + b1), hh @ W2 + b2, _sigmoid(hh @ W3 + b3)
    g = 2.0 * (y1 + y2 + y3 - t) / t.size
    paths = [(g * (1 - y1 ** 2)) @ W1.T, g @ W2.T, (g * y3 * (1 - y3)) @ W3.T]
    dh = paths[0] + paths[1] + paths[2]
    for path in paths:  # each path matters: no single one equals the sum
        assert np.abs(path).max() > 1e-3 and not np.allclose(path, dh, rtol=1e-2)
    dzs = dh * (1 - hh ** 2)
    report = check_gradients(model, x, y=t, loss="mse")
    entries = {e.name: e for e in report.entries}
    _close(entries["x"].analytic, dzs @ Ws.T, rtol=1e-9)
    _close(entries["stem/kernel"].analytic, x.T @ dzs, rtol=1e-9)
    _close(entries["stem/bias"].analytic, dzs.sum(0), rtol=1e-9)
    model.compile(npnet.SGD(learning_rate=1.0), loss="mse")
    grads, _ = _fit_grads(model, [model.get_layer("stem")], x, t)
    _close(grads[("stem", "kernel")], x.T @ dzs)
    _close(grads[("stem", "bias")], dzs.sum(0))


# ---------------------------------------------------------------- frozen layers
def _snapshot(layer):
    return {k: v.copy() for k, v in layer.params.items()}


def _fit_and_compare(model, frozen, others, x, t):
    model.compile(npnet.SGD(learning_rate=0.1), loss="mse")
    before = {lay.name: _snapshot(lay) for lay in frozen + others}
    model.fit(x, t, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for lay in frozen:
        for k, v in before[lay.name].items():
            np.testing.assert_array_equal(lay.params[k], v)
    for lay in others:  # gradients reach layers before the frozen one too
        for k, v in before[lay.name].items():
            assert not np.allclose(lay.params[k], v), (lay.name, k)


def test_frozen_layer_in_functional_model():
    inp = npnet.Input(shape=(4,))
    pre = L.Dense(5, activation="tanh", name="pre")
    frozen = L.Dense(5, activation="tanh", name="frozen")
    frozen.trainable = False
    out = L.Dense(1, name="out")
    model = npnet.Model(inp, out(frozen(pre(inp))), seed=11)
    rng = np.random.default_rng(12)
    x, t = rng.normal(size=(12, 4)), rng.normal(size=(12, 1))
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 2
    _fit_and_compare(model, [frozen], [pre, out], x, t)


def test_frozen_nested_sequential_in_functional_model():
    sub = npnet.Sequential([L.Dense(5, activation="tanh", name="s1"), L.Dense(3, name="s2")], name="sub")
    inp = npnet.Input(shape=(4,))
    pre = L.Dense(5, activation="tanh", name="pre2")
    out = L.Dense(1, name="out2")
    model = npnet.Model(inp, out(sub(pre(inp))), seed=13)
    sub.trainable = False
    assert not sub.get_layer("s1").trainable and not sub.get_layer("s2").trainable
    rng = np.random.default_rng(14)
    x, t = rng.normal(size=(12, 4)), rng.normal(size=(12, 1))
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 4
    _fit_and_compare(model, [sub.get_layer("s1"), sub.get_layer("s2")], [pre, out], x, t)
