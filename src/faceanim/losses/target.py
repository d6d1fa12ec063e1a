"""Distance of the last frame to a known target, in W+ or in pixels (beyond the paper; synthetic domains only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TARGET_FORMS = ("w", "direction")


class TargetLatentLoss(nn.Module):
    """For videos whose prompt has a target code w_t (:mod:`faceanim.data.targets`; ``known`` marks them):

    - ``form="w"``: L_t = mean over known videos of ‖w⁽ᵀ⁾ − w_g‖² / (num_ws · w_dim), the last frame's code
      pulled to w_g = w_s + g · (w_t − w_s) (where the change goes and how far; ``gain`` g = 1: the target itself,
      g > 1 goes on past it, for a generator that draws the target's change weaker than its domain does; a
      per-video gain ``[B]`` passed to :meth:`forward` / :meth:`aim` replaces it, e.g. one gain per prompt);
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

    def aim(self, w_s: torch.Tensor, w_target: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        """w_g = w_s + g · (w_t − w_s): the code the ``w`` form pulls the last frame to (w_s, w_target ``[B, num_ws,
        w_dim]``; ``gain`` ``[B]``: one g per video, else the module's)."""
        if gain is None:
            return w_s + self.gain * (w_target.to(w_s) - w_s)
        return w_s + gain.to(w_s).reshape(-1, 1, 1) * (w_target.to(w_s) - w_s)

    def forward(self, ws: torch.Tensor, w_s: torch.Tensor, w_target: torch.Tensor,
                known: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        """ws ``[B, T, num_ws, w_dim]``, w_s and w_target ``[B, num_ws, w_dim]``, known ``[B]`` bool, gain ``[B]`` or
        None (the module's g for every video)."""
        known = known.to(ws.device, torch.bool)
        if not bool(known.any()):
            return ws.sum() * 0.0
        last, src, tgt = ws[known, -1], w_s[known], w_target[known].to(ws)
        if self.form == "w":
            g = None if gain is None else gain.to(ws.device)[known]
            return (last - self.aim(src, tgt, g)).square().flatten(1).mean(1).mean()
        return (1 - F.cosine_similarity((last - src).flatten(1), (tgt - src).flatten(1), dim=1, eps=1e-8)).mean()


class TargetImageLoss(nn.Module):
    """L_px = mean over known videos of the mean squared difference between the last frame and the frozen
    generator's image of the aimed code w_g (:meth:`TargetLatentLoss.aim`), per pixel and channel. Unlike the code
    distance, it weighs a change by what it does to the picture: a small W move that recolours the eyes costs what
    the recolouring costs in pixels."""

    def forward(self, last_frames: torch.Tensor, target_images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """last_frames and target_images ``[B, 3, H, W]`` (targets without gradient), known ``[B]`` bool."""
        known = known.to(last_frames.device, torch.bool)
        if not bool(known.any()):
            return last_frames.sum() * 0.0
        diff = last_frames[known] - target_images[known].detach().to(last_frames)
        return diff.square().flatten(1).mean(1).mean()
