"""Change outside the prompt's region (beyond the paper): a localized-edit term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OutsideRegionLoss(nn.Module):
    """L_out = mean over videos of the mean squared change from the first to the last frame over the pixels
    *outside* the prompt's region mask m (m = 1 where the prompt may draw; :mod:`faceanim.data.regions`):

        L_out = (1/B) Σ_b Σ_px (1 − m_b) · ‖x_b⁽ᵀ⁾ − x_b⁽¹⁾‖² / (3 · max(1, Σ_px (1 − m_b)))

    A frozen loss CLIP can be satisfied by marks that are not the named change (e.g. recoloured eyes for "smiling");
    this term makes such marks cost pixels wherever the prompt's own change does not reach.
    """

    def forward(self, first_frames: torch.Tensor, last_frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """first_frames, last_frames ``[B, 3, H, W]``; masks ``[B, 1, h, w]`` in [0, 1] (resized to H × W)."""
        if masks.shape[-2:] != last_frames.shape[-2:]:
            masks = F.interpolate(masks, size=last_frames.shape[-2:], mode="area")
        outside = (1 - masks).to(last_frames)
        change = (last_frames - first_frames).pow(2).sum(1, keepdim=True)
        per_video = (outside * change).flatten(1).sum(1) / (3 * outside.flatten(1).sum(1).clamp(min=1))
        return per_video.mean()
