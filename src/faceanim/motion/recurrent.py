"""Recurrent motion generator M (section III-C, eq. 3–5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RecurrentMotionGenerator(nn.Module):
    """Turns the initial code z⁽¹⁾ = z_t + z_v into T motion codes z⁽¹⁾…z⁽ᵀ⁾:

        c⁽ⁱ⁾ = σ(W₁ z⁽ⁱ⁻¹⁾) ‖ h⁽ⁱ⁻¹⁾                (3)
        z⁽ⁱ⁾ = z⁽ⁱ⁻¹⁾ + r₁ · σ(W₂ c⁽ⁱ⁾)             (4)
        h⁽ⁱ⁾ = h⁽ⁱ⁻¹⁾ + r₂ · σ(W₃ c⁽ⁱ⁾)             (5)

    σ = leaky ReLU (slope 0.1), h⁽¹⁾ ~ N(0, 0.01·I). Training uses r₁ = r₂ = 0.2; inference decays
    the rates linearly, r⁽ⁱ⁾ = 0.2·(T+1−i)/T, against the accumulation of artifacts in long sequences.
    """

    def __init__(self,
                 z_dim: int = 1024,            # width of z (the CLIP embedding width)
                 h_dim: int = 384,             # width of h
                 residual_rate: float = 0.2,   # r₁ = r₂ in training
                 h0_std: float = 0.1,          # std of h⁽¹⁾
                 slope: float = 0.1,           # leaky ReLU slope of σ
                 matched_train_frames: int = 0,  # > 0: inference rates sum to training's (T_train−1)·r
                 official_rates: bool = False):  # the official code's r = 4·r/T (training and inference)
        super().__init__()
        if matched_train_frames and official_rates:
            raise ValueError("matched_train_frames and official_rates are two different schedules: choose one")
        self.matched_train_frames, self.official_rates = matched_train_frames, official_rates
        self.z_dim, self.h_dim = z_dim, h_dim
        self.residual_rate, self.h0_std, self.slope = residual_rate, h0_std, slope
        self.W1 = nn.Linear(z_dim, h_dim)           # 384 × z_dim
        self.W2 = nn.Linear(2 * h_dim, z_dim)       # z_dim × 768
        self.W3 = nn.Linear(2 * h_dim, h_dim)       # 384 × 768

    def rates(self, num_frames: int, decay: bool) -> list[float]:
        """r for the steps i = 2…T: constant in training, 0.2·(T+1−i)/T with ``decay`` (inference). With
        ``matched_train_frames`` = T_train, the decaying rates are rescaled to sum to (T_train − 1)·0.2, the total of
        a training video, so that a video of any length travels as far as the model was trained to (the paper's
        schedule travels 0.2·(T−1)/2, e.g. 2.5× the training distance for T = 16 after training on 4 frames).
        With ``official_rates`` the rate is the official code's 0.8/T (``rnn.py``: ``w_residual * 4.0 / n_frames``)
        in training and times the same linear decay at inference: 0.2 when training on 4 frames, and a 16-frame
        video travels 0.4·(T−1)/T = 0.375."""
        T = num_frames
        base = self.residual_rate * 4.0 / T if self.official_rates else self.residual_rate
        if not decay:
            return [base] * (T - 1)
        rates = [base * (T + 1 - i) / T for i in range(2, T + 1)]
        if self.matched_train_frames and rates:
            scale = self.residual_rate * (self.matched_train_frames - 1) / sum(rates)
            rates = [r * scale for r in rates]
        return rates

    def forward(self, z1: torch.Tensor, num_frames: int, decay: bool = False,
                h1: torch.Tensor | None = None, rng: torch.Generator | None = None) -> torch.Tensor:
        """z1: ``[B, z_dim]`` → motion codes ``[B, T, z_dim]`` (the first one is z1 itself).

        ``h1`` overrides the random initial hidden state (``[B, h_dim]``); ``rng`` seeds it.
        """
        if num_frames < 1:
            raise ValueError(f"num_frames must be ≥ 1, got {num_frames}")
        if h1 is None:
            h1 = torch.randn(z1.shape[0], self.h_dim, generator=rng,
                             device=z1.device if rng is None else rng.device).to(z1) * self.h0_std
        z, h = z1, h1
        codes = [z]
        for r in self.rates(num_frames, decay):
            c = torch.cat([F.leaky_relu(self.W1(z), self.slope), h], dim=-1)
            z = z + r * F.leaky_relu(self.W2(c), self.slope)
            h = h + r * F.leaky_relu(self.W3(c), self.slope)
            codes.append(z)
        return torch.stack(codes, dim=1)
