"""The ToonFace ground-truth evaluator: a small CNN that reads the factors back from an image.

It gives the evaluation objective metrics in the renderer's own terms: did "smiling" raise the ``smile`` factor,
did the identity factors stay put. Trained on renders (``faceanim toon train-evaluator``, see
``train_evaluator``), with Gaussian blur so that it also reads the softer images of a generator.

Outputs follow the ``ToonParams`` layout ``[B, P]``: continuous factors are regressed (a sigmoid scaled to the
factor's range; the periodic hues as an angle), a one-hot factor is classified and reported as probabilities.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.toon.factors import FACTOR_BY_NAME, FACTORS, PARAM_DIM, SLICES, Factor, ToonParams
from faceanim.utils.io import check_state_dict, load_weights, read_typed_config, save_pretrained

KIND = "toon-evaluator"

# Hues live on a circle (factors.py: "periodic"): 0.99 and 0.01 are neighbours, so they are predicted as
# (cos, sin) of 2π·h rather than regressed as a number.
PERIODIC: tuple[str, ...] = ("hair_hue", "shirt_hue", "bg_hue")

ALL_FACTORS: tuple[str, ...] = tuple(f.name for f in FACTORS)


@dataclass
class EvaluatorConfig:
    image_size: int = 64                            # input resolution; images of other sizes are resized (antialiased)
    width: int = 16                                 # channels after the stem; doubled at each of 3 downsamplings
    hidden: int = 256                               # width of the fully connected layer before the heads
    factors: tuple[str, ...] = ALL_FACTORS          # which factors to predict (the others read as NaN)
    identity_scale: dict[str, float] = field(default_factory=dict)  # per identity factor, see identity_scales()

    def __post_init__(self) -> None:
        self.factors = tuple(self.factors)
        unknown = [n for n in self.factors if n not in FACTOR_BY_NAME]
        if unknown:
            raise ValueError(f"unknown ToonFace factors {unknown}")
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {self.image_size}")
        if not self.identity_scale:
            self.identity_scale = identity_scales(self.factors)


def _mode(f: Factor) -> str:
    """How a factor is predicted: ``class`` (one-hot logits), ``angle`` (cos, sin) or ``logit`` (sigmoid)."""
    return "class" if f.kind == "onehot" else "angle" if f.name in PERIODIC else "logit"


def _out_dim(f: Factor) -> int:
    return {"class": f.dim, "angle": 2, "logit": 1}[_mode(f)]


def _identity_embedding(f: Factor, value: torch.Tensor) -> torch.Tensor:
    """A factor's values (``[B]``, or ``[B, K]`` probabilities) as points whose L2 distance means 'how different'."""
    if _mode(f) == "class":
        return value
    if _mode(f) == "angle":
        a = 2 * math.pi * value
        return torch.stack([a.cos(), a.sin()], dim=1)
    return value[:, None]


def _identity_parts(factors: tuple[str, ...], p: ToonParams) -> dict[str, torch.Tensor]:
    """Unscaled identity embeddings per factor. The frame shape only counts as far as glasses are worn."""
    parts = {n: _identity_embedding(FACTOR_BY_NAME[n], p[n]) for n in factors if FACTOR_BY_NAME[n].group == "identity"}
    if "glasses_shape" in parts and "glasses" in factors:
        parts["glasses_shape"] = parts["glasses_shape"] * p["glasses"].clamp(0, 1)[:, None]
    return parts


def identity_scales(factors: tuple[str, ...] = ALL_FACTORS, n: int = 8192, seed: int = 0) -> dict[str, float]:
    """Per identity factor, the scale that makes the mean squared distance between two random identities 2
    (a standardised scalar's), so every factor weighs the same in ``identity_features`` whatever its range."""
    p = ToonParams.sample(n, seed=seed)
    out = {}
    for name, e in _identity_parts(factors, p).items():
        d2 = (e - e.roll(1, dims=0)).square().sum(1).mean()
        out[name] = round(float(torch.sqrt(2.0 / d2.clamp_min(1e-8))), 6)
    return out


