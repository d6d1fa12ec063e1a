"""One ``faceanim animate`` run as a library call: check everything that needs no model (fast, without torch), then
load the bundle once and write one video per seed.

    job = AnimateJob(prompts=("smiling",), seeds=(0, 1), out="smile_{seed}.mp4")
    bundle = job.check()      # one-line FaceanimError for any bad option, file or path; imports no torch
    for result in job.run(bundle):
        print(result.summary())
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from faceanim.errors import FaceanimError

if TYPE_CHECKING:
    from faceanim.bundles import Bundle

MAX_FRAMES = 1024           # per prompt; beyond this the recurrent rates decay to nothing and memory grows needlessly
MAX_PROMPT_CHARS = 1000     # a prompt longer than this is a mistake (CLIP reads 77 tokens at most)
MAX_SEEDS = 10_000          # outputs of one call
SEED_FIELD = "{seed}"       # placeholder of the seed in output names


def parse_seeds(text: str) -> tuple[int, ...]:
    """NVlabs-style seed lists: ``"3"``, ``"0-3,7"`` → (0, 1, 2, 3, 7); ranges inclusive, order kept, no repeats."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-") if not part.startswith("-") else ("", "", "")
        try:
            start, end = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise FaceanimError(f"seeds {text!r}: use numbers and ranges like 0-3,7") from None
        if start < 0 or end < start:
            raise FaceanimError(f"seeds {text!r}: ranges go up (0-3), seeds are ≥ 0")
        if end - start + len(seeds) >= MAX_SEEDS:
            raise FaceanimError(f"seeds {text!r}: at most {MAX_SEEDS} outputs per call")
        seeds += [s for s in range(start, end + 1) if s not in seeds]
    if not seeds:
        raise FaceanimError("give at least one seed")
    return tuple(seeds)


