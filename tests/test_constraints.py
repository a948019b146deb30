"""Weight constraints: Keras' formulas (epsilon included), names and configs, and their
application after every optimizer update."""

import numpy as np
import pytest

import npnet
from npnet import constraints as C

EPS = 1e-7  # Keras' backend.epsilon()
W = np.array([[3.0, 0.1, -1.0], [4.0, 0.2, 0.0]], dtype=np.float32)  # column norms 5, sqrt(0.05), 1


# ---------------------------------------------------------------- formulas
def test_max_norm_golden():
    w = W.astype(np.float64)
    norms = np.array([5.0, np.sqrt(0.05), 1.0])
    desired = np.minimum(norms, 2.0)
    expected = w * (desired / (EPS + norms))  # Keras: w * clip(n, 0, m) / (eps + n)
    out = C.MaxNorm(2.0)(W)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(out[:, 0], [1.2, 1.6], rtol=1e-6)
    # axis=1: row norms sqrt(10.05) and sqrt(16.04), both above 2
    rows = np.sqrt((w ** 2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(C.MaxNorm(2.0, axis=1)(W), w * (2.0 / (EPS + rows)), rtol=1e-6)


def test_unit_norm_golden_with_epsilon():
    np.testing.assert_allclose(C.UnitNorm()(W), W / (EPS + np.array([5.0, np.sqrt(0.05), 1.0])), rtol=1e-6)
    # The epsilon shows on a tiny vector: norm 1e-6 becomes 1e-6 / (1e-7 + 1e-6) = 0.90909...
    tiny = np.array([[6e-7], [8e-7]])
    assert np.linalg.norm(C.UnitNorm()(tiny)) == pytest.approx(1 / 1.1, rel=1e-9)


def test_min_max_norm_golden_with_rate():
    c = C.MinMaxNorm(min_value=0.5, max_value=2.0, rate=0.25)
    norms = np.array([5.0, np.sqrt(0.05), 1.0])
    desired = 0.25 * np.clip(norms, 0.5, 2.0) + 0.75 * norms  # 4.25, 0.75 * 0.2236 + 0.125, 1
    np.testing.assert_allclose(c(W), W.astype(np.float64) * desired / (EPS + norms), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(c(W), axis=0), desired, rtol=1e-5)


def test_non_neg_and_base():
    np.testing.assert_array_equal(C.NonNeg()(W), np.array([[3.0, 0.1, 0.0], [4.0, 0.2, 0.0]], np.float32))
    assert C.Constraint()(W) is W


def test_conv_kernel_per_filter():
    k = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32) * 3
    out = C.MaxNorm(1.5, axis=[0, 1, 2])(k)
    np.testing.assert_allclose(np.sqrt((out.astype(np.float64) ** 2).sum(axis=(0, 1, 2))), 1.5, rtol=1e-5)


# ---------------------------------------------------------------- names, configs, bad input
@pytest.mark.parametrize("name, cls", [("max_norm", C.MaxNorm), ("non_neg", C.NonNeg), ("unit_norm", C.UnitNorm),
                                       ("min_max_norm", C.MinMaxNorm), ("MaxNorm", C.MaxNorm)])
def test_get_by_name(name, cls):
    assert type(C.get(name)) is cls


def test_configs_round_trip():
    for c in (C.MaxNorm(3.0, axis=(0, 1)), C.NonNeg(), C.UnitNorm(axis=1), C.MinMaxNorm(0.2, 0.9, 0.5, axis=-1)):
        data = C.serialize(c)
        assert C.get(data) == c and type(c).from_config(c.get_config()) == c
    assert C.serialize(C.MaxNorm(3.0, axis=(0, 1))) == {"class_name": "MaxNorm",
                                                         "config": {"max_value": 3.0, "axis": [0, 1]}}
    assert C.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}
    assert C.get(None) is None and C.serialize(None) is None
    assert type(C.get(C.UnitNorm)) is C.UnitNorm