class ConvBlock(nn.Sequential):
    """3×3 convolution → batch norm → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ToonEvaluator(nn.Module):
    """Images ``[B, 3, H, W]`` in [-1, 1] → ToonFace factors.

    Backbone: a stride-2 stem then three (stride-2, stride-1) block pairs, S → S/16 (64 px → 4×4, ≈0.57 M
    parameters at width 16); the 4×4 map is flattened, not pooled, so that the heads know *where* things are
    (gaze direction, which eye winks, head tilt).
    """

    def __init__(self, config: EvaluatorConfig | None = None):
        super().__init__()
        self.config = config = config or EvaluatorConfig()
        w = config.width
        blocks: list[nn.Module] = [ConvBlock(3, w, 2)]
        for c in (2 * w, 4 * w, 8 * w):
            blocks += [ConvBlock(c // 2, c, 2), ConvBlock(c, c, 1)]
        self.features = nn.Sequential(*blocks)
        self.layout: list[tuple[Factor, str, slice]] = []  # (factor, mode, slice of the head output)
        i = 0
        for name in config.factors:
            f = FACTOR_BY_NAME[name]
            self.layout.append((f, _mode(f), slice(i, i + _out_dim(f))))
            i += _out_dim(f)
        self.head = nn.Sequential(nn.Conv2d(8 * w, 64, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(4),
                                  nn.Flatten(), nn.Linear(64 * 16, config.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(config.hidden, i))
        self.to(memory_format=torch.channels_last)  # ≈1.5× faster convolutions on CPU

    @property
    def identity_dim(self) -> int:
        """D of ``identity_features``."""
        return sum(_out_dim(FACTOR_BY_NAME[n]) for n in self._identity_names())

    def _identity_names(self) -> list[str]:
        # config order (config.json stores the scale dict with sorted keys)
        return [n for n in self.config.factors if n in self.config.identity_scale]

    # -- network ---------------------------------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check ``[B, 3, H, W]`` and resize to the evaluator's resolution (bilinear with antialiasing)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {list(images.shape)}")
        s = self.config.image_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return images.contiguous(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw head outputs ``[B, H]`` (logits and (cos, sin) pairs, in ``self.layout`` order)."""
        return self.head(self.features(self.prepare(images)))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw head outputs → factor vector ``[B, P]``; factors not predicted are NaN."""
        v = torch.full((raw.shape[0], PARAM_DIM), float("nan"), dtype=raw.dtype, device=raw.device)
        for f, mode, sl in self.layout:
            out = raw[:, sl]
            if mode == "class":
                v[:, SLICES[f.name]] = out.softmax(1)
            elif mode == "angle":
                v[:, SLICES[f.name].start] = torch.atan2(out[:, 1], out[:, 0]).div(2 * math.pi).remainder(1.0)
            else:
                v[:, SLICES[f.name].start] = f.low + (1 - f.low) * out[:, 0].sigmoid()
        return v

    # -- reading factors -------------------------------------------------------------------------------------------
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Images → factor vector ``[B, P]`` in the ``ToonParams`` layout (one-hot blocks as probabilities)."""
        return self.decode(self(images))

    def predict_params(self, images: torch.Tensor) -> ToonParams:
        return ToonParams(self.predict(images))

    def factor(self, images: torch.Tensor, name: str) -> torch.Tensor:
        """One factor: ``[B]`` (``[B, K]`` probabilities for a one-hot factor)."""
        if name not in self.config.factors:
            raise KeyError(f"this evaluator does not predict {name!r}")
        return self.predict_params(images)[name]

    def expression(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The predicted expression and attribute factors, name → ``[B]``."""
        p = self.predict_params(images)
        return {n: p[n] for n in self.config.factors if FACTOR_BY_NAME[n].group != "identity"}

    def prompt_scores(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per ``PROMPT_TARGETS`` key, how far the image went toward the key's target: factor × target, ``[B]``
        (0 = neutral, 1 = at target; ``gaze_left`` reads −gaze)."""
        from faceanim.toon.captions import PROMPT_TARGETS

        keys = [k for k, (name, _) in PROMPT_TARGETS.items() if name in self.config.factors]
        return prompt_scores(self.predict(images), keys)

    def identity_features(self, images: torch.Tensor) -> torch.Tensor:
        """Identity embedding ``[B, D]`` from the predicted identity factors only.

        Each factor is embedded (value; (cos, sin) for hues; probabilities for the hair style), scaled so that its
        mean squared distance between random identities is 2, and the whole divided by √(number of factors). So
        the L2 distance is 0 for the same identity and ≈√2 (RMS) between two random ones, and every factor weighs
        the same: average-content-distance (ACD) style metrics read directly in these units.
        """
        return self.identity_features_from(self.predict(images))

    def identity_features_from(self, vector: torch.Tensor) -> torch.Tensor:
        """``identity_features`` of factor vectors ``[B, P]`` (predicted, or the ground truth of renders)."""
        scale = self.config.identity_scale
        parts = _identity_parts(tuple(self.config.factors), ToonParams(vector))
        feats = [parts[n] * scale[n] for n in self._identity_names()]
        return torch.cat(feats, dim=1) / math.sqrt(max(len(feats), 1))

    # -- files -----------------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (the native format)."""
        return save_pretrained(folder, self.config, self.state_dict(), kind=KIND)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "ToonEvaluator":
        """Load a native evaluator folder (no pickle involved), in eval mode without gradients."""
        model = cls(read_typed_config(folder, KIND, EvaluatorConfig))
        state = load_weights(folder)
        check_state_dict(model.state_dict(), state, str(folder), "evaluator config", optional=())
        model.load_state_dict(state)
        return model.to(device).eval().requires_grad_(False)


def prompt_scores(vector: torch.Tensor, keys: list[str] | None = None) -> dict[str, torch.Tensor]:
    """``ToonEvaluator.prompt_scores`` on factor vectors ``[B, P]`` (predicted or ground truth)."""
    from faceanim.toon.captions import PROMPT_TARGETS

    p = ToonParams(vector)
    return {k: p[PROMPT_TARGETS[k][0]] * PROMPT_TARGETS[k][1] for k in (PROMPT_TARGETS if keys is None else keys)}
