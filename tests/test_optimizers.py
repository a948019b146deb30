import json
import math

import numpy as np
import pytest

import npnet
from npnet import schedules


def _run(opt, grads, p0=1.0):
    p = np.array([p0])
    out = []
    for g in grads:
        opt.step([p], [np.array([g])])
        out.append(float(p[0]))
    return out


def test_adam_two_steps_golden():
    # lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-7, p = 1.
    # Step 1, g = 0.5: m = 0.05, v = 0.00025, alpha = 0.1 * sqrt(1 - 0.999) / (1 - 0.9) = sqrt(0.001)
    #   p = 1 - sqrt(0.001) * 0.05 / (sqrt(0.00025) + 1e-7) = 0.9000006324...
    # Step 2, g = -0.2: m = 0.045 - 0.02 = 0.025, v = 0.00024975 + 0.00004 = 0.00028975,
    #   alpha = 0.1 * sqrt(1 - 0.999**2) / (1 - 0.81)
    a1 = math.sqrt(0.001)
    p1 = 1 - a1 * 0.05 / (math.sqrt(0.00025) + 1e-7)
    a2 = 0.1 * math.sqrt(1 - 0.999**2) / 0.19
    p2 = p1 - a2 * 0.025 / (math.sqrt(0.00028975) + 1e-7)
    assert p1 == pytest.approx(0.9000006324, abs=1e-10)
    assert p2 == pytest.approx(0.8654395, abs=1e-6)
    got = _run(npnet.Adam(learning_rate=0.1), [0.5, -0.2])
    assert got == pytest.approx([p1, p2], abs=1e-12)


def test_sgd_momentum_golden():
    # v = 0.9 v - 0.1 g; p += v.  g = 1: v = -0.1, p = 0.9.  g = 0.5: v = -0.14, p = 0.76
    assert _run(npnet.SGD(0.1, momentum=0.9), [1.0, 0.5]) == pytest.approx([0.9, 0.76])


def test_sgd_nesterov_golden():
    # p += 0.9 v - 0.1 g.  g = 1: v = -0.1, p = 1 - 0.09 - 0.1 = 0.81.
    # g = 0.5: v = -0.14, p = 0.81 - 0.126 - 0.05 = 0.634
    assert _run(npnet.SGD(0.1, momentum=0.9, nesterov=True), [1.0, 0.5]) == pytest.approx([0.81, 0.634])


def test_plain_sgd_golden():
    assert _run(npnet.SGD(0.5), [1.0, -2.0]) == pytest.approx([0.5, 1.5])


def test_adamw_decays_before_the_adam_step():
    # First Adam step moves p by lr * m / (sqrt(v) + eps) * correction ~= lr * sign(g);
    # AdamW first multiplies p by (1 - lr * wd) = 1 - 0.1 * 0.5.
    adam = _run(npnet.Adam(0.1), [0.5])[0]
    adamw = _run(npnet.AdamW(0.1, weight_decay=0.5), [0.5])[0]
    assert adamw == pytest.approx(adam - 0.05, abs=1e-12)


def test_rmsprop_golden():
    # s = 0.1 * g^2 = 0.1; p = 1 - 0.01 * 1 / sqrt(0.1 + 1e-7)
    assert _run(npnet.RMSprop(0.01), [1.0]) == pytest.approx([1 - 0.01 / math.sqrt(0.1 + 1e-7)], abs=1e-15)


def test_rmsprop_epsilon_sits_inside_the_square_root_for_small_gradients():
    # g = 1e-4: s = 0.1 * 1e-8 = 1e-9, step = 0.01 * 1e-4 / sqrt(1e-9 + 1e-7) = 3.1466e-3.
    # Dividing by sqrt(s) + eps instead would give 0.01 * 1e-4 / (3.1623e-5 + 1e-7) = 3.1524e-2, ten times more.
    p = np.ones(3, np.float32)
    npnet.RMSprop(0.01).step([p], [np.full(3, 1e-4, np.float32)])
    np.testing.assert_allclose(p, 1 - 3.1466e-3, rtol=0, atol=1e-6)
    # Over several steps of small, changing gradients the step stays Keras' (see the reference tests).
    p = np.zeros(4, np.float32)
    opt = npnet.RMSprop(0.01, rho=0.9)
    s = np.zeros(4, np.float32)
    ref = np.zeros(4, np.float32)
    for t in range(6):
        g = (np.array([1, -2, 3, -4], np.float32) * np.float32(1e-4 * (t + 1)))
        opt.step([p], [g])
        s = 0.9 * s + (1 - 0.9) * np.square(g)
        ref = ref - 0.01 * g / np.sqrt(s + 1e-7)
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=0)


