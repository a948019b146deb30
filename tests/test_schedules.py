import math

import pytest

from npnet.schedules import CosineDecay, ExponentialDecay, PiecewiseConstantDecay


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
    for name in ("LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay", "get", "serialize"):
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
