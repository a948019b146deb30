"""Weight and activity regularizers: Keras' formulas, their gradients, and how a model
adds the penalties to its loss (fit, evaluate, gradient checking, saving)."""

import numpy as np
import pytest

import npnet
from npnet import regularizers as R
from npnet.testing import check_gradients

X = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.5]], dtype=np.float32)


# ---------------------------------------------------------------- values and gradients
def test_golden_values_by_keras_formula():
    # |x|: 1 + 2 + 0.5 + 0 + 3 + 1.5 = 8 ; x**2: 1 + 4 + 0.25 + 0 + 9 + 2.25 = 16.5 (no 1/2 on L2)
    assert R.L1(0.1)(X) == pytest.approx(0.8, rel=1e-6)
    assert R.L2(0.1)(X) == pytest.approx(1.65, rel=1e-6)
    assert R.L1L2(l1=0.1, l2=0.2)(X) == pytest.approx(0.8 + 3.3, rel=1e-6)
    assert R.L2(2.0)(np.ones((5, 5), np.float32)) == 50.0  # Keras' docstring example
    assert R.L1L2()(X) == 0.0
    assert R.Regularizer()(X) == 0.0


def test_golden_gradients_by_hand():
    np.testing.assert_allclose(R.L1(0.1).gradient(X), 0.1 * np.array([[1, -1, 1], [0, 1, -1]]), rtol=1e-6)
    np.testing.assert_allclose(R.L2(0.1).gradient(X), 0.2 * X, rtol=1e-6)
    np.testing.assert_allclose(R.L1L2(0.1, 0.2).gradient(X), 0.1 * np.sign(X) + 0.4 * X, rtol=1e-6)
    for reg in (R.L1(0.1), R.L2(0.1), R.L1L2(0.1, 0.2), R.OrthogonalRegularizer(0.3)):
        assert reg.gradient(X).dtype == np.float32


def test_orthogonal_golden_value():
    # rows (3, 4) and (4, -3) are orthogonal, (1, 0) is not: normalized rows n0=(.6, .8),
    # n1=(.8, -.6), n2=(1, 0); off-diagonal products: n0.n1=0, n0.n2=.6, n1.n2=.8, each twice.
    x = np.array([[3.0, 4.0], [4.0, -3.0], [1.0, 0.0]])
    pairs = 3 * 2 / 2
    expected = 0.5 * 0.5 * (2 * (0.0 + 0.6 + 0.8)) / pairs
    assert R.OrthogonalRegularizer(0.5)(x) == pytest.approx(expected, rel=1e-12)
    # columns: (3, 4, 1)/sqrt(26) and (4, -3, 0)/5: product (12 - 12 + 0) = 0
    assert R.OrthogonalRegularizer(0.5, mode="columns")(x) == pytest.approx(0.0, abs=1e-15)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = f(x)
        x[i] = old - eps
        minus = f(x)
        x[i] = old
        g[i] = (plus - minus) / (2 * eps)
    return g


@pytest.mark.parametrize("reg", [R.L1(0.3), R.L2(0.7), R.L1L2(0.2, 0.4), R.OrthogonalRegularizer(0.5),
                                 R.OrthogonalRegularizer(2.0, mode="columns")], ids=repr)
