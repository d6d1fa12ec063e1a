"""The generator's own drawing of each prompt with its W change kept to a group of W+ layers, scored exactly as the
evaluation scores a video (``toon_scores`` on the pair [face, moved face]): success, level, off-target, and the eye
changes. No motion model. For 32 held-out neutral faces (round 12's draws, neither the selection nor the report
faces): w_s = mapping(z), w_t = mapping(z with the key's factor at its target), moved = w_s + g·M⊙(w_t − w_s), M = 1
on the group's layers. Usage: [KEYS=smile,wink GAINS=1.75,2.0 GROUPS=all] python layers_offtarget.py GENERATOR_DIR OUT.json
"""

import json
import sys

import torch

from faceanim.models.stylegan2 import Generator
from faceanim.toon.captions import PROMPT_TARGETS
from faceanim.toon.evaluator import ToonEvaluator
from faceanim.toon.factors import ToonParams
from faceanim.toon.generator_eval import _evaluator_dir
from faceanim.toon.latent import encode
from faceanim.toon.metrics import toon_scores
from faceanim.toon.seeds import DRAWN_LEVELS

import os

KEYS = tuple(os.environ.get("KEYS", "smile,laugh,surprise,wink,sad,grey_hair,tilt_left,tilt_right").split(","))
GAINS = tuple(float(g) for g in os.environ.get("GAINS", "1.0,1.25,1.5").split(","))
torch.set_num_threads(1)
G = Generator.from_pretrained(sys.argv[1]).eval()
E = ToonEvaluator.from_pretrained(_evaluator_dir("bundle")).eval()
n = G.num_ws
GROUPS = {"all": range(n), "0-3": range(0, 4), "0-5": range(0, 6), "0-7": range(0, 8), "4-11": range(4, n)}
if os.environ.get("GROUPS"):
    GROUPS = {k: GROUPS[k] for k in os.environ["GROUPS"].split(",")}
faces = ToonParams.sample(32, rng=torch.Generator().manual_seed(DRAWN_LEVELS))
res = {}
with torch.no_grad():
    wn = G.to_wplus(G.mapping(encode(faces)))
    base = E.predict(G.synthesize(wn).clamp(-1, 1))
    for key in KEYS:
        factor, value = PROMPT_TARGETS[key]
        we = G.to_wplus(G.mapping(encode(faces.replace(**{factor: value}))))
        res[key] = {}
        for name, layers in GROUPS.items():
            m = torch.zeros(1, n, 1)
            m[:, list(layers)] = 1.0
            for g in GAINS:
                v = E.predict(G.synthesize(wn + g * m * (we - wn)).clamp(-1, 1))
                rows = [toon_scores(torch.stack([base[i], v[i]]), factor, value) for i in range(len(v))]
                mean = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in
                        ("toon_success", "toon_level", "toon_off_target", "toon_eye_size_change",
                         "toon_eye_color_change")}
                res[key][f"{name} g{g}"] = mean
                print(f"{key:10s} {name:5s} g{g:<4}", "  ".join(f"{k[5:]} {x:+.3f}" for k, x in mean.items()),
                      flush=True)
open(sys.argv[2], "w").write(json.dumps(res, indent=1) + "\n")
