"""Optimization projector: find the W / W+ code of a frozen StyleGAN2 that reproduces a target image.

The idea is the projector of StyleGAN2 (Karras et al. 2020, appendix D): start from the mean code ``w_avg``,
minimise an image distance with Adam, and

* add Gaussian noise to the code early on, ``σ_t = σ_W · initial_noise_factor · max(0, 1 − t / ramp)²`` with
  ``σ_W`` the spread of W around its mean, so the first steps explore instead of locking onto the nearest
  local minimum;
* warm the learning rate up linearly and cool it down with a half cosine at the end;
* optionally fit the per-layer noise maps as well, kept close to white noise by a multi-scale
  autocorrelation penalty and renormalised to zero mean and unit variance after every step.

The distance is ``pixel_weight · MSE + perceptual_weight · perceptual`` where ``perceptual`` is LPIPS when its
backbone weights are available, otherwise ``1 − cos`` between CLIP image embeddings (see
:func:`default_perceptual`); pixel MSE is always on. Above 256 px both images are area-downsampled to 256 for
the perceptual term.

Noise maps are **not** fitted by default (``optimize_noise=False``): animations render every frame with the
generator's constant noise, so a code fitted together with other noise maps would not reproduce the photo
in the video. With ``optimize_noise=True`` the fitted maps come back in :attr:`ProjectionResult.noise` and the
generator itself is left unchanged.

Everything is deterministic for a fixed :class:`ProjectorConfig` (``seed``) on a given device.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.errors import FaceanimError
from faceanim.utils.schedules import projector_lr

SPACES = ("w", "wplus")
PERCEPTUAL_MAX_SIZE = 256  # larger images are downsampled to this for the perceptual term (LPIPS cost)
NOISE_REG_MIN_SIZE = 8     # the multi-scale noise penalty stops at maps of this size

PerceptualDistance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ProjectorConfig:
    steps: int = 300                     # Adam steps
    lr: float = 0.1                      # peak learning rate on the code
    space: str = "w"                     # "w": one code broadcast to all num_ws layers; "wplus": one per layer
    pixel_weight: float = 1.0            # weight of the pixel MSE (images in [-1, 1])
    perceptual_weight: float = 1.0       # weight of the perceptual distance, when one is given
    optimize_noise: bool = False         # also fit the generator's noise maps (see the module docstring)
    noise_reg_weight: float = 1e5        # weight of the noise-map autocorrelation penalty (optimize_noise only)
    initial_noise_factor: float = 0.05   # std of the noise added to the code at step 0, in units of W's spread
    noise_ramp_length: float = 0.75      # fraction of the steps over which that noise decays to zero
    lr_rampup_length: float = 0.05       # fraction of the steps of linear learning-rate warm-up
    lr_rampdown_length: float = 0.25     # fraction of the steps of half-cosine learning-rate cool-down
    w_std_samples: int = 10_000          # z samples for estimating W's spread σ_W
    seed: int = 0                        # seeds the σ_W estimate and the code noise

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise FaceanimError(f"projection space must be 'w' or 'wplus', got {self.space!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise FaceanimError(f"projection steps must be a positive integer, got {self.steps!r}")
        if not self.lr > 0:
            raise FaceanimError(f"projection learning rate must be positive, got {self.lr!r}")
        if self.pixel_weight < 0 or self.perceptual_weight < 0 or self.noise_reg_weight < 0:
            raise FaceanimError("projection loss weights must be ≥ 0")
        if self.w_std_samples < 2:
            raise FaceanimError("w_std_samples must be at least 2")


@dataclass
class ProjectionResult:
    w_plus: torch.Tensor                 # [num_ws, w_dim], the fitted code (W codes broadcast to every layer)
    image: torch.Tensor                  # [1, 3, R, R] in ≈[-1, 1]: G(w_plus) (with the fitted noise, if any)
    losses: list[dict[str, float]]       # per step: "total", "pixel", "perceptual", "noise_reg", "lr"
    noise: dict[str, torch.Tensor] = field(default_factory=dict)  # fitted noise maps [R, R] by layer (optimize_noise)


# -- perceptual distances -------------------------------------------------------------------------------------------
class CLIPFeatureDistance(nn.Module):
    """``1 − cos(E(x), E(y))`` with E a CLIP image encoder: a coarse perceptual distance (fallback for LPIPS).

    CLIP features capture identity, pose and expression loosely and colour poorly; the projector's pixel MSE
    keeps colours and layout in place.
    """

    def __init__(self, clip: nn.Module):  # a faceanim.encoders.clip.CLIPEncoder (encode_image on [-1, 1] images)
        super().__init__()
        self.clip = clip

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bind(y)(x)

    def bind(self, target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The distance to a fixed ``target`` ``[B, 3, H, W]``; its embedding is computed once."""
        with torch.no_grad():
            ref = self.clip.encode_image(target, normalize=True)

        def distance(x: torch.Tensor) -> torch.Tensor:
            return (1 - (self.clip.encode_image(x, normalize=True) * ref).sum(-1)).mean()

        return distance


