"""The shared learning-rate schedules against direct formulas."""

import math

from faceanim.utils.schedules import cosine_lr, projector_lr


def test_cosine_lr():
    assert cosine_lr(0, 100, 1.0, 0.1) == 1.0
    assert math.isclose(cosine_lr(50, 100, 1.0, 0.1), 0.55)
    assert math.isclose(cosine_lr(100, 100, 1.0, 0.1), 0.1) and math.isclose(cosine_lr(500, 100, 1.0, 0.1), 0.1)
    assert math.isclose(cosine_lr(4, 100, 1.0, 0.0, warmup=10), 0.5)   # linear warm-up: (4 + 1) / 10
    assert math.isclose(cosine_lr(55, 100, 1.0, 0.0, warmup=10), 0.5)  # half-way through the cosine part


def test_projector_lr():
    assert projector_lr(0.0, 0.1, 0.05, 0.25) == 0.0
    assert math.isclose(projector_lr(0.025, 0.1, 0.05, 0.25), 0.05)   # half-way up the ramp
    assert math.isclose(projector_lr(0.5, 0.1, 0.05, 0.25), 0.1)
    assert math.isclose(projector_lr(0.875, 0.1, 0.05, 0.25), 0.05)   # half-way down the cosine
    assert math.isclose(projector_lr(0.5, 0.1, 0.0, 0.0), 0.1)
