"""The comparison methods of section IV behind one call, so that every metric compares like with like:

    method(prompt, latent=w_s | seed=k, num_frames=T, rng=g) -> AnimationOutput(frames [T, 3, H, W], latents [T, num_ws, w_dim])

- :class:`Ours`: the bundle's :class:`~faceanim.pipelines.AnimationPipeline` (the paper's model).
- :class:`StyleCLIPInterpolation` (IV-B): StyleCLIP latent optimization of W+ from w_s (300 steps, CLIP loss
  1 − cos(E_I(G(w)), E_T(prompt)) + λ_L2 ‖w − w_s‖² + λ_ID (1 − cos of identity features), λ = (0.08, 0.05)),
  then a linear W+ interpolation w_s → w_opt over the T frames.
- :class:`RandomMotion` ("mocogan", IV-C): a MoCoGAN-HD-*style* text-free motion prior, **not** MoCoGAN-HD
  (no LSTM trained on VoxCeleb ships anywhere). A fixed random recurrent map drives a residual walk in the
  generator's principal W directions: h_t = tanh(W_h h_{t−1} + ε_t), Δw_t = c·A h_t, w_t = w_{t−1} + Δw_t,
  with W_h a seeded random orthogonal matrix times 0.9, ε_t ~ N(0, I), A the top principal directions of W
  scaled by their standard deviations, and c set so that the mean ‖Δw_t‖ equals a given step size (the
  evaluate command uses the motion model's own mean step). It ignores the prompt: like MoCoGAN-HD in the paper,
  it shows motion without language control.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

from faceanim.errors import FaceanimError
from faceanim.pipelines.animation import AnimationOutput


class Method(Protocol):
    name: str

    def __call__(self, prompt: str, latent: torch.Tensor | None = None, seed: int | None = None,
                 num_frames: int = 16, rng: torch.Generator | None = None) -> AnimationOutput:
        """One video of ``num_frames`` frames from the face ``latent`` (W+ ``[num_ws, w_dim]``) or ``seed``."""


def _source(G, latent: torch.Tensor | None, seed: int | None,
            latent_from_seed: Callable[[int], torch.Tensor] | None) -> torch.Tensor:
    """The source code w_s as W+ ``[num_ws, w_dim]`` on the generator's device."""
    if latent is not None and seed is not None:
        raise FaceanimError("give one source: a latent or a seed")
    if latent is None:
        if latent_from_seed is None:
            raise FaceanimError("this method needs a latent (no seed → face mapping was given)")
        latent = latent_from_seed(0 if seed is None else int(seed))
    w = torch.as_tensor(latent).to(G.w_avg.device, torch.float32)
    if w.ndim == 3 and w.shape[0] == 1:
        w = w[0]
    if w.ndim == 1:
        w = w[None].expand(G.num_ws, -1)
    if tuple(w.shape) != (G.num_ws, G.w_dim):
        raise FaceanimError(f"latent must be W [{G.w_dim}] or W+ [{G.num_ws}, {G.w_dim}], got {list(w.shape)}")
    return w.detach().clone()


def _check_frames(num_frames: int) -> None:
    if not isinstance(num_frames, int) or num_frames < 2:
        raise FaceanimError(f"num_frames must be an integer ≥ 2, got {num_frames}")


