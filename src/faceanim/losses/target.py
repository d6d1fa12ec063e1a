"""Distance of the last frame's code to a known target code (beyond the paper; synthetic domains only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TARGET_FORMS = ("w", "direction")


class TargetLatentLoss(nn.Module):
    """For videos whose prompt has a target code w_t (:mod:`faceanim.data.targets`; ``known`` marks them):

    - ``form="w"``: L_t = mean over known videos of ‖w⁽ᵀ⁾ − w_g‖² / (num_ws · w_dim), the last frame's code
      pulled to w_g = w_s + g · (w_t − w_s) (where the change goes and how far; ``gain`` g = 1: the target itself,
      g > 1 goes on past it, for a generator that draws the target's change weaker than its domain does);
    - ``form="direction"``: L_t = mean over known videos of 1 − cos(w⁽ᵀ⁾ − w_s, w_t − w_s) over the flattened W+
      codes: the change must point the target's way and its size is left to the other terms.

    Videos without a target (``known`` False) add nothing; a batch without any gives 0.
    """

    def __init__(self, form: str = "w", gain: float = 1.0):
        super().__init__()
        if form not in TARGET_FORMS:
            raise ValueError(f"target form must be one of {TARGET_FORMS}, got {form!r}")
        if not gain > 0:
            raise ValueError(f"target gain must be > 0, got {gain}")
        self.form, self.gain = form, float(gain)

    def forward(self, ws: torch.Tensor, w_s: torch.Tensor, w_target: torch.Tensor,
                known: torch.Tensor) -> torch.Tensor:
        """ws ``[B, T, num_ws, w_dim]``, w_s and w_target ``[B, num_ws, w_dim]``, known ``[B]`` bool."""
        known = known.to(ws.device, torch.bool)
        if not bool(known.any()):
            return ws.sum() * 0.0
        last, src, tgt = ws[known, -1], w_s[known], w_target[known].to(ws)
        if self.form == "w":
            return (last - (src + self.gain * (tgt - src))).square().flatten(1).mean(1).mean()
        return (1 - F.cosine_similarity((last - src).flatten(1), (tgt - src).flatten(1), dim=1, eps=1e-8)).mean()
