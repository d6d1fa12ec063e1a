"""Folders of images processed one by one — resumable, with a progress bar, a face that fails skipped and reported —
the shared loop of ``faceanim align DIR`` and ``faceanim invert DIR``.

The rule for the result: the run succeeds when at least one image has its output (written now or by an earlier
run); the images that failed are listed with their reason and left for a later run (which retries them, and skips
the ones done). Only when no image has an output is the run a failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from faceanim.errors import FaceanimError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The images directly in ``folder`` (by suffix, sorted by name); a missing or empty folder is one line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FaceanimError(f"no such folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FaceanimError(f"no images ({', '.join(IMAGE_EXTS)}) in {folder}")
    return files


@dataclass
class FolderReport:
    """What a folder run did: outputs written now, found from an earlier run, and the failures with reasons."""

    what: str                                                   # "aligned", "inverted"
    total: int = 0
    done: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        """The documented rule: at least one image has its output (now or from an earlier run)."""
        return bool(self.done or self.existing)

    def summary(self) -> list[str]:
        lines = [f"{self.what} {len(self.done)} of {self.total} images in {self.seconds:.1f} s"
                 + (f"; {len(self.existing)} already done (skipped)" if self.existing else "")
                 + (f"; {len(self.failed)} failed (skipped, listed below)" if self.failed else "")]
        lines += [f"  failed {name}: {reason}" for name, reason in self.failed]
        return lines

    def check(self) -> None:
        """Raise the one-line error of a run in which no image has an output."""
        if not self.succeeded:
            raise FaceanimError(f"no image {self.what}: all {self.total} failed (reasons listed above)")


def run_folder(files: Iterable[Path], report: FolderReport, is_done: Callable[[Path], bool],
               process: Callable[[Path], None], progress: bool = True,
               checkpoint: Callable[[bool], None] | None = None) -> FolderReport:
    """Call ``process`` on every file not ``is_done``; a :class:`FaceanimError` from one file (no face, unreadable
    image…) is recorded and the run goes on, anything else stops it. ``checkpoint`` (if given) is called after
    every processed file with ``False`` and once at the end with ``True``, also when the run is interrupted, so that
    work done is kept (it decides itself how often to write)."""
    import time

    from tqdm.auto import tqdm

    files = list(files)
    report.total = len(files)
    t0 = time.perf_counter()
    try:
        with tqdm(files, desc=report.what, unit="img", disable=None if progress else True, leave=False) as bar:
            for path in bar:
                if is_done(path):
                    report.existing.append(path.name)
                    continue
                try:
                    process(path)
                except FaceanimError as exc:
                    report.failed.append((path.name, str(exc)))
                    bar.set_postfix(failed=len(report.failed))
                    continue
                report.done.append(path.name)
                if checkpoint is not None:
                    checkpoint(False)
    finally:
        report.seconds = time.perf_counter() - t0
        if checkpoint is not None:
            checkpoint(True)
    return report
