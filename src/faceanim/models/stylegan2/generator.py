"""StyleGAN2 generator G = g ∘ f: the frozen frame synthesizer of the paper (section III-D)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from faceanim.models.stylegan2.config import GeneratorConfig
from faceanim.models.stylegan2.mapping import MappingNetwork
from faceanim.models.stylegan2.synthesis import SynthesisNetwork
from faceanim.utils.io import check_state_dict, load_weights, read_typed_config, save_pretrained

KIND = "stylegan2-generator"


class Generator(nn.Module):
    """StyleGAN2 generator with the NVlabs parameter layout (``mapping.fc0.weight``, ``synthesis.b4.const``…).

    Shapes: z ``[B, z_dim]``; w ``[B, w_dim]``; W+ ``[B, num_ws, w_dim]``; images ``[B, 3, R, R]`` in ≈[-1, 1].
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim, self.c_dim = config.z_dim, config.w_dim, config.c_dim
        self.img_resolution, self.num_ws = config.img_resolution, config.num_ws
        channels = {res: config.channels_at(res) for res in config.block_resolutions}
        self.synthesis = SynthesisNetwork(config.w_dim, config.img_resolution, config.img_channels, channels,
                                          use_noise=config.use_noise, conv_clamp=config.conv_clamp,
                                          resample_filter=config.resample_filter)
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, num_layers=config.mapping_layers,
                                      lr_multiplier=config.mapping_lr_multiplier,
                                      layer_features=config.layer_features, embed_features=config.embed_features,
                                      w_avg_beta=config.w_avg_beta)

    # -- latents -------------------------------------------------------------------------------------------------
    @property
    def w_avg(self) -> torch.Tensor:
        """Tracked mean of W, ``[w_dim]``."""
        return self.mapping.w_avg

    def truncate(self, w: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """Truncation trick ``w_avg + ψ (w − w_avg)`` on W ``[B, w_dim]`` or W+ (only the first ``cutoff`` ws)."""
        if psi == 1.0:
            return w
        w_avg = self.w_avg.to(w.dtype)
        if w.ndim == 2 or cutoff is None:
            return w_avg.lerp(w, psi)
        out = w.clone()
        out[:, :cutoff] = w_avg.lerp(w[:, :cutoff], psi)
        return out

    def to_wplus(self, w: torch.Tensor) -> torch.Tensor:
        """W ``[B, w_dim]`` → W+ ``[B, num_ws, w_dim]``; W+ passes through (shape-checked)."""
        if w.ndim == 2 and w.shape[1] == self.w_dim:
            return w.unsqueeze(1).expand(-1, self.num_ws, -1)
        if w.ndim == 3 and w.shape[1:] == (self.num_ws, self.w_dim):
            return w
        raise ValueError(f"expected W [B, {self.w_dim}] or W+ [B, {self.num_ws}, {self.w_dim}], got {list(w.shape)}")

    # -- forward -------------------------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const",
                rng: torch.Generator | None = None) -> torch.Tensor:
        """z ``[B, z_dim]`` → images ``[B, 3, R, R]``."""
        w = self.mapping(z, c)
        ws = self.truncate(self.to_wplus(w), truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, rng=rng)

    def synthesize(self, w: torch.Tensor, noise_mode: str = "const", batch_size: int | None = None,
                   rng: torch.Generator | None = None) -> torch.Tensor:
        """W ``[B, w_dim]`` or W+ ``[B, num_ws, w_dim]`` (or ``[B, T, num_ws, w_dim]`` frames) → images.

        Many frames go through in chunks of ``batch_size`` (all at once when None).
        """
        lead = w.shape[:-2] if w.ndim == 4 else None
        if lead is not None:
            w = w.reshape(-1, *w.shape[-2:])
        ws = self.to_wplus(w)
        step = batch_size or ws.shape[0]
        imgs = torch.cat([self.synthesis(ws[i:i + step], noise_mode=noise_mode, rng=rng)
                          for i in range(0, ws.shape[0], step)])
        return imgs.reshape(*lead, *imgs.shape[1:]) if lead is not None else imgs

    @torch.no_grad()
    def estimate_w_avg(self, n: int = 10000, seed: int = 0, batch_size: int = 1000) -> torch.Tensor:
        """Mean of W over ``n`` samples of z (seeded), for checkpoints that carry no tracked mean."""
        g = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.w_dim, dtype=torch.float64)
        device = self.w_avg.device
        done = 0
        while done < n:
            m = min(batch_size, n - done)
            z = torch.randn(m, self.z_dim, generator=g).to(device)
            c = None
            if self.c_dim:
                c = torch.zeros(m, self.c_dim, device=device)
            total += self.mapping(z, c).double().sum(0).cpu()
            done += m
        return (total / n).float()

    # -- files ---------------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (the native format)."""
        return save_pretrained(folder, self.config, self.state_dict(), kind=KIND)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "Generator":
        """Load a native generator folder (no pickle involved)."""
        from faceanim.utils.init import no_weight_init

        config = read_typed_config(folder, KIND, GeneratorConfig)
        state = load_weights(folder)
        with no_weight_init():  # every tensor is overwritten below; missing ones are an error (load_state_dict_checked)
            model = cls(config)
        model.load_state_dict_checked(state, source=str(folder))
        return model.to(device).eval().requires_grad_(False)

    def load_state_dict_checked(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load weights and turn any mismatch into a one-line CheckpointError."""
        check_state_dict(self.state_dict(), state, source, "generator config", optional=())
        self.load_state_dict({k: v.float() for k, v in state.items()})
