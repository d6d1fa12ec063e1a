"""Directional CLIP loss (beyond the paper; StyleGAN-NADA's form) on the change a video makes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.losses.contrastive import ContrastiveLoss


class DirectionalLoss(nn.Module):
    """L_dir = 1 − cos(E_I(x⁽ᵀ⁾) − E_I(x⁽¹⁾), E_T(prompt) − E_T(neutral)), averaged over the batch.

    The contrastive term (eq. 11) only asks each last frame to be told apart from the other prompts of its
    batch, and it saturates once they are; this term asks the change from the first to the last frame to point
    the way the text changes from a neutral description to the prompt, in the loss CLIP's space. It shares the
    contrastive term's frozen CLIP, template and text cache.
    """

    def __init__(self, contrastive: ContrastiveLoss, neutral: str = "expressionless", eps: float = 1e-2):
        super().__init__()
        self.contrastive, self.neutral, self.eps = contrastive, neutral, eps

    def forward(self, first_frames: torch.Tensor, last_frames: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """first_frames, last_frames ``[n, 3, H, W]`` in [-1, 1]; prompts: n strings."""
        n = first_frames.shape[0]
        frames = torch.cat([first_frames, last_frames])
        terms = []
        for i, clip in enumerate(self.contrastive.clips):  # an ensemble: the mean over its CLIPs
            v = clip.encode_image(frames)
            dv = v[n:] - v[:n]
            t = self.contrastive.text_embeddings(list(prompts) + [self.neutral], i).to(v)
            dt = t[:n] - t[n:]
            # eps bounds the gradient while the video barely moves yet (at initialization ‖ΔI‖ ≈ 0)
            terms.append((1 - F.cosine_similarity(dv, dt, dim=-1, eps=self.eps)).mean())
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()