@pytest.mark.parametrize("make, error, match", [
    (lambda: C.MaxNorm(-1.0), ValueError, r"MaxNorm: `max_value` must be in \[0, inf\), received -1.0"),
    (lambda: C.MaxNorm(axis="rows"), TypeError, r"MaxNorm: `axis` must be an int or a tuple of ints, received 'rows'"),
    (lambda: C.UnitNorm(axis=[0, 0]), ValueError, r"UnitNorm: `axis` repeats an axis"),
    (lambda: C.MinMaxNorm(2.0, 1.0), ValueError, r"MinMaxNorm: `min_value` must be <= `max_value`, received 2.0 and 1.0"),
    (lambda: C.MinMaxNorm(rate=1.5), ValueError, r"MinMaxNorm: `rate` must be in \[0, 1\]"),
    (lambda: C.get("maxnorm"), ValueError, r"unknown constraint 'maxnorm'; known names: \["),
    (lambda: C.get(2.0), TypeError, r"a constraint must be a name, a config dict or an npnet.constraints.Constraint, "
                                    r"received 2.0 of type float"),
    (lambda: C.get(np.abs), TypeError, r"a constraint must be a name"),
    (lambda: npnet.layers.Dense(2, kernel_constraint="nope"), ValueError, r"Dense: unknown constraint 'nope'"),
    (lambda: npnet.layers.BatchNormalization(beta_constraint=3), TypeError, r"BatchNormalization: a constraint must"),
])
def test_bad_arguments_are_rejected_clearly(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_an_axis_out_of_range_is_refused_when_the_weight_is_made():
    layer = npnet.layers.Dense(2, kernel_constraint=C.MaxNorm(axis=2), name="d")
    with pytest.raises(ValueError, match=r"Dense 'd' weight 'kernel': MaxNorm `axis` 2 is out of range for a weight "
                                         r"of shape \(3, 2\)"):
        layer(np.ones((1, 3), np.float32))
    layer = npnet.layers.Conv2D(2, 3, bias_constraint=C.UnitNorm(axis=(0, 1)), name="c")
    with pytest.raises(ValueError, match=r"Conv2D 'c' weight 'bias': UnitNorm `axis` \(0, 1\) is out of range"):
        layer(np.ones((1, 4, 4, 1), np.float32))


# ---------------------------------------------------------------- applied after each update
def _model(**kwargs):
    return npnet.Sequential([npnet.Input((4,)), npnet.layers.Dense(3, name="d", **kwargs), npnet.layers.Dense(2)],
                            seed=0)


class Watch(npnet.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kernel_norms, self.biases = [], []

    def on_train_batch_end(self, batch, logs=None):
        d = self.model.get_layer("d")
        self.kernel_norms.append(np.linalg.norm(d.params["kernel"].astype(np.float64), axis=0).max())
        self.biases.append(d.params["bias"].min())


@pytest.mark.parametrize("constrained", [True, False])
def test_constraints_hold_after_every_step(constrained):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32) * 2
    y = rng.normal(size=(40, 2)).astype(np.float32) * 3 - 3
    kwargs = dict(kernel_constraint=C.MaxNorm(0.8), bias_constraint="non_neg") if constrained else {}
    model = _model(**kwargs)
    model.compile(optimizer=npnet.SGD(0.02), loss="mse")
    watch = Watch()
    model.fit(x, y, batch_size=5, epochs=2, callbacks=[watch], seed=0, verbose=0)
    assert len(watch.kernel_norms) == 16
    if constrained:
        assert max(watch.kernel_norms) <= 0.8 * (1 + 1e-6) and min(watch.biases) >= 0.0
    else:  # the same run without constraints breaks both bounds: the check above can fail
        assert max(watch.kernel_norms) > 0.8 and min(watch.biases) < 0.0


def test_the_constraint_projects_the_updated_weight():
    # One SGD step by hand: W1 = MaxNorm(W0 - lr * dW), with dW of the MSE through one Dense.
    x = np.array([[1.0, 2.0, -1.0, 0.5], [0.0, -1.0, 3.0, 1.0]], np.float32)
    t = np.array([[2.0, -1.0, 0.5], [1.0, 1.0, -2.0]], np.float32)
    model = npnet.Sequential([npnet.Input((4,)), npnet.layers.Dense(3, kernel_constraint=C.MaxNorm(0.6))], seed=2)
    model.compile(optimizer=npnet.SGD(0.5), loss="mse")
    w0, b0 = (a.astype(np.float64) for a in model.get_weights())
    dy = 2 * (x @ w0 + b0 - t) / t.size
    w = w0 - 0.5 * (x.T @ dy)
    norms = np.sqrt((w ** 2).sum(axis=0, keepdims=True))
    model.train_on_batch(x, t)
    np.testing.assert_allclose(model.get_weights()[0], w * np.minimum(norms, 0.6) / (EPS + norms), rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], b0 - 0.5 * dy.sum(axis=0), rtol=1e-5)


def test_frozen_and_state_weights_are_not_projected():
    model = _model(kernel_constraint=C.MaxNorm(0.01))
    model.compile(optimizer="sgd", loss="mse")
    model.get_layer("d").trainable = False
    before = model.get_layer("d").params["kernel"].copy()
    model.train_on_batch(np.ones((2, 4), np.float32), np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(model.get_layer("d").params["kernel"], before)


def test_batch_normalization_gamma_and_beta_constraints():
    model = npnet.Sequential([npnet.Input((3,)), npnet.layers.BatchNormalization(
        gamma_constraint=C.MinMaxNorm(0.5, 0.7), beta_constraint="non_neg", name="bn")], seed=0)
    model.compile(optimizer=npnet.SGD(1.0), loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 3)).astype(np.float32) - 3,
              batch_size=4, verbose=0, seed=0)
    bn = model.get_layer("bn")
    assert 0.5 - 1e-6 <= np.linalg.norm(bn.params["gamma"]) <= 0.7 + 1e-6  # axis 0 of a vector: its norm
    assert bn.params["beta"].min() >= 0.0


class Halve(C.Constraint):
    def __call__(self, w):
        return w * np.asarray(0.5, w.dtype)


class Flat(C.Constraint):
    def __call__(self, w):
        return w.reshape(-1)


def test_a_user_constraint_applies_and_saves(tmp_path):
    model = _model(kernel_constraint=Halve())
    model.compile(optimizer=npnet.SGD(0.0), loss="mse")
    before = model.get_layer("d").params["kernel"].copy()
    x, y = np.ones((2, 4), np.float32), np.ones((2, 2), np.float32)
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.get_layer("d").params["kernel"], before * np.float32(0.5))
    model.save(tmp_path / "m.npnet")
    loaded = npnet.load_model(tmp_path / "m.npnet")
    assert isinstance(loaded.get_layer("d").kernel_constraint, Halve)
    loaded.train_on_batch(x, y)
    np.testing.assert_array_equal(loaded.get_layer("d").params["kernel"], before * np.float32(0.25))


def test_a_constraint_returning_another_shape_is_refused():
    model = _model(kernel_constraint=Flat())
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"Dense 'd' weight 'kernel': Flat returned shape \(12,\) for a weight of "
                                         r"shape \(4, 3\)"):
        model.train_on_batch(np.ones((2, 4), np.float32), np.ones((2, 2), np.float32))
