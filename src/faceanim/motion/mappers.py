"""Visual mapper H_v and text-aware motion mapper H_t into StyleGAN2's W+ space (section III-D, eq. 6–7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYOUTS = ("project", "official")
SQRT2 = 2 ** 0.5


class _WPlusMLP(nn.Module):
    """PixelNorm → (Linear → leaky ReLU 0.2) × (L−1) → Linear to ``num_ws × w_dim``.

    The last layer starts at zero so that an untrained model adds no offset: training begins from the
    source face (w⁽ⁱ⁾ = w_s) and the losses move it.

    ``layout="official"``: the official code's mapper (``modelv1.py``, ``Mapper``): every layer, the last one
    included, is an equalized-learning-rate linear layer (weights drawn from N(0, 1) and scaled by 1/√in at run
    time, biases at zero) followed by leaky ReLU 0.2 × √2; an untrained mapper adds a random offset. The same
    parameter names and shapes, so a saved model's config decides which forward pass its weights get.
    """

    def __init__(self, in_dim: int, num_ws: int, w_dim: int, hidden: int = 1024, layers: int = 3,
                 layout: str = "project"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"mapper layout must be one of {LAYOUTS}, got {layout!r}")
        self.num_ws, self.w_dim, self.layout = num_ws, w_dim, layout
        dims = [in_dim] + [hidden] * (layers - 1) + [num_ws * w_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        if layout == "official":
            for layer in self.layers:
                nn.init.normal_(layer.weight)
                nn.init.zeros_(layer.bias)
        else:
            nn.init.zeros_(self.layers[-1].weight)
            nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[..., in_dim]`` → ``[..., num_ws, w_dim]``."""
        x = x * (x.square().mean(dim=-1, keepdim=True) + 1e-8).rsqrt()
        if self.layout == "official":
            for layer in self.layers:
                x = F.leaky_relu(F.linear(x, layer.weight * layer.weight.shape[1] ** -0.5, layer.bias), 0.2) * SQRT2
        else:
            for layer in self.layers[:-1]:
                x = F.leaky_relu(layer(x), 0.2)
            x = self.layers[-1](x)
        return x.reshape(*x.shape[:-1], self.num_ws, self.w_dim)


class VisualMapper(_WPlusMLP):
    """H_v: visual embedding z_v ``[B, z_dim]`` → w_v ``[B, num_ws, w_dim]`` (eq. 6)."""


class MotionMapper(_WPlusMLP):
    """H_t: motion code z⁽ⁱ⁾ ``[B, T, z_dim]`` → Δw⁽ⁱ⁾ ``[B, T, num_ws, w_dim]`` (eq. 7)."""
