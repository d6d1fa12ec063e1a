"""Typed configuration of the motion model, saved as ``config.json`` beside its weights."""

from __future__ import annotations

from dataclasses import dataclass

from faceanim.data.prompts import DEFAULT_TEMPLATE
from faceanim.errors import FaceanimError

MODES = ("image", "latent")
INFERENCE_RATES = ("paper", "matched", "official")


@dataclass
class MotionConfig:
    z_dim: int = 1024                 # width of z⁽ⁱ⁾ = the conditioning CLIP's embedding width (RN50: 1024)
    h_dim: int = 384                  # width of the hidden state h⁽ⁱ⁾ (W₁: h_dim×z_dim, W₃: h_dim×2h_dim, IV-A-1)
    num_ws: int = 18                  # W+ entries of the generator (FFHQ-1024: 18)
    w_dim: int = 512                  # W width of the generator
    mapper_hidden: int = 1024         # hidden width of the mappers H_v, H_t
    mapper_layers: int = 3            # linear layers per mapper
    mapper_layout: str = "project"    # "project": last layer linear, zero at start; "official": the official code's
                                      # equalized-lr layers, leaky ReLU ×√2 on every layer (motion/mappers.py)
    h0_std: float = 0.1               # h⁽¹⁾ ~ N(0, 0.01·I): standard deviation 0.1
    residual_rate: float = 0.2        # r₁ = r₂ during training (eq. 4–5)
    slope: float = 0.1                # negative slope of σ, the leaky ReLU of eq. 3–5
    mode: str = "image"               # "image": visual encoder on (real photos); "latent": w_s sampled, no E_v
    mapper_input: str = "code"        # "code": Δw⁽ⁱ⁾ = H_t(z⁽ⁱ⁾) (eq. 7); "offset": H_t(z⁽ⁱ⁾ − z⁽¹⁾) (official code)
    template: str = DEFAULT_TEMPLATE     # prompt template used with this model (paper IV-F-3)
    inference_rates: str = "paper"    # "paper": r⁽ⁱ⁾ = 0.2·(T+1−i)/T; "matched": the same decaying shape scaled so
                                      # that Σr over the video equals training's (train_frames−1)·0.2; "official":
                                      # the official code's r = 0.8/T, also in training (= 0.2 at T = 4), times the
                                      # same decay at inference (a 16-frame video travels 0.375, the paper's 1.5)
    train_frames: int = 0             # frames per training video (set by the trainer; needed by "matched")
    edit_ws: int = 0                  # Δw⁽ⁱ⁾ only on the first N W+ entries (coarse and middle layers; the fine
                                      # ones, which carry colour, stay at w_s); 0: all entries, as the paper
    frozen_directions: int = 0        # K: Δw⁽ⁱ⁾ is projected off K fixed W directions (an orthonormal basis kept
                                      # in the weights as ``frozen_basis``), e.g. identity attributes the motion
                                      # must not change (beyond the paper; 0: off)
    detach_visual: bool = False       # True: z⁽¹⁾ = z_t + stop-gradient(z_v), as the official code (M's gradient
                                      # does not reach E_v; H_v's does)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FaceanimError(f"motion mode must be one of {MODES}, got {self.mode!r}")
        if self.inference_rates not in INFERENCE_RATES:
            raise FaceanimError(f"inference_rates must be one of {', '.join(INFERENCE_RATES)}, "
                                f"got {self.inference_rates!r}")
        if self.inference_rates == "matched" and self.train_frames < 2:
            raise FaceanimError("inference_rates 'matched' needs train_frames ≥ 2 (frames per training video)")
        if self.mapper_layout not in ("project", "official"):
            raise FaceanimError(f"mapper_layout must be 'project' or 'official', got {self.mapper_layout!r}")
        if self.mapper_input not in ("code", "offset"):
            raise FaceanimError(f"mapper_input must be 'code' or 'offset', got {self.mapper_input!r}")
        if not 0 <= self.frozen_directions < self.w_dim:
            raise FaceanimError(f"frozen_directions {self.frozen_directions}: expected 0 to w_dim − 1 ({self.w_dim - 1})")
        if not 0 <= self.edit_ws <= self.num_ws:
            raise FaceanimError(f"edit_ws {self.edit_ws}: expected 0 (every W+ entry) to num_ws ({self.num_ws})")
        if min(self.z_dim, self.h_dim, self.num_ws, self.w_dim, self.mapper_hidden, self.mapper_layers) <= 0:
            raise FaceanimError("motion model widths and depths must be positive")
