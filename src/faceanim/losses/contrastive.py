"""Contrastive text–video loss of section III-E (eq. 11)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.encoders.clip import CLIPEncoder


class ContrastiveLoss(nn.Module):
    """L_cont(V, T) = −Σᵢ log softmax_j(vⁱ·tʲ / τ)ᵢ (eq. 11), τ = 0.07.

    V are the loss-CLIP image embeddings of the **last** frames of the n videos of a batch, T the loss-CLIP
    text embeddings of their n (non-repeating) prompts. The loss CLIP is frozen and separate from the
    conditioning CLIP (the official code: ViT-B/32 here, RN50 there). Averaged over the batch.
    """

    def __init__(self, clip: CLIPEncoder, temperature: float = 0.07, template: str | None = None):
        super().__init__()
        self.clip = clip.eval().requires_grad_(False)
        self.temperature, self.template = temperature, template
        self._text_cache: dict[str, torch.Tensor] = {}

    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Frozen text embeddings ``[n, D]``, cached per prompt.

        Each prompt is encoded on its own so that its embedding does not depend on which other prompts shared
        a batch (float rounding of batched matmuls would otherwise break bit-exact resumption).
        """
        for p in dict.fromkeys(prompts):
            if p not in self._text_cache:
                with torch.no_grad():
                    self._text_cache[p] = self.clip.encode_text([p], template=self.template)[0]
        return torch.stack([self._text_cache[p] for p in prompts])

    def forward(self, last_frames: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """last_frames ``[n, 3, H, W]`` in [-1, 1]; prompts: n distinct strings."""
        if len(set(prompts)) != len(prompts):
            raise ValueError("contrastive loss needs non-repeating prompts within a batch")
        v = self.clip.encode_image(last_frames)
        t = self.text_embeddings(prompts).to(v)
        logits = v @ t.t() / self.temperature
        return F.cross_entropy(logits, torch.arange(len(prompts), device=v.device))
