"""The ToonFace generator's input: a parameter vector encoded so that StyleGAN2's PixelNorm loses nothing.

The mapping network starts by normalizing z to unit mean square, which would merge z and 2·z. Each scalar
factor is therefore written as a point on a circle — (cos θ, sin θ) with θ = π/2·p for p ∈ [0, 1] (signed
factors first mapped to [0, 1]) and θ = 2π·h for periodic hues — and one-hot blocks are kept as they are. Every
encoded vector of one-hot (not blended) categories has the same norm, so PixelNorm is a constant scale.
"""

from __future__ import annotations

import math

import torch

from faceanim.toon.factors import FACTORS, PARAM_DIM, SLICES, ToonParams

PERIODIC = frozenset({"hair_hue", "shirt_hue", "bg_hue"})
Z_DIM = sum(f.dim if f.kind == "onehot" else 2 for f in FACTORS)


def _turn(name: str) -> float:
    """The angle a scalar factor spans on its circle: a full turn for hues, a quarter turn otherwise."""
    return 2 * math.pi if name in PERIODIC else math.pi / 2


def encode(params: ToonParams | torch.Tensor) -> torch.Tensor:
    """Parameter vectors ``[B, P]`` → generator inputs z ``[B, Z_DIM]``."""
    v = params.vector if isinstance(params, ToonParams) else torch.as_tensor(params, dtype=torch.float32)
    parts = []
    for f in FACTORS:
        x = v[:, SLICES[f.name]]
        if f.kind == "onehot":
            parts.append(x)
            continue
        if f.kind == "signed":
            x = (x + 1) / 2
        theta = _turn(f.name) * x
        parts += [torch.cos(theta), torch.sin(theta)]
    return torch.cat(parts, dim=1)


def sample_identity_z(n: int, z_dim: int, rng: torch.Generator) -> torch.Tensor:
    """z of ``n`` random ToonFace identities with a neutral expression (the "toonface" latent sampler)."""
    if z_dim != Z_DIM:
        raise ValueError(f"the ToonFace latent has {Z_DIM} entries, the generator expects {z_dim}")
    return encode(ToonParams.sample(n, rng=rng))


def decode(z: torch.Tensor) -> ToonParams:
    """Inverse of :func:`encode`: generator inputs z ``[B, Z_DIM]`` → parameter vectors (each scalar factor read
    back from its angle with atan2, one-hot blocks copied)."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.ndim != 2 or z.shape[1] != Z_DIM:
        raise ValueError(f"decode expects z of shape [B, {Z_DIM}], got {tuple(z.shape)}")
    v = torch.zeros(z.shape[0], PARAM_DIM)
    i = 0
    for f in FACTORS:
        if f.kind == "onehot":
            v[:, SLICES[f.name]] = z[:, i:i + f.dim]
            i += f.dim
            continue
        x = torch.atan2(z[:, i + 1], z[:, i]) / _turn(f.name)
        i += 2
        if f.name in PERIODIC:
            x = x % 1.0
        else:
            x = x.clamp(0.0, 1.0)
            if f.kind == "signed":
                x = 2 * x - 1
        v[:, SLICES[f.name].start] = x
    return ToonParams(v)


def factor_directions(G, factors: list[str] | tuple[str, ...], n: int = 1000) -> torch.Tensor:
    """Mean W directions ``[K, w_dim]`` of continuous factors in a ToonFace generator: for ``n`` random faces, W of
    the face with the factor at its top minus W with it at its bottom (1 − 0; signed factors +1 − (−1)), averaged.
    Periodic hues and one-hot factors have no single direction and are refused."""
    from faceanim.toon.factors import FACTOR_BY_NAME
    from faceanim.toon.seeds import FACTOR_DIRECTIONS

    bad = [f for f in factors if f not in FACTOR_BY_NAME or f in PERIODIC or FACTOR_BY_NAME[f].kind == "onehot"]
    if bad or not factors:
        raise ValueError(f"factors without a single W direction: {', '.join(bad) or '(none given)'}; give "
                         "continuous, non-periodic factors")
    faces = ToonParams.sample(n, rng=torch.Generator().manual_seed(FACTOR_DIRECTIONS))
    out = []
    with torch.no_grad():
        for f in factors:
            low = -1.0 if FACTOR_BY_NAME[f].kind == "signed" else 0.0
            hi = G.mapping(encode(faces.replace(**{f: 1.0})))
            lo = G.mapping(encode(faces.replace(**{f: low})))
            out.append((hi - lo).mean(0))
    return torch.stack(out)
