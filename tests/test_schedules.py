import json
import math

import numpy as np
import pytest

import npnet
from npnet.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    serialize,
)


def test_exponential_decay_golden():
    s = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96)
    assert s(0) == 0.1
    assert s(50) == pytest.approx(0.1 * 0.96**0.5)  # 0.0979795...
    assert s(250) == pytest.approx(0.1 * 0.96**2.5)
    stair = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5, staircase=True)
    assert [stair(t) for t in (0, 99, 100, 250)] == [0.1, 0.1, 0.05, 0.025]


def test_piecewise_constant_golden():
    s = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(t) for t in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="one more entry than `boundaries`"):
        PiecewiseConstantDecay([10], [1.0])
    with pytest.raises(ValueError, match="must increase strictly"):
        PiecewiseConstantDecay([10, 5], [1.0, 0.5, 0.1])


def test_cosine_decay_golden():
    s = CosineDecay(1.0, decay_steps=100, alpha=0.0)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.5)
    assert s(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # 0.853553...
    assert s(100) == pytest.approx(0.0) and s(500) == pytest.approx(0.0)
    s = CosineDecay(1.0, decay_steps=100, alpha=0.2)
    assert s(100) == pytest.approx(0.2) and s(50) == pytest.approx(0.6)


def test_cosine_decay_with_warmup_golden():
    s = CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=5)
    assert [s(t) for t in range(6)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert s(10) == pytest.approx(0.5)  # halfway through the decay after warm-up
    assert s(15) == pytest.approx(0.0)


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match=r"ExponentialDecay: `decay_steps` must be >= 1, received 0"):
        ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match=r"CosineDecay: `alpha` must be in \[0, 1\]"):
        CosineDecay(0.1, 10, alpha=2.0)


def test_keras_spelling_optimizers_schedules_both_ways():
    import npnet
    import npnet.optimizers.schedules
    from npnet.optimizers import schedules as keras_style
    from npnet.optimizers.schedules import ExponentialDecay as KerasExponentialDecay

    assert keras_style is npnet.optimizers.schedules
    assert KerasExponentialDecay is ExponentialDecay
    for name in npnet.schedules.__all__:
        assert getattr(npnet.optimizers.schedules, name) is getattr(npnet.schedules, name), name
    assert npnet.optimizers.schedules.__all__ == npnet.schedules.__all__
    # a schedule made through either spelling serializes and comes back inside an optimizer
    opt = npnet.Adam(learning_rate=npnet.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5))
    clone = npnet.optimizers.get(npnet.optimizers.serialize(opt))
    assert clone.get_config()["learning_rate"]["class_name"] == "ExponentialDecay"
    assert clone.get_config() == opt.get_config()
    assert clone.learning_rate == 0.1


def test_import_of_the_keras_spelling_in_a_fresh_interpreter():
    import subprocess
    import sys

    code = ("import npnet.optimizers.schedules as s, npnet; "
            "print(s.CosineDecay is npnet.schedules.CosineDecay, s.CosineDecay(1.0, 10)(5))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["True", "0.5"]


def _keras_polynomial(step, initial, decay_steps, end, power, cycle):
    # Keras' PolynomialDecay.__call__, one operation at a time.
    global_step = float(step)
    decay_steps_recomp = float(decay_steps)
    if cycle:
        multiplier = 1.0 if global_step == 0 else math.ceil(global_step / decay_steps)
        decay_steps_recomp = decay_steps_recomp * multiplier
    else:
        global_step = min(global_step, decay_steps_recomp)
    p = global_step / decay_steps_recomp
    return (initial - end) * (1 - p) ** power + end


def test_polynomial_decay_golden():
    s = PolynomialDecay(0.1, decay_steps=10, end_learning_rate=0.01, power=0.5)
    assert s(0) == pytest.approx(0.1)
    assert s(4) == pytest.approx(0.09 * math.sqrt(0.6) + 0.01)  # 0.0797...
    assert s(10) == pytest.approx(0.01) and s(25) == pytest.approx(0.01)  # clipped past decay_steps
    for t in (0, 1, 4, 9, 10, 11, 25):
        assert s(t) == pytest.approx(_keras_polynomial(t, 0.1, 10, 0.01, 0.5, False), rel=1e-12)
    assert PolynomialDecay(1.0, 10).end_learning_rate == 0.0001 and PolynomialDecay(1.0, 10).power == 1.0


def test_polynomial_decay_cycle_golden():
    s = PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, cycle=True)
    # step 0 uses 10; steps 1..10 use 10; 11..20 use 20; 21..30 use 30
    expected = {0: 1.0, 5: 0.5, 10: 0.0, 11: 1 - 11 / 20, 20: 0.0, 21: 1 - 21 / 30, 35: 1 - 35 / 40}
    assert {t: s(t) for t in expected} == pytest.approx(expected)
    for t in range(0, 45, 3):
        assert s(t) == pytest.approx(_keras_polynomial(t, 1.0, 10, 0.0, 1.0, True), rel=1e-12, abs=1e-15)
    rising = PolynomialDecay(0.0, decay_steps=4, end_learning_rate=1.0, power=2.0)
    assert rising(2) == pytest.approx(-1.0 * 0.5**2 + 1.0)  # 0.75: end above start rises


