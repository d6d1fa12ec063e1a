"""TorchScript archives read without running them (faceanim.convert.torchscript), issue 17 point 9.

The reference is torch.jit.load itself, on benign archives written here by torch.jit.trace / torch.jit.script;
malicious archives are written the same way, with a TorchScript ``__setstate__`` that writes a file when
torch.jit.load runs it (shown here first, so the test cannot pass by a payload that does nothing).
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Tuple

import pytest
import torch
from torch import nn

from faceanim.convert.torchscript import is_torchscript_archive, read_torchscript
from faceanim.encoders import CLIPEncoder
from faceanim.errors import CheckpointError, UnsafePickleError
from test_clip import random_open_clip, save_openai_archive

SRC = Path(__file__).resolve().parents[1] / "src" / "faceanim"


def _jit(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation warnings
        return fn(*args)


def _reference(path: Path) -> dict[str, torch.Tensor]:
    return dict(_jit(torch.jit.load, str(path), "cpu").state_dict())


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(4)
        self.lin = nn.Linear(4, 4)
        self.register_buffer("scale", torch.arange(4.0))
        self.mask = torch.ones(4)  # a plain tensor attribute: not in state_dict()

    def forward(self, x):
        return self.lin(self.norm(x)) * self.scale * self.mask


class Scripted(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Parameter(torch.randn(4, 2).half())

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x @ self.head.float()


@pytest.mark.parametrize("kind", ["rn", "vit"])
def test_traced_openai_archive_equals_jit_load(kind, tmp_path):
    path = save_openai_archive(random_open_clip(kind, seed=5, fp16_exact=True), tmp_path / f"tiny-{kind}.pt")
    assert is_torchscript_archive(path)
    found = read_torchscript(path).state_dict
    ref = _reference(path)
    assert found.keys() == ref.keys()
    for k, v in ref.items():
        assert found[k].dtype == v.dtype and torch.equal(found[k], v), k


def test_scripted_archive_equals_jit_load(tmp_path):
    torch.manual_seed(0)
    model = Scripted().eval()
    for b in model.blocks:
        b.norm.running_mean.normal_()
    path = tmp_path / "scripted.pt"
    _jit(lambda: torch.jit.save(torch.jit.script(model), str(path)))
    archive = read_torchscript(path)
    ref = _reference(path)
    assert archive.state_dict.keys() == ref.keys() and "blocks.0.mask" not in ref
    for k, v in ref.items():
        assert archive.state_dict[k].dtype == v.dtype and torch.equal(archive.state_dict[k], v), k
    assert any(c.endswith(".Block") for c in archive.classes)


class Evil(nn.Module):
    """Its TorchScript ``__setstate__`` writes 4 bytes to ``path`` when the archive is loaded."""

    def __init__(self, path: str):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.path = path
        self.peek = torch.zeros(4, dtype=torch.uint8)

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        self.training = state[2]
        written = torch.from_file(self.path, True, 4, dtype=torch.uint8)
        written.fill_(65)
        self.peek = written

    def forward(self, x):
        return x * self.weight + self.peek.sum()


def test_malicious_archive_is_refused_and_nothing_runs(tmp_path):
    target = tmp_path / "written.txt"
    path = tmp_path / "RN50.pt"
    _jit(lambda: torch.jit.save(torch.jit.script(Evil(str(target))), str(path)))
    _jit(torch.jit.load, str(path))  # the payload is real: torch.jit.load runs it
    assert target.read_bytes() == b"AAAA"
    target.unlink()

    with pytest.raises(UnsafePickleError) as exc:
        read_torchscript(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path)) and "__setstate__" in msg and "nothing was run" in msg
    with pytest.raises(UnsafePickleError):
        CLIPEncoder.from_pretrained(path)
    with pytest.raises(UnsafePickleError):
        CLIPEncoder.from_pretrained("RN50", cache_dir=tmp_path)
    assert not target.exists()


def _rewrite(src: Path, dst: Path, data_pkl: bytes) -> Path:
    """``src`` with its data.pkl replaced (every other entry kept)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, data_pkl if info.filename.endswith("/data.pkl") else zin.read(info))
    return dst


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_archive_pickle_naming_anything_else_is_refused(tmp_path):
    benign = tmp_path / "benign.pt"
    _jit(lambda: torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(benign)))
    target = tmp_path / "pwned"
    import os

    evil = _rewrite(benign, tmp_path / "evil.pt", pickle.dumps(_Call(os.system, f"touch {target}"), protocol=2))
    with pytest.raises(UnsafePickleError) as exc:
        read_torchscript(evil)
    assert "posix.system" in str(exc.value) or "os.system" in str(exc.value)
    assert "\n" not in str(exc.value) and not target.exists()


def test_truncated_and_malformed_archives(tmp_path):
    path = save_openai_archive(random_open_clip("rn", seed=6, fp16_exact=True), tmp_path / "tiny.pt")
    # a storage entry shorter than the tensor it holds
    short = tmp_path / "short.pt"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(short, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, data[:3] if info.filename.endswith("/data/0") else data)
    with pytest.raises(CheckpointError, match="truncated TorchScript archive") as exc:
        read_torchscript(short)
    assert "\n" not in str(exc.value)
    broken = _rewrite(path, tmp_path / "broken.pt", b"\x80\x02}q\x00(")  # cut mid-pickle
    with pytest.raises(CheckpointError) as exc:
        read_torchscript(broken)
    assert "\n" not in str(exc.value) and str(broken) in str(exc.value)
    plain = io.BytesIO()
    torch.save({"w": torch.ones(1)}, plain)
    (tmp_path / "plain.pt").write_bytes(plain.getvalue())
    assert not is_torchscript_archive(tmp_path / "plain.pt")


def test_no_user_file_goes_through_torch_jit_load():
    users = [p.relative_to(SRC) for p in SRC.rglob("*.py") if re.search(r"jit\.load\(|jit\.load\b\s*$|_load_for_", p.read_text())]
    assert users == []
