"""One entry point for turning an aligned face into a W+ code: the e4e encoder when there is one, else the projector.

e4e is a single forward pass (about a second on CPU) but needs a trained encoder for the generator (the
official ``e4e_ffhq_encode.pt`` fits FFHQ 1024 px); the projector works for any generator, including ones no
encoder exists for (ToonFace), at the cost of ``steps`` generator forward/backward passes. Nothing heavy happens
at construction: the encoder file is read, and the perceptual network built, on the first inversion.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from faceanim.errors import FaceanimError
from faceanim.inversion.projector import PerceptualDistance, ProjectorConfig, default_perceptual, project

METHODS = ("auto", "e4e", "projector")


@dataclass
class InversionResult:
    w_plus: torch.Tensor            # [num_ws, w_dim]
    target: torch.Tensor            # [1, 3, R, R] in [-1, 1]: the face at the generator's resolution
    reconstruction: torch.Tensor | None  # [1, 3, R, R]: G(w_plus) with the generator's constant noise (None: e4e
                                         # asked not to render it, a generator pass: ≈5 s at 1024 px on CPU)
    method: str                     # "e4e" or "projector"
    seconds: float                  # wall time of the inversion
    losses: list[dict[str, float]] = field(default_factory=list)  # projector: per-step loss terms

    @property
    def mse(self) -> float:
        """Pixel MSE between reconstruction and target (images in [-1, 1]); NaN without a reconstruction."""
        if self.reconstruction is None:
            return float("nan")
        return float((self.reconstruction - self.target).square().mean())


class Inverter:
    """Aligned face image → ``(target [1, 3, R, R], w_plus [num_ws, w_dim])``, the ``inverter`` slot of
    :class:`faceanim.pipelines.AnimationPipeline`.

    >>> inv = Inverter(G, encoder="e4e_ffhq_encode.pt")     # method "auto" → e4e
    >>> inv = Inverter(G, projector_config=ProjectorConfig(steps=500, space="wplus"), clip=clip)
    >>> result = inv.invert(aligned_face)                    # InversionResult
    """

    def __init__(
        self,
        G: nn.Module,                                   # the frozen generator (its device is used)
        method: str = "auto",                           # "auto": e4e if an encoder is given, else the projector
        encoder: str | os.PathLike | Callable | None = None,  # e4e folder / official .pt, or a module images → W+
        projector_config: ProjectorConfig | None = None,
        clip: nn.Module | None = None,                  # CLIPEncoder for the perceptual fallback when LPIPS is missing
        perceptual: PerceptualDistance | None = None,   # explicit perceptual distance (overrides LPIPS/CLIP choice)
        progress: bool = False,                         # projector progress bar
    ):
        if method not in METHODS:
            raise FaceanimError(f"unknown inversion method {method!r}; choose one of {', '.join(METHODS)}")
        if method == "e4e" and encoder is None:
            raise FaceanimError("inversion with e4e needs an encoder: this bundle has none (give an e4e checkpoint, "
                                "or use the projector)")
        self.G = G
        self.method = ("e4e" if encoder is not None else "projector") if method == "auto" else method
        self.encoder_source = encoder
        self.projector_config = projector_config or ProjectorConfig()
        self.clip, self.progress = clip, progress
        self.notice: Callable[[str], None] | None = None  # told a long projection's expected time
        self._encoder: Callable | None = None
        self._perceptual = perceptual
        self._perceptual_ready = perceptual is not None
        self.last: InversionResult | None = None  # the latest result (for reports)

    # -- lazily built parts ------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.G.w_avg.device

    def encoder(self) -> Callable:
        """The e4e encoder, read on first use; its output must match the generator's W+."""
        if self._encoder is None:
            src = self.encoder_source
            if isinstance(src, (str, os.PathLike)):
                from faceanim.inversion.e4e import load_encoder

                enc = load_encoder(src)
            elif callable(src):
                enc = src
            else:
                raise FaceanimError("no inversion encoder given")
            n_styles = getattr(enc, "n_styles", None)
            if n_styles is not None and n_styles != self.G.num_ws:
                raise FaceanimError(f"the inversion encoder writes {n_styles} W+ codes but the generator takes "
                                    f"{self.G.num_ws} (an encoder trained for another generator)")
            self._encoder = enc
        if isinstance(self._encoder, nn.Module):
            self._encoder.to(self.device)
        return self._encoder

    def perceptual(self) -> PerceptualDistance | None:
        """LPIPS if available, else CLIP-feature distance with ``clip``, else None (built on first use)."""
        if not self._perceptual_ready:
            self._perceptual = default_perceptual(self.clip)
            self._perceptual_ready = True
        if isinstance(self._perceptual, nn.Module):
            self._perceptual.to(self.device)
        return self._perceptual

    @property
    def perceptual_name(self) -> str:
        """What the projector's perceptual term is: "LPIPS", "CLIP features", "none", or a class name."""
        p = self._perceptual
        if not self._perceptual_ready:
            return "not built yet"
        if p is None:
            return "none"
        return {"LPIPSLoss": "LPIPS", "CLIPFeatureDistance": "CLIP features"}.get(type(p).__name__, type(p).__name__)

    # -- inversion ---------------------------------------------------------------------------------------------------
    def invert(self, image, reconstruct: bool = True) -> InversionResult:
        """``image``: an aligned face (PIL image, path, uint8 ``[H, W, 3]`` or ``[1, 3, H, W]`` in [-1, 1]).
        ``reconstruct=False`` skips rendering G(w) after e4e (the projector renders it anyway)."""
        from faceanim.utils.images import image_to_tensor

        t0 = time.perf_counter()
        G, R = self.G, self.G.img_resolution
        face = image_to_tensor(image).to(self.device)
        target = image_to_tensor(face, R)
        losses: list[dict[str, float]] = []
        if self.method == "e4e":
            with torch.no_grad():
                w = self.encoder()(face)
            if w.ndim != 3 or tuple(w.shape[1:]) != (G.num_ws, G.w_dim):
                raise FaceanimError(f"the inversion encoder writes W+ {list(w.shape[1:])} but the generator takes "
                                    f"[{G.num_ws}, {G.w_dim}]")
            w_plus, recon = w[0].float(), None
            if reconstruct:
                with torch.no_grad():
                    recon = G.synthesis(w_plus[None], noise_mode="const")
        else:
            result = project(G, target, self.projector_config, perceptual=self.perceptual(), progress=self.progress,
                             notice=self.notice)
            w_plus, recon, losses = result.w_plus, result.image, result.losses
        self.last = InversionResult(w_plus=w_plus, target=target, reconstruction=recon, method=self.method,
                                    seconds=time.perf_counter() - t0, losses=losses)
        return self.last

    def __call__(self, image) -> tuple[torch.Tensor, torch.Tensor]:
        result = self.invert(image)
        return result.target, result.w_plus


__all__ = ["METHODS", "InversionResult", "Inverter"]
