"""Pure-PyTorch ops of StyleGAN2: FIR resampling, modulated convolution, bias + activation.

Nothing here is compiled; every op runs on CPU, MPS and CUDA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activation variance of leaky ReLU at ~1 (StyleGAN2's def_gain)
POLYPHASE_MAX_CHANNELS = 256   # 2× up-convolutions with at most this many input channels …
POLYPHASE_MIN_PIXELS = 128 * 128  # … and inputs of at least this many pixels run as 4 phase convolutions


def setup_filter(taps: list[int] | tuple[int, ...]) -> torch.Tensor:
    """Separable FIR taps → normalized 2-D filter ``[k, k]`` (e.g. [1,3,3,1] → outer product / 64)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with the 2-D FIR filter ``f``, downsample.

    x: ``[B, C, H, W]``; pad: (x0, x1, y0, y1), negative values crop. The filter is applied as a true
    convolution (flipped), which is what StyleGAN2 does; symmetric filters make no difference.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    x = F.pad(x, (max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)))
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """2× FIR upsampling of ``[B, C, H, W]`` (StyleGAN2's skip-image upsampling, pad (2, 1), gain 4).

    Implemented as a strided transposed depthwise convolution, which equals zero insertion + filtering.
    """
    c = x.shape[1]
    k = taps.numel()
    f2 = (taps[:, None] * taps[None, :]) * 4.0
    weight = f2.to(x.dtype)[None, None].expand(c, 1, k, k)
    # Zero-insert + pad (p0, p1) + conv(k) ≡ conv_transpose(stride 2) cropped by (k - 1 - p0) at the start.
    p0 = (k - 2 + 1) // 2 + 1
    y = F.conv_transpose2d(x, weight, stride=2, groups=c)
    start = k - 1 - p0
    size_h, size_w = x.shape[2] * 2, x.shape[3] * 2
    return y[:, :, start:start + size_h, start:start + size_w]


def blur2d(x: torch.Tensor, taps: torch.Tensor, pad: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """``upfirdn2d(x, outer(taps), pad=(p0, p1, p0, p1), gain)`` for a symmetric separable filter, as one
    depthwise 2-D convolution (fastest on CPU in channels-last layout, where it is a single pass)."""
    c = x.shape[1]
    f = (taps[:, None] * taps[None, :] * gain).flip([0, 1]).to(x.dtype)
    weight = f[None, None].expand(c, 1, *f.shape)
    if pad[0] == pad[1]:  # let the convolution pad: no padded copy of a large activation
        return F.conv2d(x, weight, padding=pad[0], groups=c)
    return F.conv2d(F.pad(x, (pad[0], pad[1], pad[0], pad[1])), weight, groups=c)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, up: bool = False,
                     blur_taps: torch.Tensor | None = None) -> torch.Tensor:
    """Modulate → convolve (no demodulation; see :func:`demodulation_coefficients`), batched "non-fused" form.

    x: ``[B, I, H, W]``; weight: ``[O, I, k, k]``; styles: ``[B, I]``. Scaling the activations before one
    shared convolution equals convolving each sample with its own modulated kernel, and is much faster
    for many frames at once. With ``up``: 2× transposed convolution, then the FIR blur (pad 1, gain 4).
    Returns ``[B, O, H', W']``.
    """
    b, i = styles.shape
    if b == 1:  # one sample: modulating the small kernel saves a pass over the activations
        weight = weight * styles.reshape(1, i, 1, 1)
    else:
        x = x * styles.reshape(b, i, 1, 1).to(x.dtype)
    if up:
        x = conv_transpose2d_stride2(x, weight.to(x.dtype))
        return blur2d(x, blur_taps, pad=(1, 1), gain=4.0)
    return F.conv2d(x, weight.to(x.dtype), padding=weight.shape[-1] // 2)


def conv_transpose2d_stride2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)`` (weight ``[O, I, k, k]``, conv layout):
    ``[B, I, H, W]`` → ``[B, O, 2H + k - 2, 2W + k - 2]``.

    For 3×3 kernels on CPU, on the thin high-resolution layers (≤ 256 input channels, ≥ 128² input pixels), it is
    computed as four ordinary convolutions, one per output phase (even/odd row × even/odd column), with the 2×2,
    2×1, 1×2 and 1×1 sub-kernels that reach each phase: the same multiply-adds, through oneDNN's direct
    convolutions. Measured on the project's CPU (2026-12-03, one thread) this takes 0.58× the time of the
    transposed convolution for 256→128 channels at 128² and 64→32 at 512², the same time for 512 input channels,
    and more on small inputs (4 calls instead of 1), where the transposed convolution is kept, as it is
    for other kernel sizes and devices. Tested equal to the transposed convolution.
    """
    k = weight.shape[-1]
    if (k != 3 or weight.shape[-2] != 3 or x.device.type != "cpu" or x.shape[1] > POLYPHASE_MAX_CHANNELS
            or x.shape[2] * x.shape[3] < POLYPHASE_MIN_PIXELS):
        return F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    # Output row p = 2m reads input rows m-1 (tap 2) and m (tap 0); p = 2m + 1 reads row m (tap 1). As a
    # correlation over the input padded by one row: taps [2, 0]. Same for columns.
    even, odd = [2, 0], [1]
    b, o, h, w = x.shape[0], weight.shape[0], x.shape[2], x.shape[3]
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    y = torch.empty((b, o, 2 * h + 1, 2 * w + 1), dtype=x.dtype, device=x.device, memory_format=layout)
    for rows, pad_r, r0 in ((even, 1, 0), (odd, 0, 1)):
        w_rows = weight[:, :, rows]
        for cols, pad_c, c0 in ((even, 1, 0), (odd, 0, 1)):
            y[:, :, r0::2, c0::2] = F.conv2d(x, w_rows[:, :, :, cols], padding=(pad_r, pad_c))
    return y


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``1 / ‖w_o ⊙ s‖`` per sample and output channel, ``[B, O]`` (eps 1e-8 as in StyleGAN2).

    Uses Σ_{i,k} (w_oik·s_i)² = Σ_i s_i²·Σ_k w_oik²: a ``[B, I] × [I, O]`` product, never a
    ``[B, O, I, k, k]`` tensor.
    """
    return (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()


def bias_lrelu(x: torch.Tensor, bias: torch.Tensor, gain: float = LRELU_GAIN, clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, leaky ReLU (0.2), multiply by ``gain``, optionally clamp to ±clamp."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    x = F.leaky_relu(x + bias.reshape(shape).to(x.dtype), LRELU_SLOPE) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
