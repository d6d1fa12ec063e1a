import os
import sys

import pytest

# Test helper modules (independent reference implementations) live beside the tests.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def lpips_backbone(tmp_path, monkeypatch):
    """Random AlexNet weights where torchvision's cache keeps the real ones, so that the LPIPS term is built (the
    real ones cannot be downloaded here)."""
    pytest.importorskip("lpips")
    import torch
    import torchvision

    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    url = torchvision.models.AlexNet_Weights.DEFAULT.url
    torch.save(torchvision.models.alexnet().state_dict(), hub / os.path.basename(url))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
