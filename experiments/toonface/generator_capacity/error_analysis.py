"""Where the v0.3 generator's error lies: PSNR at coarser scales, high-frequency share, edge share, noise inputs.

Run from the repository root: python work/toonface/generator_capacity/error_analysis.py
"""
import torch
import torch.nn.functional as F

from faceanim.toon.recipes import generator_batch
from faceanim.toon.train_generator import load_generator_run, psnr

G = load_generator_run("work/toonface/generator_v03/checkpoint").eval()
z, target, _ = generator_batch(256, torch.Generator().manual_seed(12345), expression_weight=1.0)


def draw() -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([G(z[i:i + 32]).clamp(-1, 1) for i in range(0, len(z), 32)])


fake = draw()
for k in (1, 2, 4, 8):
    print(f"PSNR of {k}x{k}-mean images: {float(psnr(F.avg_pool2d(fake, k), F.avg_pool2d(target, k)).mean()):.2f} dB")
err = (fake - target).square().mean(1)
up = lambda x: F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear")  # noqa: E731
low = (up(fake) - up(target)).square().mean() / (fake - target).square().mean()
print(f"share of the squared error that survives 4x downsampling: {float(low):.2f}")
grad = torch.zeros_like(err)
grad[:, :-1, :] += (target[..., 1:, :] - target[..., :-1, :]).abs().amax(1)
grad[:, :, :-1] += (target[..., :, 1:] - target[..., :, :-1]).abs().amax(1)
edge = F.max_pool2d((grad > 0.15).float().unsqueeze(1), 3, 1, 1).squeeze(1)
print(f"edge pixels: {float(edge.mean()):.2f} of the image, {float((err * edge).sum() / err.sum()):.2f} of the error")
print(f"two draws of the same codes agree to {float(psnr(fake, draw()).mean()):.0f} dB (noise inputs)")