def test_inverse_time_decay_golden():
    s = InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert [s(t) for t in (0, 5, 30)] == pytest.approx([0.1, 0.1 / 1.25, 0.1 / 2.5])
    stair = InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [stair(t) for t in (0, 9, 10, 19, 20, 45)] == pytest.approx(
        [0.1, 0.1, 0.1 / 1.5, 0.1 / 1.5, 0.1 / 2.0, 0.1 / 3.0])
    per_step = InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)  # Keras' own example
    assert per_step(3) == pytest.approx(0.1 / 2.5) and per_step.decay_steps == 1.0


def _keras_sgdr(step, initial, first, t_mul, m_mul, alpha):
    # Keras' CosineDecayRestarts.__call__ in float64, one operation at a time.
    completed_fraction = step / first
    if t_mul == 1.0:
        i_restart = math.floor(completed_fraction)
        completed_fraction -= i_restart
    else:
        i_restart = math.floor(math.log(1.0 - completed_fraction * (1.0 - t_mul)) / math.log(t_mul))
        sum_r = (1.0 - t_mul**i_restart) / (1.0 - t_mul)
        completed_fraction = (completed_fraction - sum_r) / t_mul**i_restart
    cosine_decayed = 0.5 * m_mul**i_restart * (1.0 + math.cos(math.pi * completed_fraction))
    return initial * ((1 - alpha) * cosine_decayed + alpha)


def test_cosine_decay_restarts_golden():
    s = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5, alpha=0.1)
    # periods: [0, 10) i=0, [10, 30) i=1, [30, 70) i=2, [70, 150) i=3
    def lr(i, f):
        return 0.9 * 0.5 * 0.5**i * (1 + math.cos(math.pi * f)) + 0.1
    expected = {0: lr(0, 0), 5: lr(0, 0.5), 9: lr(0, 0.9), 10: lr(1, 0), 20: lr(1, 0.5), 29: lr(1, 19 / 20),
                30: lr(2, 0), 70: lr(3, 0), 100: lr(3, 30 / 80)}
    assert {t: s(t) for t in expected} == pytest.approx(expected)
    assert s(10) == pytest.approx(0.55) and s(70) == pytest.approx(0.2125)
    for t in range(0, 200, 7):
        assert s(t) == pytest.approx(_keras_sgdr(t, 1.0, 10, 2.0, 0.5, 0.1), rel=1e-9), t
    defaults = CosineDecayRestarts(1.0, 10)
    assert (defaults.t_mul, defaults.m_mul, defaults.alpha) == (2.0, 1.0, 0.0)


