"""``AnimationPipeline``: a face (W+ code, seed, or photo) and a prompt → video frames."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from faceanim.errors import FaceanimError

if TYPE_CHECKING:
    from faceanim.bundles import Bundle

from faceanim.pipelines.job import MAX_FRAMES
from faceanim.pipelines.output import AnimationOutput, check_output_type, convert_frames, progress_bar

__all__ = ["AnimationOutput", "AnimationPipeline"]


class AnimationPipeline:
    """Frozen StyleGAN2 + trained motion model (+ optional inversion) → animations.

    >>> pipe = AnimationPipeline.from_pretrained("toonface")      # or a folder, "ORG/NAME" on the Hub
    >>> out = pipe(prompt="smiling", seed=3, num_frames=16)
    >>> out.frames.shape        # [16, 3, 128, 128], in [-1, 1]; output_type="np" | "pil" as in diffusers
    >>> out.save("smiling.mp4")
    """

    def __init__(self, generator, animator, template: str | None = None, truncation_psi: float = 0.7,
                 inverter: Callable | None = None, name: str = "custom", anchor_first_frame: bool = True,
                 z_sampler: str = "gaussian", info=None):
        """``anchor_first_frame``: subtract Δw⁽¹⁾ from every Δw⁽ⁱ⁾ so that the video starts exactly at the source
        code w_s (the paper's w⁽¹⁾ = Δw⁽¹⁾ + w_s is only pulled towards w_s by its losses) and prompt timelines
        join without a jump. w_s is the given face in latent mode and H_v(z_v) + w_inv in image mode (eq. 8, as
        in training). False gives eq. 8 as written, w⁽ⁱ⁾ = Δw⁽ⁱ⁾ + w_v + w_inv (latent mode: Δw⁽ⁱ⁾ + w_s), with
        the paper's decaying inference rates (docs/FIDELITY.md). ``inverter``: aligned face image →
        ``(image [1, 3, R, R], W+ [num_ws, w_dim])``, e.g. :class:`faceanim.inversion.Inverter` (``from_bundle``
        sets one); without it, photos are refused. ``info``: the bundle's :class:`~faceanim.bundles.BundleInfo`
        (``from_bundle`` sets it)."""
        from faceanim.data.z_samplers import get_z_sampler

        self.anchor_first_frame = anchor_first_frame
        self.sample_z = get_z_sampler(z_sampler)
        self.G = generator.eval().requires_grad_(False)
        self.animator = animator.eval().requires_grad_(False)
        self.template = template or animator.config.template
        self.truncation_psi, self.inverter, self.name = truncation_psi, inverter, name
        self.info = info
        self._progress_bar_config: dict[str, Any] = {}

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained: "str | os.PathLike | Bundle | None" = None, revision: str | None = None,
                        torch_dtype: torch.dtype | None = None, device: str | torch.device = "cpu", **kwargs
                        ) -> "AnimationPipeline":
        """diffusers' way in: a bundle name ("toonface"), a folder, or a Hugging Face Hub id — "ORG/NAME" (when no
        such folder exists) or "hf:ORG/NAME[@REV]" — fetched through huggingface_hub's cache (``HF_HOME``,
        ``HF_HUB_OFFLINE``); ``revision``: a branch, tag or commit of that repository. ``torch_dtype``: only
        float32 for now (the generator computes in float32). Other keywords go to :meth:`from_bundle`."""
        from faceanim.hub import resolve_pretrained

        if torch_dtype not in (None, torch.float32):
            raise FaceanimError(f"torch_dtype={torch_dtype} is not supported yet: faceanim's networks run in float32")
        return cls.from_bundle(resolve_pretrained(pretrained, revision), device=device, **kwargs)

    @classmethod
    def from_bundle(cls, bundle: "str | os.PathLike | Bundle | None" = None, device: str | torch.device = "cpu",
                    inversion: str = "auto", projector_config=None, encoder: str | os.PathLike | None = None
                    ) -> "AnimationPipeline":
        """Load a bundle. Photos are inverted with the bundle's e4e encoder when it has one (or ``encoder``: an
        e4e folder or official ``.pt``), otherwise with the optimization projector (``projector_config``;
        perceptual term: LPIPS if its weights are cached, else the motion model's CLIP features).
        ``inversion``: "auto", "e4e" or "projector". Nothing of the inversion is loaded until a photo comes."""
        from faceanim.bundles import Bundle
        from faceanim.inversion import Inverter

        bundle = Bundle.open(bundle)
        info = bundle.info
        G, animator = bundle.load_generator(), bundle.load_animator()
        if encoder is None and bundle.has("encoder"):
            encoder = bundle.path("encoder")
        inverter = Inverter(G, inversion, encoder=encoder, projector_config=projector_config, clip=animator.clip)
        pipe = cls(G, animator, info.template, info.truncation_psi, inverter=inverter, name=info.name,
                   z_sampler=info.z_sampler, info=info)
        return pipe.to(device)

    def to(self, device: str | torch.device) -> "AnimationPipeline":
        self.G.to(device)
        self.animator.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.G.w_avg.device

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        """tqdm keywords for the frames bar shown while synthesizing when no ``progress`` callback is given, as in
        diffusers (``disable=True`` hides it; by default it shows on interactive terminals)."""
        self._progress_bar_config = dict(kwargs)

    # -- sources -------------------------------------------------------------------------------------------------
    def latent_from_seed(self, seed: int) -> torch.Tensor:
        """The face of ``seed``: z from the seed (the bundle's sampler) → mapping → truncation (ψ) → W+ ``[num_ws, w_dim]``."""
        z = self.sample_z(1, self.G.z_dim, torch.Generator().manual_seed(int(seed))).to(self.device)
        c = torch.zeros(1, self.G.c_dim, device=self.device) if self.G.c_dim else None
        with torch.no_grad():
            w = self.G.truncate(self.G.mapping(z, c), self.truncation_psi)
        return self.G.to_wplus(w)[0].clone()

    def _source(self, image, latent, seed) -> tuple[torch.Tensor, torch.Tensor | None]:
        given = sum(x is not None for x in (image, latent, seed))
        if given > 1 and not (given == 2 and seed is None):
            raise FaceanimError("give one source: an image, a latent, or a seed (an image may come with its latent)")
        if image is not None and latent is not None:  # the code is known: no inversion, the image conditions only
            from faceanim.utils.images import image_to_tensor

            w, _ = self._source(None, latent, None)
            return w, image_to_tensor(image, self.G.img_resolution).to(self.device)
        if image is not None:
            if self.inverter is None:
                raise FaceanimError("this pipeline cannot invert photos (no inversion encoder or projector set)")
            img, w = self.inverter(image)
            return w.to(self.device), img.to(self.device)
        if latent is not None:
            w = torch.as_tensor(latent).to(self.device, torch.float32)
            if w.ndim == 3 and w.shape[0] == 1:
                w = w[0]
            if w.ndim == 1 and w.shape[0] == self.G.w_dim:
                w = w[None].expand(self.G.num_ws, -1)
            if tuple(w.shape) != (self.G.num_ws, self.G.w_dim):
                raise FaceanimError(f"latent must be W [{self.G.w_dim}] or W+ [{self.G.num_ws}, {self.G.w_dim}], "
                                    f"got {list(torch.as_tensor(latent).shape)}")
            return w.contiguous(), None
        return self.latent_from_seed(0 if seed is None else seed), None

    def prompt_notes(self, prompts: str | Sequence[str]) -> list[str]:
        """One line for each prompt far from every prompt the bundle supports (``info.supported_prompts``, by the
        conditioning CLIP and ``info.prompt_threshold``; see :mod:`faceanim.pipelines.prompt_scope`); [] when the
        bundle declares none."""
        from faceanim.pipelines.prompt_scope import far_prompt_notes

        if self.info is None:
            return []
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return far_prompt_notes(self.animator.clip, self.template, prompts, self.info.supported_prompts,
                                self.info.prompt_threshold, self.name)

    # -- animation -----------------------------------------------------------------------------------------------
    def _check(self, prompts: Sequence[str], num_frames: int) -> list[str]:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise FaceanimError("give at least one prompt")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise FaceanimError("prompt is empty")
        if not isinstance(num_frames, int) or num_frames < 2 or num_frames > MAX_FRAMES:
            raise FaceanimError(f"frames per prompt must be between 2 and {MAX_FRAMES}, got {num_frames}")
        self.animator.clip.tokenize([p for p in prompts], template=self.template)  # length check before any work
        return prompts

    @torch.no_grad()
    def _motion(self, prompts: list[str], w: torch.Tensor, image: torch.Tensor | None, num_frames: int,
                strength: float, rng: torch.Generator, continued: bool = False) -> torch.Tensor:
        """W+ codes ``[N, T, num_ws, w_dim]`` for N prompts from the face code ``w`` ``[N, num_ws, w_dim]``.

        Latent mode: ``w`` is w_s. Image mode: ``w`` is the photo's code w_inv and w_s = H_v(z_v) + w_inv (eq. 8,
        as in training); with ``continued`` (a timeline's next prompt) ``w`` is the last frame's code, which holds
        w_v already, and is w_s as it is."""
        z_t = self.animator.clip.encode_text(prompts, template=self.template)
        kw = {"w_source": w}
        if self.animator.config.mode == "image":
            if image is None:
                raise FaceanimError("this motion model reads a photo (image mode): give an image, not a seed or latent")
            kw = {"w_source" if continued else "w_inv": w, "image": image.expand(len(prompts), -1, -1, -1)}
        out = self.animator(z_t, num_frames, decay=True, rng=rng, **kw)
        delta = out.ws - out.w_s[:, None]  # Δw⁽ⁱ⁾
        if self.anchor_first_frame:
            delta = delta - delta[:, :1]
        return out.w_s[:, None] + strength * delta

    def _synthesize(self, ws: torch.Tensor, batch_size: int | None,
                    progress: Callable[[int], None] | None) -> torch.Tensor:
        """Frames of the W+ codes ``ws`` in generator calls of ``batch_size`` frames (None or 0: as many as hold the
        pixels of 8 frames of 256 px — 8 at ≤ 256 px, 1 at 1024 px — :func:`faceanim.utils.perf.frames_per_call`)."""
        if not batch_size:
            from faceanim.utils.perf import frames_per_call

            batch_size = frames_per_call(self.G.img_resolution)
        if progress is None:
            with progress_bar(ws.shape[0], self._progress_bar_config) as bar:
                return self._synthesize(ws, batch_size, bar.update)
        frames = []
        for i in range(0, ws.shape[0], batch_size):
            frames.append(self.G.synthesis(ws[i:i + batch_size], noise_mode="const"))
            progress(frames[-1].shape[0])
        return torch.cat(frames)

    def _output(self, frames: torch.Tensor, output_type: str, **fields) -> AnimationOutput:
        fps = self.info.fps if self.info is not None else 10
        return AnimationOutput(frames=convert_frames(frames, output_type), fps=fps, **fields)

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str], image: torch.Tensor | None = None,
                 latent: torch.Tensor | None = None, seed: int | None = None, num_frames: int = 16,
                 strength: float = 1.0, ping_pong: bool = False, rng: torch.Generator | None = None,
                 batch_size: int | None = None, progress: Callable[[int], None] | None = None, output_type: str = "pt"
                 ) -> AnimationOutput:
        """Animate one face. Several prompts form a timeline (IV-E-2): each starts from the last code of the
        previous one ("crying" → "pouting"). ``strength`` scales the motion Δw; ``ping_pong`` plays the video
        back to its first frame for seamless loops. Deterministic for a given seed and ``rng`` (a torch.Generator).

        The face comes from ``seed``, ``latent`` (W ``[w_dim]`` or W+ ``[num_ws, w_dim]``) or ``image``: an
        *aligned* face crop (PIL image, path, uint8 ``[H, W, 3]`` or ``[1, 3, H, W]`` in [-1, 1]; align photos with
        :class:`faceanim.align.FaceAligner` first), inverted by ``self.inverter``. Given both ``image`` and
        ``latent``, the latent is used as is and the image only feeds image-mode motion models.

        ``output_type``: "pt" (tensor ``[T, 3, H, W]`` in [-1, 1]), "np" (``[T, H, W, 3]`` in [0, 1]) or "pil" (a
        list of images); frames are clamped to that range. ``progress`` is called with the number of frames each
        synthesis step made (without it, a tqdm bar: :meth:`set_progress_bar_config`). ``out.save("x.mp4")``."""
        check_output_type(output_type)
        prompts = self._check(prompt, num_frames)
        if rng is None:
            rng = torch.Generator().manual_seed(0 if seed is None else int(seed))
        t0 = time.perf_counter()
        w, img = self._source(image, latent, seed)
        codes, starts = [], []
        current = w
        for p in prompts:
            seg = self._motion([p], current[None], img, num_frames, strength, rng, continued=bool(codes))[0]
            if codes:
                seg = seg[1:]  # the first frame of a segment repeats the previous segment's last frame
            starts.append(sum(c.shape[0] for c in codes))
            codes.append(seg)
            current = seg[-1]
        ws = torch.cat(codes)
        if ping_pong:
            ws = torch.cat([ws, ws.flip(0)[1:-1]])
        t1 = time.perf_counter()
        frames = self._synthesize(ws, batch_size, progress)
        t2 = time.perf_counter()
        return self._output(frames, output_type, latents=ws, prompts=prompts, segment_starts=starts,
                            timings={"motion": t1 - t0, "synthesis": t2 - t1})

    @torch.no_grad()
    def batch(self, prompts: Sequence[str], image: torch.Tensor | None = None, latent: torch.Tensor | None = None,
              seed: int | None = None, num_frames: int = 16, strength: float = 1.0, ping_pong: bool = False,
              rng: torch.Generator | None = None, batch_size: int | None = None,
              progress: Callable[[int], None] | None = None, output_type: str = "pt") -> AnimationOutput:
        """One animation per prompt, all from the same face (for side-by-side grids). Frames ``[N, T, 3, H, W]``
        (``output_type`` as in ``__call__``; "pil": one list of images per prompt); ``out.save()`` writes a grid."""
        check_output_type(output_type)
        prompts = self._check(prompts, num_frames)
        if rng is None:
            rng = torch.Generator().manual_seed(0 if seed is None else int(seed))
        t0 = time.perf_counter()
        w, img = self._source(image, latent, seed)
        ws = self._motion(prompts, w[None].expand(len(prompts), -1, -1), img, num_frames, strength, rng)
        if ping_pong:
            ws = torch.cat([ws, ws.flip(1)[:, 1:-1]], dim=1)
        t1 = time.perf_counter()
        N, T = ws.shape[:2]
        frames = self._synthesize(ws.reshape(N * T, *ws.shape[2:]), batch_size, progress)
        t2 = time.perf_counter()
        return self._output(frames.reshape(N, T, *frames.shape[1:]), output_type, latents=ws, prompts=prompts,
                            timings={"motion": t1 - t0, "synthesis": t2 - t1})
