"""Learning-rate schedules shared by the project's trainers and optimizers (pure functions of the step)."""

from __future__ import annotations

import math


def cosine_lr(step: int, steps: int, lr: float, lr_final: float, warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``lr`` down to ``lr_final`` at ``steps`` (held after)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min((step - warmup) / max(steps - warmup, 1), 1.0)
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * t))


def projector_lr(t: float, lr: float, rampup: float, rampdown: float) -> float:
    """The StyleGAN2 projector's schedule at progress ``t`` ∈ [0, 1]: a linear ramp-up over the first ``rampup``
    share, a cosine ramp-down to 0 over the last ``rampdown`` share (also StyleCLIP's latent optimization)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return lr * ramp
