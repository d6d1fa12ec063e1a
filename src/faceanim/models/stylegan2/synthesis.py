"""Synthesis network g: W+ → image of StyleGAN2 (skip architecture), in plain PyTorch."""

from __future__ import annotations

import math

import torch
from torch import nn

from faceanim.models.stylegan2.mapping import FullyConnectedLayer
import torch.nn.functional as F

from faceanim.models.stylegan2.ops import LRELU_GAIN, LRELU_SLOPE, demodulation_coefficients, modulated_conv2d, upsample2d

NOISE_MODES = ("const", "random", "none")


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution (optionally 2× up) + noise + bias + leaky ReLU."""

    def __init__(self,
                 in_channels: int,                # input feature maps
                 out_channels: int,               # output feature maps
                 w_dim: int,                      # W width (input of the style affine)
                 resolution: int,                 # output resolution of this layer
                 up: bool = False,                # 2× upsampling before the convolution
                 use_noise: bool = True,          # add per-pixel noise
                 conv_clamp: float | None = None, # clamp outputs to ±X
                 taps: torch.Tensor | None = None):  # 1-D FIR taps for the up-sampling blur
        super().__init__()
        self.resolution, self.up, self.use_noise, self.conv_clamp = resolution, up, use_noise, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("taps", taps if taps is not None else torch.tensor([1., 3., 3., 1.]) / 8, persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                rng: torch.Generator | None = None) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, up=self.up, blur_taps=self.taps)
        # Epilogue in one pass: demodulate, add noise and bias, leaky ReLU. The activation gain √2 is folded
        # into the small factors since lrelu(g·v) = g·lrelu(v) for g > 0.
        dcoefs = demodulation_coefficients(self.weight, styles) * LRELU_GAIN  # [B, O]
        bias = (self.bias * LRELU_GAIN).reshape(1, -1, 1, 1).to(x.dtype)
        noise = None
        if self.use_noise and noise_mode != "none":
            if noise_mode == "const":
                noise = self.noise_const[None, None]
            else:
                noise = torch.randn((x.shape[0], 1, self.resolution, self.resolution), generator=rng,
                                    device=x.device if rng is None else rng.device).to(x.device)
            noise = (noise * (self.noise_strength * LRELU_GAIN)).to(x.dtype)  # [1 or B, 1, H, W]
        if noise is None:
            x = torch.addcmul(bias, x, dcoefs.to(x.dtype)[:, :, None, None])
        else:  # never materialize a [C, H, W] bias + noise tensor
            x = torch.addcmul(noise, x, dcoefs.to(x.dtype)[:, :, None, None]).add_(bias)
        x = F.leaky_relu_(x, LRELU_SLOPE)
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class ToRGBLayer(nn.Module):
    """Modulated 1×1 convolution to RGB, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles)
        x = x + self.bias.reshape(1, -1, 1, 1).to(x.dtype)
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class SynthesisBlock(nn.Module):
    """One resolution: (const | 2× up conv0) → conv1 → toRGB added to the upsampled skip image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 use_noise: bool = True, conv_clamp: float | None = None, taps: torch.Tensor | None = None):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True,
                                        use_noise=use_noise, conv_clamp=conv_clamp, taps=taps)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    use_noise=use_noise, conv_clamp=conv_clamp, taps=taps)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("taps", taps if taps is not None else torch.tensor([1., 3., 3., 1.]) / 8, persistent=False)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "const",
                rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ws: ``[B, num_conv + 1, w_dim]``; returns features and the running RGB image."""
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            if x.device.type == "cpu":  # oneDNN's convolutions and depthwise FIR filters are fastest in NHWC
                x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = self.conv0(x, next(w_iter), noise_mode, rng)
        x = self.conv1(x, next(w_iter), noise_mode, rng)
        y = self.torgb(x, next(w_iter))
        img = y if img is None else upsample2d(img, self.taps) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ ``[B, num_ws, w_dim]`` → image ``[B, img_channels, R, R]`` (roughly in [-1, 1])."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channels: dict[int, int],
                 use_noise: bool = True, conv_clamp: float | None = None, resample_filter: list[int] | None = None):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, img_resolution.bit_length())]
        taps = torch.tensor(resample_filter or [1, 3, 3, 1], dtype=torch.float32)
        taps = taps / taps.sum()
        for res in self.block_resolutions:
            in_ch = channels[res // 2] if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(in_ch, channels[res], w_dim, res, img_channels,
                                                    use_noise=use_noise, conv_clamp=conv_clamp, taps=taps.clone()))
        self.num_ws = 2 * len(self.block_resolutions)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const",
                rng: torch.Generator | None = None) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + 1), noise_mode, rng)
            w_idx += block.num_conv
        return img


def synthesize_checkpointed(synthesis: nn.Module, ws: torch.Tensor, chunk: int = 1,
                            noise_mode: str = "const") -> torch.Tensor:
    """``synthesis(ws)`` with activation checkpointing, for training through a frozen generator.

    The W+ codes ``[N, num_ws, w_dim]`` go through in chunks of ``chunk`` images; each chunk keeps only its codes and
    its output image for the backward pass, which renders the chunk once more with its activations
    (``torch.utils.checkpoint``, non-reentrant). Peak activation memory is that of ``chunk`` images instead of all
    ``N`` (at 1024 px several GiB per image), for one extra forward pass per step. The gradients are those of the
    plain call. ``noise_mode="random"`` is refused: the second rendering would draw other noise.
    """
    from torch.utils.checkpoint import checkpoint

    if noise_mode == "random":
        raise ValueError("activation checkpointing needs deterministic noise (noise_mode 'const' or 'none')")
    if chunk < 1:
        raise ValueError(f"chunk must be ≥ 1, got {chunk}")
    outs = [checkpoint(synthesis, ws[i:i + chunk], noise_mode, use_reentrant=False)
            for i in range(0, ws.shape[0], chunk)]
    return outs[0] if len(outs) == 1 else torch.cat(outs)
