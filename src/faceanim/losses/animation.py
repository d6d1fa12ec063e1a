"""The overall objective (eq. 12): a weighted sum of named terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from faceanim.losses.contrastive import ContrastiveLoss
from faceanim.losses.directional import DirectionalLoss
from faceanim.losses.lpips import LPIPSLoss
from faceanim.losses.outside import OutsideRegionLoss
from faceanim.losses.regularization import FirstLastRegularization, PathRegularization, WRegularization
from faceanim.losses.target import TargetImageLoss, TargetLatentLoss


@dataclass
class LossWeights:
    """λ of eq. 12; the paper's defaults (IV-A-2)."""

    w_reg: float = 1.0
    path_reg: float = 1.0
    contrastive: float = 0.5
    lpips: float = 1.0
    directional: float = 0.0  # beyond the paper (0: off): losses.directional.DirectionalLoss
    first_last: float = 0.0   # the official code's first-vs-last term (0: off, as the paper): FirstLastRegularization
    outside: float = 0.0      # beyond the paper (0: off): change outside the prompt's region, OutsideRegionLoss
    target: float = 0.0       # beyond the paper (0: off): distance to the prompt's known target code, TargetLatentLoss
    target_pixels: float = 0.0  # beyond the paper (0: off): … to the generator's image of it, TargetImageLoss


class AnimationLoss(nn.Module):
    """L = λ_w-reg L_w-reg + λ_path-reg L_path-reg + λ_cont L_cont + λ_lpips L_lpips (+ λ_dir L_dir, λ_out L_out, λ_t L_t
    and λ_px L_px, beyond the paper, off by default).

    ``pixel_frames(T)`` says which frames must be rendered: the last one for the contrastive term, the first
    one for LPIPS (with ``lpips_frames="first_last"`` also the last: L_lpips is then the sum of both frames'
    distances to the source, as in the official code), both for the directional and the outside-region terms, the last for the target image term; the
    latent terms (and the target term) read no pixels, so the trainer runs the generator only on those.
    ``forward`` returns the weighted total and the unweighted terms (only those with non-zero weight).
    """

    def __init__(self, weights: LossWeights, contrastive: ContrastiveLoss | None = None,
                 lpips: LPIPSLoss | None = None, path_order: int = 2, reduction: str = "mean",
                 directional: DirectionalLoss | None = None, lpips_frames: str = "first", target_form: str = "w",
                 target_gain: float = 1.0):
        super().__init__()
        if lpips_frames not in ("first", "first_last"):
            raise ValueError(f"lpips_frames must be 'first' or 'first_last', got {lpips_frames!r}")
        self.weights = weights
        self.lpips_frames = lpips_frames
        self.w_reg = WRegularization(reduction)
        self.path_reg = PathRegularization(path_order, reduction)
        self.first_last = FirstLastRegularization(reduction)
        self.contrastive = contrastive
        self.lpips = lpips
        self.directional = directional
        self.outside = OutsideRegionLoss()
        self.target = TargetLatentLoss(target_form, target_gain)
        self.target_pixels = TargetImageLoss()
        if weights.contrastive and contrastive is None:
            raise ValueError("a non-zero contrastive weight needs a ContrastiveLoss (the loss CLIP)")
        if weights.directional and directional is None:
            raise ValueError("a non-zero directional weight needs a DirectionalLoss")

    @property
    def active(self) -> dict[str, float]:
        """Terms that contribute: non-zero weight and computable (LPIPS needs its backbone weights)."""
        w = self.weights
        terms = {"w_reg": w.w_reg, "path_reg": w.path_reg, "contrastive": w.contrastive}
        if w.lpips and self.lpips is not None and self.lpips.available:
            terms["lpips"] = w.lpips
        if w.directional:
            terms["directional"] = w.directional
        if w.first_last:
            terms["first_last"] = w.first_last
        if w.outside:
            terms["outside"] = w.outside
        if w.target:
            terms["target"] = w.target
        if w.target_pixels:
            terms["target_pixels"] = w.target_pixels
        return {k: v for k, v in terms.items() if v}

    def pixel_frames(self, num_frames: int) -> list[int]:
        frames = set()
        if "contrastive" in self.active or "target_pixels" in self.active:
            frames.add(num_frames - 1)
        if "lpips" in self.active:
            frames.update(self.lpips_frame_indices(num_frames))
        if "directional" in self.active or "outside" in self.active:
            frames.update((0, num_frames - 1))
        return sorted(frames)

    def lpips_frame_indices(self, num_frames: int) -> list[int]:
        """The frames LPIPS compares with the source image."""
        return [0, num_frames - 1] if self.lpips_frames == "first_last" else [0]

    def forward(self, ws: torch.Tensor, w_s: torch.Tensor, frames: dict[int, torch.Tensor], prompts: list[str],
                source: torch.Tensor | None = None, rng: torch.Generator | None = None,
                regions: torch.Tensor | None = None,
                targets: tuple[torch.Tensor, ...] | None = None,
                target_images: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """ws ``[B, T, num_ws, w_dim]``; w_s ``[B, num_ws, w_dim]``; frames: index → ``[B, 3, H, W]`` for the
        indices of :meth:`pixel_frames`; source: the source image ``[B, 3, H, W]`` (needed by LPIPS);
        ``rng``: draws the contrastive term's random views, if it uses any; regions: each prompt's region mask
        ``[B, 1, h, w]`` (needed by the outside-region term); targets: (w_target ``[B, num_ws, w_dim]``, known
        ``[B]``[, gain ``[B]``: each video's target gain]), each prompt's target code on its face (needed by the
        target terms); target_images: the generator's images of the aimed codes ``[B, 3, H, W]``
        (:meth:`TargetLatentLoss.aim`; needed by the target image term)."""
        active = self.active
        T = ws.shape[1]
        terms: dict[str, torch.Tensor] = {}
        if "w_reg" in active:
            terms["w_reg"] = self.w_reg(ws, w_s)
        if "path_reg" in active:
            terms["path_reg"] = self.path_reg(ws)
        if "first_last" in active:
            terms["first_last"] = self.first_last(ws)
        if "contrastive" in active:
            terms["contrastive"] = self.contrastive(frames[T - 1], prompts, rng=rng)
        if "lpips" in active:
            if source is None:
                raise ValueError("LPIPS needs the source image")
            terms["lpips"] = sum(self.lpips(frames[t], source) for t in self.lpips_frame_indices(T))
        if "directional" in active:
            terms["directional"] = self.directional(frames[0], frames[T - 1], prompts)
        if "outside" in active:
            if regions is None:
                raise ValueError("the outside-region term needs the prompts' region masks")
            terms["outside"] = self.outside(frames[0], frames[T - 1], regions)
        if "target" in active:
            if targets is None:
                raise ValueError("the target term needs the prompts' target codes")
            terms["target"] = self.target(ws, w_s, *targets)
        if "target_pixels" in active:
            if targets is None or target_images is None:
                raise ValueError("the target image term needs the prompts' target codes and their images")
            terms["target_pixels"] = self.target_pixels(frames[T - 1], target_images, targets[1])
        total = sum(active[k] * v for k, v in terms.items())
        return total, terms
