"""The `faceanim` command: convert end to end, and one-line errors with non-zero exits for bad input."""

from __future__ import annotations

import pickle
import subprocess
import sys

import torch

from faceanim.cli.main import main
from faceanim.models.stylegan2 import Generator

import rosinality_reference as ref


def _rosinality_file(tmp_path):
    sd = ref.make_state(16, 32, 2, {4: 16, 8: 16, 16: 8})
    path = tmp_path / "ffhq.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.randn(32)}, path)
    return sd, path


def test_convert_rosinality(tmp_path, capsys):
    sd, src = _rosinality_file(tmp_path)
    dst = tmp_path / "native"
    assert main(["convert", str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "rosinality" in out and "16x16" in out and "W+ 6x32" in out
    G = Generator.from_pretrained(dst)
    w = torch.randn(1, G.num_ws, 32)
    assert torch.allclose(G.synthesis(w), ref.synthesize(sd, w), atol=1e-4)

    # an existing destination is kept unless --force
    assert main(["convert", str(src), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(src), str(dst), "--force"]) == 0


def _err_one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_convert_bad_inputs(tmp_path, capsys):
    dst = tmp_path / "out"
    cases = {}
    cases["missing"] = tmp_path / "missing.pt"
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["empty"] = tmp_path / "empty.pt"
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint\n")
    cases["text"] = tmp_path / "text.pt"
    _, good = _rosinality_file(tmp_path)
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:1000])
    cases["truncated"] = tmp_path / "trunc.pt"
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    cases["wrong architecture"] = tmp_path / "other.pt"
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"G_ema": 3}))
    cases["pickle without generator"] = tmp_path / "plain.pkl"
    for name, path in cases.items():
        assert main(["convert", str(path), str(dst)]) == 2, name
        err = _err_one_line(capsys)
        assert err.startswith("faceanim: error:"), (name, err)
        assert not dst.exists(), name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_convert_into_missing_folder(tmp_path, capsys):
    _, src = _rosinality_file(tmp_path)
    assert main(["convert", str(src), str(tmp_path / "no" / "such" / "dir")]) == 2
    assert "does not exist" in _err_one_line(capsys)


def test_console_entry_point_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "faceanim", "convert", str(tmp_path / "x.pt"), str(tmp_path / "y")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"faceanim: error: no such file: {tmp_path / 'x.pt'}"