def test_gradient_matches_central_differences(reg):
    x = np.random.default_rng(0).normal(size=(4, 3))
    x[np.abs(x) < 0.05] = 0.3  # off the L1 kink
    np.testing.assert_allclose(reg.gradient(x), _numeric_grad(reg, x), rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- names, configs, bad input
@pytest.mark.parametrize("name, cls, config", [
    ("l1", R.L1, {"l1": 0.01}), ("l2", R.L2, {"l2": 0.01}), ("l1_l2", R.L1L2, {"l1": 0.01, "l2": 0.01}),
    ("l1l2", R.L1L2, {"l1": 0.0, "l2": 0.0}), ("L2", R.L2, {"l2": 0.01}),
    ("orthogonal_regularizer", R.OrthogonalRegularizer, {"factor": 0.01, "mode": "rows"}),
])
def test_get_by_name(name, cls, config):
    reg = R.get(name)
    assert type(reg) is cls and reg.get_config() == config


def test_get_serialize_round_trip_and_defaults():
    assert R.get(None) is None and R.serialize(None) is None
    reg = R.L1L2(l1=0.5, l2=0.25)
    assert R.get(reg) is reg
    data = R.serialize(reg)
    assert data == {"class_name": "L1L2", "config": {"l1": 0.5, "l2": 0.25}}
    assert R.get(data) == reg and R.get(data) is not reg
    assert R.L2.from_config(R.L2(3.0).get_config()) == R.L2(3.0)
    assert type(R.get(R.L2)) is R.L2
    assert R.L1(None).l1 == 0.01 and R.L2(None).l2 == 0.01 and R.L1L2(None, None).get_config() == {"l1": 0.0, "l2": 0.0}
    assert repr(R.L2(0.5)) == "L2(l2=0.5)"


@pytest.mark.parametrize("make, error, match", [
    (lambda: R.L2(-0.1), ValueError, r"L2: `l2` must be in \[0, inf\), received -0.1"),
    (lambda: R.L1(float("nan")), ValueError, r"L1: `l1` must be in \[0, inf\)"),
    (lambda: R.L1L2(l1="a"), TypeError, r"L1L2: `l1` must be a number, received 'a'"),
    (lambda: R.OrthogonalRegularizer(mode="diag"), ValueError, r"`mode` must be one of \['rows', 'columns'\]"),
    (lambda: R.get("l3"), ValueError, r"unknown regularizer 'l3'; known names: \["),
    (lambda: R.get(0.01), TypeError, r"a regularizer must be a name, a config dict or an "
                                     r"npnet.regularizers.Regularizer, received 0.01 of type float"),
    (lambda: R.get(np.sum), TypeError, r"received the function 'sum'; subclass Regularizer and write its gradient"),
    (lambda: R.get({"class_name": "Nope"}), ValueError, r"unknown regularizer class 'Nope'"),
    # a layer's error names the argument
    (lambda: npnet.layers.Dense(2, bias_regularizer="l3"), ValueError,
     r"^`bias_regularizer` of Dense: unknown regularizer 'l3'; known names: \["),
    (lambda: npnet.layers.Conv2D(2, 3, activity_regularizer=[1]), TypeError,
     r"^`activity_regularizer` of Conv2D: a regularizer must be"),
    (lambda: npnet.layers.BatchNormalization(gamma_regularizer="nope"), ValueError,
     r"^`gamma_regularizer` of BatchNormalization: unknown regularizer 'nope'"),
    (lambda: npnet.layers.Conv2D(2, 3, bias_constraint="max_nrom"), ValueError,
     r"^`bias_constraint` of Conv2D: unknown constraint 'max_nrom'; known names: \["),
    (lambda: npnet.layers.BatchNormalization(beta_constraint=3), TypeError,
     r"^`beta_constraint` of BatchNormalization: a constraint must be"),
    (lambda: npnet.layers.Dense(2, bias_initializer="zeroes"), ValueError,
     r"^`bias_initializer` of Dense: unknown initializer 'zeroes'; known names: \["),
    (lambda: npnet.layers.Conv2D(2, 3, kernel_initializer=3), ValueError,
     r"^`kernel_initializer` of Conv2D: unknown initializer 3"),
])
def test_bad_arguments_are_rejected_clearly(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_orthogonal_needs_a_matrix_of_two_rows():
    with pytest.raises(ValueError, match=r"OrthogonalRegularizer: expected a matrix \(rank 2\), received shape \(3,\)"):
        R.OrthogonalRegularizer()(np.ones(3))
    with pytest.raises(ValueError, match=r"needs at least 2 rows to compare, received shape \(1, 4\)"):
        R.OrthogonalRegularizer()(np.ones((1, 4)))


# ---------------------------------------------------------------- a user's own regularizer
class CubeSum(R.Regularizer):
    r"""R(x) = c * sum(x**3) (no use but a known gradient 3 c x**2)."""

    def __init__(self, c=0.1):
        self.c = c

    def __call__(self, x):
        return float(self.c * np.sum(x ** 3))

    def gradient(self, x):
        return (3 * self.c * x ** 2).astype(x.dtype)

    def get_config(self):
        return {"c": self.c}


class NoGradient(R.Regularizer):
    def __call__(self, x):
        return float(np.sum(x))


class WrongShape(R.Regularizer):
    def __call__(self, x):
        return float(np.sum(x))

    def gradient(self, x):
        return np.ones(3)

    def get_config(self):
        return {}


def test_a_user_regularizer_needs_a_gradient():
    with pytest.raises(TypeError, match=r"Dense: regularizer NoGradient defines __call__ but not gradient\(x\)"):
        npnet.layers.Dense(2, kernel_regularizer=NoGradient())


def test_a_gradient_of_the_wrong_shape_is_refused():
    model = npnet.Sequential([npnet.Input((3,)), npnet.layers.Dense(2, kernel_regularizer=WrongShape(), name="d")])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"Dense 'd' weight 'kernel': WrongShape.gradient returned shape \(3,\) "
                                         r"for an array of shape \(3, 2\)"):
        model.train_on_batch(X, np.zeros((2, 2), np.float32))


def test_a_user_regularizer_trains_checks_and_saves(tmp_path):
    model = npnet.Sequential([npnet.Input((3,)), npnet.layers.Dense(2, activation="tanh", kernel_regularizer=CubeSum(0.2),
                                                                    activity_regularizer=CubeSum(0.1))], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    y = np.array([[0.5, -0.5], [0.1, 0.2]], np.float32)
    check_gradients(model, X, y)
    model.save(tmp_path / "m.npnet")
    loaded = npnet.load_model(tmp_path / "m.npnet")
    layer = loaded.layers[0]
    assert layer.kernel_regularizer == CubeSum(0.2) and layer.activity_regularizer == CubeSum(0.1)
    assert loaded.evaluate(X, y, verbose=0) == pytest.approx(model.evaluate(X, y, verbose=0), rel=1e-7)


# ---------------------------------------------------------------- penalties in the loss
def _dense_model(kind, **kwargs):
    def dense():
        return npnet.layers.Dense(2, kernel_initializer="glorot_uniform", bias_initializer="ones", name="d", **kwargs)

    if kind == "sequential":
        return npnet.Sequential([npnet.Input((3,)), dense()], seed=1)
    if kind == "functional":
        inputs = npnet.Input((3,))
        return npnet.Model(inputs, dense()(inputs), seed=1)

    class Net(npnet.Model):
        def __init__(self):
            super().__init__()
            self.d = dense()

        def call(self, x):
            return self.d(x)

    net = Net()
    net.build((None, 3))
    net.d.set_weights([np.random.default_rng(1).normal(size=(3, 2)), np.ones(2)])
    return net


KINDS = ["sequential", "functional", "subclassed"]
ARGS = dict(kernel_regularizer=R.L2(0.1), bias_regularizer=R.L1(0.05), activity_regularizer=R.L2(0.01))
XB = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.0, 1.0, -1.0]], np.float32)
YB = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 2.0]], np.float32)