def test_cosine_decay_restarts_equal_periods_and_exact_restarts():
    s = CosineDecayRestarts(2.0, first_decay_steps=10, t_mul=1.0, m_mul=1.0)
    assert [s(t) for t in (0, 5, 10, 15, 20)] == pytest.approx([2.0, 1.0, 2.0, 1.0, 2.0])
    assert s(29) == pytest.approx(1.0 + math.cos(0.9 * math.pi))
    for t in range(0, 100, 3):
        assert s(t) == pytest.approx(_keras_sgdr(t, 2.0, 10, 1.0, 1.0, 0.0), abs=1e-12)
    # t_mul=3: restarts at 10 * (3**k - 1) / 2 = 10, 40, 130, 400, 1210. At 1210 the floor of
    # log(243) / log(3) is 4 in float64, which would put the step at the very end of period 4.
    s = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=3.0)
    for start, length in ((10, 30), (40, 90), (130, 270), (400, 810), (1210, 2430)):
        assert s(start) == 1.0
        assert s(start - 1) < 0.03
        assert s(start + length // 2) == pytest.approx(0.5)


def test_every_schedule_takes_keras_name_with_keras_default():
    made = {
        "ExponentialDecay": ExponentialDecay(0.1, 10, 0.5),
        "PiecewiseConstant": PiecewiseConstantDecay([5], [0.1, 0.01]),
        "PolynomialDecay": PolynomialDecay(0.1, 10),
        "InverseTimeDecay": InverseTimeDecay(0.1, 10, 0.5),
        "CosineDecay": CosineDecay(0.1, 10),
        "SGDRDecay": CosineDecayRestarts(0.1, 10),
    }
    for default, s in made.items():
        assert s.name == default and s.get_config()["name"] == default
    assert ExponentialDecay(0.1, 10, 0.5, name="s").get_config()["name"] == "s"
    assert PiecewiseConstantDecay([5], [0.1, 0.01], name=None).name is None
    # name is CosineDecay's fourth argument, as in Keras
    s = CosineDecay(0.0, 10, 0.0, "warm", 1.0, 5)
    assert (s.name, s.warmup_target, s.warmup_steps) == ("warm", 1.0, 5) and s(5) == 1.0
    with pytest.raises(TypeError, match=r"CosineDecay: `name` must be a string or None, received 0.5 of type float"):
        CosineDecay(0.0, 10, 0.0, 0.5)


ALL_SCHEDULES = {
    "exponential": lambda: ExponentialDecay(0.1, 7, 0.8, staircase=True, name="e"),
    "piecewise": lambda: PiecewiseConstantDecay([3, 9], [0.1, 0.05, 0.01], name="p"),
    "polynomial": lambda: PolynomialDecay(0.1, 8, end_learning_rate=0.002, power=1.5, cycle=True, name="poly"),
    "inverse_time": lambda: InverseTimeDecay(0.1, 2.5, 0.3, staircase=False, name="inv"),
    "cosine": lambda: CosineDecay(0.01, 12, alpha=0.05, name="cos", warmup_target=0.1, warmup_steps=4),
    "restarts": lambda: CosineDecayRestarts(0.1, 4, t_mul=1.5, m_mul=0.8, alpha=0.1, name="sgdr"),
}


@pytest.mark.parametrize("case", list(ALL_SCHEDULES))
def test_serialize_deserialize_round_trip(case):
    s = ALL_SCHEDULES[case]()
    config = serialize(s)
    assert config == {"class_name": type(s).__name__, "config": s.get_config()}
    for back in (deserialize(config), deserialize(json.loads(json.dumps(config))),
                 npnet.optimizers.schedules.deserialize(config), type(s).from_config(s.get_config())):
        assert type(back) is type(s)
        assert back.get_config() == s.get_config()
        assert [back(t) for t in range(40)] == [s(t) for t in range(40)]
    # Keras' serialized form carries two more keys
    keras_form = {"module": "keras.optimizers.schedules", "registered_name": None, **config}
    assert deserialize(keras_form).get_config() == s.get_config()


def test_deserialize_keras_docstring_config_and_a_config_without_name():
    s = deserialize({"class_name": "PolynomialDecay",
                     "config": {"cycle": False, "decay_steps": 10000, "end_learning_rate": 0.01,
                                "initial_learning_rate": 0.1, "name": None, "power": 0.5}})
    assert s(2500) == pytest.approx(0.09 * math.sqrt(0.75) + 0.01) and s.name is None
    old = deserialize({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10}})
    assert old.name == "CosineDecay"


def test_deserialize_finds_a_custom_schedule():
    class ReciprocalDecay(LearningRateSchedule):
        def __init__(self, initial_learning_rate):
            self.initial_learning_rate = initial_learning_rate

        def __call__(self, step):
            return self.initial_learning_rate / (step + 1)

        def get_config(self):
            return {"initial_learning_rate": self.initial_learning_rate}

    back = deserialize(serialize(ReciprocalDecay(0.3)))
    assert type(back) is ReciprocalDecay and back(2) == pytest.approx(0.1)
    assert type(deserialize({"class_name": "Other", "config": {"initial_learning_rate": 1.0}},
                            custom_objects={"Other": ReciprocalDecay})) is ReciprocalDecay


