"""Which W+ layers of the ToonFace generator carry each expression, and which carry the eyes' size and colour?

For 32 held-out neutral faces and each prompt key: w_n = mapping(neutral), w_e = mapping(with the key at its
target). Frames are drawn with w_e in a group of W+ layers and w_n in the rest; the bundle's evaluator reads the
key's factor (signed towards the target, 1 = fully there) and the change of the eye-size and iris-colour factors
against the neutral drawing. Usage: python layers.py GENERATOR_DIR [OUT.json]
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

torch.set_num_threads(1)
G = Generator.from_pretrained(sys.argv[1]).eval()
E = ToonEvaluator.from_pretrained(_evaluator_dir("bundle")).eval()
n = G.num_ws
GROUPS = {"all": range(n), "0-3": range(0, 4), "4-7": range(4, 8), "8-11": range(8, n), "0-7": range(0, 8),
          "0-5": range(0, 6), "0-9": range(0, 10), "6-11": range(6, n)}
faces = ToonParams.sample(32, rng=torch.Generator().manual_seed(DRAWN_LEVELS))
res = {}
with torch.no_grad():
    wn = G.mapping(encode(faces))
    base = E.predict(G.synthesize(wn).clamp(-1, 1))
    for key, (factor, value) in PROMPT_TARGETS.items():
        we = G.mapping(encode(faces.replace(**{factor: value})))
        sign = (1 if value > 0 else -1) / abs(value)
        row = {}
        for name, layers in GROUPS.items():
            ws = wn.unsqueeze(1).repeat(1, n, 1)
            ws[:, list(layers)] = we.unsqueeze(1)
            v = E.predict(G.synthesize(ws).clamp(-1, 1))
            lvl = float((v[:, SLICES[factor].start] * sign).mean())
            dsz = float((v - base)[:, SLICES["eye_size"].start].mean())
            dcol = float((v - base)[:, SLICES["eye_color"].start].mean())
            row[name] = [round(lvl, 2), round(dsz, 3), round(dcol, 3)]
        res[key] = row
        print(key, " ".join(f"{k}:{v[0]:+.2f}/{v[1]:+.2f}/{v[2]:+.2f}" for k, v in row.items()), flush=True)
    # which layers carry the eyes themselves: move eye_color 0 → 1 and eye_size 0 → 1 per group
    for factor in ("eye_color", "eye_size"):
        w0 = G.mapping(encode(faces.replace(**{factor: 0.0})))
        w1 = G.mapping(encode(faces.replace(**{factor: 1.0})))
        v0 = E.predict(G.synthesize(w0).clamp(-1, 1))[:, SLICES[factor].start]
        row = {}
        for name, layers in GROUPS.items():
            ws = w0.unsqueeze(1).repeat(1, n, 1)
            ws[:, list(layers)] = w1.unsqueeze(1)
            row[name] = round(float((E.predict(G.synthesize(ws).clamp(-1, 1))[:, SLICES[factor].start] - v0).mean()), 3)
        res["identity:" + factor] = row
        print(factor, row, flush=True)
if len(sys.argv) > 2:
    open(sys.argv[2], "w").write(json.dumps(res, indent=1))
