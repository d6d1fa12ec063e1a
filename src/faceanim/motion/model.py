"""The composition of section III: encoders → M → mappers → W+ codes for the frozen generator.

    z_t = E_t(x_t), z_v = E_v(x_v)                         (2)
    z⁽¹⁾ = z_t + z_v, z⁽ⁱ⁾ from M                           (3–5)
    w_v = H_v(z_v), Δw⁽ⁱ⁾ = H_t(z⁽ⁱ⁾)                        (6–7)
    w⁽ⁱ⁾ = Δw⁽ⁱ⁾ + w_v + w_inv =: Δw⁽ⁱ⁾ + w_s               (8)

In "latent" mode (generator-only domains, IV-A-1) there is no image: z_v = 0, E_v and H_v are unused and
w_s is a code sampled through the generator's mapping network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from faceanim.encoders.clip import CLIPEncoder
from faceanim.motion.config import MotionConfig
from faceanim.motion.mappers import MotionMapper, VisualMapper
from faceanim.motion.recurrent import RecurrentMotionGenerator
from faceanim.utils.io import load_weights, read_typed_config, save_pretrained

KIND = "motion-model"


@dataclass
class MotionOutput:
    ws: torch.Tensor        # w⁽ⁱ⁾, [B, T, num_ws, w_dim]
    w_s: torch.Tensor       # source code w_s = w_v + w_inv (or the sampled code), [B, num_ws, w_dim]
    codes: torch.Tensor     # motion codes z⁽ⁱ⁾, [B, T, z_dim]


class LanguageGuidedAnimator(nn.Module):
    """Trainable part of the method: the conditioning CLIP (E_t, E_v), M, H_v and H_t.

    The StyleGAN2 generator stays outside (frozen); ``forward`` returns W+ codes for it.
    """

    def __init__(self, config: MotionConfig, clip: CLIPEncoder):
        super().__init__()
        if clip.embed_dim != config.z_dim:
            raise ValueError(f"MotionConfig.z_dim={config.z_dim} but the CLIP embeds to {clip.embed_dim}")
        self.config = config
        self.clip = clip
        self.motion = RecurrentMotionGenerator(
            config.z_dim, config.h_dim, config.residual_rate, config.h0_std, config.slope,
            matched_train_frames=config.train_frames if config.inference_rates == "matched" else 0,
            official_rates=config.inference_rates == "official")
        self.motion_mapper = MotionMapper(config.z_dim, config.num_ws, config.w_dim, config.mapper_hidden,
                                          config.mapper_layers, config.mapper_layout)
        if config.frozen_directions:  # filled by set_frozen_directions, then saved with the weights
            self.register_buffer("frozen_basis", torch.zeros(config.frozen_directions, config.w_dim))
        if config.mode == "image":
            self.visual_mapper = VisualMapper(config.z_dim, config.num_ws, config.w_dim, config.mapper_hidden,
                                              config.mapper_layers, config.mapper_layout)

    # -- parameter groups with the paper's learning rates (IV-A-2) ---------------------------------------------
    def parameter_groups(self, lr_encoder: float = 1e-5, lr_mapper: float = 1e-3, lr_recurrent: float = 1e-3,
                         train_visual_encoder: bool = True, train_text_encoder: bool = True) -> list[dict]:
        """Encoders 1e-5, mappers 1e-3, recurrent module 1e-3. In latent mode E_v is not trained; encoders left
        out are frozen (``requires_grad`` off)."""
        self.clip.model.logit_scale.requires_grad_(False)  # CLIP's temperature plays no part here
        enc = []
        text = list(self.clip.model.transformer.parameters()) + [
            p for n, p in self.clip.model.named_parameters()
            if not n.startswith(("visual.", "transformer.")) and n != "logit_scale"]
        if train_text_encoder:
            enc += text
        else:
            for p in text:
                p.requires_grad_(False)
        if self.config.mode == "image" and train_visual_encoder:
            enc += list(self.clip.model.visual.parameters())
        else:
            self.clip.model.visual.requires_grad_(False)
        mappers = list(self.motion_mapper.parameters())
        if self.config.mode == "image":
            mappers += list(self.visual_mapper.parameters())
        return [{"name": "encoders", "params": [p for p in enc if p.requires_grad], "lr": lr_encoder},
                {"name": "mappers", "params": mappers, "lr": lr_mapper},
                {"name": "recurrent", "params": list(self.motion.parameters()), "lr": lr_recurrent}]

    # -- forward -------------------------------------------------------------------------------------------------
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """z_t ``[B, z_dim]`` (L2-normalized CLIP text embedding; prompts templated with the model's template)."""
        return self.clip.encode_text(prompts, template=self.config.template)

    def forward(self, prompts: list[str] | torch.Tensor, num_frames: int, *, image: torch.Tensor | None = None,
                w_inv: torch.Tensor | None = None, w_source: torch.Tensor | None = None, decay: bool = False,
                rng: torch.Generator | None = None) -> MotionOutput:
        """Motion codes and per-frame W+ codes.

        prompts: B strings, or precomputed text embeddings ``[B, z_dim]``.
        image mode: ``image`` ``[B, 3, H, W]`` in [-1, 1] and its inversion ``w_inv`` ``[B, num_ws, w_dim]``.
        latent mode: ``w_source`` ``[B, num_ws, w_dim]`` (a code sampled through the generator's mapping);
        in image mode ``w_source`` replaces w_s = H_v(z_v) + w_inv, H_v unused: only for a prompt timeline that
        continues from a frame's code (which holds w_v already). A photo's code goes in ``w_inv``.
        decay: the inference schedule of the residual rates.
        """
        z_t = prompts if isinstance(prompts, torch.Tensor) else self.encode_text(list(prompts))
        if self.config.mode == "image":
            if image is None or (w_inv is None and w_source is None):
                raise ValueError("image mode needs the image and its inverted code w_inv")
            z_v = self.clip.encode_image(image)
            # w_source overrides w_s = H_v(z_v) + w_inv: a timeline's next prompt starts from the last frame's code.
            w_s = w_source if w_source is not None else self.visual_mapper(z_v) + w_inv
            z1 = z_t + (z_v.detach() if self.config.detach_visual else z_v)
        else:
            if w_source is None:
                raise ValueError("latent mode needs w_source, a code sampled through the generator's mapping")
            w_s, z1 = w_source, z_t
        codes = self.motion(z1, num_frames, decay=decay, rng=rng)
        mapper_in = codes - codes[:, :1] if self.config.mapper_input == "offset" else codes
        delta = self.motion_mapper(mapper_in)
        if self.config.frozen_directions:  # no motion along the frozen directions, in any W+ entry
            delta = delta - (delta @ self.frozen_basis.t()) @ self.frozen_basis
        if self.config.edit_ws:  # the fine W+ entries keep the source's code
            delta = delta * (torch.arange(self.config.num_ws, device=delta.device) < self.config.edit_ws)[:, None]
        ws = delta + w_s.unsqueeze(1)
        return MotionOutput(ws=ws, w_s=w_s, codes=codes)

    @torch.no_grad()
    def set_frozen_directions(self, directions: torch.Tensor) -> None:
        """Freeze W directions ``[K, w_dim]`` (K = ``config.frozen_directions``): stored as an orthonormal basis of
        their span, off which every motion offset Δw⁽ⁱ⁾ is projected."""
        k, w_dim = self.config.frozen_directions, self.config.w_dim
        if directions.shape != (k, w_dim):
            raise ValueError(f"expected {k} frozen directions of width {w_dim}, got {list(directions.shape)}")
        q, r = torch.linalg.qr(directions.double().t())
        if bool((r.diagonal().abs() < 1e-6 * r.diagonal().abs().max()).any()):
            raise ValueError("the frozen directions are linearly dependent")
        self.frozen_basis.copy_(q.t().to(self.frozen_basis))

    # -- files ---------------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """``folder/config.json`` + ``model.safetensors`` (M, H_v, H_t) and ``folder/clip/`` (the conditioning CLIP)."""
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}
        folder = save_pretrained(folder, self.config, state, kind=KIND)
        self.clip.save_pretrained(Path(folder) / "clip")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "LanguageGuidedAnimator":
        from faceanim.errors import CheckpointError

        from faceanim.utils.init import no_weight_init

        config = read_typed_config(folder, KIND, MotionConfig)

        clip = CLIPEncoder.from_pretrained(Path(folder) / "clip")
        with no_weight_init():  # all weights are loaded below, and missing ones are an error
            model = cls(config, clip)
        state = load_weights(folder)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("clip.")]
        if missing or unexpected:
            raise CheckpointError(f"{folder}: motion weights do not match the config "
                                  f"(missing {missing[:2]}, unexpected {unexpected[:2]})")
        return model.to(device).eval()
