"""Running the shipped bundle imports neither open_clip, torchvision nor timm (each costs seconds to import).

Each check runs in a fresh interpreter (the test process itself has imported them for other tests) and prints
which of the heavy packages ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("open_clip", "torchvision", "timm")
_REPORT = (
    "import json, sys\n"
    "heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))\n"
    "print('HEAVY=' + json.dumps(heavy))\n" % (HEAVY,)
)


def _run(code: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    src = str(Path(__file__).resolve().parents[1] / "src")
    environ["PYTHONPATH"] = os.pathsep.join([src, environ.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code + _REPORT], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HEAVY=")]
    assert lines, proc.stdout + proc.stderr
    return proc, json.loads(lines[-1][len("HEAVY="):])


def test_default_animate_imports_no_open_clip_torchvision_timm(tmp_path: Path) -> None:
    """``faceanim animate -p smiling -o OUT.mp4 -n 2`` on the default bundle, as the console script runs it; then the
    LPIPS term a photo's projection asks for, without cached AlexNet weights (it must not import torchvision to
    find that out)."""
    code = (
        "from faceanim.cli.main import main\n"
        "rc = main(['animate', '-p', 'smiling', '-o', 'OUT.mp4', '-n', '2'])\n"
        "assert rc == 0, rc\n"
        "from faceanim.losses.lpips import LPIPSLoss\n"
        "loss = LPIPSLoss('alex')\n"
        "assert not loss.available, loss.reason\n"
    )
    proc, heavy = _run(code, tmp_path, TORCH_HOME=str(tmp_path / "torch-home"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "OUT.mp4").stat().st_size > 0
    assert heavy == [], f"animate imported {heavy}"
