"""The metrics of section IV-A-5 (FID, ACD) and the extra scores of the evaluate command, as registered functions.

Pure functions first (each checked against hand-computed values in the tests), then the registered metrics
that read a :class:`Video` and a :class:`MetricContext` and return named floats (see ``registry``).

Conventions: frames ``[T, 3, H, W]`` in [-1, 1]; latents ``[T, num_ws, w_dim]`` (W+); a value that is undefined
for a video (no face found, fewer than 3 frames for a second difference) is ``nan`` and is left out of averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from faceanim.evaluation.registry import register_metric

NAN = float("nan")

SUCCESS_LEVEL = 0.5     # ground truth (a domain evaluator): the prompted factor must reach at least this share of its target value …
SUCCESS_MARGIN = 0.2    # … and have risen by at least this much (factor units) since the first frame
MONOTONE_TOL = 0.02     # a step counts as non-decreasing if it drops by less than this (regressor noise)


# ----------------------------------------------------------------------------------------------------------------
# Pure functions


def feature_stats(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of features ``[N, D]``, N ≥ 2."""
    x = torch.as_tensor(features).detach().double().cpu()
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [N ≥ 2, D], got {list(x.shape)}")
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½): the squared Fréchet distance of two Gaussians, i.e. FID.

    Tr((Σ₁Σ₂)^½) is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    Σ₁^½ Σ₂ Σ₁^½ (same eigenvalues as Σ₁Σ₂), which is stable for the singular covariances of small sets.
    This is the quantity FID implementations report; the paper's equation writes a square root over it.
    """
    mu1, mu2 = torch.as_tensor(mu1).double(), torch.as_tensor(mu2).double()
    s1, s2 = torch.as_tensor(sigma1).double(), torch.as_tensor(sigma2).double()
    r1 = _sqrtm_psd(s1)
    m = r1 @ s2 @ r1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean)


def content_distance(features: torch.Tensor) -> float:
    """Mean pairwise L2 distance between the T frame embeddings ``[T, D]`` of one video (T ≥ 2)."""
    f = torch.as_tensor(features).double()
    T = f.shape[0]
    if T < 2:
        return NAN
    d = torch.cdist(f[None], f[None])[0]
    return float(d.triu(diagonal=1).sum() * 2 / (T * (T - 1)))


def average_content_distance(videos: Sequence[torch.Tensor]) -> float:
    """ACD (IV-A-5): 2 Σₙ Σ_{i<j} ‖f_nj − f_ni‖ / (N T (T−1)) for N videos of T frame embeddings ``[T, D]``.

    With equal T this is the mean over videos of :func:`content_distance`; videos of different lengths (faces
    missed in some frames) are weighted equally, as each video's mean pairwise distance."""
    values = [content_distance(v) for v in videos]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else NAN


def latent_step(latents: torch.Tensor) -> float:
    """Mean ‖w⁽ⁱ⁺¹⁾ − w⁽ⁱ⁾‖ over the video (norm over the whole W+ code): the size of the motion."""
    w = torch.as_tensor(latents).double().flatten(1)
    return float((w[1:] - w[:-1]).norm(dim=1).mean()) if w.shape[0] >= 2 else NAN


def latent_acceleration(latents: torch.Tensor) -> float:
    """Mean ‖w⁽ⁱ⁺¹⁾ − 2w⁽ⁱ⁾ + w⁽ⁱ⁻¹⁾‖ (second difference; 0 for a linear trajectory): temporal smoothness."""
    w = torch.as_tensor(latents).double().flatten(1)
    if w.shape[0] < 3:
        return NAN
    return float((w[2:] - 2 * w[1:-1] + w[:-2]).norm(dim=1).mean())


def pixel_flicker(frames: torch.Tensor) -> float:
    """Mean |x⁽ⁱ⁺¹⁾ − 2x⁽ⁱ⁾ + x⁽ⁱ⁻¹⁾| over pixels and frames, in [-1, 1] image units: jitter of the pixels."""
    x = torch.as_tensor(frames).double()
    if x.shape[0] < 3:
        return NAN
    return float((x[2:] - 2 * x[1:-1] + x[:-2]).abs().mean())


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman_rho(values: Sequence[float], resolution: float = 1e-3) -> float:
    """Spearman's ρ between ``values`` and their index (frame number): 1 = strictly rising, −1 = falling.

    Values are first rounded to ``resolution`` (far below a regressor's error), so that float noise on a still
    face does not make up a rank order; a constant sequence has none and scores 0 (no rise)."""
    y = np.asarray(values, dtype=np.float64)
    if resolution > 0:
        y = np.round(y / resolution) * resolution
    if len(y) < 2:
        return NAN
    ry, rx = _ranks(y), np.arange(1, len(y) + 1, dtype=np.float64)
    ry, rx = ry - ry.mean(), rx - rx.mean()
    denom = math.sqrt(float((ry ** 2).sum() * (rx ** 2).sum()))
    return float((ry * rx).sum() / denom) if denom > 0 else 0.0