def _by_hand(w, b, x=XB, t=YB):
    """Data loss (MSE), the three penalties, and the gradients, written out in float64."""
    w, b, x, t = (np.asarray(a, np.float64) for a in (w, b, x, t))
    n = x.shape[0]
    y = x @ w + b
    data = np.mean((y - t) ** 2)
    kernel_pen = 0.1 * np.sum(w ** 2)
    bias_pen = 0.05 * np.sum(np.abs(b))
    activity_pen = 0.01 * np.sum(y ** 2) / n  # divided by the batch size, as Keras
    dy = 2 * (y - t) / y.size + 0.01 * 2 * y / n
    dw = x.T @ dy + 0.2 * w
    db = dy.sum(axis=0) + 0.05 * np.sign(b)
    return data, kernel_pen + bias_pen + activity_pen, (kernel_pen, bias_pen, activity_pen), dw, db


@pytest.mark.parametrize("kind", KINDS)
def test_fit_and_evaluate_report_data_loss_plus_penalties(kind):
    model = _dense_model(kind, **ARGS)
    model.compile(optimizer=npnet.SGD(learning_rate=0.1), loss="mse")
    w0, b0 = model.get_layer("d").get_weights()
    data, penalty, _, dw, db = _by_hand(w0, b0)
    assert model.evaluate(XB, YB, batch_size=4, verbose=0) == pytest.approx(data + penalty, rel=1e-5)
    history = model.fit(XB, YB, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data + penalty, rel=1e-5)
    # One SGD step with the penalty gradients added to the data gradients.
    w1, b1 = model.get_layer("d").get_weights()
    np.testing.assert_allclose(w1, w0 - 0.1 * dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b1, b0 - 0.1 * db, rtol=1e-5, atol=1e-6)