def test_serialize_deserialize_refuse_bad_input():
    with pytest.raises(ValueError, match=r"schedules.deserialize: unknown learning-rate schedule class 'Nope'; "
                                         r"known: \['CosineDecay', 'CosineDecayRestarts', "):
        deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match=r"schedules.deserialize: expected \{'class_name': \.\.\., 'config'"):
        deserialize("CosineDecay")
    with pytest.raises(TypeError, match=r"custom_objects\['X'\] must be a LearningRateSchedule subclass"):
        deserialize({"class_name": "X", "config": {}}, custom_objects={"X": dict})
    with pytest.raises(TypeError, match=r"schedules.serialize: expected a LearningRateSchedule, received 0.1"):
        serialize(0.1)
    with pytest.raises(NotImplementedError, match="must define get_config"):
        serialize(LearningRateSchedule())


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: PolynomialDecay(0.1, 0), ValueError, r"PolynomialDecay: `decay_steps` must be >= 1, received 0"),
    (lambda: PolynomialDecay(0.1, 10.0), TypeError, r"PolynomialDecay: `decay_steps` must be an integer, received 10.0"),
    (lambda: PolynomialDecay(-0.1, 10), ValueError, r"PolynomialDecay: `initial_learning_rate` must be in \[0, inf\), "
                                                    r"received -0.1"),
    (lambda: PolynomialDecay(0.1, 10, end_learning_rate=float("nan")), ValueError,
     r"PolynomialDecay: `end_learning_rate` must be in \[0, inf\), received nan"),
    (lambda: PolynomialDecay(0.1, 10, power=-1.0), ValueError, r"PolynomialDecay: `power` must be in \[0, inf\), "
                                                               r"received -1.0"),
    (lambda: PolynomialDecay(0.1, 10, cycle="yes"), TypeError, r"PolynomialDecay: `cycle` must be True or False, "
                                                               r"received 'yes'"),
    (lambda: InverseTimeDecay(0.1, 0.0, 0.5), ValueError, r"InverseTimeDecay: `decay_steps` must be in \(0, inf\), "
                                                          r"received 0.0"),
    (lambda: InverseTimeDecay(0.1, 0, 0.5), ValueError, r"InverseTimeDecay: `decay_steps` must be >= 1, received 0"),
    (lambda: InverseTimeDecay(0.1, "10", 0.5), TypeError, r"InverseTimeDecay: `decay_steps` must be a number, "
                                                          r"received '10'"),
    (lambda: InverseTimeDecay(0.1, 10, -0.5), ValueError, r"InverseTimeDecay: `decay_rate` must be in \[0, inf\), "
                                                          r"received -0.5"),
    (lambda: InverseTimeDecay(0.1, 10, 0.5, staircase=None), TypeError, r"InverseTimeDecay: `staircase` must be "
                                                                        r"True or False, received None"),
    (lambda: CosineDecayRestarts(0.1, 0), ValueError, r"CosineDecayRestarts: `first_decay_steps` must be >= 1, "
                                                      r"received 0"),
    (lambda: CosineDecayRestarts(0.1, 10, t_mul=0.5), ValueError, r"CosineDecayRestarts: `t_mul` must be in "
                                                                  r"\[1, inf\), received 0.5 \(shrinking periods"),
    (lambda: CosineDecayRestarts(0.1, 10, m_mul=-1.0), ValueError, r"CosineDecayRestarts: `m_mul` must be in "
                                                                   r"\[0, inf\), received -1.0"),
    (lambda: CosineDecayRestarts(0.1, 10, alpha=1.5), ValueError, r"CosineDecayRestarts: `alpha` must be in \[0, 1\], "
                                                                  r"received 1.5"),
    (lambda: CosineDecayRestarts(0.1, 10, name=3), TypeError, r"CosineDecayRestarts: `name` must be a string or "
                                                              r"None, received 3 of type int"),
    (lambda: ExponentialDecay(0.1, 10, 0.5, staircase=1), TypeError, r"ExponentialDecay: `staircase` must be True "
                                                                     r"or False, received 1"),
    (lambda: PiecewiseConstantDecay(10, [0.1, 0.2]), TypeError, r"PiecewiseConstantDecay: `boundaries` must be a list "
                                                                r"of numbers, received 10"),
    (lambda: CosineDecay(0.1, 10, warmup_target=-1.0), ValueError, r"CosineDecay: `warmup_target` must be in "
                                                                   r"\[0, inf\), received -1.0"),
])
def test_new_schedule_arguments_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("case", list(ALL_SCHEDULES))
def test_optimizer_evaluates_schedule_at_its_step_count(case):
    s = ALL_SCHEDULES[case]()
    opt = npnet.SGD(learning_rate=s)
    p = [np.ones(3, np.float32)]
    for t in range(6):
        assert opt.learning_rate == s(t)
        before = p[0].copy()
        opt.step(p, [np.ones(3, np.float32)])
        # plain SGD: p -= lr * g, with lr = schedule(iterations before the step)
        np.testing.assert_allclose(p[0], before - np.float32(s(t)), rtol=1e-6)
        assert p[0].dtype == np.float32
    clone = npnet.optimizers.get(npnet.optimizers.serialize(opt))
    assert type(clone._learning_rate) is type(s) and clone.get_config() == opt.get_config()


