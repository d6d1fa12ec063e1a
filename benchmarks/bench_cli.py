"""How long a person waits for `faceanim animate`, against what the work itself needs.

    python benchmarks/bench_cli.py [--repeats 5] [--frames N] [--bundle NAME] [-- EXTRA ANIMATE ARGS]

Interleaved in one run, --repeats rounds of:
  (a) `python -c "import torch"`: a fresh interpreter that imports torch (wall time);
  (b) the whole `faceanim animate -p smiling -o OUT.mp4` process on the default bundle (wall time);
  (c) the in-process total that animate reports (its "total … s" line: loading, motion, synthesis, writing).
Prints every round, the best of each and the ratio b / (a + c): how much of the wait is neither torch's import nor
work. The processes inherit this environment (PYTHONPATH, OMP_NUM_THREADS): set them to compare two trees.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOTAL = re.compile(r"\btotal ([0-9.]+) s\b")  # animate's time line: "time: load … s, …, total 0.62 s"


def animate_command() -> list[str]:
    """The `faceanim` console script beside this interpreter (what a user runs), else `python -m faceanim`."""
    script = Path(sys.executable).with_name("faceanim")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "faceanim"]


def timed(cmd: list[str], cwd: str) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return wall, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (best of these is reported)")
    p.add_argument("--frames", type=int, default=None, help="-n for animate (default: the bundle's, 16)")
    p.add_argument("--bundle", default=None, help="bundle name or folder (default: the default bundle)")
    p.add_argument("extra", nargs="*", help="more arguments for animate (after --)")
    args = p.parse_args()

    animate = animate_command() + ["animate", "-p", "smiling", "-o", "OUT.mp4"]
    if args.frames:
        animate += ["-n", str(args.frames)]
    if args.bundle:
        animate += ["--bundle", args.bundle]
    animate += args.extra
    import_torch = [sys.executable, "-c", "import torch"]
    tmp = tempfile.mkdtemp(prefix="bench_cli_")
    try:
        where = subprocess.run([sys.executable, "-c", "import faceanim, torch; print(faceanim.__file__, torch.__version__)"],
                               capture_output=True, text=True, check=True).stdout.split()
        print(f"faceanim from {where[0]}, torch {where[1]}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        print(f"(b) = {' '.join(animate)}")
        timed(import_torch, tmp)  # warm the page cache once; not counted
        a, b, c = [], [], []
        print(f"{'round':>5}  {'(a) import torch':>16}  {'(b) animate':>11}  {'(c) reported':>12}  {'b/(a+c)':>7}")
        for i in range(args.repeats):
            wall_a, _ = timed(import_torch, tmp)
            wall_b, out = timed(animate, tmp)
            found = TOTAL.findall(out)
            if not found:
                sys.exit(f"animate printed no 'total … s' figure:\n{out}")
            a.append(wall_a), b.append(wall_b), c.append(float(found[-1]))
            print(f"{i + 1:>5}  {wall_a:>14.2f} s  {wall_b:>9.2f} s  {c[-1]:>10.2f} s  {wall_b / (wall_a + c[-1]):>7.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best_a, best_b, best_c = min(a), min(b), min(c)
    print(f"{'best':>5}  {best_a:>14.2f} s  {best_b:>9.2f} s  {best_c:>10.2f} s  {best_b / (best_a + best_c):>7.2f}")
    med = [statistics.median(x) for x in (a, b, c)]
    print(f"{'med.':>5}  {med[0]:>14.2f} s  {med[1]:>9.2f} s  {med[2]:>10.2f} s  {med[1] / (med[0] + med[2]):>7.2f}")
    print(f"ratio b / (a + c), best of {args.repeats}: {best_b / (best_a + best_c):.2f}  (goal ≤ 1.3)")


if __name__ == "__main__":
    main()