def test_evaluate_in_batches_averages_the_activity_penalty_per_sample():
    model = _dense_model("sequential", **ARGS)
    model.compile(optimizer="sgd", loss="mse")
    w, b = model.get_layer("d").get_weights()
    expected = 0.0
    for lo in (0, 3):  # batches of 3 and 1 samples, weighted by their sizes
        data, penalty, _, _, _ = _by_hand(w, b, XB[lo:lo + 3], YB[lo:lo + 3])
        expected += (data + penalty) * len(XB[lo:lo + 3]) / 4
    assert model.evaluate(XB, YB, batch_size=3, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_model_losses_lists_the_current_penalties():
    model = _dense_model("sequential", **ARGS)
    assert model.losses[-2:] == pytest.approx([0.1 * np.sum(model.get_layer("d").get_weights()[0] ** 2), 0.05 * 2])
    model(XB)
    w, b = model.get_layer("d").get_weights()
    _, _, (kernel_pen, bias_pen, activity_pen), _, _ = _by_hand(w, b)
    assert model.losses == pytest.approx([activity_pen, kernel_pen, bias_pen], rel=1e-5)
    assert model.get_layer("d").losses == pytest.approx(model.losses, rel=1e-7)


def test_keras_docstring_example():
    # Dense(5, kernel_initializer="ones", kernel_regularizer=L1(0.01), activity_regularizer=L2(0.01))
    # on ones((5, 5)) * 2: the kernel term is 0.01 * 25 = 0.25; every output is 10, so the
    # activity term is 0.01 * 25 * 100 / 5 (batch size) = 5.0.
    layer = npnet.layers.Dense(5, kernel_initializer="ones", kernel_regularizer=R.L1(0.01),
                               activity_regularizer=R.L2(0.01))
    layer(np.full((5, 5), 2.0, np.float32))
    assert sum(layer.losses) == pytest.approx(5.25, rel=1e-6)


def test_a_shared_layer_counts_its_weight_penalty_once_and_its_activity_per_call():
    shared = npnet.layers.Dense(2, kernel_regularizer=R.L2(0.1), activity_regularizer=R.L1(0.1), name="shared")
    inputs = npnet.Input((3,))
    out = npnet.layers.add([shared(inputs), shared(npnet.layers.Dense(3, name="pre")(inputs))])
    model = npnet.Model(inputs, out, seed=0)
    model.compile(optimizer=npnet.SGD(0.0), loss="mse")
    model(XB)
    kernel_pen = 0.1 * np.sum(shared.params["kernel"] ** 2)
    assert len(model.losses) == 3  # two activity penalties (two calls), one weight penalty
    assert model.losses[2] == pytest.approx(kernel_pen, rel=1e-6)
    y1 = XB @ shared.params["kernel"] + shared.params["bias"]
    pre = model.get_layer("pre")
    y2 = (XB @ pre.params["kernel"] + pre.params["bias"]) @ shared.params["kernel"] + shared.params["bias"]
    activity = 0.1 * (np.abs(y1).sum() + np.abs(y2).sum()) / 4
    data = np.mean((y1 + y2 - YB) ** 2)
    assert model.evaluate(XB, YB, verbose=0) == pytest.approx(data + kernel_pen + activity, rel=1e-5)
    history = model.fit(XB, YB, batch_size=4, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data + kernel_pen + activity, rel=1e-5)
    check_gradients(model, XB.astype(np.float64), YB)


def test_frozen_layers_add_no_penalty_as_in_keras():
    model = _dense_model("sequential", kernel_regularizer=R.L2(0.1))
    model.compile(optimizer="sgd", loss="mse")
    assert len(model.losses) == 1
    model.get_layer("d").trainable = False
    assert model.losses == []


def test_several_outputs_report_their_own_loss_and_the_total_with_penalties():
    inputs = npnet.Input((3,))
    a = npnet.layers.Dense(2, kernel_regularizer=R.L2(0.1), name="a")(inputs)
    b = npnet.layers.Dense(1, name="b")(inputs)
    model = npnet.Model(inputs, [a, b], seed=0)
    model.compile(optimizer="sgd", loss="mse", loss_weights=[2.0, 1.0])
    logs = model.evaluate(XB, [YB, YB[:, :1]], verbose=0, return_dict=True)
    penalty = 0.1 * np.sum(model.get_layer("a").params["kernel"] ** 2)
    assert logs["loss"] == pytest.approx(2 * logs["a_loss"] + logs["b_loss"] + penalty, rel=1e-6)


def test_a_regularized_layer_off_the_loss_path_still_gets_its_penalty_gradient():
    inputs = npnet.Input((3,))
    head = npnet.layers.Dense(2, name="head")(inputs)
    side = npnet.layers.Dense(2, kernel_regularizer=R.L2(0.25), name="side")(inputs)
    model = npnet.Model(inputs, {"head": head, "side": side}, seed=0)
    model.compile(optimizer=npnet.SGD(0.1), loss={"head": "mse"})
    w0 = model.get_layer("side").params["kernel"].copy()
    b0 = model.get_layer("side").params["bias"].copy()
    model.train_on_batch(XB, {"head": YB})
    np.testing.assert_allclose(model.get_layer("side").params["kernel"], w0 - 0.1 * 2 * 0.25 * w0, rtol=1e-6)
    np.testing.assert_array_equal(model.get_layer("side").params["bias"], b0)


def test_activity_penalty_on_a_softmax_output_is_not_fused_away():
    model = npnet.Sequential([npnet.Input((3,)), npnet.layers.Dense(3, activation="softmax",
                                                                    activity_regularizer=R.L2(0.5))], seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    y = np.array([0, 2, 1, 1])
    assert model._fused_outputs(XB) == [False]
    p = model.predict(XB, verbose=0).astype(np.float64)
    expected = -np.mean(np.log(p[np.arange(4), y])) + 0.5 * np.sum(p ** 2) / 4
    assert model.evaluate(XB, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    check_gradients(model, XB, y)


# ---------------------------------------------------------------- gradient checking
def _conv_model(**reg):
    return npnet.Sequential([
        npnet.Input((5, 5, 2)),
        npnet.layers.Conv2D(3, 3, activation="tanh", kernel_regularizer=reg.get("conv"),
                            activity_regularizer=reg.get("conv_act"), bias_initializer="ones"),
        npnet.layers.BatchNormalization(gamma_regularizer=reg.get("gamma"), beta_regularizer=reg.get("beta")),
        npnet.layers.Flatten(),
        npnet.layers.Dense(2, kernel_regularizer=reg.get("dense"), bias_regularizer=reg.get("bias"),
                           activity_regularizer=reg.get("dense_act")),
    ], seed=3)


def test_check_gradients_covers_the_full_loss_with_penalties():
    x = np.random.default_rng(0).normal(size=(3, 5, 5, 2))
    y = np.random.default_rng(1).normal(size=(3, 2))
    regs = dict(conv=R.L2(0.3), conv_act=R.L1L2(0.05, 0.1), gamma=R.L2(0.2), beta=R.L1(0.1), dense=R.L1L2(0.1, 0.2),
                bias=R.L2(0.5), dense_act=R.L2(0.3))
    model = _conv_model(**regs)
    model.compile(optimizer="sgd", loss="mse")
    report = check_gradients(model, x, y, training=True)
    assert report.passed and report.objective == "compiled loss"
    # Weight penalties alone, against the same weights without: the numeric gradients differ
    # by exactly the penalties' gradients, so the checked objective includes them.
    del regs["conv_act"], regs["dense_act"]
    model = _conv_model(**regs)
    model.compile(optimizer="sgd", loss="mse")
    report = check_gradients(model, x, y, training=True)
    plain = _conv_model()
    plain.compile(optimizer="sgd", loss="mse")
    plain.set_weights(model.get_weights())
    report0 = check_gradients(plain, x, y, training=True, atol=1e-5)
    entries = {e.name.split("/")[-2] + "/" + e.name.split("/")[-1]: (e, e0)
               for e, e0 in zip(report.entries[1:], report0.entries[1:])}
    layers = model.layers
    for layer, key, penalty in [(layers[0], "kernel", R.L2(0.3)), (layers[1], "gamma", R.L2(0.2)),
                                (layers[1], "beta", R.L1(0.1)), (layers[3], "kernel", R.L1L2(0.1, 0.2)),
                                (layers[3], "bias", R.L2(0.5))]:
        e, e0 = entries[f"{layer.name}/{key}"]
        # The data part is the same, so the numeric difference is the penalty's gradient.
        np.testing.assert_allclose(e.numeric - e0.numeric, penalty.gradient(layer.params[key].astype(np.float64)),
                                   atol=2e-5)


def test_check_gradients_rejects_a_wrong_penalty_gradient():
    class Off(R.L2):
        def gradient(self, x):
            return 1.5 * super().gradient(x)  # wrong on purpose

    model = npnet.Sequential([npnet.Input((3,)), npnet.layers.Dense(2, kernel_regularizer=Off(0.2))], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(AssertionError, match=r"FAIL .*kernel"):
        check_gradients(model, XB, YB)
    model = npnet.Sequential([npnet.Input((3,)), npnet.layers.Dense(2, activity_regularizer=Off(0.2))], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(AssertionError, match=r"FAIL"):
        check_gradients(model, XB, YB)


# ---------------------------------------------------------------- configs and saving
def test_layer_configs_keep_regularizers_and_constraints():
    dense = npnet.layers.Dense(3, kernel_regularizer="l2", bias_regularizer=R.L1(0.2), activity_regularizer="l1_l2",
                               kernel_constraint="max_norm", bias_constraint=npnet.constraints.NonNeg())
    config = dense.get_config()
    assert config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}
    assert config["activity_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.01}}
    assert config["kernel_constraint"] == {"class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}}
    clone = npnet.layers.Dense.from_config(config)
    assert clone.get_config() == config and clone.bias_regularizer == R.L1(0.2)
    relu = npnet.layers.ReLU()
    relu.activity_regularizer = "l2"  # any layer, as in Keras
    assert npnet.layers.ReLU.from_config(relu.get_config()).activity_regularizer == R.L2(0.01)
    bn = npnet.layers.BatchNormalization(gamma_constraint="non_neg", beta_regularizer="l1")
    assert npnet.layers.BatchNormalization.from_config(bn.get_config()).get_config() == bn.get_config()


def test_save_load_keeps_penalties_and_constraints_and_training_continues_identically(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 5, 5, 2)).astype(np.float32)
    y = rng.integers(0, 2, size=24)

    def build():
        return npnet.Sequential([
            npnet.Input((5, 5, 2)),
            npnet.layers.Conv2D(3, 3, activation="relu", kernel_regularizer=R.L2(0.05), activity_regularizer="l1",
                                kernel_constraint=npnet.constraints.MaxNorm(0.5, axis=(0, 1, 2))),
            npnet.layers.BatchNormalization(gamma_constraint="non_neg", beta_regularizer=R.L1(0.02)),
            npnet.layers.Flatten(),
            npnet.layers.Dense(2, activation="softmax", kernel_regularizer=R.OrthogonalRegularizer(0.1),
                               bias_constraint=npnet.constraints.MinMaxNorm(0.1, 0.3),
                               kernel_initializer=npnet.initializers.RandomNormal(stddev=0.3)),
        ], seed=0)

    model = build()
    model.compile(optimizer=npnet.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, seed=0, verbose=0)
    model.save(tmp_path / "m.npnet")
    loaded = npnet.load_model(tmp_path / "m.npnet")
    for a, b in zip(model.layers, loaded.layers):
        assert a.get_config() | {"name": None} == b.get_config() | {"name": None}
    # The weight penalties; the activity penalty comes with the first call of the loaded model.
    assert len(model.losses) == 4 and loaded.losses == pytest.approx(model.losses[1:], rel=1e-7)
    h1 = model.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, seed=0, verbose=0)
    h2 = loaded.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, seed=0, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert np.sqrt((loaded.layers[0].params["kernel"] ** 2).sum(axis=(0, 1, 2))).max() <= 0.5 + 1e-6
