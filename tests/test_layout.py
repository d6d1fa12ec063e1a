"""The tree's rules: imports run one way (import-linter contracts in pyproject.toml), no module reaches into
another's private names, and no large file is tracked outside the shipped bundle."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_TRACKED_BYTES = 1 << 20  # 1 MB: weights and run artefacts stay out of git (only the shipped bundle's are tracked)


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("import-linter is missing: it is part of the dev extra")
    run = subprocess.run([exe, str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "BROKEN" not in run.stdout


def _private_imports(path: Path) -> list[str]:
    """``from faceanim.x import _name`` or ``faceanim.x._name`` where x is another module than the file's own."""
    own = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts) if "src" in path.parts else None
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("faceanim"):
            if node.module != own:
                found += [f"{path.name}:{node.lineno} {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_private_names_of_another():
    files = sorted((ROOT / "src" / "faceanim").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    found = [hit for f in files for hit in _private_imports(f)]
    assert not found, found


def test_private_import_check_catches_one(tmp_path):
    (tmp_path / "x.py").write_text("from faceanim.align.ffhq import _hidden\n")
    assert _private_imports(tmp_path / "x.py") == ["x.py:1 faceanim.align.ffhq._hidden"]


def test_no_large_tracked_file_outside_the_bundle():
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    big = []
    for name in filter(None, (f.decode() for f in files)):
        path = ROOT / name
        if name.startswith("src/faceanim/bundles/") or not path.is_file():
            continue
        if path.stat().st_size > MAX_TRACKED_BYTES:
            big.append(f"{name} ({path.stat().st_size / 1e6:.1f} MB)")
    assert not big, f"tracked files over 1 MB outside src/faceanim/bundles/: {big}"