def nondecreasing_fraction(values: Sequence[float], tol: float = MONOTONE_TOL) -> float:
    """Share of frame-to-frame steps that do not drop by ``tol`` or more."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) < 2:
        return NAN
    return float((np.diff(y) > -tol).mean())


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile-bootstrap confidence interval (``resamples`` resamplings
    with replacement, seeded). NaN values are dropped; one value gives a zero-width interval; none gives NaNs."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return NAN, NAN, NAN
    mean = float(x.mean())
    if len(x) == 1 or np.all(x == x[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(lo), float(hi)


# ----------------------------------------------------------------------------------------------------------------
# What the registered metrics read


@dataclass
class Video:
    """One generated video and what it was asked for."""

    frames: torch.Tensor                  # [T, 3, H, W] in [-1, 1]
    latents: torch.Tensor                 # [T, num_ws, w_dim]
    prompt: str                           # the prompt given to the method
    method: str = ""                      # "ours", "styleclip", "mocogan", …
    face: int = 0                         # index of the source face
    key: str | None = None                # ToonFace prompt key (captions.PROMPT_TARGETS), for ground truth
    source_z: torch.Tensor | None = None  # ToonFace: the toonface-sampler z ``[Z]`` of the source face
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # features shared between metrics


@dataclass
class MetricContext:
    """The models the metrics read; a metric runs only if what it ``requires`` is set."""

    clip: Any = None                      # CLIPEncoder for text–video alignment (the bundle's loss CLIP)
    template: str | None = None           # prompt template applied before CLIP text encoding
    identity: Any = None                  # IdentityFeatures (ACD, identity similarity)
    evaluator: Any = None                 # ToonEvaluator (ToonFace ground truth)
    generator: Any = None                 # ToonFace generator (reference changes drawn by the generator itself)
    truncation_psi: float = 1.0           # the ψ the source faces were made with
    fid_features: Any = None              # ImageFeatures for FID
    real_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # (μ, Σ) of the real images' features
    margin: float = SUCCESS_MARGIN        # toon_success: minimal rise of the prompted factor
    level: float = SUCCESS_LEVEL          # toon_success: minimal final level (share of the target)
    _texts: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def available(self) -> set[str]:
        have = {"clip": self.clip is not None, "identity": self.identity is not None,
                "evaluator": self.evaluator is not None, "generator": self.generator is not None,
                "fid": self.fid_features is not None and self.real_stats is not None}
        return {k for k, v in have.items() if v}

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        if prompt not in self._texts:
            self._texts[prompt] = self.clip.encode_text([prompt], template=self.template)[0].float().cpu()
        return self._texts[prompt]


def identity_of(video: Video, ctx: MetricContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(features ``[T, D]``, found ``[T]``) of every frame, computed once per video."""
    if "identity" not in video.cache:
        with torch.no_grad():
            f, found = ctx.identity(video.frames)
        video.cache["identity"] = (f.detach().double().cpu(), found.cpu())
    return video.cache["identity"]


def fid_features_of(video: Video, ctx: MetricContext) -> torch.Tensor:
    """FID features ``[T, D]`` of every frame, computed once per video (the evaluate command computes them right
    after generation and then drops the frames, so that memory does not grow with the number of videos)."""
    if "fid_features" not in video.cache:
        video.cache["fid_features"] = ctx.fid_features(video.frames).double().cpu()
    return video.cache["fid_features"]


# ----------------------------------------------------------------------------------------------------------------
# Registered metrics


@register_metric("clip_alignment", requires=("clip",))
def clip_alignment(video: Video, ctx: MetricContext) -> dict[str, float]:
    """Cosine of the loss-CLIP embeddings of the prompt and the last (and first) frame; gain = last − first."""
    t = ctx.text_embedding(video.prompt)
    with torch.no_grad():
        v = ctx.clip.encode_image(video.frames[[0, -1]].to(ctx.clip.device, torch.float32)).float().cpu()
    first, last = float(v[0] @ t), float(v[1] @ t)
    return {"clip_first": first, "clip_last": last, "clip_gain": last - first}


@register_metric("acd", requires=("identity",), lower_is_better=("acd",))
def acd(video: Video, ctx: MetricContext) -> dict[str, float]:
    """ACD (IV-A-5): mean pairwise L2 distance of the frames' face-recognition embeddings (frames with a face)."""
    f, found = identity_of(video, ctx)
    return {"acd": content_distance(f[found]) if int(found.sum()) >= 2 else NAN,
            "faces_missing": float((~found).sum())}


@register_metric("identity_similarity", requires=("identity",), lower_is_better=("id_distance",))
def identity_similarity(video: Video, ctx: MetricContext) -> dict[str, float]:
    """Identity kept from first to last frame: cosine similarity and L2 distance of their identity features."""
    f, found = identity_of(video, ctx)
    if not (bool(found[0]) and bool(found[-1])):
        return {"id_similarity": NAN, "id_distance": NAN}
    a, b = f[0], f[-1]
    cos = float(a @ b / (a.norm() * b.norm()).clamp(min=1e-12))
    return {"id_similarity": cos, "id_distance": float((a - b).norm())}


@register_metric("smoothness", lower_is_better=("latent_accel", "pixel_flicker"))
def smoothness(video: Video, ctx: MetricContext) -> dict[str, float]:
    """Motion size (mean W+ step) and temporal smoothness (mean W+ second difference, pixel flicker)."""
    return {"latent_step": latent_step(video.latents), "latent_accel": latent_acceleration(video.latents),
            "pixel_flicker": pixel_flicker(video.frames)}


@register_metric("fid", scope="set", requires=("fid",), lower_is_better=("fid",))
def fid(videos: list[Video], ctx: MetricContext) -> dict[str, float]:
    """FID between all frames of the videos and the real images, in the context's feature space."""
    feats = torch.cat([fid_features_of(v, ctx) for v in videos])
    mu, sigma = feature_stats(feats)
    return {"fid": frechet_distance(mu, sigma, *ctx.real_stats), "fid_frames": float(feats.shape[0])}
