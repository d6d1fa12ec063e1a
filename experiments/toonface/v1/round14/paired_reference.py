"""The generator's own eye change per prompt key on the faces a rule scores (rule M15's paired reference): for the
faces of `faceanim evaluate --seed S --faces N` (the toonface sampler's z of seeds S … S+N−1, as the evaluation draws
them), the bundle's evaluator reads the eye-size and iris-colour factors on the generator's drawing of the face
with the key's factor at its target (g = 1) minus its drawing of the face itself; mean over the faces, per key.
Usage: python paired_reference.py GENERATOR_DIR OUT_DIR   (writes generator_eye_change_sel32.json, faces 100–131,
and generator_eye_change_report64.json, faces 0–63; the format of round12/generator_eye_change.json)
"""

import json
import sys
from pathlib import Path

import torch

from faceanim.models.stylegan2 import Generator
from faceanim.toon.captions import PROMPT_TARGETS
from faceanim.toon.evaluator import ToonEvaluator
from faceanim.toon.factors import SLICES
from faceanim.toon.generator_eval import _evaluator_dir
from faceanim.toon.latent import decode, encode, sample_identity_z

torch.set_num_threads(1)
G = Generator.from_pretrained(sys.argv[1]).eval()
E = ToonEvaluator.from_pretrained(_evaluator_dir("bundle")).eval()
out = Path(sys.argv[2])
for name, first, n in (("sel32", 100, 32), ("report64", 0, 64)):
    z = torch.cat([sample_identity_z(1, G.z_dim, torch.Generator().manual_seed(s)) for s in range(first, first + n)])
    res = {}
    with torch.no_grad():
        base = E.predict(G.synthesize(G.mapping(z)).clamp(-1, 1))
        for key, (factor, target) in PROMPT_TARGETS.items():
            v = E.predict(G.synthesize(G.mapping(encode(decode(z).replace(**{factor: target})))).clamp(-1, 1)) - base
            res[key] = [round(float(v[:, SLICES["eye_size"].start].mean()), 3),
                        round(float(v[:, SLICES["eye_color"].start].mean()), 3)]
    (out / f"generator_eye_change_{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    print(name, res)