def test_clipping_options():
    g = np.array([3.0, 4.0])  # norm 5
    p = np.zeros(2)
    npnet.SGD(1.0, clipnorm=1.0).step([p], [g.copy()])
    np.testing.assert_allclose(p, [-0.6, -0.8])
    p = np.zeros(2)
    npnet.SGD(1.0, clipvalue=3.5).step([p], [g.copy()])
    np.testing.assert_allclose(p, [-3.0, -3.5])
    p, q = np.zeros(2), np.zeros(1)
    npnet.SGD(1.0, global_clipnorm=6.5).step([p, q], [g.copy(), np.array([12.0])])  # joint norm 13
    np.testing.assert_allclose(np.concatenate([p, q]), [-1.5, -2.0, -6.0])
    with pytest.raises(ValueError, match="set at most one of"):
        npnet.SGD(clipnorm=1.0, clipvalue=1.0)


def test_schedule_as_learning_rate_is_evaluated_per_step():
    opt = npnet.SGD(schedules.PiecewiseConstantDecay([0], [1.0, 0.5]))
    assert _run(opt, [1.0, 1.0, 1.0]) == pytest.approx([0.0, -0.5, -1.0])
    with pytest.raises(TypeError, match="learning rate is a schedule"):
        opt.learning_rate = 0.1


def test_update_is_in_place_and_keeps_float32():
    p = np.ones(3, np.float32)
    ref = p
    opt = npnet.Adam()
    opt.step([p], [np.full(3, 0.1, np.float32)])
    assert p is ref and p.dtype == np.float32
    assert all(s[0].dtype == np.float32 for s in opt.slots.values())