def default_perceptual(clip: nn.Module | None = None) -> nn.Module | None:
    """LPIPS (AlexNet) if its backbone weights are in the torch hub cache, else :class:`CLIPFeatureDistance` on
    ``clip``, else None (pixel MSE only)."""
    from faceanim.losses.lpips import LPIPSLoss

    lpips = LPIPSLoss("alex")
    if lpips.available:
        return lpips
    if clip is not None:
        return CLIPFeatureDistance(clip)
    return None


def _bind(perceptual: PerceptualDistance, target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    bind = getattr(perceptual, "bind", None)
    if callable(bind):
        return bind(target)
    return lambda x: perceptual(x, target)


# -- helpers ---------------------------------------------------------------------------------------------------------
def prepare_target(target: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[1, 3, H, W]`` or ``[3, H, W]`` in [-1, 1] → ``[1, 3, R, R]`` (antialiased bilinear resize)."""
    if target.ndim == 3:
        target = target.unsqueeze(0)
    if target.ndim != 4 or target.shape[0] != 1 or target.shape[1] != 3:
        raise FaceanimError(f"the projection target must be one RGB image [1, 3, H, W], got {list(target.shape)}")
    target = target.float()
    if target.shape[-2:] != (resolution, resolution):
        target = F.interpolate(target, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=True)
    return target


def _for_perceptual(images: torch.Tensor) -> torch.Tensor:
    if images.shape[-1] > PERCEPTUAL_MAX_SIZE:
        images = F.interpolate(images, size=(PERCEPTUAL_MAX_SIZE, PERCEPTUAL_MAX_SIZE), mode="area")
    return images


@torch.no_grad()
def w_spread(G: nn.Module, samples: int, rng: torch.Generator) -> float:
    """σ_W = sqrt(E‖w − w_avg‖²): the typical distance of a code from the mean, from ``samples`` draws of z."""
    device = G.w_avg.device
    total, done = 0.0, 0
    while done < samples:
        n = min(4096, samples - done)
        z = torch.randn(n, G.z_dim, generator=rng).to(device)
        c = torch.zeros(n, G.c_dim, device=device) if G.c_dim else None
        w = G.mapping(z, c)
        total += float((w - G.w_avg).double().square().sum())
        done += n
    return math.sqrt(total / samples)


def _noise_layers(G: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in G.synthesis.named_modules()
            if getattr(m, "use_noise", False) and isinstance(getattr(m, "noise_const", None), torch.Tensor)}


@contextmanager
def _noise_maps(layers: dict[str, nn.Module], maps: dict[str, torch.Tensor]) -> Iterator[None]:
    """Let the layers read ``maps`` as their constant noise for the duration; the buffers are restored after."""
    saved = {name: layer.noise_const for name, layer in layers.items()}
    try:
        for name, layer in layers.items():
            layer.noise_const = maps[name]
        yield
    finally:
        for name, layer in layers.items():
            layer.noise_const = saved[name]


def noise_regularization(maps: Iterator[torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
    """Σ over maps and scales (down to 8×8, halving by 2×2 averages) of the squared one-pixel autocorrelation
    along x and along y: zero for white noise, large when a map starts to carry image structure."""
    total = None
    for noise in maps:
        x = noise[None, None]
        while True:
            term = (x * x.roll(1, dims=3)).mean().square() + (x * x.roll(1, dims=2)).mean().square()
            total = term if total is None else total + term
            if x.shape[-1] <= NOISE_REG_MIN_SIZE:
                break
            x = F.avg_pool2d(x, 2)
    return total if total is not None else torch.zeros(())


def _learning_rate(config: ProjectorConfig, t: float) -> float:
    return projector_lr(t, config.lr, config.lr_rampup_length, config.lr_rampdown_length)


LONG_PROJECTION_S = 60.0  # a projection expected to take longer than this is announced with its estimate


# -- the projector ---------------------------------------------------------------------------------------------------
def project(
    G: nn.Module,                                # faceanim.models.stylegan2.Generator (frozen; left unchanged)
    target: torch.Tensor,                        # [1, 3, H, W] in [-1, 1]; resized to G's resolution
    config: ProjectorConfig | None = None,
    perceptual: PerceptualDistance | None = None,  # (image, target) → scalar, e.g. default_perceptual(clip)
    progress: bool = True,                       # tqdm bar (auto-disabled when not on a terminal)
    notice: Callable[[str], None] | None = None,  # told the expected time after the first step, if it is long
) -> ProjectionResult:
    """Fit a W (or W+) code of ``G`` to ``target``; see the module docstring for the procedure."""
    import time

    from tqdm.auto import tqdm

    config = config or ProjectorConfig()
    device = G.w_avg.device
    G.eval()
    target = prepare_target(target, G.img_resolution).to(device)
    use_perceptual = perceptual is not None and config.perceptual_weight > 0
    perceptual_to_target = _bind(perceptual, _for_perceptual(target)) if use_perceptual else None

    rng = torch.Generator().manual_seed(int(config.seed))
    sigma_w = w_spread(G, config.w_std_samples, rng) if config.initial_noise_factor > 0 else 0.0
    start = G.w_avg.detach().float().reshape(1, 1, G.w_dim)
    if config.space == "wplus":
        start = start.repeat(1, G.num_ws, 1)
    w_opt = start.clone().requires_grad_(True)  # [1, 1 or num_ws, w_dim]

    layers = _noise_layers(G) if config.optimize_noise else {}
    maps = {name: layer.noise_const.detach().clone().float().requires_grad_(True) for name, layer in layers.items()}
    optimizer = torch.optim.Adam([w_opt, *maps.values()], lr=config.lr, betas=(0.9, 0.999))

    history: list[dict[str, float]] = []
    # enable_grad: the projector also runs inside no_grad callers (the animation pipeline's __call__).
    with torch.enable_grad(), _noise_maps(layers, maps), tqdm(range(config.steps), desc="projecting", unit="step",
                                         disable=None if progress else True, leave=False) as bar:
        t_start = time.perf_counter()
        for step in bar:
            t = step / config.steps
            lr = _learning_rate(config, t)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scale = sigma_w * config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp_length) ** 2
            w_noise = torch.randn(w_opt.shape, generator=rng).to(device) * scale
            ws = (w_opt + w_noise).expand(1, G.num_ws, G.w_dim)
            image = G.synthesis(ws, noise_mode="const")

            pixel = F.mse_loss(image, target)
            loss = config.pixel_weight * pixel
            terms = {"pixel": pixel.item()}
            if perceptual_to_target is not None:
                dist = perceptual_to_target(_for_perceptual(image))
                loss = loss + config.perceptual_weight * dist
                terms["perceptual"] = dist.item()
            if maps:
                reg = noise_regularization(maps.values())
                loss = loss + config.noise_reg_weight * reg
                terms["noise_reg"] = reg.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # keep the fitted noise white: zero mean, unit variance
                for noise in maps.values():
                    noise.sub_(noise.mean()).div_(noise.square().mean().sqrt().clamp_min(1e-8))
            history.append({"total": loss.item(), **terms, "lr": lr})
            if step == 0 and notice is not None:
                per_step = time.perf_counter() - t_start
                expected = per_step * config.steps
                if expected > LONG_PROJECTION_S:
                    notice(f"projecting {config.steps} steps: about {expected / 60:.0f} min at {per_step:.1f} s per "
                           "step on this machine (a bundle with an e4e encoder inverts in one pass; fewer "
                           "--invert-steps trade fidelity for time)")
            if step % 10 == 0 or step == config.steps - 1:
                bar.set_postfix(loss=f"{history[-1]['total']:.4f}")

        with torch.no_grad():
            w_plus = w_opt.detach().expand(1, G.num_ws, G.w_dim)[0].clone()
            image = G.synthesis(w_plus[None], noise_mode="const")
    return ProjectionResult(w_plus=w_plus, image=image, losses=history,
                            noise={name: m.detach().clone() for name, m in maps.items()})


__all__ = ["CLIPFeatureDistance", "ProjectionResult", "ProjectorConfig", "default_perceptual",
           "noise_regularization", "prepare_target", "project", "w_spread"]
