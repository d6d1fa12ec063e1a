"""Mapping network f: Z → W of StyleGAN2, with the tracked mean ``w_avg`` used for truncation."""

from __future__ import annotations

import math

import torch
from torch import nn

from faceanim.models.stylegan2.ops import bias_lrelu


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """PixelNorm: scale each row of ``[B, D]`` to unit mean square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalized-learning-rate linear layer (weights stored unscaled; the gain is applied in forward)."""

    def __init__(self,
                 in_features: int,           # input width
                 out_features: int,          # output width
                 activation: str = "linear", # "linear" or "lrelu" (leaky ReLU 0.2 with gain √2)
                 lr_multiplier: float = 1.0, # equalized-LR multiplier (0.01 in the mapping network)
                 bias_init: float = 0.0):    # initial bias value (1 for style affines)
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_lrelu(x @ w.t(), b)


class MappingNetwork(nn.Module):
    """z ``[B, z_dim]`` (+ label c ``[B, c_dim]``) → w ``[B, w_dim]``; PixelNorm then an MLP."""

    def __init__(self,
                 z_dim: int,                         # input latent width
                 c_dim: int,                         # label width, 0 = unconditional
                 w_dim: int,                         # output W width
                 num_layers: int = 8,                # MLP depth
                 lr_multiplier: float = 0.01,        # equalized-LR multiplier
                 layer_features: int | None = None,  # hidden width (None = w_dim)
                 embed_features: int | None = None,  # label embedding width (None = w_dim)
                 w_avg_beta: float | None = 0.995):  # decay of the tracked W mean
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_layers = z_dim, c_dim, w_dim, num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                         lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, update_w_avg: bool = False) -> torch.Tensor:
        x = normalize_2nd_moment(z.float())
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: pass a label c of width {self.c_dim}")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return x
