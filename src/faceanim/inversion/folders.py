"""``faceanim invert`` as library calls: open an inverter — from a bundle, or from a converted generator with an
e4e encoder and no bundle (the paper's recipe needs the codes before any motion model exists) — and invert one
photo into a W+ code file, or a folder of photos into one name → code file, resumable
(:mod:`faceanim.utils.folders`): the ``latents:`` of configs/ffhq_paper.yaml.

A generator/encoder mismatch (an FFHQ e4e writes 18 codes, a 256 px generator takes 14) is one line before any
weight is read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceanim.errors import FaceanimError
from faceanim.utils.folders import FolderReport, list_images, run_folder

SAVE_EVERY_S = 60.0   # a folder run rewrites its codes file at most this often (and at the end, or on Ctrl-C)


@dataclass
class InversionSetup:
    """An inverter and what it inverts into: the generator, its name (for metadata) and how photos are cropped."""

    inverter: Any          # faceanim.inversion.Inverter
    name: str              # bundle name, or the generator folder's name
    alignment: str         # "ffhq", "center-crop" or "none" (a bundle's; FFHQ alignment without a bundle)
    space: str = "w"
    steps: int = 0

    @property
    def crop_size(self) -> int:
        from faceanim.align.prepare import MIN_INVERSION_SIZE

        return max(self.inverter.G.img_resolution, MIN_INVERSION_SIZE)

    def how(self) -> str:
        inv = self.inverter
        if inv.method != "projector":
            return "e4e"
        return (f"the projector ({self.steps} steps in {'W+' if self.space == 'wplus' else 'W'}, perceptual: "
                f"{inv.perceptual_name})")


def _generator_num_ws(folder: Path) -> int | None:
    """W+ codes of a native generator folder from its config.json (no torch), else None."""
    import json

    try:
        res = int(json.loads((folder / "config.json").read_text())["img_resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return 2 * (res.bit_length() - 1) - 2


def open_inverter(bundle: str | None = None, generator: str | None = None, encoder: str | None = None,
                  method: str = "auto", steps: int | None = None, space: str = "w",
                  device: str = "auto") -> InversionSetup:
    """The inverter for ``faceanim invert``: the bundle's generator (and e4e encoder, unless ``encoder``), or
    ``generator`` (a converted folder or any checkpoint ``faceanim convert`` reads) with ``encoder`` (an official
    e4e ``.pt`` or a converted folder); without an encoder, the projector."""
    from faceanim.align.prepare import check_steps

    check_steps(steps, "--steps")
    if method == "e4e" and (steps is not None or space != "w"):
        raise FaceanimError("--steps and --space set the projector; they do not apply to --method e4e")
    if bundle is not None and generator is not None:
        raise FaceanimError("give a bundle (-b) or a generator (-g), not both")
    n_styles = None
    if encoder is not None:
        if not Path(encoder).exists():
            raise FaceanimError(f"--encoder: no such file or folder: {encoder}")
        from faceanim.inversion.e4e import encoder_config

        n_styles = encoder_config(encoder).n_styles
    if generator is not None:
        gen = Path(generator)
        if not gen.exists():
            raise FaceanimError(f"--generator: no such file or folder: {generator}")
        if (gen / "bundle.json").is_file():
            raise FaceanimError(f"{generator} is a bundle: give it with -b/--bundle")
        num_ws, name, alignment = _generator_num_ws(gen) if gen.is_dir() else None, gen.name, "ffhq"
    else:
        from faceanim.bundles import Bundle

        b = Bundle.open(bundle)
        num_ws, name, alignment = b.generator_num_ws, b.name, b.info.alignment
        if encoder is None and b.has("encoder"):
            encoder = str(b.path("encoder"))
    if n_styles is not None and num_ws is not None and n_styles != num_ws:
        default = " (no -b or -g given: the default bundle; give the generator with -g)" \
            if bundle is None and generator is None else ""
        raise FaceanimError(f"the encoder {encoder} writes {n_styles} W+ codes but the generator of {name} takes "
                            f"{num_ws}{default or ' (an encoder trained for another generator)'}")

    from faceanim.inversion import Inverter, ProjectorConfig
    from faceanim.utils.device import pick_device

    clip = None
    if generator is not None:
        from faceanim.convert import load_generator

        G = load_generator(generator)[0]
    else:
        G = b.load_generator()
        if method == "projector" or (method == "auto" and encoder is None):
            clip = b.load_clip("cond_clip")  # the perceptual fallback when LPIPS is missing
    if n_styles is not None and n_styles != G.num_ws:  # a checkpoint file as the generator: known only now
        raise FaceanimError(f"the encoder {encoder} writes {n_styles} W+ codes but the generator {name} takes "
                            f"{G.num_ws} (an encoder trained for another generator)")
    dev = pick_device(device)
    config = ProjectorConfig(steps=steps or ProjectorConfig.steps, space=space)
    inverter = Inverter(G.to(dev), method, encoder=encoder, projector_config=config,
                        clip=clip.to(dev) if clip is not None else None)
    return InversionSetup(inverter, name, alignment, space, config.steps)


def _invert_face(setup: InversionSetup, image: str | os.PathLike, no_align: bool, face_index: int,
                 reconstruct: bool = True):
    """Crop ``image`` as the setup states and invert it; a non-finite code is one line."""
    import torch

    from faceanim.align.prepare import prepare_face
    from faceanim.utils.images import load_image

    face = prepare_face(load_image(image), os.fspath(image), setup.crop_size, no_align, face_index, setup.alignment)
    result = setup.inverter.invert(face.image, reconstruct=reconstruct)
    if not bool(torch.isfinite(result.w_plus).all()):
        raise FaceanimError(f"inversion of {image} diverged (non-finite code); try fewer --steps or --space w")
    return result


def _save_reconstruction(result, path: str | os.PathLike) -> None:
    from PIL import Image

    from faceanim.align.prepare import save_image
    from faceanim.utils.images import to_uint8

    save_image(Image.fromarray(to_uint8(result.reconstruction[0]).numpy()), os.fspath(path))


def _meta(setup: InversionSetup, no_align: bool, face_index: int) -> dict[str, str]:
    inv = setup.inverter
    meta = {"bundle": setup.name, "method": inv.method, "aligned": "no" if no_align else f"face {face_index}"}
    if inv.method == "projector":
        meta.update(space=setup.space, steps=str(setup.steps), perceptual=inv.perceptual_name)
    return meta


def invert_image(setup: InversionSetup, image: str, out: str, no_align: bool = False, face_index: int = 0,
                 reconstruction: str | None = None) -> list[str]:
    """Invert one photo into ``out`` (W+ ``[num_ws, w_dim]``, .safetensors); returns the report lines."""
    from faceanim.data.latents import save_latents

    setup.inverter.progress = True
    result = _invert_face(setup, image, no_align, face_index)
    w_plus = result.w_plus.detach().cpu()
    save_latents(w_plus, out, {"source": os.fspath(image), **_meta(setup, no_align, face_index)})
    if reconstruction is not None:
        _save_reconstruction(result, reconstruction)
    lines = [f"inverted {image} with {setup.how()} in {result.seconds:.1f} s: reconstruction MSE {result.mse:.4f}",
             f"  W+ code {list(w_plus.shape)} → {out}"]
    if reconstruction is not None:
        lines.append(f"  reconstruction → {reconstruction}")
    return lines


def invert_folder(setup: InversionSetup, src: str | os.PathLike, out: str | os.PathLike, no_align: bool = False,
                  face_index: int = 0, reconstructions: str | os.PathLike | None = None, progress: bool = True,
                  save_every: float = SAVE_EVERY_S) -> FolderReport:
    """Invert every photo in ``src`` into one file ``out`` of image stem → W+ ``[num_ws, w_dim]`` (the ``latents``
    of a training config; :func:`faceanim.data.latents.save_latents_by_name`). An existing ``out`` is resumed:
    its names are skipped, new codes added. A face that fails (none found, unreadable, diverged) is reported and
    skipped. ``reconstructions``: a folder for G(w) of each face (``<stem>.png``; off by default, it costs a
    generator pass per face). The file is rewritten every ``save_every`` seconds, at the end, and on Ctrl-C."""
    from faceanim.data.latents import LATENTS_BY_NAME_FORMAT, load_latents, load_latents_metadata, save_latents_by_name
    from faceanim.utils.paths import check_output_path

    files = list_images(src)
    check_output_path(out, allowed=(".safetensors",))
    stems: dict[str, str] = {}
    for f in files:
        if f.stem in stems:
            raise FaceanimError(f"{src}: {stems[f.stem]} and {f.name} share the name {f.stem!r} in the codes file")
        stems[f.stem] = f.name
    codes: dict = {}
    if Path(out).exists():
        if load_latents_metadata(out).get("format") != LATENTS_BY_NAME_FORMAT:
            raise FaceanimError(f"{out} exists and is not a name → code file of `faceanim invert DIR`; "
                                f"remove it or write elsewhere")
        codes = dict(load_latents(out))
    if reconstructions is not None:
        if Path(reconstructions).exists() and not Path(reconstructions).is_dir():
            raise FaceanimError(f"--reconstruction {reconstructions}: with a folder of photos, give a folder")
        Path(reconstructions).mkdir(parents=True, exist_ok=True)
    meta = {"source": os.fspath(src), **_meta(setup, no_align, face_index)}
    setup.inverter.progress = False
    state = {"saved": time.monotonic(), "dirty": False}

    def process(path: Path) -> None:
        result = _invert_face(setup, path, no_align, face_index, reconstruct=reconstructions is not None)
        codes[path.stem] = result.w_plus.detach().cpu()
        state["dirty"] = True
        if reconstructions is not None:
            _save_reconstruction(result, Path(reconstructions) / f"{path.stem}.png")

    def checkpoint(final: bool) -> None:
        if state["dirty"] and codes and (final or time.monotonic() - state["saved"] >= save_every):
            save_latents_by_name(codes, out, meta)
            state["saved"], state["dirty"] = time.monotonic(), False

    return run_folder(files, FolderReport("inverted"), lambda p: p.stem in codes, process, progress=progress,
                      checkpoint=checkpoint)


def invert_path(src: str, out: str, bundle: str | None = None, generator: str | None = None,
                encoder: str | None = None, method: str = "auto", steps: int | None = None, space: str = "w",
                device: str = "auto", no_align: bool = False, face_index: int = 0, reconstruction: str | None = None,
                progress: bool = True) -> tuple[list[str], FolderReport | None]:
    """``faceanim invert SRC``: a photo → a code file, or a folder of photos → one name → code file. Outputs and
    options are checked first, then the inverter opens (:func:`open_inverter`), then the work runs. Returns the
    report lines and, for a folder, its :class:`FolderReport` (whose ``check()`` applies the exit rule)."""
    from faceanim.align.prepare import check_image_output
    from faceanim.utils.paths import check_output_path

    folder = Path(src).is_dir()
    if not folder and not Path(src).is_file():
        raise FaceanimError(f"no such file or folder: {src}")
    check_output_path(out, allowed=(".safetensors",))
    if folder:
        list_images(src)
        if reconstruction is not None and Path(reconstruction).exists() and not Path(reconstruction).is_dir():
            raise FaceanimError(f"--reconstruction {reconstruction}: with a folder of photos, give a folder")
    else:
        check_image_output(reconstruction, "--reconstruction")
    setup = open_inverter(bundle, generator, encoder, method, steps, space, device)
    if not folder:
        return invert_image(setup, src, out, no_align, face_index, reconstruction), None
    report = invert_folder(setup, src, out, no_align, face_index, reconstruction, progress=progress)
    lines = report.summary()
    if report.done or report.existing:
        lines.append(f"  W+ codes of {len(report.done) + len(report.existing)} faces ({setup.how()}) → {out}")
    if reconstruction is not None and report.done:
        lines.append(f"  reconstructions → {reconstruction}/")
    return lines, report
