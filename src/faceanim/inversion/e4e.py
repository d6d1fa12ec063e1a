"""e4e (encoder4editing, Tov et al. 2021): real face → W+ codes of a frozen StyleGAN2.

The encoder is an IR-SE-50 backbone (ArcFace-style residual units with squeeze-excitation) with a
small feature pyramid. One style head reads the coarsest map and predicts a single code ``w0``; the
other ``n_styles − 1`` heads predict offsets ``Δ_i`` so that W+ = ``[w0, w0 + Δ_1, …, w0 + Δ_{n−1}]``.
The wrapper adds the generator's average latent, as the official ``pSp.forward`` does.

Module names and parameter shapes equal the official state dict under ``encoder.``, so the weights
of ``e4e_ffhq_encode.pt`` load unchanged. The decoder stored in that file is read elsewhere
(:mod:`faceanim.convert.rosinality`).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.errors import CheckpointError
from faceanim.utils import io

KIND = "e4e-encoder"
INPUT_SIZE = 256   # e4e encodes faces resized to 256×256
W_DIM = 512

# Units per stage of the IR-SE backbone, for each supported depth; channel widths are fixed.
_STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
_STAGE_DEPTHS = (64, 128, 256, 512)
# The official forward taps the body after these unit indices (the ends of stages 2, 3, 4 of IR-50):
# c1 [B,128,64,64], c2 [B,256,32,32], c3 [B,512,16,16].
_TAPS = (6, 20, 23)
_COARSE, _MIDDLE = 3, 7   # heads [0,3) read c3, [3,7) the middle pyramid level, the rest the fine one


@dataclass
class E4EConfig:
    stylegan_size: int = 1024   # output resolution of the generator the codes drive
    num_layers: int = 50        # depth of the IR(-SE) backbone; only 50 has the official feature taps
    mode: str = "ir_se"         # "ir_se": residual units with squeeze-excitation; "ir": without
    input_nc: int = 3           # image channels

    def __post_init__(self) -> None:
        log_size = math.log2(self.stylegan_size) if self.stylegan_size > 0 else 0.5
        if log_size != int(log_size) or self.stylegan_size < 4:
            raise ValueError(f"stylegan_size must be a power of two ≥ 4, got {self.stylegan_size}")
        if self.num_layers != 50:
            # The official forward reads body units 6/20/23, which are stage ends only for 50 layers.
            raise ValueError(f"num_layers must be 50 (the official e4e taps), got {self.num_layers}")
        if self.mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {self.mode!r}")

    @property
    def n_styles(self) -> int:
        """Number of W+ codes, ``2·log2(stylegan_size) − 2`` (18 for 1024)."""
        return 2 * int(math.log2(self.stylegan_size)) - 2


class SEModule(nn.Module):
    """Squeeze-excitation: rescale channels by a gate computed from their global average."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIR(nn.Module):
    """Improved residual unit (BN → conv3 → PReLU → conv3/stride → BN [→ SE]) plus a shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool):
        super().__init__()
        if in_channels == depth:
            # A 1×1 max-pool with a stride is plain subsampling; it holds no parameters.
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, (1, 1), stride, bias=False),
                nn.BatchNorm2d(depth))
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class EqualLinear(nn.Module):
    """Linear layer with the equalized-learning-rate scale ``1/√in`` applied at run time (lr_mul 1)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1.0 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class GradualStyleBlock(nn.Module):
    """Style head: stride-2 conv3 + LeakyReLU(0.01), log2(spatial) times, down to 1×1, then EqualLinear."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int):
        super().__init__()
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        for k in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_channels if k == 0 else out_channels, out_channels, 3, stride=2, padding=1),
                       nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # view(-1, C) as in the official code: for 256×256 inputs the map is 1×1 here.
        return self.linear(self.convs(x).view(-1, self.out_channels))


def _upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: bilinear (align_corners=True) upsampling of ``top`` to ``lateral``'s size, plus it."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class Encoder4Editing(nn.Module):
    """IR-SE-50 + pyramid → W+ codes ``[B, n_styles, 512]`` **without** the average latent.

    Input: ``[B, input_nc, 256, 256]`` in [-1, 1]. Head 0 reads c3 and gives ``w0``; head ``i ≥ 1``
    gives ``Δ_i`` from c3 (i < 3), p2 = c3↑ + latlayer1(c2) (i < 7) or p1 = p2↑ + latlayer2(c1), and
    code ``i`` is ``w0 + Δ_i``. ``progressive_stage`` (training only) limits the active deltas to
    ``1..stage``; at inference it is ``n_styles`` and every delta is used, as in the official model.
    """

    def __init__(self, config: E4EConfig | None = None):
        super().__init__()
        self.config = config = config or E4EConfig()
        self.n_styles = config.n_styles
        se = config.mode == "ir_se"
        self.input_layer = nn.Sequential(nn.Conv2d(config.input_nc, 64, (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(64), nn.PReLU(64))
        units: list[nn.Module] = []
        in_channels = 64
        for depth, count in zip(_STAGE_DEPTHS, _STAGE_UNITS[config.num_layers]):
            for k in range(count):
                units.append(BottleneckIR(in_channels, depth, stride=2 if k == 0 else 1, se=se))
                in_channels = depth
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(
            GradualStyleBlock(W_DIM, W_DIM, 16 if i < _COARSE else 32 if i < _MIDDLE else 64)
            for i in range(self.n_styles))
        self.latlayer1 = nn.Conv2d(256, 512, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(128, 512, kernel_size=1, stride=1, padding=0)
        self.progressive_stage = self.n_styles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.input_nc:
            raise ValueError(f"expected images [B, {self.config.input_nc}, 256, 256], got {list(x.shape)}")
        h = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            h = unit(h)
            if i in _TAPS:
                taps.append(h)
        c1, c2, c3 = taps

        w0 = self.styles[0](c3)
        if w0.shape[0] != x.shape[0]:
            raise ValueError(f"e4e expects 256×256 inputs, got {x.shape[-2]}×{x.shape[-1]}")
        codes = [w0]
        features = c3
        p2 = None
        for i in range(1, self.n_styles):
            if i > self.progressive_stage:   # inactive delta (training stages only): code stays w0
                codes.append(w0)
                continue
            if i == _COARSE:
                p2 = features = _upsample_add(c3, self.latlayer1(c2))
            elif i == _MIDDLE:
                features = _upsample_add(p2, self.latlayer2(c1))
            codes.append(w0 + self.styles[i](features))
        return torch.stack(codes, dim=1)


class E4EInverter(nn.Module):
    """Face images → W+ codes ``[B, n_styles, 512]`` = ``encoder(resize_256(images)) + latent_avg``.

    ``latent_avg`` ``[n_styles, 512]`` is the generator's mean W repeated per layer, as saved by e4e
    training; zeros when the checkpoint was trained without ``start_from_latent_avg``.
    """

    def __init__(self, config: E4EConfig | None = None, latent_avg: torch.Tensor | None = None):
        super().__init__()
        self.config = config or E4EConfig()
        self.encoder = Encoder4Editing(self.config)
        n = self.config.n_styles
        avg = torch.zeros(n, W_DIM) if latent_avg is None else _as_per_layer(latent_avg, n, "latent_avg")
        self.register_buffer("latent_avg", avg.float().clone())

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` (or ``[C, H, W]``) in [-1, 1] → ``[B, C, 256, 256]``.

        The official inference resizes the aligned PIL image with ``transforms.Resize((256, 256))``
        (bilinear, PIL's anti-aliased filter) before ToTensor/Normalize(0.5, 0.5); the anti-aliased
        bilinear resize here is torch's counterpart of that filter (equal up to PIL's uint8 rounding).
        """
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4:
            raise ValueError(f"expected images [B, C, H, W], got {list(images.shape)}")
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], any size → W+ ``[B, n_styles, 512]``."""
        x = self.preprocess(images).to(self.latent_avg.dtype)
        return self.encoder(x) + self.latent_avg

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (encoder weights and ``latent_avg``)."""
        return io.save_pretrained(folder, self.config, self.state_dict(), kind=KIND)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "E4EInverter":
        payload = io.read_config(folder, KIND)
        try:
            config = E4EConfig(**payload)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{folder}: bad e4e config ({exc})") from None
        model = _build(config, io.load_weights(folder), str(folder))
        return model.to(device).eval().requires_grad_(False)


