"""How well a ToonFace generator reproduces the renderer: PSNR on held-out draws and the expressions it draws."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from faceanim.toon.seeds import DRAWN_LEVELS, GENERATOR_HELDOUT


def drawn_levels(G, evaluator, faces_per_key: int, device: str | torch.device = "cpu") -> dict[str, list[float]]:
    """Per prompt key: [evaluator reading of the factor on G's drawing, on the renderer's] at the key's target,
    signed towards the target (1 = fully there), mean over ``faces_per_key`` held-out neutral identities.
    ``evaluator``: a ToonEvaluator."""
    from faceanim.toon.captions import PROMPT_TARGETS
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.latent import encode
    from faceanim.toon.renderer import render

    faces = ToonParams.sample(faces_per_key, rng=torch.Generator().manual_seed(DRAWN_LEVELS))
    out = {}
    with torch.no_grad():
        for key, (factor, value) in PROMPT_TARGETS.items():
            p = faces.replace(**{factor: value})
            sign = (1 if value > 0 else -1) / abs(value)
            drawn = evaluator.factor(G(encode(p).to(device)).clamp(-1, 1), factor).cpu() * sign
            rendered = evaluator.factor(render(p, size=G.img_resolution).to(device), factor).cpu() * sign
            out[key] = [round(float(drawn.mean()), 2), round(float(rendered.mean()), 2)]
    return out


def evaluate_generator(generator_dir: str | os.PathLike, faces: int = 1000, evaluator: str | None = "bundle",
                       faces_per_key: int = 32, grid: str | None = None, device: str | torch.device = "cpu") -> dict:
    """``faceanim toon eval-generator``: PSNR of the generator in ``generator_dir`` against the renderer on
    ``faces`` held-out draws (overall, and on the pixels that expressions change), and, with an evaluator
    (``"bundle"``: the toonface bundle's; a folder; None: skip), how well it draws each expression
    (:func:`drawn_levels`). ``grid``: also write a PNG with a renderer row over a generator row."""
    from faceanim.models.stylegan2 import Generator
    from faceanim.toon.recipes import generator_batch
    from faceanim.toon.train_generator import psnr
    from faceanim.utils.images import save_grid

    if grid is not None:
        from faceanim.outputs import check_output_path

        check_output_path(grid, allowed=(".png",))
    G = Generator.from_pretrained(generator_dir, device=device)
    z, target, weight = generator_batch(faces, torch.Generator().manual_seed(GENERATOR_HELDOUT), expression_weight=1.0)
    with torch.no_grad():
        fake = torch.cat([G(z[i:i + 50].to(device)).clamp(-1, 1).cpu() for i in range(0, faces, 50)])
    vals = psnr(fake, target)
    mask = (weight > 1).expand_as(target)
    changed = 10 * torch.log10(4.0 / (fake - target)[mask].square().mean())
    res = {"faces": faces, "psnr_mean_db": round(float(vals.mean()), 2),
           "psnr_median_db": round(float(vals.median()), 2), "psnr_p10_db": round(float(vals.quantile(0.1)), 2),
           "psnr_changed_pixels_db": round(float(changed), 2)}
    if evaluator is not None:
        from faceanim.toon.evaluator import ToonEvaluator

        res["drawn_level"] = drawn_levels(G, ToonEvaluator.from_pretrained(_evaluator_dir(evaluator), device=device),
                                          faces_per_key, device=device)
    if grid is not None:
        save_grid(torch.stack([target[:8], fake[:8]]), grid)
    return res


def _evaluator_dir(evaluator: str) -> Path:
    if evaluator != "bundle":
        return Path(evaluator)
    from faceanim.bundles import Bundle

    return Bundle.open("toonface").path("evaluator")
