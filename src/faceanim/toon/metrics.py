"""ToonFace's metrics, registered into faceanim's metric registry: the ground truth of the factor regressor the
bundle ships (``toon_truth``) and the change the generator itself draws (``toon_reference``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from faceanim.evaluation.metrics import (MONOTONE_TOL, NAN, SUCCESS_LEVEL, SUCCESS_MARGIN, MetricContext, Video,
                                         nondecreasing_fraction, spearman_rho)
from faceanim.evaluation.registry import register_metric
from faceanim.toon.captions import PROMPT_TARGETS
from faceanim.toon.factors import FACTOR_BY_NAME, FACTORS, SLICES
from faceanim.toon.latent import decode, encode

# ToonFace identity factors whose value is an angle on the colour circle (0 ≡ 1).
PERIODIC_FACTORS = ("hair_hue", "shirt_hue", "bg_hue")


def toon_scores(factors: torch.Tensor, factor: str, target: float, margin: float = SUCCESS_MARGIN,
                level: float = SUCCESS_LEVEL, tol: float = MONOTONE_TOL) -> dict[str, float]:
    """Ground-truth scores of one ToonFace video from the evaluator's factor vectors ``[T, P]`` per frame.

    With s = sign(target) and p_t = s · factor_t (progress towards the target, in factor units):

    - ``toon_success``: 1 if p_T ≥ level·|target| and p_T − p_1 ≥ margin, else 0 (the expression clearly appears);
    - ``toon_level``: p_T / |target| (1 = the target reached); ``toon_gain``: p_T − p_1;
    - ``toon_spearman``: Spearman ρ of p_t against the frame index; ``toon_monotone``: share of steps with
      p_{t+1} − p_t > −tol;
    - ``toon_identity_drift``: mean |id_T − id_1| over the identity slots (periodic hues on the circle);
    - ``toon_off_target``: mean |e_T − e_1| over the other expression and attribute factors (what should not move);
    - ``toon_eye_size_change``, ``toon_eye_color_change``: the signed change e_T − e_1 of the eye-size and
      iris-colour factors (identity factors; iris colour runs brown → grey, so paler > 0): the side effects of
      a motion on the eyes, compared with the renderer's own drawing of the same expression.
    """
    if FACTOR_BY_NAME[factor].kind == "onehot" or target == 0:
        raise ValueError(f"toon_scores needs a continuous factor and a non-zero target, got {factor!r}, {target}")
    v = torch.as_tensor(factors).double().cpu()
    s = 1.0 if target >= 0 else -1.0
    p = s * v[:, SLICES[factor].start]
    first, last = float(p[0]), float(p[-1])
    ident = []
    for f in FACTORS:
        if f.group != "identity":
            continue
        d = (v[-1, SLICES[f.name]] - v[0, SLICES[f.name]]).abs()
        if f.name in PERIODIC_FACTORS:
            d = torch.minimum(d % 1.0, 1.0 - d % 1.0)
        ident.append(d)
    off = [(v[-1, SLICES[f.name]] - v[0, SLICES[f.name]]).abs() for f in FACTORS
           if f.group in ("expression", "attribute") and f.name != factor]
    return {
        "toon_success": float(last >= level * abs(target) and last - first >= margin),
        "toon_level": last / abs(target),
        "toon_gain": last - first,
        "toon_spearman": spearman_rho(p.tolist()),
        "toon_monotone": nondecreasing_fraction(p.tolist(), tol),
        "toon_identity_drift": float(torch.cat(ident).nanmean()),  # nan: factors the evaluator does not predict
        "toon_off_target": float(torch.cat(off).nanmean()),
        "toon_eye_size_change": float(v[-1, SLICES["eye_size"].start] - v[0, SLICES["eye_size"].start]),
        "toon_eye_color_change": float(v[-1, SLICES["eye_color"].start] - v[0, SLICES["eye_color"].start]),
    }


def change_alignment(change: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """How a video's change (last − first frame) follows a reference change of the same face: the cosine of the two
    pixel differences (0 for a video that does not change) and the gain ⟨d, r⟩ / ‖r‖² (1 = as far along the
    reference as the reference itself). Both nan when the reference does not change."""
    d = torch.as_tensor(change).double().flatten()
    r = torch.as_tensor(reference).double().flatten()
    rr = float(r.square().sum())
    if rr == 0.0:
        return {"toon_ref_cos": NAN, "toon_ref_gain": NAN}
    dot = float(d @ r)
    dn = float(d.norm())
    return {"toon_ref_cos": dot / (dn * math.sqrt(rr)) if dn > 0 else 0.0, "toon_ref_gain": dot / rr}


@torch.no_grad()
def toon_reference_change(G: Any, z: torch.Tensor, w_first: torch.Tensor, factor: str, target: float,
                          truncation_psi: float = 1.0) -> torch.Tensor:
    """The ToonFace generator's own drawing of a prompted change on one face, ``[3, H, W]``: the face of
    ``w_first`` (W+ ``[num_ws, w_dim]``, made from the toonface latent ``z`` ``[Z]``) moved in W by
    ψ·(mapping(z with ``factor`` = ``target``) − mapping(z)), minus the face itself."""
    z0 = z.detach().float().reshape(1, -1)
    z1 = encode(decode(z0.cpu()).replace(**{factor: target})).to(w_first.device)
    dw = truncation_psi * (G.mapping(z1) - G.mapping(z0.to(w_first.device)))
    ws = torch.stack([w_first, w_first + G.to_wplus(dw)[0]]).float()
    x = G.synthesis(ws).float().clamp(-1, 1)
    return (x[1] - x[0]).cpu()


@register_metric("toon_truth", requires=("evaluator",), lower_is_better=("toon_identity_drift", "toon_off_target"))
def toon_truth(video: Video, ctx: MetricContext) -> dict[str, float]:
    """ToonFace ground truth from the factor regressor: success, monotone rise, identity drift, off-target change."""
    if video.key is None:
        return {}
    factor, target = PROMPT_TARGETS[video.key]
    with torch.no_grad():
        factors = ctx.evaluator.predict(video.frames)
    return toon_scores(factors, factor, target, margin=ctx.margin, level=ctx.level)


@register_metric("toon_reference", requires=("generator",))
def toon_reference(video: Video, ctx: MetricContext) -> dict[str, float]:
    """ToonFace: the video's change against the generator's own drawing of the prompted change on the same face."""
    if video.key is None or video.source_z is None:
        return {}
    factor, target = PROMPT_TARGETS[video.key]
    w_first = torch.as_tensor(video.latents[0]).to(ctx.generator.w_avg.device)
    ref = toon_reference_change(ctx.generator, video.source_z, w_first, factor, target, ctx.truncation_psi)
    return change_alignment(video.frames[-1].float().cpu() - video.frames[0].float().cpu(), ref)
