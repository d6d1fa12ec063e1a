"""LPIPS perceptual loss (section III-E) through the ``lpips`` package, when its backbone weights exist."""

from __future__ import annotations

import torch
from torch import nn

# torchvision's weight files are named <prefix><hash>.pth (alexnet-owt-7be5be79.pth, vgg16-397923af.pth, …).
_BACKBONE_FILE_PREFIX = {"alex": "alexnet-", "vgg": "vgg16-", "squeeze": "squeezenet1_1-"}


class LPIPSLoss(nn.Module):
    """LPIPS distance between generated frames and the source image (section III-E).

    Which frames are compared is the caller's choice (``AnimationLoss(lpips_frames=…)``): the first frame only
    (this project's default), or the first and the last frame, each against the source, as the official code does
    (``tools/dist_train.py``: one loss call on frame 1, one on frame T, both with the input image). ``size``: both
    images are area-resized to ``size`` × ``size`` first (the official code pools frames to 224 px and feeds the
    224 px CLIP input image); None compares them as given.

    The ``lpips`` package ships only its linear heads; the AlexNet/VGG backbone comes from torchvision's
    weight cache. Without those weights the term cannot be computed: ``available`` is False, a one-line
    warning says why, and the composite loss drops the term.
    """

    def __init__(self, net: str = "alex", size: int | None = None):
        super().__init__()
        self.net, self.size, self.available, self.reason = net, size or None, False, ""
        self.model: nn.Module | None = None
        import importlib.util
        import os

        if importlib.util.find_spec("lpips") is None:
            self.reason = "the 'lpips' package is not installed (pip install lpips)"
            return
        # torchvision (imported by lpips) takes seconds to import: look for the backbone's weight file first.
        checkpoints = os.path.join(torch.hub.get_dir(), "checkpoints")
        prefix = _BACKBONE_FILE_PREFIX.get(net)
        if prefix and not (os.path.isdir(checkpoints) and any(f.startswith(prefix) for f in os.listdir(checkpoints))):
            self.reason = (f"LPIPS backbone weights for '{net}' are not in {checkpoints} (expected {prefix}….pth); "
                           "the LPIPS term is disabled")
            return
        try:
            import torchvision

            enum = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}[net]
            url = getattr(torchvision.models, enum).DEFAULT.url
            fname = os.path.join(checkpoints, os.path.basename(url))
            if not os.path.isfile(fname):
                self.reason = (f"LPIPS backbone weights for '{net}' are not in {os.path.dirname(fname)} "
                               f"(expected {os.path.basename(fname)}); the LPIPS term is disabled")
                return
            import lpips

            self.model = lpips.LPIPS(net=net, verbose=False).eval().requires_grad_(False)
            self.available = True
        except Exception as exc:  # a broken weight file must not stop training: report and disable
            self.reason = f"LPIPS could not be built ({type(exc).__name__}: {exc}); the LPIPS term is disabled"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: ``[B, 3, H, W]`` in [-1, 1] → mean LPIPS distance."""
        if not self.available or self.model is None:
            raise RuntimeError(self.reason)
        if self.size is not None:
            x, y = (resize_area(t, self.size) for t in (x, y))
        if min(x.shape[-2:]) < 64:  # the AlexNet/VGG trunks need ≥ 64 px to reach their deepest layer
            x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
            y = torch.nn.functional.interpolate(y, size=(64, 64), mode="bilinear", align_corners=False)
        return self.model(x, y).mean()


def resize_area(images: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, C, size, size]`` by area averaging (adaptive average pooling); unchanged if already so."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    return torch.nn.functional.adaptive_avg_pool2d(images, (size, size))
