"""Latent regularizers of section III-E: identity (eq. 9) and path smoothness (eq. 10). They read no pixels."""

from __future__ import annotations

import torch
from torch import nn

REDUCTIONS = ("mean", "sum")


def _reduce(sq: torch.Tensor, reduction: str) -> torch.Tensor:
    """sq: squared differences ``[B, K, num_ws, w_dim]``. "sum" is the equations' Σ‖·‖² (averaged over the batch);
    "mean" divides that by K·num_ws·w_dim, i.e. the MSE the official code uses, on which the paper's weights
    (1.0, 1.0, 0.5, 1.0) were tuned."""
    if reduction == "sum":
        return sq.sum() / sq.shape[0]
    return sq.mean()


class WRegularization(nn.Module):
    """L_w-reg = Σᵢ ‖w⁽ⁱ⁾ − w_s‖²₂ (eq. 9): keeps every frame close to the source code (identity)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}")
        self.reduction = reduction

    def forward(self, ws: torch.Tensor, w_s: torch.Tensor) -> torch.Tensor:
        """ws ``[B, T, num_ws, w_dim]``, w_s ``[B, num_ws, w_dim]``."""
        return _reduce((ws - w_s.unsqueeze(1)).square(), self.reduction)


class PathRegularization(nn.Module):
    """L_path-reg = Σᵢ ‖δ⁽ⁱ⁺¹⁾ − δ⁽ⁱ⁾‖²₂ with δ⁽ⁱ⁾ = w⁽ⁱ⁺¹⁾ − w⁽ⁱ⁾ (eq. 10): equal steps between frames.

    ``order=1`` is the ablation of IV-D (Σ‖δ⁽ⁱ⁾‖², first-order differences).
    """

    def __init__(self, order: int = 2, reduction: str = "mean"):
        super().__init__()
        if order not in (1, 2):
            raise ValueError("path regularization order must be 1 or 2")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}")
        self.order, self.reduction = order, reduction

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        d = ws[:, 1:] - ws[:, :-1]
        if self.order == 2:
            d = d[:, 1:] - d[:, :-1]
        if d.shape[1] == 0:
            return ws.sum() * 0.0
        return _reduce(d.square(), self.reduction)


class FirstLastRegularization(nn.Module):
    """‖w⁽ᵀ⁾ − w⁽¹⁾‖²₂: the official code's ``lambda_w_reg`` term, MSE(Δw⁽¹⁾, Δw⁽ᵀ⁾) (``tools/dist_train.py``), which
    is not in the paper. Off by default (``loss.first_last``)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}")
        self.reduction = reduction

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """ws ``[B, T, num_ws, w_dim]``."""
        return _reduce((ws[:, -1:] - ws[:, :1]).square(), self.reduction)