@torch.no_grad()
def _synthesize(G, ws: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Frames clamped to [-1, 1], as AnimationPipeline returns them (the methods are compared on equal terms)."""
    frames = [G.synthesis(ws[i:i + batch_size], noise_mode="const") for i in range(0, ws.shape[0], batch_size)]
    return torch.cat(frames).clamp_(-1, 1)


# ----------------------------------------------------------------------------------------------------------------


class Ours:
    """The paper's model: the bundle's animation pipeline, called per video."""

    name = "ours"

    def __init__(self, pipeline, batch_size: int = 8):
        self.pipeline, self.batch_size = pipeline, batch_size

    def __call__(self, prompt: str, latent: torch.Tensor | None = None, seed: int | None = None,
                 num_frames: int = 16, rng: torch.Generator | None = None) -> AnimationOutput:
        return self.pipeline(prompt, latent=latent, seed=seed if latent is None else None, num_frames=num_frames,
                             rng=rng, batch_size=self.batch_size)


# ----------------------------------------------------------------------------------------------------------------


@dataclass
class StyleCLIPConfig:
    steps: int = 300              # optimization steps (IV-B)
    lr: float = 0.1               # Adam learning rate (StyleCLIP's default)
    lambda_l2: float = 0.08       # λ_L2 on ‖w − w_s‖² (squared L2 over the whole W+ code)
    lambda_id: float = 0.05       # λ_ID on the identity loss 1 − cos(f(G(w)), f(G(w_s)))
    lr_rampup: float = 0.05       # share of the steps with a linear warm-up of the learning rate
    lr_rampdown: float = 0.25     # share of the steps with a cosine decay of the learning rate to 0

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (StyleGAN2-projector schedule, as StyleCLIP's optimization uses)."""
        from faceanim.utils.schedules import projector_lr

        return projector_lr(step / max(self.steps, 1), self.lr, self.lr_rampup, self.lr_rampdown)


class StyleCLIPInterpolation:
    """StyleCLIP latent optimization (Patashnik et al. 2021), then linear W+ interpolation (the paper's IV-B baseline).

    ``clip``: the CLIP of the CLIP loss (the bundle's loss CLIP, frozen). ``identity``: differentiable identity
    features ``images → (features, found)`` for the identity loss (StyleCLIP uses ArcFace; none ships here, so the
    evaluate command passes the ToonFace evaluator's identity features, or CLIP image features as a proxy);
    None disables the identity term. ``last_history`` keeps the loss terms of the last optimization.
    """

    name = "styleclip"

    def __init__(self, generator, clip, template: str | None = None, identity=None,
                 config: StyleCLIPConfig | None = None,
                 latent_from_seed: Callable[[int], torch.Tensor] | None = None, batch_size: int = 8):
        self.G = generator.eval().requires_grad_(False)
        self.clip = clip.eval().requires_grad_(False)
        self.template, self.identity = template, identity
        self.config = config or StyleCLIPConfig()
        if self.config.steps < 0:
            raise FaceanimError("StyleCLIP steps must be ≥ 0")
        if identity is not None and not getattr(identity, "differentiable", True):
            raise FaceanimError(f"the StyleCLIP identity loss needs differentiable identity features, "
                                f"not {getattr(identity, 'name', identity)}")
        self.latent_from_seed, self.batch_size = latent_from_seed, batch_size
        self.last_history: list[dict[str, float]] = []

    @classmethod
    def from_pipeline(cls, pipeline, clip, identity=None, config: StyleCLIPConfig | None = None,
                      batch_size: int = 8) -> "StyleCLIPInterpolation":
        return cls(pipeline.G, clip, pipeline.template, identity, config, pipeline.latent_from_seed, batch_size)

    def loss_terms(self, w: torch.Tensor, w_s: torch.Tensor, text: torch.Tensor,
                   id_ref: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """w, w_s ``[1, num_ws, w_dim]``; text ``[1, D]`` unit-norm; id_ref: identity features of G(w_s) or None."""
        img = self.G.synthesis(w, noise_mode="const")
        terms = {"clip": 1 - F.cosine_similarity(self.clip.encode_image(img), text).mean(),
                 "l2": (w - w_s).square().sum()}
        total = terms["clip"] + self.config.lambda_l2 * terms["l2"]
        if id_ref is not None:
            terms["id"] = 1 - F.cosine_similarity(self.identity(img)[0], id_ref).mean()
            total = total + self.config.lambda_id * terms["id"]
        return total, terms

    def optimize(self, w_s: torch.Tensor, prompt: str) -> torch.Tensor:
        """The edited code w_opt ``[num_ws, w_dim]`` for ``prompt`` from w_s ``[num_ws, w_dim]``."""
        cfg = self.config
        w_s = w_s[None].detach()
        with torch.no_grad():
            text = self.clip.encode_text([prompt], template=self.template).to(w_s.device)
            id_ref = None
            if self.identity is not None and cfg.lambda_id:
                id_ref = self.identity(self.G.synthesis(w_s, noise_mode="const"))[0].detach()
        w = w_s.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=cfg.lr)
        history = []
        with torch.enable_grad():
            for step in range(cfg.steps + 1):
                total, terms = self.loss_terms(w, w_s, text, id_ref)
                history.append({"step": step, "total": float(total.detach()),
                                **{k: float(v.detach()) for k, v in terms.items()}})
                if step == cfg.steps:
                    break  # the last entry is the loss of the returned code
                for group in opt.param_groups:
                    group["lr"] = cfg.lr_at(step)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
        self.last_history = history
        return w.detach()[0]

    def __call__(self, prompt: str, latent: torch.Tensor | None = None, seed: int | None = None,
                 num_frames: int = 16, rng: torch.Generator | None = None) -> AnimationOutput:
        _check_frames(num_frames)
        t0 = time.perf_counter()
        w_s = _source(self.G, latent, seed, self.latent_from_seed)
        w_opt = self.optimize(w_s, prompt)
        alpha = torch.linspace(0, 1, num_frames, device=w_s.device).view(-1, 1, 1)
        ws = w_s[None] + alpha * (w_opt - w_s)[None]
        t1 = time.perf_counter()
        frames = _synthesize(self.G, ws, self.batch_size)
        return AnimationOutput(frames=frames, latents=ws, prompts=[prompt],
                               timings={"optimize": t1 - t0, "synthesis": time.perf_counter() - t1})


# ----------------------------------------------------------------------------------------------------------------


@dataclass
class RandomMotionConfig:
    hidden_dim: int = 64          # size of the recurrent state h (and of the PCA basis; ≤ w_dim)
    spectral_radius: float = 0.9  # W_h = radius · random orthogonal matrix (a stable, non-vanishing recurrence)
    noise_std: float = 1.0        # std of the innovations ε_t
    pca_samples: int = 4096       # samples of W for the principal directions
    seed: int = 0                 # seeds W_h, the PCA samples and the step calibration (the motion noise comes
                                  # from the per-video ``rng``)


class RandomMotion:
    """Text-free recurrent random walk in W (a MoCoGAN-HD-style motion prior; see the module docstring).

    ``step_size``: mean ‖w_{t+1} − w_t‖ over the whole W+ code. ``sample_z``: the generator's z sampler
    ``(n, z_dim, generator) → z`` used for the principal directions of W (default Gaussian).
    """

    name = "mocogan"

    def __init__(self, generator, step_size: float, config: RandomMotionConfig | None = None,
                 sample_z: Callable | None = None,
                 latent_from_seed: Callable[[int], torch.Tensor] | None = None, batch_size: int = 8):
        if not step_size > 0 or not math.isfinite(step_size):
            raise FaceanimError(f"the random-motion step size must be positive, got {step_size}")
        self.G = generator.eval().requires_grad_(False)
        self.config = cfg = config or RandomMotionConfig()
        self.latent_from_seed, self.batch_size = latent_from_seed, batch_size
        self.step_size = float(step_size)
        g = torch.Generator().manual_seed(cfg.seed)
        k = min(cfg.hidden_dim, self.G.w_dim)
        q, r = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
        self.W_h = (cfg.spectral_radius * q * torch.sign(torch.diagonal(r))).float()   # [k, k]
        self.A = self._principal_directions(k, sample_z, g)                           # [w_dim, k]
        self.scale = 1.0
        self.scale = self.step_size / self._mean_step(g)

    @classmethod
    def from_pipeline(cls, pipeline, step_size: float, config: RandomMotionConfig | None = None,
                      batch_size: int = 8) -> "RandomMotion":
        return cls(pipeline.G, step_size, config, pipeline.sample_z, pipeline.latent_from_seed, batch_size)

    @torch.no_grad()
    def _principal_directions(self, k: int, sample_z: Callable | None, g: torch.Generator) -> torch.Tensor:
        G, n = self.G, max(self.config.pca_samples, k + 1)
        z = (sample_z(n, G.z_dim, g) if sample_z is not None else torch.randn(n, G.z_dim, generator=g))
        dev = G.w_avg.device
        c = torch.zeros(n, G.c_dim, device=dev) if G.c_dim else None
        w = G.mapping(z.to(dev), c).double().cpu()
        w = w - w.mean(0)
        _, s, vh = torch.linalg.svd(w, full_matrices=False)
        std = s[:k] / math.sqrt(n - 1)
        return (vh[:k].T * std).float()

    def _deltas(self, num_frames: int, n: int, rng: torch.Generator) -> torch.Tensor:
        """Δw for frames 2..T of n trajectories: ``[n, T−1, w_dim]`` (before ``scale``)."""
        k = self.W_h.shape[0]
        h = torch.zeros(n, k)
        out = []
        for _ in range(num_frames - 1):
            eps = torch.randn(n, k, generator=rng) * self.config.noise_std
            h = torch.tanh(h @ self.W_h.T + eps)
            out.append(h @ self.A.T)
        return torch.stack(out, dim=1)

    def _mean_step(self, g: torch.Generator) -> float:
        d = self._deltas(16, 256, g)
        return float(d.norm(dim=-1).mean()) * math.sqrt(self.G.num_ws)  # the same Δw on every W+ entry

    def __call__(self, prompt: str, latent: torch.Tensor | None = None, seed: int | None = None,
                 num_frames: int = 16, rng: torch.Generator | None = None) -> AnimationOutput:
        _check_frames(num_frames)
        if rng is None:
            rng = torch.Generator().manual_seed(0 if seed is None else int(seed))
        t0 = time.perf_counter()
        w_s = _source(self.G, latent, seed, self.latent_from_seed)
        steps = self.scale * self._deltas(num_frames, 1, rng)[0].to(w_s.device)       # [T−1, w_dim]
        offsets = torch.cat([torch.zeros_like(steps[:1]), steps.cumsum(0)])                   # [T, w_dim]
        ws = w_s[None] + offsets[:, None, :]
        t1 = time.perf_counter()
        frames = _synthesize(self.G, ws, self.batch_size)
        return AnimationOutput(frames=frames, latents=ws, prompts=[prompt],
                               timings={"motion": t1 - t0, "synthesis": time.perf_counter() - t1})


@torch.no_grad()
def motion_step_size(pipeline, prompts: Sequence[str], seeds: Sequence[int], num_frames: int,
                     rng: torch.Generator | None = None) -> float:
    """The motion model's mean ‖w_{t+1} − w_t‖ (whole W+ code) over ``prompts`` × ``seeds`` (no synthesis)."""
    rng = rng or torch.Generator().manual_seed(0)
    prompts = list(prompts)
    steps = []
    for s in seeds:
        w = pipeline.latent_from_seed(int(s))
        ws = pipeline._motion(prompts, w[None].expand(len(prompts), -1, -1), None, num_frames, 1.0, rng)
        steps.append((ws[:, 1:] - ws[:, :-1]).flatten(2).norm(dim=-1).mean())
    return float(torch.stack(steps).mean())


METHODS = ("ours", "styleclip", "mocogan")
