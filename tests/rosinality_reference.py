"""An independent, deliberately plain re-computation of rosinality's StyleGAN2 generator forward pass.

It works directly on a rosinality ``g_ema`` state dict (no faceanim code), the way rosinality's
``model.py`` computes it: fused per-sample modulated kernels through grouped convolution, the weight
scale applied before demodulation, grouped transposed convolution + [1,3,3,1] blur (pad (1,1), ×4),
skip upsampling by zero insertion + padding (2,1) + 4×4 filter ×4, fused leaky ReLU (bias, 0.2, ×√2).
Used by the converter tests as ground truth.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def make_state(size: int, style_dim: int, n_mlp: int, channels: dict[int, int], seed: int = 0) -> dict:
    """Random weights in rosinality's exact ``Generator.state_dict()`` layout (incl. blur/upsample buffers)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    k1 = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k2 = k1[None] * k1[:, None]
    k2 = k2 / k2.sum()
    sd: dict[str, torch.Tensor] = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = rnd(style_dim, style_dim) / 0.01
        sd[f"style.{i}.bias"] = rnd(style_dim) * 0.1

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        sd[f"{prefix}.conv.weight"] = rnd(1, cout, cin, 3, 3)
        sd[f"{prefix}.conv.modulation.weight"] = rnd(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1.0 + 0.1 * rnd(cin)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = k2 * 4
        sd[f"{prefix}.noise.weight"] = 0.3 * rnd(1)
        sd[f"{prefix}.activate.bias"] = 0.1 * rnd(cout)

    def torgb(prefix: str, cin: int, up: bool) -> None:
        if up:
            sd[f"{prefix}.upsample.kernel"] = k2 * 4
        sd[f"{prefix}.conv.weight"] = rnd(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = rnd(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1.0 + 0.1 * rnd(cin)
        sd[f"{prefix}.bias"] = 0.1 * rnd(1, 3, 1, 1)

    log_size = int(math.log2(size))
    sd["input.input"] = rnd(1, channels[4], 4, 4)
    styled("conv1", channels[4], channels[4], False)
    torgb("to_rgb1", channels[4], False)
    cin = channels[4]
    for k, i in enumerate(range(3, log_size + 1)):
        cout = channels[2 ** i]
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        torgb(f"to_rgbs.{k}", cout, True)
        cin = cout
    num_layers = (log_size - 2) * 2 + 1
    for layer_idx in range(num_layers):
        res = (layer_idx + 5) // 2
        sd[f"noises.noise_{layer_idx}"] = rnd(1, 1, 2 ** res, 2 ** res)
    return sd


def _upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    b, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros(b, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = torch.flip(kernel, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def _linear(x, w, b, lr_mul=1.0, act=False):
    out = F.linear(x, w * (lr_mul / math.sqrt(w.shape[1])))
    out = out + b * lr_mul
    if act:
        out = F.leaky_relu(out, 0.2) * math.sqrt(2)
    return out


def _modconv(sd, prefix, x, style, demodulate, up):
    b, cin, h, w = x.shape
    weight = sd[f"{prefix}.conv.weight"]  # [1, O, I, k, k]
    _, cout, _, k, _ = weight.shape
    s = _linear(style, sd[f"{prefix}.conv.modulation.weight"], sd[f"{prefix}.conv.modulation.bias"])
    weight = (1 / math.sqrt(cin * k * k)) * weight * s.view(b, 1, cin, 1, 1)
    if demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, cout, 1, 1, 1)
    if up:
        weight = weight.transpose(1, 2).reshape(b * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, h, w), weight, stride=2, groups=b)
        out = out.view(b, cout, out.shape[-2], out.shape[-1])
        kern = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kern = kern[None] * kern[:, None]
        return _upfirdn(out, kern / kern.sum() * 4, 1, (1, 1))
    out = F.conv2d(x.reshape(1, b * cin, h, w), weight.reshape(b * cout, cin, k, k), padding=k // 2, groups=b)
    return out.view(b, cout, h, w)


def _styled(sd, prefix, x, style, noise, up=False):
    out = _modconv(sd, prefix, x, style, True, up)
    if noise is not None:
        out = out + sd[f"{prefix}.noise.weight"] * noise
    return F.leaky_relu(out + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def _torgb(sd, prefix, x, style, skip):
    out = _modconv(sd, prefix, x, style, False, False) + sd[f"{prefix}.bias"]
    if skip is not None:
        kern = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kern = kern[None] * kern[:, None]
        out = out + _upfirdn(skip, kern / kern.sum() * 4, 2, (2, 1))
    return out


def mapping(sd: dict, z: torch.Tensor, lr_mlp: float = 0.01) -> torch.Tensor:
    x = z * torch.rsqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        x = _linear(x, sd[f"style.{i}.weight"], sd[f"style.{i}.bias"], lr_mlp, act=True)
        i += 1
    return x


def synthesize(sd: dict, latent: torch.Tensor, use_noise: bool = True) -> torch.Tensor:
    """latent: W+ ``[B, n_latent, style_dim]``; noise: the stored ``noises.*`` buffers, or none at all."""
    n_convs = len([k for k in sd if k.startswith("convs.") and k.endswith(".conv.weight")])
    noise = [sd[f"noises.noise_{i}"] if use_noise else None for i in range(n_convs + 1)]
    out = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    out = _styled(sd, "conv1", out, latent[:, 0], noise[0])
    skip = _torgb(sd, "to_rgb1", out, latent[:, 1], None)
    i = 1
    for k in range(n_convs // 2):
        out = _styled(sd, f"convs.{2 * k}", out, latent[:, i], noise[2 * k + 1], up=True)
        out = _styled(sd, f"convs.{2 * k + 1}", out, latent[:, i + 1], noise[2 * k + 2])
        skip = _torgb(sd, f"to_rgbs.{k}", out, latent[:, i + 2], skip)
        i += 2
    return skip