NEW_IN_MODEL = {
    "polynomial-cycle": lambda: npnet.SGD(PolynomialDecay(0.05, 8, end_learning_rate=0.005, power=2.0, cycle=True),
                                          momentum=0.9),
    "inverse-time-staircase": lambda: npnet.Adam(npnet.optimizers.schedules.InverseTimeDecay(0.02, 3, 0.5,
                                                                                              staircase=True)),
    "restarts": lambda: npnet.RMSprop(CosineDecayRestarts(0.01, 4, t_mul=1.5, m_mul=0.8, alpha=0.1, name="sgdr")),
}


def _schedule_model(optimizer, rates):
    m = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, activation="relu"),
                          npnet.Dense(3, activation="softmax")], seed=3)
    m.compile(optimizer, "sparse_categorical_crossentropy")
    return m, npnet.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: rates.append(
        m.optimizer.learning_rate))


@pytest.mark.parametrize("case", list(NEW_IN_MODEL))
def test_model_saved_with_new_schedule_loads_and_continues_with_same_rates(case, tmp_path, toy_data):
    x, y = toy_data  # 300 samples, batch 64: 5 steps per epoch
    straight_rates: list = []
    straight, cb = _schedule_model(NEW_IN_MODEL[case](), straight_rates)
    straight.fit(x, y, epochs=4, batch_size=64, seed=5, verbose=0, callbacks=[cb])
    schedule = straight.optimizer._learning_rate
    assert straight_rates == [schedule(t) for t in range(20)]
    assert len(set(straight_rates)) > 3  # the rate really moves over the 20 steps

    first_rates: list = []
    first, cb = _schedule_model(NEW_IN_MODEL[case](), first_rates)
    first.fit(x, y, epochs=2, batch_size=64, seed=5, verbose=0, callbacks=[cb])
    first.save(tmp_path / "ckpt.npnet")
    resumed = npnet.load_model(tmp_path / "ckpt.npnet")
    assert type(resumed.optimizer._learning_rate) is type(schedule)
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    assert resumed.optimizer.iterations == 10 and resumed.optimizer.learning_rate == schedule(10)

    resumed_rates: list = []
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=64, seed=5, verbose=0,
                callbacks=[npnet.callbacks.LambdaCallback(
                    on_train_batch_begin=lambda batch, logs: resumed_rates.append(resumed.optimizer.learning_rate))])
    assert first_rates + resumed_rates == straight_rates
    assert all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))


def test_cosine_decay_restarts_extreme_multipliers():
    huge_periods = CosineDecayRestarts(1.0, 10, t_mul=1e200)
    assert huge_periods(5) == pytest.approx(0.5) and huge_periods(10) == 1.0
    assert huge_periods(10**6) == pytest.approx(0.5 * (1 + math.cos(math.pi * (10**5 - 1) / 1e200)))
    growing = CosineDecayRestarts(1.0, 1, t_mul=1.0, m_mul=2.0, name="grow")
    assert growing(3) == 8.0
    with pytest.raises(ValueError, match=r"CosineDecayRestarts 'grow': the rate overflows at step 2000 \(m_mul=2.0 "
                                         r"raised to the power of 2000 restarts\)"):
        growing(2000)