def _as_per_layer(avg: torch.Tensor, n_styles: int, source: str) -> torch.Tensor:
    """Accept ``[512]``, ``[1, 512]`` or ``[n_styles, 512]``; return ``[n_styles, 512]``."""
    if not isinstance(avg, torch.Tensor):
        raise CheckpointError(f"{source}: latent_avg is not a tensor")
    if avg.ndim == 1:
        avg = avg.unsqueeze(0)
    if avg.ndim != 2 or avg.shape[-1] != W_DIM or avg.shape[0] not in (1, n_styles):
        raise CheckpointError(f"{source}: latent_avg has shape {list(avg.shape)}, "
                              f"expected [{W_DIM}] or [{n_styles}, {W_DIM}]")
    return avg.expand(n_styles, W_DIM)


def _build(config: E4EConfig, state: dict[str, torch.Tensor], source: str) -> E4EInverter:
    """An :class:`E4EInverter` holding ``state`` (keys ``encoder.*`` + ``latent_avg``).

    Keys and shapes are checked on a meta-device model first, so a bad file fails before 1 GB of
    parameters is allocated, and the random initialisation (seconds for 267 M weights) is skipped.
    Mismatches are reported as one line. BatchNorm's ``num_batches_tracked`` counters may be absent
    (older checkpoints); they only matter in training.
    """
    with torch.device("meta"):
        model = E4EInverter(config)
    io.check_state_dict(model.state_dict(), state, source, "e4e architecture")
    model = model.to_empty(device="cpu")
    for k, v in model.state_dict().items():
        if k not in state:   # num_batches_tracked
            v.zero_()
    model.load_state_dict(state, strict=False)
    return model


