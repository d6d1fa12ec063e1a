"""The model card's motion figures for the shipped v1 (rule M17's run on the 64 report faces): per kept key and over
them, the mean of each per-video value in ``results.json``. Usage: python card_figures.py RESULTS.json KEY,KEY,…"""

import json
import sys

d = json.load(open(sys.argv[1]))
keys = sys.argv[2].split(",")
cols = ("toon_success", "toon_level", "toon_ref_cos", "toon_spearman", "toon_monotone", "toon_off_target",
        "toon_identity_drift", "toon_eye_size_change", "toon_eye_color_change", "id_similarity")
rows = [v for v in d["videos"] if v["key"] in keys]
print("| key | n | " + " | ".join(c.removeprefix("toon_") for c in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for k in keys + ["all kept"]:
    vs = rows if k == "all kept" else [v for v in rows if v["key"] == k]
    cells = []
    for c in cols:
        xs = [v[c] for v in vs if v.get(c) is not None and v[c] == v[c]]
        cells.append(f"{sum(xs) / len(xs):+.3f}" if xs else "—")
    print(f"| {k} | {len(vs)} | " + " | ".join(cells) + " |")
