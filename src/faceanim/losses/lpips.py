"""LPIPS perceptual loss (section III-E) through the ``lpips`` package, when its backbone weights exist."""

from __future__ import annotations

import torch
from torch import nn

# torchvision's weight files are named <prefix><hash>.pth (alexnet-owt-7be5be79.pth, vgg16-397923af.pth, …).
_BACKBONE_FILE_PREFIX = {"alex": "alexnet-", "vgg": "vgg16-", "squeeze": "squeezenet1_1-"}


class LPIPSLoss(nn.Module):
    """LPIPS between the first frame and the source image (as the official code does).

    The ``lpips`` package ships only its linear heads; the AlexNet/VGG backbone comes from torchvision's
    weight cache. Without those weights the term cannot be computed: ``available`` is False, a one-line
    warning says why, and the composite loss drops the term.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.net, self.available, self.reason = net, False, ""
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
        if min(x.shape[-2:]) < 64:  # the AlexNet/VGG trunks need ≥ 64 px to reach their deepest layer
            x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
            y = torch.nn.functional.interpolate(y, size=(64, 64), mode="bilinear", align_corners=False)
        return self.model(x, y).mean()