def _opts_dict(opts: object, source: str) -> dict:
    if isinstance(opts, argparse.Namespace):
        return vars(opts)
    if isinstance(opts, dict):
        return dict(opts)
    raise CheckpointError(f"{source}: no training options ('opts'), so it cannot be told from a pSp checkpoint")


def _expected_size(opts: dict) -> int:
    """The generator size the official ``setup_model`` would build (it decides from dataset_type)."""
    dataset = opts.get("dataset_type")
    if isinstance(dataset, str):
        return 1024 if "ffhq" in dataset else 512 if "car" in dataset else 256
    return int(opts.get("stylegan_size", 1024))


def _official(path: str | os.PathLike, mmap: bool = False) -> tuple[E4EConfig, dict, dict, str]:
    """An official e4e ``.pt`` → ``(config, encoder state without the prefix, checkpoint, source)``, checked."""
    from faceanim.convert.rosinality import torch_load_safe

    source = str(path)
    ckpt = torch_load_safe(path, mmap=mmap)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{source}: not an e4e checkpoint (no 'state_dict' dict)")
    opts = _opts_dict(ckpt.get("opts"), source)
    encoder_type = opts.get("encoder_type", "Encoder4Editing")   # the e4e training default
    if encoder_type != "Encoder4Editing":
        raise CheckpointError(f"{source}: encoder_type is {encoder_type!r}, expected 'Encoder4Editing' "
                              f"(pSp and other encoders are not supported)")

    prefix = "encoder."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    heads = {int(m.group(1)) for k in state if (m := re.fullmatch(r"styles\.(\d+)\.linear\.weight", k))}
    if not state or not heads:
        raise CheckpointError(f"{source}: no e4e encoder weights (no 'encoder.styles.*' keys)")
    n_styles = max(heads) + 1
    size = _expected_size(opts)
    try:
        config = E4EConfig(stylegan_size=size)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    if config.n_styles != n_styles:
        raise CheckpointError(f"{source}: opts imply a {size}px generator ({config.n_styles} codes) but the "
                              f"encoder has {n_styles} style heads")
    return config, state, ckpt, source


def load_e4e(path: str | os.PathLike, device: str | torch.device = "cpu") -> E4EInverter:
    """Read an official e4e ``.pt`` (``state_dict`` with ``encoder.*``/``decoder.*``, ``opts``, ``latent_avg``).

    Only the encoder and ``latent_avg`` are taken; the generator under ``decoder.*`` is ignored here.
    No code from the file runs (``weights_only`` load).
    """
    config, state, ckpt, source = _official(path)
    n_styles = config.n_styles
    use_avg = _opts_dict(ckpt.get("opts"), source).get("start_from_latent_avg", True) is not False
    latent_avg = ckpt.get("latent_avg")
    if use_avg and latent_avg is None:
        raise CheckpointError(f"{source}: no 'latent_avg' in the checkpoint (the official code would "
                              f"estimate it from the decoder; not supported)")
    avg = _as_per_layer(latent_avg, n_styles, source) if use_avg else torch.zeros(n_styles, W_DIM)
    model = _build(config, {**{f"encoder.{k}": v for k, v in state.items()}, "latent_avg": avg.float()}, source)
    return model.to(device).eval().requires_grad_(False)


def is_e4e_checkpoint(path: str | os.PathLike) -> bool:
    """Whether a ``torch.save`` file holds an e4e encoder (``state_dict`` with ``encoder.styles.*`` keys);
    memory-mapped, so a look at a 1 GB file costs no reading of its weights."""
    from faceanim.convert.rosinality import torch_load_safe

    ckpt = torch_load_safe(path, mmap=True)
    sd = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    return isinstance(sd, dict) and any(str(k).startswith("encoder.styles.") for k in sd)


def encoder_config(src: str | os.PathLike) -> E4EConfig:
    """The config of an e4e encoder — a native folder or an official ``.pt`` — without building it (the folder's
    config.json, or the file's opts and keys, memory-mapped): how many W+ codes it writes, before any work."""
    path = Path(src)
    if path.is_dir():
        try:
            return E4EConfig(**io.read_config(path, KIND))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad e4e config ({exc})") from None
    if not path.is_file():
        raise CheckpointError(f"inversion encoder not found: {path}")
    return _official(path, mmap=True)[0]


def load_encoder(src: str | os.PathLike, device: str | torch.device = "cpu") -> E4EInverter:
    """An e4e encoder from a native folder (:meth:`E4EInverter.save_pretrained`) or an official ``.pt``."""
    path = Path(src)
    if path.is_dir():
        return E4EInverter.from_pretrained(path, device)
    if path.is_file():
        return load_e4e(path, device)
    raise CheckpointError(f"inversion encoder not found: {path}")


__all__ = ["E4EConfig", "E4EInverter", "Encoder4Editing", "GradualStyleBlock", "encoder_config", "is_e4e_checkpoint",
           "load_e4e", "load_encoder"]
