"""``faceanim align`` as library calls: one photo → its FFHQ-aligned crop (and the crop geometry), or a folder of
photos → a folder of crops, resumable (:mod:`faceanim.utils.folders`): the training set of the paper's recipe
(``images:`` of configs/ffhq_paper.yaml).

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from faceanim.align.prepare import FFHQ_SIZE, check_image_output, prepare_face, require_alignment, save_image
from faceanim.errors import FaceanimError
from faceanim.utils.folders import FolderReport, list_images, run_folder

CROP_SUFFIX = ".png"   # crops of a folder run: <stem>.png (lossless: they are training images)


def check_size(size: int | None) -> None:
    if size is not None and not 16 <= size <= 4096:
        raise FaceanimError(f"--size must be between 16 and 4096, got {size}")


def crop_size(size: int | None, bundle: str | None) -> int:
    """The side of the crops: ``size``, else the bundle's generator resolution, else FFHQ's 1024."""
    check_size(size)
    if size is None and bundle is not None:
        from faceanim.bundles import Bundle

        size = Bundle.open(bundle).generator_resolution
    return size or FFHQ_SIZE


def _geometry(photo: str, aligned) -> dict:
    return {"source": os.fspath(photo), "source_size": list(aligned.source_size), "output_size": aligned.output_size,
            "face_index": aligned.face_index, "box": list(aligned.face.box), "score": aligned.face.score,
            "quad": aligned.quad.tolist(), "aligned_to_source": aligned.transform.tolist(),
            "landmarks": aligned.landmarks.tolist()}


def _align_to(photo: str | os.PathLike, out: str | os.PathLike, size: int, face_index: int,
              save_transform: str | os.PathLike | None):
    """Align ``photo``, write the crop to ``out`` (and its geometry to ``save_transform``); the AlignedFace."""
    from faceanim.utils.images import load_image
    from faceanim.utils.io import atomic_path

    face = prepare_face(load_image(photo), os.fspath(photo), size, face_index=face_index)
    save_image(face.image, os.fspath(out))
    if save_transform is not None:
        with atomic_path(save_transform) as tmp:
            tmp.write_text(json.dumps(_geometry(os.fspath(photo), face.aligned), indent=1) + "\n")
    return face.aligned


def align_image(photo: str, out: str, size: int | None = None, bundle: str | None = None, face_index: int = 0,
                save_transform: str | None = None) -> list[str]:
    """Detect the face in ``photo`` and write its FFHQ-aligned crop to ``out``; returns the report lines."""
    check_image_output(out, "--out")
    if save_transform is not None:
        from faceanim.outputs import check_output_path

        check_output_path(save_transform, allowed=(".json",))
    aligned = _align_to(photo, out, crop_size(size, bundle), face_index, save_transform)
    left, top, right, bottom = aligned.face.box
    lines = [f"wrote {out}: {aligned.output_size}x{aligned.output_size} crop of face {aligned.face_index} "
             f"(box {right - left}x{bottom - top} px at {left},{top}) of {photo}"]
    if save_transform is not None:
        lines.append(f"  geometry → {save_transform}")
    return lines


def align_folder(src: str | os.PathLike, out: str | os.PathLike, size: int | None = None, bundle: str | None = None,
                 face_index: int = 0, save_transforms: str | os.PathLike | None = None,
                 progress: bool = True) -> FolderReport:
    """Align every photo in ``src`` into ``out/<stem>.png`` (and ``save_transforms/<stem>.json``). Photos whose
    crop exists are skipped (resume); a photo without a face, or unreadable, is recorded in the report and skipped.
    Two photos with the same stem would write one crop: refused before any work."""
    files = list_images(src)
    stems: dict[str, str] = {}
    for f in files:
        if f.stem in stems:
            raise FaceanimError(f"{src}: {stems[f.stem]} and {f.name} would both be aligned to {f.stem}{CROP_SUFFIX}")
        stems[f.stem] = f.name
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FaceanimError(f"--out {out}: with a folder of photos, --out is a folder (of crops)")
    if Path(src).resolve() == out.resolve():
        raise FaceanimError("--out must be another folder than the photos'")
    side = crop_size(size, bundle)
    require_alignment()  # a missing dlib is one line, not one failure per photo
    out.mkdir(parents=True, exist_ok=True)
    if save_transforms is not None:
        Path(save_transforms).mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        geometry = Path(save_transforms) / f"{path.stem}.json" if save_transforms is not None else None
        _align_to(path, out / f"{path.stem}{CROP_SUFFIX}", side, face_index, geometry)

    return run_folder(files, FolderReport("aligned"), lambda p: (out / f"{p.stem}{CROP_SUFFIX}").is_file(), process,
                      progress=progress)


def align_path(src: str, out: str, size: int | None = None, bundle: str | None = None, face_index: int = 0,
               save_transform: str | None = None, progress: bool = True) -> tuple[list[str], FolderReport | None]:
    """``faceanim align SRC``: a photo → a crop file, or a folder of photos → a folder of crops. Returns the report
    lines and, for a folder, its :class:`FolderReport` (whose ``check()`` applies the exit rule)."""
    if not Path(src).is_dir():
        if not Path(src).is_file():
            raise FaceanimError(f"no such file or folder: {src}")
        return align_image(src, out, size, bundle, face_index, save_transform), None
    report = align_folder(src, out, size, bundle, face_index, save_transform, progress=progress)
    lines = report.summary()
    if report.done or report.existing:
        lines.append(f"  crops → {out}/" + (f", geometry → {save_transform}/" if save_transform else ""))
    return lines, report
