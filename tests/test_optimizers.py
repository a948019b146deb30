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
    # s = 0.1 * g^2 = 0.1; p = 1 - 0.01 * 1 / (sqrt(0.1) + 1e-7)
    assert _run(npnet.RMSprop(0.01), [1.0]) == pytest.approx([1 - 0.01 / (math.sqrt(0.1) + 1e-7)])


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
    (lambda: npnet.optimizers.get("adagrad"), r"unknown optimizer 'adagrad'; known names: \['adam', 'adamw'"),
])
def test_bad_optimizer_arguments(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_optimizer_config_round_trip():
    for opt in (npnet.SGD(0.1, momentum=0.9, nesterov=True), npnet.Adam(0.01, beta_2=0.99),
                npnet.AdamW(schedules.CosineDecay(0.1, 10)), npnet.RMSprop(momentum=0.5, clipnorm=1.0)):
        clone = type(opt).from_config(opt.get_config())
        assert clone.get_config() == opt.get_config()
