"""How the ToonFace generator draws each prompt when its W change is extrapolated: w_s + g · (mapping(z_t) −
mapping(z)) for g in GAINS, z_t = the face's parameters with the prompt's factor at its target. For 32 held-out
neutral faces (round 12's layers.py draws), the bundle's evaluator reads the prompted factor's level (1 = target)
and the eye-size / iris-colour change against the face's own drawing. Usage: python gain.py GENERATOR_DIR [OUT.json]
"""

import json
import sys

import torch

from faceanim.models.stylegan2 import Generator
from faceanim.toon.captions import PROMPT_TARGETS
from faceanim.toon.evaluator import ToonEvaluator
from faceanim.toon.factors import SLICES, ToonParams
from faceanim.toon.generator_eval import _evaluator_dir
from faceanim.toon.latent import encode
from faceanim.toon.seeds import DRAWN_LEVELS

GAINS = (1.0, 1.5, 2.0, 2.5, 3.0)
torch.set_num_threads(1)
G = Generator.from_pretrained(sys.argv[1]).eval()
E = ToonEvaluator.from_pretrained(_evaluator_dir("bundle")).eval()
faces = ToonParams.sample(32, rng=torch.Generator().manual_seed(DRAWN_LEVELS))
res = {}
with torch.no_grad():
    wn = G.mapping(encode(faces))
    base = E.predict(G.synthesize(wn).clamp(-1, 1))
    for key, (factor, value) in PROMPT_TARGETS.items():
        we = G.mapping(encode(faces.replace(**{factor: value})))
        sign = (1 if value > 0 else -1) / abs(value)
        row = {}
        for g in GAINS:
            v = E.predict(G.synthesize(wn + g * (we - wn)).clamp(-1, 1))
            lvl = v[:, SLICES[factor].start] * sign
            row[str(g)] = [round(float(lvl.mean()), 2), round(float((lvl >= 0.5).float().mean()), 2),
                           round(float((v - base)[:, SLICES["eye_size"].start].mean()), 3),
                           round(float((v - base)[:, SLICES["eye_color"].start].mean()), 3)]
        res[key] = row
        print(f"{key:12s}", "  ".join(f"g{g}: {r[0]:+.2f} ({r[1]:.2f}) {r[2]:+.2f}/{r[3]:+.2f}" for g, r in row.items()),
              flush=True)
if len(sys.argv) > 2:
    open(sys.argv[2], "w").write(json.dumps(res, indent=1) + "\n")
