"""``faceanim demo``: a Gradio app that animates a face from a prompt.

:class:`DemoEngine` holds the models (loaded once, shared by every request) and does the work — validation,
inversion of photos, animation, writing MP4/GIF/W+ files — without any Gradio import, so its functions are
tested directly. :func:`build_app` lays out the page on top of it; :func:`run_demo` serves it with the shared
server setup of :mod:`faceanim.web.server`.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from faceanim.errors import FaceanimError
from faceanim.utils.images import MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    import gradio as gr

    from faceanim.pipelines import AnimationPipeline
    from faceanim.web.server import WebServer

MAX_PROMPTS = 4            # rows of the prompt timeline
MAX_PROMPT_CHARS = 200     # a prompt longer than this is refused before tokenizing
DEMO_MAX_FRAMES = 64       # frames per prompt a request may ask for (keeps every job short)
MAX_FPS = 50               # GIF delays under 20 ms play slower in browsers
MAX_STRENGTH = 3.0
MAX_SEED = 2**31 - 1
GALLERY_FACES = 8
TOON_BUNDLE = "toonface"   # cartoon faces: dlib finds none, photos are center-cropped
MIN_INVERSION_SIZE = 256   # photos are prepared at least this large (e4e reads 256 px)
PHOTO_CACHE = 16           # inverted photos kept per server (re-animating a photo skips its inversion)

Progress = Callable[[float, str], None]


@dataclass
class DemoConfig:
    bundles: Sequence[str] = (TOON_BUNDLE,)   # bundle names or folders; the first is selected at start
    device: str = "auto"
    invert_steps: int | None = None           # projector steps for photos (None: the projector's default, 300)
    max_frames: int = DEMO_MAX_FRAMES
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_upload_bytes: int | None = None       # None: the server's limit
    max_image_pixels: int = MAX_IMAGE_PIXELS
    warmup: bool = True                        # one short animation per bundle at start (first request is warm)


@dataclass
class DemoRequest:
    prompts: list[str]                 # 1–4 rows; blank rows are dropped
    bundle: str | None = None          # a loaded bundle's name (None: the first)
    source: str = "seed"               # "seed" or "photo"
    seed: int = 0
    photo: str | None = None           # path of an uploaded image
    aligned_crop: bool = False         # the photo already is an aligned face crop: center-crop only
    strength: float = 1.0
    frames: int | None = None          # frames per prompt (None: the bundle's)
    fps: int | None = None             # None: the bundle's
    ping_pong: bool = False
    compare: bool = False              # one clip per prompt, side by side, instead of a timeline


@dataclass
class DemoResult:
    video: Path                        # MP4 (H.264, plays in browsers)
    files: list[Path]                  # downloads: MP4, GIF, W+ latents (.safetensors; one per prompt when comparing)
    face: np.ndarray                   # uint8 [H, W, 3]: the start face (the seed's face, or the prepared photo)
    reconstruction: np.ndarray | None  # uint8 [H, W, 3]: G(w) of an inverted photo
    face_note: str                     # how the face was obtained (inversion method, error)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    num_frames: int = 0                # frames in the video
    fps: int = 10
    prompt_notes: list[str] = field(default_factory=list)  # prompts far from every one the bundle supports

    def note_text(self) -> str:
        """The face note, then one line per far prompt."""
        return "\n\n".join([self.face_note, *self.prompt_notes])

    def timing_text(self) -> str:
        parts = [f"{k} {v:.2f} s" for k, v in self.timings.items()]
        return f"{self.num_frames} frames at {self.fps} fps ({self.num_frames / self.fps:.1f} s). Time: " + ", ".join(parts)


@dataclass
class _Photo:
    face: np.ndarray
    reconstruction: np.ndarray
    w_plus: "object"                   # torch tensor [num_ws, w_dim]
    note: str
    seconds: float
    reused: bool = False               # served from the cache of inverted photos


def _slug(text: str, limit: int = 32) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "prompt"


def _alignment_installed() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    from faceanim.align import default_landmarks_path

    return default_landmarks_path() is not None


def _pick_device(name: str):
    from faceanim.utils.device import pick_device

    return pick_device(name)


class DemoEngine:
    """The models behind the page, loaded once; every method raises one-line FaceanimErrors for bad input."""

    def __init__(self, config: DemoConfig | None = None):
        from faceanim.inversion import ProjectorConfig
        from faceanim.pipelines import AnimationPipeline

        self.config = config or DemoConfig()
        if not self.config.bundles:
            raise FaceanimError("give at least one bundle")
        if self.config.invert_steps is not None and not 1 <= self.config.invert_steps <= 100_000:
            raise FaceanimError(f"--invert-steps must be between 1 and 100000, got {self.config.invert_steps}")
        self.device = _pick_device(self.config.device)
        projector = ProjectorConfig(steps=self.config.invert_steps) if self.config.invert_steps else None
        self.pipes: dict[str, AnimationPipeline] = {}
        for spec in self.config.bundles:
            pipe = AnimationPipeline.from_bundle(spec, device=self.device, projector_config=projector)
            name = pipe.name
            if name in self.pipes:  # two folders with the same bundle name
                name = f"{name} ({Path(str(spec)).name})"
            self.pipes[name] = pipe
        self.names = list(self.pipes)
        self._photos: OrderedDict[tuple, _Photo] = OrderedDict()
        self._photo_lock = threading.Lock()
        self._step_seconds: dict[str, float] = {}
        self._galleries: dict[str, list[tuple[np.ndarray, str]]] = {}
        if self.config.warmup:
            for name in self.names:
                self.pipes[name]("smiling", seed=0, num_frames=2)

    # -- facts about a bundle --------------------------------------------------------------------------------------
    def pipe(self, bundle: str | None) -> "AnimationPipeline":
        name = bundle or self.names[0]
        if name not in self.pipes:
            raise FaceanimError(f"unknown bundle {name!r} (this server has: {', '.join(self.names)})")
        return self.pipes[name]

    def defaults(self, bundle: str | None = None) -> dict:
        info = getattr(self.pipe(bundle), "info", None)
        return {"frames": min(getattr(info, "num_frames", 16), self.config.max_frames),
                "fps": min(getattr(info, "fps", 10), MAX_FPS),
                "examples": list(getattr(info, "supported_prompts", None) or getattr(info, "example_prompts", ["smiling"])),
                "template": self.pipe(bundle).template}

    def aligns_photos(self, bundle: str | None = None) -> bool:
        """Whether photos are FFHQ-aligned (dlib) for this bundle (its ``alignment``); else they are center-cropped."""
        info = self.pipe(bundle).info
        return (info is None or info.alignment == "ffhq") and _alignment_installed()

    def projector_step_seconds(self, bundle: str | None = None) -> float:
        """Measured time of one projector step (a generator forward + backward pass) on this device."""
        import torch

        name = bundle or self.names[0]
        if name not in self._step_seconds:
            G = self.pipe(name).G
            w = G.w_avg.detach().reshape(1, 1, -1).expand(1, G.num_ws, -1).clone().requires_grad_(True)
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                G.synthesis(w, noise_mode="const").square().mean().backward()
                best = min(best, time.perf_counter() - t0)
            self._step_seconds[name] = best * 1.3  # + the perceptual term and the optimizer
            del w
            torch.set_grad_enabled(True)
        return self._step_seconds[name]

    def photo_note(self, bundle: str | None = None) -> str:
        """One paragraph for the page: how an uploaded photo becomes a face of this bundle."""
        pipe = self.pipe(bundle)
        inverter = pipe.inverter
        if inverter.method == "e4e":
            how = "inverted with the bundle's e4e encoder (one pass)"
        else:
            steps = inverter.projector_config.steps
            how = (f"inverted with the optimization projector ({steps} steps, about "
                   f"{steps * self.projector_step_seconds(bundle):.0f} s here; no e4e encoder in this bundle)")
        if pipe.info is not None and pipe.info.alignment != "ffhq":
            align = ("this bundle takes photos as centred crops (its faces are not found by the face detector, e.g. "
                     "ToonFace's cartoons): a photo is not aligned, its **center square** is used")
        elif not _alignment_installed():
            align = 'face alignment is not installed (`pip install "faceanim[align]"`): the **center square** is used'
        else:
            align = "the face is found and aligned the way FFHQ was (tick *aligned crop* to skip this)"
        return f"Photos: {align}, then {how}; the reconstruction is shown next to the input with its error."

    def gallery(self, bundle: str | None = None, count: int = GALLERY_FACES) -> list[tuple[np.ndarray, str]]:
        """The faces of seeds 0…count-1 (uint8 images with captions), computed once per bundle."""
        name = bundle or self.names[0]
        if name not in self._galleries:
            self._galleries[name] = [(self.seed_face(name, s), f"seed {s}") for s in range(count)]
        return self._galleries[name]

    def seed_face(self, bundle: str | None, seed: int) -> np.ndarray:
        import torch

        from faceanim.utils.images import to_uint8

        pipe = self.pipe(bundle)
        w = pipe.latent_from_seed(self._seed(seed))
        with torch.no_grad():
            img = pipe.G.synthesis(w[None], noise_mode="const")
        return to_uint8(img[0]).numpy()

    # -- checks ----------------------------------------------------------------------------------------------------
    def _seed(self, seed) -> int:
        try:
            value = float(seed)
        except (TypeError, ValueError):
            raise FaceanimError(f"the seed must be a whole number, got {seed!r}") from None
        if value != int(value) or not 0 <= value <= MAX_SEED:
            raise FaceanimError(f"the seed must be a whole number between 0 and {MAX_SEED}, got {seed}")
        return int(value)

    def check(self, req: DemoRequest) -> tuple[list[str], int, int]:
        """(prompts, frames, fps) of a valid request, else a one-line FaceanimError. Cheap: runs before any work."""
        pipe = self.pipe(req.bundle)
        rows = [p if isinstance(p, str) else "" for p in (req.prompts or [])]
        if len(rows) > MAX_PROMPTS:
            raise FaceanimError(f"at most {MAX_PROMPTS} prompts, got {len(rows)}")
        for i, p in enumerate(rows, 1):
            if len(p) > self.config.max_prompt_chars:
                raise FaceanimError(f"prompt {i} is {len(p):,} characters long; the limit is "
                                    f"{self.config.max_prompt_chars}")
        prompts = [p.strip() for p in rows if p.strip()]
        if not prompts:
            raise FaceanimError("the prompt is empty: type what the face should do, e.g. 'smiling'")
        try:
            pipe.animator.clip.tokenize(prompts, template=pipe.template)
        except FaceanimError as exc:
            raise FaceanimError(f"a prompt is too long for the text encoder ({exc})") from None
        d = self.defaults(req.bundle)
        frames = d["frames"] if req.frames is None else req.frames
        fps = d["fps"] if req.fps is None else req.fps
        if isinstance(frames, float) and frames.is_integer():
            frames = int(frames)
        if isinstance(fps, float) and fps.is_integer():
            fps = int(fps)
        if not isinstance(frames, int) or not 2 <= frames <= self.config.max_frames:
            raise FaceanimError(f"frames per prompt must be between 2 and {self.config.max_frames}, got {frames}")
        if not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
            raise FaceanimError(f"fps must be a whole number between 1 and {MAX_FPS}, got {fps}")
        try:
            strength = float(req.strength)
        except (TypeError, ValueError):
            strength = float("nan")
        if not 0 <= strength <= MAX_STRENGTH:
            raise FaceanimError(f"strength must be between 0 and {MAX_STRENGTH}, got {req.strength}")
        if req.source not in ("seed", "photo"):
            raise FaceanimError(f"the face comes from 'seed' or 'photo', not {req.source!r}")
        if req.source == "photo" and not req.photo:
            raise FaceanimError("upload a photo first (or choose a seed)")
        self._seed(req.seed)  # the face of a seed; for a photo, the motion noise
        return prompts, frames, fps

    # -- photos ----------------------------------------------------------------------------------------------------
    def prepare_photo(self, bundle: str | None, path: str, aligned_crop: bool = False,
                      progress: Progress | None = None) -> _Photo:
        """Read, align (or center-crop) and invert an uploaded photo; cached by content, bundle and crop mode."""
        from faceanim.utils.images import to_uint8
        from faceanim.web.server import MAX_UPLOAD_BYTES, check_upload

        pipe = self.pipe(bundle)
        limit = self.config.max_upload_bytes or MAX_UPLOAD_BYTES
        photo = check_upload(path, max_bytes=limit, max_pixels=self.config.max_image_pixels)
        align = self.aligns_photos(bundle) and not aligned_crop
        key = (pipe.name, hashlib.sha256(Path(path).read_bytes()).hexdigest(), align)
        with self._photo_lock:
            if key in self._photos:
                self._photos.move_to_end(key)
                return replace(self._photos[key], reused=True)
        from faceanim.align.prepare import prepare_face

        size = max(pipe.G.img_resolution, MIN_INVERSION_SIZE)
        face = prepare_face(photo, "the photo", size, no_align=not align).image  # the CLI's own crop step
        how = "aligned" if align else "center square"
        inverter = pipe.inverter
        if progress is not None:
            eta = ("" if inverter.method == "e4e" else
                   f", about {inverter.projector_config.steps * self.projector_step_seconds(bundle):.0f} s")
            progress(0.0, f"inverting the photo ({inverter.method}{eta})")
        inverter.progress = progress is not None  # a tqdm bar, which gr.Progress(track_tqdm=True) shows
        result = inverter.invert(face)
        note = (f"Photo ({how}), inverted with {result.method} in {result.seconds:.1f} s: reconstruction MSE "
                f"{result.mse:.4f} (images in [-1, 1])")
        entry = _Photo(face=to_uint8(result.target[0]).numpy(), reconstruction=to_uint8(result.reconstruction[0]).numpy(),
                       w_plus=result.w_plus.detach(), note=note, seconds=result.seconds)
        with self._photo_lock:
            self._photos[key] = entry
            while len(self._photos) > PHOTO_CACHE:
                self._photos.popitem(last=False)
        return entry

    # -- animation -------------------------------------------------------------------------------------------------
    def animate(self, req: DemoRequest, out_dir: str | Path, progress: Progress | None = None) -> DemoResult:
        """Validate, get the face (seed or photo), animate, write MP4 + GIF + W+ latents into ``out_dir``."""
        import torch

        from faceanim.outputs import save_latents, write_animation, write_grid_video

        t_start = time.perf_counter()
        prompts, frames, fps = self.check(req)
        pipe = self.pipe(req.bundle)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        if req.source == "photo":
            photo = self.prepare_photo(req.bundle, req.photo, req.aligned_crop, progress)
            timings["inversion"] = time.perf_counter() - t_start
            source = {"latent": photo.w_plus}
            face, recon, note = photo.face, photo.reconstruction, photo.note
            if photo.reused:
                note += " — reused: this photo was inverted before"
        else:
            seed = self._seed(req.seed)
            source = {"seed": seed}
            face, recon, note = self.seed_face(req.bundle, seed), None, f"Face of seed {seed} ({pipe.name})"
        total = frames * len(prompts) if req.compare else frames + (frames - 1) * (len(prompts) - 1)
        if req.ping_pong:
            total = (2 * frames - 2) * len(prompts) if req.compare else 2 * total - 2
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(min(done[0] / total, 1.0), f"synthesizing frames {done[0]}/{total}")

        if progress is not None:
            progress(0.0, "motion")
        kwargs = dict(num_frames=frames, strength=float(req.strength), ping_pong=bool(req.ping_pong),
                      rng=torch.Generator().manual_seed(self._seed(req.seed)), progress=step, **source)
        result = pipe.batch(prompts, **kwargs) if req.compare else pipe(prompts, **kwargs)
        timings["motion"] = result.timings["motion"]
        timings["synthesis"] = result.timings["synthesis"]
        if progress is not None:
            progress(1.0, "writing the video")
        t0 = time.perf_counter()
        stem = "faceanim-" + "-".join(_slug(p, 24) for p in prompts)[:80]
        mp4, gif = out_dir / f"{stem}.mp4", out_dir / f"{stem}.gif"
        if req.compare:
            write_grid_video(result.frames, mp4, fps=fps, labels=prompts)
        else:
            write_animation(result.frames, mp4, fps=fps)
        timings["mp4"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if req.compare:
            write_grid_video(result.frames, gif, fps=fps, labels=prompts)
        else:
            write_animation(result.frames, gif, fps=fps)
        timings["gif"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        meta = {"bundle": pipe.name, "source": note, "fps": str(fps)}
        latents = []
        if req.compare:  # one file per prompt: `faceanim animate --latent` reads [T, num_ws, w_dim]
            for i, p in enumerate(prompts):
                path = out_dir / f"{stem}-{i + 1}-{_slug(p, 24)}.safetensors"
                latents.append(save_latents(result.latents[i], path, {**meta, "prompts": p}))
        else:
            latents.append(save_latents(result.latents, out_dir / f"{stem}.safetensors",
                                        {**meta, "prompts": " | ".join(prompts)}))
        timings["latents"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        n = result.frames.shape[1] if req.compare else result.frames.shape[0]
        return DemoResult(video=mp4, files=[mp4, gif, *latents], face=face, reconstruction=recon, face_note=note,
                          timings=timings, num_frames=n, fps=fps, prompt_notes=pipe.prompt_notes(prompts))


# -- the page -----------------------------------------------------------------------------------------------------
def _image_file(image: np.ndarray | None, path: Path) -> str | None:
    """Write a uint8 image as PNG and return its path (None stays None).

    The page hands Gradio files, never arrays: Gradio writes an array to a content-named cache file *in place*
    each time a handler returns it, so while one browser downloads a face another request returning the same face
    truncated and rewrote it (a short read: "Too little data for declared Content-Length"). A file is copied
    under a temporary name and renamed into place."""
    if image is None:
        return None
    from PIL import Image

    Image.fromarray(image).save(path)
    return str(path)


def _raw_components():
    """Inputs whose values reach :class:`DemoEngine` unchecked by Gradio, so that every bad value gets the
    engine's one-line message: ``gr.Image`` would open an upload with PIL first (a non-image or a pixel bomb would
    fail inside Gradio), ``gr.Slider``/``gr.Number`` answer out-of-range API values with their own wording."""
    import gradio as gr

    class PhotoInput(gr.Image):
        is_template = True  # rendered by the frontend as the parent component

        def preprocess(self, payload):
            if payload is None:
                return None
            if getattr(payload, "path", None) is None:
                raise gr.Error("the upload did not arrive; try again", print_exception=False)
            return str(payload.path)

    class RawSlider(gr.Slider):
        is_template = True

        def preprocess(self, payload):
            return payload

    class RawNumber(gr.Number):
        is_template = True

        def preprocess(self, payload):
            return payload

    return PhotoInput, RawSlider, RawNumber


def build_app(engine: DemoEngine, server: "WebServer") -> "gr.Blocks":
    """The page: Face | Text | Output. Its one API endpoint, ``/animate``, takes (bundle, source, seed, photo,
    aligned_crop, prompt 1–4, strength, frames, fps, ping_pong, compare) and returns (video, files, face,
    reconstruction, face note, timings)."""
    import random

    import gradio as gr

    first = engine.names[0]
    d = engine.defaults(first)
    PhotoInput, Slider, Number = _raw_components()

    def run(bundle, source, seed, photo, aligned_crop, p1, p2, p3, p4, strength, frames, fps, ping_pong, compare,
            progress=gr.Progress(track_tqdm=True)):
        req = DemoRequest(prompts=[p1, p2, p3, p4], bundle=bundle, source=source,
                          seed=0 if seed is None else seed, photo=photo, aligned_crop=bool(aligned_crop),
                          strength=strength, frames=frames, fps=fps, ping_pong=bool(ping_pong), compare=bool(compare))
        with server.output_dir() as out_dir:  # not pruned while this request runs
            try:
                result = engine.animate(req, out_dir, progress=lambda f, msg: progress(f, desc=msg))
            except FaceanimError as exc:
                raise gr.Error(str(exc).splitlines()[0] if str(exc) else "bad input", print_exception=False) from None
            except MemoryError:
                raise gr.Error("out of memory: try fewer frames or prompts", print_exception=False) from None
            except Exception as exc:  # one line on the page; the traceback stays in the server log
                traceback.print_exc()
                first_line = (str(exc).splitlines() or [""])[0][:200]
                raise gr.Error(f"internal error: {type(exc).__name__}: {first_line}", print_exception=False) from None
            return (str(result.video), [str(p) for p in result.files],
                    _image_file(result.face, out_dir / "face.png"),
                    _image_file(result.reconstruction, out_dir / "reconstruction.png"), result.note_text(),
                    result.timing_text())

    galleries: dict[str, list[tuple[str, str]]] = {}
    lock = threading.Lock()

    def gallery_files(bundle: str) -> list[tuple[str, str]]:
        """The bundle's gallery as PNG files in the server's static folder, written once."""
        with lock:
            if bundle not in galleries:
                folder = server.static_dir / f"gallery-{engine.names.index(bundle)}"
                folder.mkdir(parents=True, exist_ok=True)
                galleries[bundle] = [(_image_file(img, folder / f"seed-{i}.png"), caption)
                                     for i, (img, caption) in enumerate(engine.gallery(bundle))]
            return galleries[bundle]

    def on_bundle(bundle):
        dd = engine.defaults(bundle)
        return (gr.Gallery(value=gallery_files(bundle)), gr.Dataset(samples=[[p] for p in dd["examples"]]),
                engine.photo_note(bundle), dd["frames"], dd["fps"], gr.Checkbox(visible=engine.aligns_photos(bundle)))

    with gr.Blocks(title="faceanim demo", **server.blocks_kwargs()) as app:
        gr.Markdown(f"## faceanim — animate a face with a sentence\nBundle template: *{d['template']}* — a bare "
                    "prompt such as `smiling` is put into it; full sentences are used as written.", elem_id="title")
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown("### Face")
                bundle = gr.Dropdown(engine.names, value=first, label="Bundle", visible=len(engine.names) > 1,
                                     elem_id="bundle")
                source = gr.Radio(["seed", "photo"], value="seed", label="Face from", elem_id="source")
                with gr.Row():
                    seed = Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
                    rand = gr.Button("random", size="sm", elem_id="random")
                gallery = gr.Gallery(value=gallery_files(first), label="Faces of the bundle (click one)", columns=4,
                                     height=230, allow_preview=False, elem_id="gallery")
                photo = PhotoInput(type="filepath", label="…or upload a photo", sources=["upload"], height=200,
                                   elem_id="photo")
                aligned_crop = gr.Checkbox(False, label="aligned crop (skip face alignment)", elem_id="aligned",
                                           visible=engine.aligns_photos(first))
                photo_note = gr.Markdown(engine.photo_note(first), elem_id="photo-note")
                with gr.Row():
                    face_in = gr.Image(label="Start face", interactive=False, height=160, elem_id="face-in")
                    face_recon = gr.Image(label="Reconstruction", interactive=False, height=160, elem_id="face-recon")
                face_note = gr.Markdown(label="Face note", elem_id="face-note")
            with gr.Column(scale=1):
                gr.Markdown("### Text")
                prompts = [gr.Textbox(label=f"Prompt {i + 1}" + (" (then…)" if i else ""), lines=1,
                                      max_length=engine.config.max_prompt_chars, elem_id=f"prompt-{i + 1}",
                                      placeholder="e.g. smiling" if i == 0 else "optional: continues the timeline")
                           for i in range(MAX_PROMPTS)]
                examples = gr.Dataset(components=[prompts[0]], samples=[[p] for p in d["examples"]],
                                      label="Prompts this bundle was trained on (click to use)", elem_id="examples")
                strength = Slider(0, MAX_STRENGTH, value=1.0, step=0.05, label="Strength", elem_id="strength")
                with gr.Row():
                    frames = Slider(2, engine.config.max_frames, value=d["frames"], step=1,
                                       label="Frames per prompt", elem_id="frames")
                    fps = Slider(1, MAX_FPS, value=d["fps"], step=1, label="fps", elem_id="fps")
                with gr.Row():
                    ping_pong = gr.Checkbox(False, label="ping-pong (loop back)", elem_id="ping-pong")
                    compare = gr.Checkbox(False, label="compare prompts (side by side)", elem_id="compare")
                go = gr.Button("Animate", variant="primary", elem_id="animate")
            with gr.Column(scale=1):
                gr.Markdown("### Output")
                video = gr.Video(label="Animation", autoplay=True, loop=True, height=320, interactive=False,
                                 elem_id="video")
                files = gr.File(label="Downloads: MP4, GIF, W+ latents (faceanim animate --latent)",
                                file_count="multiple", interactive=False, elem_id="files")
                timings = gr.Markdown(label="Timings", elem_id="timings")

        rand.click(lambda: (random.randint(0, 99_999), "seed"), None, [seed, source], api_name=False, queue=False)
        def pick(evt):
            return evt.index, "seed"

        pick.__annotations__["evt"] = gr.SelectData  # a real class: this module's annotations are strings

        gallery.select(pick, None, [seed, source], api_name=False, queue=False)
        photo.upload(lambda: "photo", None, source, api_name=False, queue=False)
        examples.click(lambda sample: sample[0], examples, prompts[0], api_name=False, queue=False)
        bundle.change(on_bundle, bundle, [gallery, examples, photo_note, frames, fps, aligned_crop], api_name=False)
        go.click(run, [bundle, source, seed, photo, aligned_crop, *prompts, strength, frames, fps, ping_pong, compare],
                 [video, files, face_in, face_recon, face_note, timings], api_name="animate",
                 concurrency_limit=server.concurrency)
    return app


def run_demo(demo: DemoConfig, server_config, echo: Callable[[str], None] = print) -> None:
    """Load the models, serve the page until SIGINT/SIGTERM, clean up (the ``faceanim demo`` command)."""
    from faceanim.utils.perf import tune_allocator
    from faceanim.web.server import WebServer

    tune_allocator()
    t0 = time.perf_counter()
    engine = DemoEngine(demo)
    server = WebServer(server_config, device=engine.device)
    try:
        app = build_app(engine, server)
        url = server.launch(app)
        echo(f"faceanim demo: {', '.join(engine.names)} on {engine.device}, ready in {time.perf_counter() - t0:.1f} s")
        echo(f"  open {url}  (queue: {server.concurrency} running + {server.config.queue_size} waiting; Ctrl-C stops)")
        server.serve_forever()
    finally:
        server.close()
    echo("faceanim demo: stopped")