@dataclass
class AnimateResult:
    """What one output holds and what each stage cost."""

    out: str
    seed: int
    frames: int
    prompts: int
    width: int
    height: int
    fps: int
    bundle: str
    source: str                               # "seed 3", "latent x.safetensors", "photo me.jpg (…)"
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, inversion, motion, synthesis, writing
    latents_out: str | None = None

    def summary(self) -> list[str]:
        t = self.timings
        lines = [f"wrote {self.out}: {self.frames} frames{f' x {self.prompts} prompts' if self.prompts > 1 else ''}, "
                 f"{self.width}x{self.height}, {self.fps} fps ({self.frames / self.fps:.1f} s); bundle {self.bundle}, "
                 f"{self.source}",
                 "  time: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items())]
        if self.latents_out:
            lines.append(f"  latents → {self.latents_out}")
        return lines


@dataclass
class AnimateJob:
    """Everything ``faceanim animate`` takes (see its --help for each option)."""

    prompts: tuple[str, ...]
    out: str = "animation.mp4"
    bundle: str | None = None
    seeds: tuple[int, ...] = (0,)
    image: str | None = None
    latent: str | None = None
    frames: int | None = None                 # per prompt (None: the bundle's)
    fps: int | None = None                    # (None: the bundle's)
    strength: float = 1.0
    ping_pong: bool = False
    grid: bool = False
    size: int | None = None
    save_latents: str | None = None
    device: str = "auto"
    batch_size: int = 0                 # frames per generator call (0: auto, by resolution)
    no_align: bool = False
    face_index: int = 0
    paste_back: bool = False
    invert_steps: int | None = None
    encoder: str | None = None                # e4e encoder (folder or official .pt) for IMAGE instead of the bundle's

    # -- checks that need no model ---------------------------------------------------------------------------------
    def outputs(self) -> list[tuple[int, str, str | None]]:
        """(seed, video path, latents path) per output: one per seed, ``{seed}`` in the names when there are several."""
        many = len(self.seeds) > 1
        if many and SEED_FIELD not in self.out:
            raise FaceanimError(f"{len(self.seeds)} seeds write {len(self.seeds)} videos: put {SEED_FIELD} in --out "
                                f"(e.g. smile_{SEED_FIELD}.mp4)")
        if many and self.save_latents and SEED_FIELD not in self.save_latents:
            raise FaceanimError(f"{len(self.seeds)} seeds: put {SEED_FIELD} in --save-latents too")
        return [(s, self.out.replace(SEED_FIELD, str(s)),
                 self.save_latents.replace(SEED_FIELD, str(s)) if self.save_latents else None) for s in self.seeds]

    def check(self) -> "Bundle":
        """Every mistake that needs no model, as a one-line FaceanimError; returns the opened bundle (no torch)."""
        from faceanim.bundles import Bundle
        from faceanim.utils.paths import check_output_path

        if not self.prompts:
            raise FaceanimError("give a prompt (-p)")
        for p in self.prompts:
            if not p.strip():
                raise FaceanimError("--prompt is empty")
            if len(p) > MAX_PROMPT_CHARS:
                raise FaceanimError(f"--prompt is {len(p)} characters long; at most {MAX_PROMPT_CHARS}")
        if self.frames is not None and not 2 <= self.frames <= MAX_FRAMES:
            raise FaceanimError(f"--frames must be between 2 and {MAX_FRAMES}, got {self.frames}")
        if self.fps is not None and not 1 <= self.fps <= 120:
            raise FaceanimError(f"--fps must be between 1 and 120, got {self.fps}")
        if self.size is not None and not 16 <= self.size <= 2048:
            raise FaceanimError(f"--size must be between 16 and 2048, got {self.size}")
        if not 0 <= self.batch_size <= 256:
            raise FaceanimError("--batch-size must be between 0 (auto) and 256")
        if not 0.0 <= self.strength <= 3.0:
            raise FaceanimError(f"--strength must be between 0 and 3 (beyond, the codes leave the generator's "
                                f"range: garbage colours), got {self.strength}")
        if self.invert_steps is not None and not 1 <= self.invert_steps <= 100_000:
            raise FaceanimError(f"--invert-steps must be between 1 and 100000, got {self.invert_steps}")
        if self.latent is not None and not Path(self.latent).is_file():
            raise FaceanimError(f"--latent: file not found: {self.latent}")
        if self.image is None:
            for flag, given in (("--no-align", self.no_align), ("--paste-back", self.paste_back),
                                ("--invert-steps", self.invert_steps is not None), ("--face-index", self.face_index),
                                ("--encoder", self.encoder is not None)):
                if given:
                    raise FaceanimError(f"{flag} applies to a photo: give IMAGE")
        elif not Path(self.image).is_file():
            raise FaceanimError(f"image not found: {self.image}")
        elif len(self.seeds) > 1:
            raise FaceanimError("several --seed values animate faces drawn from seeds; with IMAGE give one")
        if self.encoder is not None and not Path(self.encoder).exists():
            raise FaceanimError(f"--encoder: no such file or folder: {self.encoder}")
        if self.encoder is not None and self.latent is not None:
            raise FaceanimError("--encoder inverts IMAGE; with --latent the code is given and nothing is inverted")
        for _, out, latents in self.outputs():
            check_output_path(out)
            if latents:
                check_output_path(latents, allowed=(".safetensors",))
        bundle = Bundle.open(self.bundle)
        if bundle.motion_mode == "image" and self.image is None:
            how = "its e4e encoder inverts it" if bundle.has("encoder") else \
                "--encoder e4e_ffhq_encode.pt inverts it in a second; without, the projector takes minutes"
            raise FaceanimError(f"bundle {bundle.name} animates photos (image-mode motion model): give IMAGE, a photo "
                                f"of a face ({how}); --seed and --latent alone cannot drive it")
        return bundle

    def frames_to_render(self, frames: int) -> int:
        """Frames one output renders: a timeline shares one frame between consecutive prompts, a grid renders each
        prompt on its own; ping-pong plays back to (not including) the first frame."""
        n = len(self.prompts)
        if self.grid:
            return n * (2 * frames - 2 if self.ping_pong else frames)
        total = frames * n - (n - 1)
        return 2 * total - 2 if self.ping_pong else total

    # -- the run ---------------------------------------------------------------------------------------------------
    def run(self, bundle: "Bundle | None" = None, log: Callable[[str], None] = print,
            progress: bool | None = None, notice: Callable[[str], None] | None = None) -> list[AnimateResult]:
        """Load the bundle once, then animate and write each output. ``log`` gets one line per stage as it starts;
        ``progress`` shows a frames bar (None: when the terminal is interactive); ``notice`` is told what the user
        must know before a long wait (a projection's expected time; default: ``log``)."""
        bundle = bundle or self.check()
        log(f"loading {bundle.name}…")  # before torch: its import alone takes seconds
        import torch
        from tqdm.auto import tqdm

        from faceanim.pipelines.animation import AnimationPipeline
        from faceanim.utils.device import pick_device

        face = None
        if self.image is not None:
            from faceanim.align.prepare import MIN_INVERSION_SIZE, prepare_face
            from faceanim.utils.images import load_image

            # unreadable or oversized input, no face or a bad --face-index fail here, before any model loads
            photo = load_image(self.image)
            face = prepare_face(photo, self.image, max(bundle.generator_resolution, MIN_INVERSION_SIZE),
                                self.no_align, self.face_index, bundle.info.alignment)
        if self.encoder is not None:  # a mismatch is one line before the bundle loads
            from faceanim.inversion.e4e import encoder_config

            n_styles, num_ws = encoder_config(self.encoder).n_styles, bundle.generator_num_ws
            if n_styles != num_ws:
                raise FaceanimError(f"--encoder {self.encoder} writes {n_styles} W+ codes but the generator of "
                                    f"{bundle.name} takes {num_ws} (an encoder trained for another generator)")
        t0 = time.perf_counter()
        projector_config = None
        if self.invert_steps is not None:
            from faceanim.inversion import ProjectorConfig

            projector_config = ProjectorConfig(steps=self.invert_steps)
        pipe = AnimationPipeline.from_bundle(bundle, device=pick_device(self.device),
                                             projector_config=projector_config, encoder=self.encoder)
        pipe.inverter.progress = True
        pipe.inverter.notice = notice or log
        for note in pipe.prompt_notes(list(self.prompts)):
            (notice or log)(note)
        t_load = time.perf_counter() - t0
        frames = self.frames or bundle.info.num_frames
        fps = self.fps or bundle.info.fps
        results = []
        for seed, out, latents_out in self.outputs():
            source: dict = {"seed": seed}
            if self.latent is not None:
                from faceanim.data.latents import load_latents_file

                codes = load_latents_file(self.latent)
                source = {"latent": codes[-1] if codes.ndim == 3 and codes.shape[0] > 1 else codes}
            if face is not None:
                source["image"] = face.image
                source.pop("seed", None)
            total = self.frames_to_render(frames)
            kwargs = dict(num_frames=frames, strength=self.strength, ping_pong=self.ping_pong,
                          batch_size=self.batch_size, rng=torch.Generator().manual_seed(int(seed)), **source)
            with tqdm(total=total, desc="frames", unit="frame", disable=None if progress is None else not progress,
                      leave=False) as bar:
                call = pipe.batch if self.grid else pipe
                result = call(list(self.prompts), progress=bar.update, **kwargs)
            t1 = time.perf_counter()
            video, width, height = self._write(result, out, fps, face)
            if latents_out:
                from faceanim.data.latents import save_latents

                save_latents(result.latents, latents_out, {"prompts": " | ".join(self.prompts), "bundle": pipe.name,
                                                            "seed": str(seed)})
            t_write = time.perf_counter() - t1
            inversion = pipe.inverter.last if face is not None and self.latent is None else None
            t_invert = inversion.seconds if inversion is not None else 0.0
            timings = {"load": t_load, **({"inversion": t_invert} if inversion else {}),
                       "motion": result.timings["motion"] - t_invert, "synthesis": result.timings["synthesis"],
                       "writing": t_write}
            timings["total"] = sum(timings.values())
            t_load = 0.0  # loaded once for every output
            n = result.frames.shape[-4] if result.frames.ndim == 5 else result.frames.shape[0]
            results.append(AnimateResult(out, seed, n, len(self.prompts) if self.grid else 1, width, height, fps,
                                         pipe.name, self._describe(seed, face, inversion), timings, latents_out))
        return results

    def _write(self, result, out: str, fps: int, face) -> tuple[object, int, int]:
        import numpy as np

        from faceanim.outputs import as_uint8_video, write_animation, write_grid_video

        video = result.frames
        if self.paste_back:
            clips = video if self.grid else video[None]
            video = np.stack([np.stack([np.asarray(f) for f in face.paste_back(as_uint8_video(c))]) for c in clips])
            video = video if self.grid else video[0]
        if self.grid:
            write_grid_video(video, out, fps=fps, labels=list(self.prompts), size=self.size)
        else:
            write_animation(video, out, fps=fps, size=self.size)
        height, width = (video.shape[-3:-1] if self.paste_back else result.frames.shape[-2:])
        if self.size:
            height, width = ((self.size, round(width * self.size / height)) if height >= width
                             else (round(height * self.size / width), self.size))
        return video, int(width), int(height)

    def _describe(self, seed: int, face, inversion) -> str:
        if face is not None:
            what = f"photo {self.image} ({'no alignment' if self.no_align else f'face {self.face_index}'}, "
            return what + (f"latent {self.latent})" if self.latent else
                           f"inverted with {inversion.method}, MSE {inversion.mse:.4f})")
        return f"latent {self.latent}" if self.latent else f"seed {seed}"
