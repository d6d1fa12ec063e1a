"""Contrastive text–video loss of section III-E (eq. 11), optionally on randomly shifted and scaled views."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.encoders.clip import CLIPEncoder


def random_views(images: torch.Tensor, views: int, shift: float, scale: float,
                 rng: torch.Generator | None = None) -> torch.Tensor:
    """``views`` differentiable random affine views of each image: ``[n, 3, H, W]`` → ``[views·n, 3, H, W]``
    (view-major). Each view is zoomed by a factor in [1 − scale, 1 + scale] and shifted by up to ``shift`` of the
    image size on each axis (border pixels repeat). No flips: left and right carry meaning (gaze, head tilt)."""
    n = images.shape[0]
    u = torch.rand(views * n, 3, generator=rng).to(images)
    zoom = 1 + scale * (2 * u[:, 0] - 1)
    theta = torch.zeros(views * n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 2] = shift * 2 * (2 * u[:, 1] - 1)  # affine_grid's units: the image spans [-1, 1]
    theta[:, 1, 2] = shift * 2 * (2 * u[:, 2] - 1)
    x = images.repeat(views, 1, 1, 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class ContrastiveLoss(nn.Module):
    """L_cont(V, T) = −Σᵢ log softmax_j(vⁱ·tʲ / τ)ᵢ (eq. 11), τ = 0.07.

    V are the loss-CLIP image embeddings of the **last** frames of the n videos of a batch, T the loss-CLIP
    text embeddings of their n (non-repeating) prompts. The loss CLIP is frozen and separate from the
    conditioning CLIP (the official code: ViT-B/32 here, RN50 there). Averaged over the batch.

    Beyond the paper, ``views`` > 0 averages the loss over that many random shifted/zoomed views of each frame
    (:func:`random_views`), as CLIP-guided image optimization commonly does: a small CLIP is easily satisfied by
    pixel changes that are not the named expression, and such changes rarely survive a shift.

    Also beyond the paper, ``clip`` may be a sequence of CLIPs (an ensemble): the loss is the mean of eq. 11 under
    each, on the same views. A change that only one CLIP mistakes for the prompt then earns a third of the reward.
    """

    def __init__(self, clip: CLIPEncoder | Sequence[CLIPEncoder], temperature: float = 0.07,
                 template: str | None = None, views: int = 0, view_shift: float = 0.06, view_scale: float = 0.08,
                 form: str = "paper"):
        """``form="official"``: the official code's log(1 + Σ_j exp((s_ij − s_ii)/τ)) (``src/criteria/losses.py``),
        which is softplus of eq. 11's per-sample term, instead of the term itself."""
        super().__init__()
        if form not in ("paper", "official"):
            raise ValueError(f"contrastive form must be 'paper' or 'official', got {form!r}")
        clips = [clip] if isinstance(clip, nn.Module) else list(clip)
        if not clips:
            raise ValueError("the contrastive loss needs at least one CLIP")
        self.form = form
        self.clips = nn.ModuleList(c.eval().requires_grad_(False) for c in clips)
        self.temperature, self.template = temperature, template
        self.views, self.view_shift, self.view_scale = views, view_shift, view_scale
        self._text_cache: dict[tuple[int, str], torch.Tensor] = {}

    @property
    def clip(self) -> CLIPEncoder:
        """The first (or only) loss CLIP."""
        return self.clips[0]

    def text_embeddings(self, prompts: list[str], index: int = 0) -> torch.Tensor:
        """Frozen text embeddings ``[n, D]`` of CLIP ``index``, cached per prompt.

        Each prompt is encoded on its own so that its embedding does not depend on which other prompts shared
        a batch (float rounding of batched matmuls would otherwise break bit-exact resumption).
        """
        clip = self.clips[index]
        for p in dict.fromkeys(prompts):
            if (index, p) not in self._text_cache:
                with torch.no_grad():
                    self._text_cache[index, p] = clip.encode_text([p], template=self.template)[0]
        return torch.stack([self._text_cache[index, p] for p in prompts])

    def forward(self, last_frames: torch.Tensor, prompts: list[str],
                rng: torch.Generator | None = None) -> torch.Tensor:
        """last_frames ``[n, 3, H, W]`` in [-1, 1]; prompts: n distinct strings; ``rng`` draws the views."""
        if len(set(prompts)) != len(prompts):
            raise ValueError("contrastive loss needs non-repeating prompts within a batch")
        n = len(prompts)
        x = last_frames
        if self.views:
            x = random_views(last_frames, self.views, self.view_shift, self.view_scale, rng)
        target = torch.arange(n, device=x.device).repeat(x.shape[0] // n)
        terms = []
        for i, clip in enumerate(self.clips):
            v = clip.encode_image(x)
            logits = v @ self.text_embeddings(prompts, i).to(v).t() / self.temperature
            if self.form == "official":
                terms.append(F.softplus(F.cross_entropy(logits, target, reduction="none")).mean())
            else:
                terms.append(F.cross_entropy(logits, target))
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()