def test_state_is_aligned_with_parameters_and_checked():
    opt = npnet.Adam()
    opt.step([np.zeros(2), np.zeros((2, 3))], [np.ones(2), np.ones((2, 3))])
    assert [m.shape for m in opt.slots["m"]] == [(2,), (2, 3)]
    assert opt.iterations == 1
    with pytest.raises(ValueError, match="the parameter list changed"):
        opt.step([np.zeros(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="received 1 parameters but 2 gradients"):
        opt.step([np.zeros(2)], [np.ones(2), np.ones(2)])


@pytest.mark.parametrize("factory, match", [
    (lambda: npnet.Adam(learning_rate=-1), r"Adam: `learning_rate` must be in \[0, inf\), received -1.0"),
    (lambda: npnet.Adam(beta_1=1.0), r"Adam: `beta_1` must be in \[0, 1\)"),
    (lambda: npnet.SGD(momentum=1.5), r"SGD: `momentum` must be in \[0, 1\]"),
    (lambda: npnet.Adam(learning_rate="fast"), r"Adam: `learning_rate` must be a number"),
    (lambda: npnet.optimizers.get("adagradd"), r"unknown optimizer 'adagradd'; known names: \['adadelta', 'adagrad', 'adam'"),
])
def test_bad_optimizer_arguments(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_optimizer_config_round_trip():
    for opt in (npnet.SGD(0.1, momentum=0.9, nesterov=True), npnet.Adam(0.01, beta_2=0.99),
                npnet.AdamW(schedules.CosineDecay(0.1, 10)), npnet.RMSprop(momentum=0.5, clipnorm=1.0)):
        clone = type(opt).from_config(opt.get_config())
        assert clone.get_config() == opt.get_config()


# ---------------------------------------------------------------------------------------------
# Keras' update rules written out step by step, one class per optimizer. Each rule takes a
# parameter, its gradient, its state and the learning rate of this step, updates them in
# place, and follows the order of operations of Keras 3's update_step. Weight decay, when
# set, runs first: p = p - p * wd * lr.
# The optimizers run in float32; the references run the same formulas in float64, the exact
# values float32 approximates (Keras computes the bias corrections in float32, which by itself
# moves an early Adam step by about 1e-5 of its size).

F32 = np.float32
R = np.float64  # the references' precision


class _Reference:
    def __init__(self, params, weight_decay=None, **hyper):
        self.wd = weight_decay
        self.h = hyper
        self.t = 0  # Keras' iterations
        self.state = [dict() for _ in params]

    def step(self, params, grads, lr):
        lr = R(lr)
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.wd is not None:
                p -= p * R(self.wd) * lr
            self.rule(p, g, self.state[i], lr)
        self.t += 1

    def slot(self, state, name, like, fill=0.0):
        if name not in state:
            state[name] = np.full_like(like, fill)
        return state[name]


class KerasAdam(_Reference):
    def rule(self, p, g, st, lr):
        b1, b2, eps = self.h.get("beta_1", 0.9), self.h.get("beta_2", 0.999), self.h.get("epsilon", 1e-7)
        step = R(self.t + 1)
        alpha = lr * np.sqrt(1 - R(b2) ** step) / (1 - R(b1) ** step)
        m, v = self.slot(st, "m", p), self.slot(st, "v", p)
        m += (g - m) * R(1 - b1)
        v += (np.square(g) - v) * R(1 - b2)
        if self.h.get("amsgrad"):
            v_hat = self.slot(st, "v_hat", p)
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        p -= (m * alpha) / (np.sqrt(v) + R(eps))


class KerasRMSprop(_Reference):
    def rule(self, p, g, st, lr):
        rho, mu, eps = self.h.get("rho", 0.9), self.h.get("momentum", 0.0), self.h.get("epsilon", 1e-7)
        velocity = self.slot(st, "velocity", p)
        velocity[...] = rho * velocity + R(1 - rho) * np.square(g)
        if self.h.get("centered"):
            avg = self.slot(st, "average_gradient", p)
            avg[...] = rho * avg + R(1 - rho) * g
            denominator = velocity - np.square(avg) + R(eps)
        else:
            denominator = velocity + R(eps)
        increment = (lr * g) / np.sqrt(denominator)
        if mu > 0:
            momentum = self.slot(st, "momentum", p)
            momentum[...] = mu * momentum + increment
            p -= momentum
        else:
            p -= increment


class KerasAdagrad(_Reference):
    def rule(self, p, g, st, lr):
        acc = self.slot(st, "accumulator", p, self.h.get("initial_accumulator_value", 0.1))
        acc += np.square(g)
        p -= (lr * g) / np.sqrt(acc + R(self.h.get("epsilon", 1e-7)))


class KerasAdadelta(_Reference):
    def rule(self, p, g, st, lr):
        rho, eps = self.h.get("rho", 0.95), R(self.h.get("epsilon", 1e-7))
        acc_g, acc_d = self.slot(st, "accumulated_grad", p), self.slot(st, "accumulated_delta_var", p)
        acc_g[...] = rho * acc_g + R(1 - rho) * np.square(g)
        delta = -((np.sqrt(acc_d + eps) * g) / np.sqrt(acc_g + eps))
        acc_d[...] = rho * acc_d + R(1 - rho) * np.square(delta)
        p += lr * delta


class KerasAdamax(_Reference):
    def rule(self, p, g, st, lr):
        b1, b2, eps = self.h.get("beta_1", 0.9), self.h.get("beta_2", 0.999), self.h.get("epsilon", 1e-7)
        beta_1_power = R(b1) ** R(self.t + 1)
        m, u = self.slot(st, "m", p), self.slot(st, "u", p)
        m += (g - m) * R(1 - b1)
        u[...] = np.maximum(R(b2) * u, np.abs(g))
        p -= (lr * m) / ((1 - beta_1_power) * (u + R(eps)))


class KerasNadam(_Reference):
    u_product = R(1.0)

    def step(self, params, grads, lr):
        # Keras updates the momentum product once per step, before the per-variable updates.
        b1 = R(self.h.get("beta_1", 0.9))
        self.u_product = self.u_product * b1 * (R(1.0) - R(0.5) * R(0.96) ** R(self.t + 1))
        super().step(params, grads, lr)

    def rule(self, p, g, st, lr):
        b1, b2, eps = R(self.h.get("beta_1", 0.9)), R(self.h.get("beta_2", 0.999)), self.h.get("epsilon", 1e-7)
        local_step, next_step = R(self.t + 1), R(self.t + 2)
        u_t = b1 * (R(1.0) - R(0.5) * R(0.96) ** local_step)
        u_t_1 = b1 * (R(1.0) - R(0.5) * R(0.96) ** next_step)
        u_product_t = self.u_product
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = b2**local_step
        m, v = self.slot(st, "m", p), self.slot(st, "v", p)
        m += (g - m) * (1 - b1)
        v += (np.square(g) - v) * (1 - b2)
        m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
        v_hat = v / (1 - beta_2_power)
        p -= (m_hat * lr) / (np.sqrt(v_hat) + R(eps))


class KerasLion(_Reference):
    def rule(self, p, g, st, lr):
        b1, b2 = R(self.h.get("beta_1", 0.9)), R(self.h.get("beta_2", 0.99))
        m = self.slot(st, "m", p)
        p -= lr * np.sign(m * b1 + g * (R(1.0) - b1))
        m[...] = m * b2 + g * (R(1.0) - b2)


REFERENCE_CASES = {
    # id: (npnet class, Keras reference, constructor arguments besides learning_rate, learning rate)
    "adam": (npnet.Adam, KerasAdam, {}, 0.01),
    "adam-amsgrad": (npnet.Adam, KerasAdam, {"amsgrad": True, "beta_2": 0.9}, 0.01),
    "adamw-amsgrad": (npnet.AdamW, KerasAdam, {"amsgrad": True, "weight_decay": 0.1}, 0.01),
    "rmsprop": (npnet.RMSprop, KerasRMSprop, {}, 0.01),
    "rmsprop-momentum": (npnet.RMSprop, KerasRMSprop, {"momentum": 0.5, "rho": 0.8}, 0.01),
    "rmsprop-centered": (npnet.RMSprop, KerasRMSprop, {"centered": True}, 0.01),
    "rmsprop-centered-momentum": (npnet.RMSprop, KerasRMSprop, {"centered": True, "momentum": 0.9}, 0.01),
    "adagrad": (npnet.Adagrad, KerasAdagrad, {}, 0.1),
    "adagrad-zero-start": (npnet.Adagrad, KerasAdagrad, {"initial_accumulator_value": 0.0, "epsilon": 1e-6}, 0.1),
    "adadelta": (npnet.Adadelta, KerasAdadelta, {}, 1.0),
    "adadelta-rho": (npnet.Adadelta, KerasAdadelta, {"rho": 0.5, "weight_decay": 0.01}, 1.0),
    "adamax": (npnet.Adamax, KerasAdamax, {"beta_2": 0.9}, 0.01),
    "nadam": (npnet.Nadam, KerasNadam, {}, 0.01),
    "nadam-betas": (npnet.Nadam, KerasNadam, {"beta_1": 0.5, "beta_2": 0.9}, 0.01),
    "lion": (npnet.Lion, KerasLion, {}, 0.01),
    "lion-decay": (npnet.Lion, KerasLion, {"beta_1": 0.5, "weight_decay": 0.5}, 0.01),
}

# Gradient scales change from step to step (and over four orders of magnitude), so that the
# placement of epsilon, the max in AMSGrad / Adamax and the bias corrections all matter.
SCALES = [1.0, 0.01, 3.0, 1e-4, 0.3, 1e-3, 2.0]
SHAPES = [(3, 4), (5,)]


def _assert_same_path(ours, theirs, start, where, reach=None):
    """The float32 parameters moved as the float64 reference did: to 1e-5 of the distance
    travelled, plus a few float32 roundings of the parameter itself (about one per step, at
    the largest magnitude ``reach`` the parameter had on its way)."""
    moved_ours = ours.astype(np.float64) - start
    moved_theirs = theirs - start
    reach = np.maximum(np.abs(start), np.abs(theirs)) if reach is None else reach
    ulp = np.spacing(reach.astype(F32)).astype(np.float64)
    bad = np.abs(moved_ours - moved_theirs) > 1e-5 * np.abs(moved_theirs) + 8 * ulp
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise AssertionError(f"{where}: {bad.sum()} of {bad.size} parameters moved differently, first at flat index {i}: "
                             f"{moved_ours.ravel()[i]!r} instead of {moved_theirs.ravel()[i]!r}")


def _trajectory(cls, ref_cls, kwargs, lr0, schedule, shapes=SHAPES, steps=7):
    rng = np.random.default_rng(42)
    params = [rng.normal(scale=0.05, size=s).astype(F32) for s in shapes]
    grads = [[(rng.normal(size=s) * SCALES[t % len(SCALES)]).astype(F32) for s in shapes] for t in range(steps)]
    lr = npnet.optimizers.schedules.ExponentialDecay(lr0, decay_steps=2, decay_rate=0.5) if schedule else lr0
    opt = cls(learning_rate=lr, **kwargs)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "weight_decay"}
    wd = kwargs.get("weight_decay", 0.004 if cls is npnet.AdamW else None)
    ref = ref_cls(params, weight_decay=wd, **ref_kwargs)
    ours, theirs = [p.copy() for p in params], [p.astype(R) for p in params]
    history = []
    for t in range(steps):
        opt.step(ours, [g.copy() for g in grads[t]])
        ref.step(theirs, [g.astype(R) for g in grads[t]], lr(t) if schedule else lr0)
        history.append(([p.copy() for p in ours], [p.copy() for p in theirs]))
    return params, history, opt


@pytest.mark.parametrize("schedule", [False, True], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize("case", list(REFERENCE_CASES))
def test_optimizer_follows_the_keras_formula_step_by_step(case, schedule):
    cls, ref_cls, kwargs, lr0 = REFERENCE_CASES[case]
    start, history, opt = _trajectory(cls, ref_cls, kwargs, lr0, schedule)
    reach = [np.abs(p0) for p0 in start]
    for t, (ours, theirs) in enumerate(history):
        for p0, a, b, r in zip(start, ours, theirs, reach):
            assert a.dtype == np.float32
            np.maximum(r, np.abs(b), out=r)
            _assert_same_path(a, b, p0, f"{case}, step {t + 1}", r)
    assert opt.iterations == len(SCALES)
    assert all(a.dtype == np.float32 for arrays in opt.slots.values() for a in arrays)


@pytest.mark.parametrize("case", ["adam-amsgrad", "rmsprop-centered-momentum", "adadelta", "nadam", "lion", "adamax"])
def test_large_arrays_updated_in_chunks_follow_the_formula(case):
    # 600,000 elements are split into chunks on the thread pool; the scratch arrays must be split alike.
    cls, ref_cls, kwargs, lr0 = REFERENCE_CASES[case]
    start, history, _ = _trajectory(cls, ref_cls, kwargs, lr0, False, shapes=[(600_000,)], steps=3)
    reach = np.abs(start[0])
    for t, (ours, theirs) in enumerate(history):
        np.maximum(reach, np.abs(theirs[0]), out=reach)
        _assert_same_path(ours[0], theirs[0], start[0], f"{case}, step {t + 1}", reach)


def test_the_reference_tests_can_fail():
    # The old RMSprop rule (epsilon outside the square root) is caught by the reference comparison.
    class OldRMSprop(KerasRMSprop):
        def rule(self, p, g, st, lr):
            v = self.slot(st, "velocity", p)
            v[...] = 0.9 * v + 0.1 * np.square(g)
            p -= lr * g / (np.sqrt(v) + 1e-7)

    start, history, _ = _trajectory(npnet.RMSprop, OldRMSprop, {}, 0.01, False)
    ours, theirs = history[-1]
    with pytest.raises(AssertionError, match="moved differently"):
        _assert_same_path(ours[0], theirs[0], start[0], "old RMSprop")


def test_amsgrad_keeps_the_largest_second_moment():
    # With beta_2 = 0.5, g = 1 then g = 0: v = 0.5 then 0.25, v_hat stays 0.5.
    opt = npnet.Adam(0.1, beta_2=0.5, amsgrad=True)
    p = np.zeros(1, np.float32)
    opt.step([p], [np.ones(1, np.float32)])
    opt.step([p], [np.zeros(1, np.float32)])
    assert opt.slots["v"][0][0] == pytest.approx(0.25) and opt.slots["v_hat"][0][0] == pytest.approx(0.5)
    assert set(opt.slots) == {"m", "v", "v_hat"} and set(npnet.Adam().get_config()) >= {"amsgrad"}


def test_nadam_first_step_golden():
    # beta_1 = 0.9: u_1 = 0.9 * (1 - 0.5 * 0.96) = 0.468, u_2 = 0.9 * (1 - 0.5 * 0.9216) = 0.48528,
    # product after step 1 = 0.468. g = 0.5: m = 0.05, v = 0.00025,
    # m_hat = 0.48528 * 0.05 / (1 - 0.468 * 0.48528) + 0.532 * 0.5 / (1 - 0.468) = 0.031394 + 0.5,
    # v_hat = 0.00025 / 0.001 = 0.25, p = 1 - 0.1 * 0.531394 / (0.5 + 1e-7) = 0.893721
    m_hat = 0.48528 * 0.05 / (1 - 0.468 * 0.48528) + 0.532 * 0.5 / 0.532
    expected = 1 - 0.1 * m_hat / (0.5 + 1e-7)
    assert expected == pytest.approx(0.893721, abs=1e-6)
    assert _run(npnet.Nadam(0.1), [0.5]) == pytest.approx([expected], abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Names, defaults, configs, state.

KERAS_DEFAULTS = {
    "adagrad": (npnet.Adagrad, {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    "adadelta": (npnet.Adadelta, {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7}),
    "adamax": (npnet.Adamax, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    "nadam": (npnet.Nadam, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    "lion": (npnet.Lion, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.99}),
    "rmsprop": (npnet.RMSprop, {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False}),
    "adam": (npnet.Adam, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}),
    "adamw": (npnet.AdamW, {"learning_rate": 0.001, "weight_decay": 0.004, "amsgrad": False}),
}


@pytest.mark.parametrize("name", list(KERAS_DEFAULTS))
def test_optimizer_by_name_has_keras_defaults(name):
    cls, defaults = KERAS_DEFAULTS[name]
    for spelling in (name, name.upper(), cls.__name__):
        opt = npnet.optimizers.get(spelling)
        assert type(opt) is cls
        config = opt.get_config()
        assert {k: config[k] for k in defaults} == defaults
    assert getattr(npnet, cls.__name__) is cls and cls.__name__ in npnet.__all__


@pytest.mark.parametrize("opt", [
    npnet.Adagrad(0.05, initial_accumulator_value=0.5, epsilon=1e-6, clipnorm=1.0),
    npnet.Adadelta(1.0, rho=0.9, weight_decay=0.01),
    npnet.Adamax(schedules.ExponentialDecay(0.1, 10, 0.9), beta_1=0.8, global_clipnorm=2.0),
    npnet.Nadam(schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=5), beta_2=0.99, clipvalue=0.5),
    npnet.Lion(3e-4, beta_1=0.95, beta_2=0.98, weight_decay=0.1),
    npnet.RMSprop(0.01, rho=0.8, momentum=0.9, centered=True),
    npnet.Adam(amsgrad=True),
    npnet.AdamW(weight_decay=0.1, amsgrad=True),
], ids=lambda o: type(o).__name__)
def test_new_options_config_round_trip(opt):
    config = json.loads(json.dumps(npnet.optimizers.serialize(opt)))
    clone = npnet.optimizers.get(config)
    assert type(clone) is type(opt) and clone.get_config() == opt.get_config()
    assert type(opt).from_config(opt.get_config()).get_config() == opt.get_config()


@pytest.mark.parametrize("factory, match", [
    (lambda: npnet.RMSprop(rho=-0.1), r"RMSprop: `rho` must be in \[0, 1\), received -0.1"),
    (lambda: npnet.RMSprop(centered="yes"), r"RMSprop: `centered` must be True or False, received 'yes'"),
    (lambda: npnet.Adam(amsgrad=1), r"Adam: `amsgrad` must be True or False, received 1"),
    (lambda: npnet.AdamW(weight_decay=None), r"AdamW: `weight_decay` must be a number, received None"),
    (lambda: npnet.Adadelta(rho=-1), r"Adadelta: `rho` must be in \[0, 1\), received -1.0"),
    (lambda: npnet.Adadelta(epsilon=0), r"Adadelta: `epsilon` must be in \(0, inf\), received 0.0"),
    (lambda: npnet.Adagrad(initial_accumulator_value=-0.1), r"Adagrad: `initial_accumulator_value` must be in \[0, inf\)"),
    (lambda: npnet.Adagrad(learning_rate=-1.0), r"Adagrad: `learning_rate` must be in \[0, inf\), received -1.0"),
    (lambda: npnet.Adamax(beta_1=1.0), r"Adamax: `beta_1` must be in \[0, 1\), received 1.0"),
    (lambda: npnet.Adamax(beta_2=-0.5), r"Adamax: `beta_2` must be in \[0, 1\), received -0.5"),
    (lambda: npnet.Nadam(beta_1=1.5), r"Nadam: `beta_1` must be in \[0, 1\), received 1.5"),
    (lambda: npnet.Nadam(beta_2="high"), r"Nadam: `beta_2` must be a number, received 'high'"),
    (lambda: npnet.Lion(beta_1=0.0), r"Lion: `beta_1` must be in \(0, 1\], received 0.0"),
    (lambda: npnet.Lion(beta_2=1.1), r"Lion: `beta_2` must be in \[0, 1\], received 1.1"),
    (lambda: npnet.Lion(clipnorm=1.0, clipvalue=1.0), r"Lion: set at most one of"),
])
def test_bad_arguments_of_the_new_options(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_restoring_a_state_without_a_needed_slot_names_the_slot():
    opt = npnet.Adam()
    p = [np.zeros(2, np.float32)]
    opt.step(p, [np.ones(2, np.float32)])
    amsgrad = npnet.Adam(amsgrad=True)
    with pytest.raises(ValueError, match=r"Adam: the optimizer state has no slot 'v_hat' \(expected slots \['m', 'v', 'v_hat'\], "
                                         r"received \['m', 'v'\]\)"):
        amsgrad.set_state(opt.get_state(), p)


def _resume_model(optimizer):
    m = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, activation="relu"), npnet.Dense(3, activation="softmax")],
                         seed=3)
    m.compile(optimizer, "sparse_categorical_crossentropy")
    return m


RESUME_CASES = {
    "adagrad": lambda: npnet.Adagrad(0.1),
    "adadelta": lambda: npnet.Adadelta(1.0, weight_decay=0.01),
    "adamax": lambda: npnet.Adamax(0.01),
    "nadam": lambda: npnet.Nadam(schedules.ExponentialDecay(0.01, 5, 0.9)),
    "lion": lambda: npnet.Lion(0.001, weight_decay=0.1),
    "rmsprop-centered-momentum": lambda: npnet.RMSprop(0.01, momentum=0.9, centered=True),
    "adam-amsgrad": lambda: npnet.Adam(0.01, amsgrad=True, clipnorm=1.0),
    "adamw-amsgrad": lambda: npnet.AdamW(0.01, amsgrad=True, global_clipnorm=1.0),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_save_after_k_steps_load_and_continue_is_bit_identical(case, tmp_path, toy_data):
    x, y = toy_data
    straight = _resume_model(RESUME_CASES[case]())
    straight.fit(x, y, epochs=4, batch_size=64, seed=5, verbose=0)

    first = _resume_model(RESUME_CASES[case]())
    first.fit(x, y, epochs=2, batch_size=64, seed=5, verbose=0)
    first.save(tmp_path / "ckpt.npnet")
    resumed = npnet.load_model(tmp_path / "ckpt.npnet")
    assert type(resumed.optimizer) is type(first.optimizer)
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    assert resumed.optimizer.iterations == first.optimizer.iterations == 10
    assert set(resumed.optimizer.slots) == set(first.optimizer.slots)
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=64, seed=5, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))
    for name, arrays in straight.optimizer.slots.items():
        assert all(np.array_equal(a, b) for a, b in zip(arrays, resumed.optimizer.slots[name])), name
