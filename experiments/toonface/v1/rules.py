"""ToonFace v1 (issue 19): the two decision rules of this round, as code, fixed before their inputs exist.

    python experiments/toonface/v1/rules.py generator RUNS   # rule G: which generator the motion seeds use
    python experiments/toonface/v1/rules.py motion RUNS      # rule M: which motion seed (if any) becomes v1
    python experiments/toonface/v1/rules.py motion2 RUNS     # rule M2 (round 12): the candidate run and its keys
    python experiments/toonface/v1/rules.py ship2 RUNS       # rule M2's ship rule, on the report faces

RUNS is the round's run folder (runs/toon19). Rule G reads RUNS/gen_v03/eval_generator.json and
RUNS/gen_v1/eval_generator.json (`faceanim toon eval-generator GEN --n 1000 --per-key 32`) and writes
RUNS/generator_choice.json. Rule M reads RUNS/m_s<seed>/sel32/results.json (`faceanim evaluate … --faces 32
--seed 100`, all 16 prompt keys) and writes RUNS/selection.json. Both print their tables (markdown).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WEAK = ("wink", "sad", "cry", "angry", "eyes_closed", "pout", "blush")   # drawn at ≤ 0.33 by the v0.3 generator
STRONG = ("smile", "laugh", "surprise", "grey_hair", "age", "tilt_left", "tilt_right")
PSNR_FLOOR = 23.76 - 0.3          # v0.3's mean PSNR (1,000 held-out draws) minus 0.3 dB
WEAK_MEAN_MIN = 0.40              # v0.3: 0.18 (card: 0.33, 0.30, 0.20, 0.19, 0.14, 0.04, 0.03)
STRONG_DROP_MAX = 0.10            # no well-drawn key may lose more than this of its drawn level
SEEDS = (0, 1, 2, 3)
OFF_TARGET_MAX = 0.0255           # v0.3's toon_off_target, the bound of the v0.4 and v0.5 rules
DRIFT_MAX = 0.11                  # identity drift (v0.5: 0.101 on 32 report faces)
EYE_MAX = 0.05                    # |mean signed change − the renderer's own| of eye size and iris colour, per prompt
EYE_PROMPTS = ("laugh", "grey_hair", "tilt_left", "tilt_right")  # the side effects the issue names (reported first)
ALL_PROMPTS_EYES = True           # amended after the pilot, before any seed: the bound holds for every prompt
SHIP_MEAN, SHIP_MIN = 0.85, 0.70  # the success targets, here on the selection faces
UNREADABLE = ("gaze_left", "gaze_right")  # the evaluator cannot read gaze: left out of the ship criterion


def rule_generator(runs: Path, candidate: str = "gen_v1") -> dict:
    """Rule G (``candidate`` gen_v1), G2 (gen_v2) and G3 (gen_v3): the same bars against v0.3."""
    old = json.loads((runs / "gen_v03" / "eval_generator.json").read_text())
    new = json.loads((runs / candidate / "eval_generator.json").read_text())
    level = lambda ev, k: ev["drawn_level"][k][0]  # noqa: E731  (drawn, rendered)
    weak_mean = sum(level(new, k) for k in WEAK) / len(WEAK)
    drops = {k: round(level(old, k) - level(new, k), 3) for k in STRONG}
    ok = (new["psnr_mean_db"] >= PSNR_FLOOR and weak_mean >= WEAK_MEAN_MIN
          and max(drops.values()) <= STRONG_DROP_MAX)
    print("| key | v0.3 drawn | v1 fine-tune drawn | rendered |\n|---|---|---|---|")
    for k in (*WEAK, *STRONG, "gaze_left", "gaze_right"):
        print(f"| {k} | {level(old, k):.2f} | {level(new, k):.2f} | {new['drawn_level'][k][1]:.2f} |")
    print(f"\nPSNR {old['psnr_mean_db']} → {new['psnr_mean_db']} dB (floor {PSNR_FLOOR:.2f}); weak-key mean "
          f"{weak_mean:.3f} (min {WEAK_MEAN_MIN}); largest drop on a strong key {max(drops.values()):.3f} "
          f"(max {STRONG_DROP_MAX}) → {candidate if ok else 'gen_v03'}")
    choice = {"generator": str(runs / (candidate if ok else "gen_v03") / "generator"), "accepted_fine_tune": ok,
              "candidate": candidate,
              "psnr": [old["psnr_mean_db"], new["psnr_mean_db"]], "weak_mean": round(weak_mean, 3),
              "strong_drops": drops}
    (runs / f"generator_choice{'' if candidate == 'gen_v1' else '_' + candidate}.json").write_text(
        json.dumps(choice, indent=1) + "\n")
    return choice


def _per_prompt(videos: list[dict], key: str, value: str) -> float:
    vals = [v[value] for v in videos if v["key"] == key and v.get(value) == v.get(value)]
    return sum(vals) / len(vals)


def score_seed(results: Path) -> dict:
    data = json.loads(results.read_text())
    videos = [v for v in data["videos"] if v["method"] == "ours"]
    overall = data["methods"]["ours"]["overall"]
    keys = list(dict.fromkeys(v["key"] for v in videos))
    per = {k: round(_per_prompt(videos, k, "toon_success"), 3) for k in keys}
    own = json.loads((Path(__file__).parent / "renderer_eye_change.json").read_text())  # key → (size, colour)
    checked = keys if ALL_PROMPTS_EYES else [k for k in EYE_PROMPTS if k in keys]
    eyes = {k: (round(_per_prompt(videos, k, "toon_eye_size_change") - own[k][0], 3),
                round(_per_prompt(videos, k, "toon_eye_color_change") - own[k][1], 3)) for k in checked}
    readable = [k for k in keys if k not in UNREADABLE]
    s = {"success_all": round(overall["toon_success"]["mean"], 4),
         "success": round(sum(per[k] for k in readable) / len(readable), 4),
         "min_prompt": min(per[k] for k in readable),
         "off_target": round(overall["toon_off_target"]["mean"], 4),
         "drift": round(overall["toon_identity_drift"]["mean"], 4), "per_prompt": per, "eyes": eyes,
         "n_videos": len(videos)}
    s["eyes_ok"] = all(abs(a) <= EYE_MAX and abs(b) <= EYE_MAX for a, b in eyes.values())
    s["qualifies"] = s["off_target"] <= OFF_TARGET_MAX and s["drift"] <= DRIFT_MAX and s["eyes_ok"]
    return s


def rule_motion(runs: Path) -> dict:
    scores = {}
    for seed in SEEDS:
        f = runs / f"m_s{seed}" / "sel32" / "results.json"
        if f.is_file():
            scores[seed] = score_seed(f)
    if len(scores) < len(SEEDS):
        print(f"only seeds {sorted(scores)} are scored; the rule waits for all of {list(SEEDS)}")
        return {"scores": scores, "chosen": None, "ships": False, "complete": False}
    print("| seed | success (14 keys) | success (16) | worst prompt (14) | off-target | identity drift | eyes ok | qualifies |\n|---|---|---|---|---|---|---|---|")
    for seed, s in scores.items():
        print(f"| {seed} | {s['success']:.3f} | {s['success_all']:.3f} | {s['min_prompt']:.2f} | {s['off_target']:.4f} | {s['drift']:.3f} | "
              f"{s['eyes_ok']} | {s['qualifies']} |")
    good = [seed for seed, s in scores.items() if s["qualifies"]]
    chosen = max(good, key=lambda seed: (scores[seed]["success"], -scores[seed]["off_target"])) if good else None
    ships = chosen is not None and scores[chosen]["success"] >= SHIP_MEAN and scores[chosen]["min_prompt"] >= SHIP_MIN
    print(f"\nchosen: {chosen}; ships as v1: {ships}")
    out = {"scores": scores, "chosen": chosen, "ships": ships, "complete": True}
    (runs / "selection.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


# -- rule M2 (session 12; seeds.md) ----------------------------------------------------------------------------
# the runs of rules M2–M5 (M3–M5: M2's scoring and ship rule on other recipes; seeds.md)
RUNS_M = {"m2": ("m2_a_s0", "m2_b_s0", "m2_a_s1", "m2_b_s1"),
          "m3": ("m3_c_s0", "m3_d_s0"),   # frozen eye / identity directions
          "m4": ("m4_e_s0", "m4_f_s0"),   # the directional CLIP loss
          "m5": ("m5_g_s0", "m5_h_s0"),   # random views (and the directional loss)
          "m6": ("m6_i_s0", "m6_j_s0"),   # an ensemble of loss CLIPs (and the directional loss)
          "m7": ("m7_k_s0", "m7_l_s0"),   # change outside the prompt's region (loss.outside 3 / 10)
          "m8": ("m8_m_s0", "m8_n_s0"),   # the same at larger weights (loss.outside 30 / 100)
          "m9": ("m9_o_s0", "m9_p_s1"),   # loss.outside 300 (seed 0); 100 on seed 1
          "m10": ("m10_q_s0", "m10_r_s0"),  # the target-latent term: form w (λ 30), form direction (λ 1)
          "m11": ("m11_s_s0", "m11_t_s0"),  # form w: λ 300; λ 30 with loss.outside 100
          "m11d": ("m11_u_s0",),            # diagnostic, never a candidate: the target term alone (no contrastive)
          "m12": ("m12_v_s0", "m12_w_s0"),  # form w, λ 100, gain 1.5; contrastive 0.5 / 0.05
          "m12d": ("m12_x_s0",),            # diagnostic: the same without the contrastive term
          "m13": ("m13_y_s0", "m13_z_s0"),  # M12's w with the target image term (λ 100); gain 1.5 / 1.25
          "m14": ("m14_a_s0", "m14_b_s0"),  # M13's z with λ_px 300; and with loss.outside 100
          "m15": ("m15_e_s1", "m15_f_s0"),  # M13's z on seed 1; M13's z at gain 1.4 (paired eye reference)
          "m16": ("m16_g_s2", "m16_h_s3"),  # M13's z on seeds 2 and 3; ships with ≥ 6 kept keys
          "m17": ("m17_i_s1", "m17_j_s2")}  # M13's z with one target gain per prompt, seeds 1 and 2
# rules whose eye reference is the generator's own change on the same faces (round14/paired_reference.py)
PAIRED = {"m15", "m16", "m17"}
WORK_MIN = 0.70                   # a key works when its success reaches this …
EYE_MAX_M2 = 0.08                 # … and both eye changes lie within this of the generator's own change for the key
SUPPORT_MEAN = 0.85               # over the supported keys' videos: mean success, and the bounds below
SHIP_KEYS_MIN = 7                 # v0.5 lists 7 prompts
SHIP_KEYS_MIN_BY_TAG = {"m16": 6, "m17": 6}  # rule M16: every offered prompt works, at least six (seeds.md)
REPORT_OFF_TARGET_MAX, REPORT_DRIFT_MAX = 0.023, 0.099   # the targets (v0.5 on the report faces)
HERE = Path(__file__).parent


def _ci(vals: list[float]) -> tuple[float, float, float]:
    """Mean and 95% percentile bootstrap interval over videos, as ``faceanim evaluate`` computes them."""
    from faceanim.evaluation.metrics import bootstrap_ci

    return bootstrap_ci(vals)


def eye_reference(tag: str, faces: str) -> Path:
    """The generator's own eye change per key that rule ``tag`` compares with on ``faces`` (sel32 | report64):
    rules M2–M14 use round 12's (other faces); rule M15 on, the same faces (round14/paired_reference.py)."""
    if tag in PAIRED:
        return HERE / "round14" / f"generator_eye_change_{faces}.json"
    return HERE / "round12" / "generator_eye_change.json"


def score_run2(results: Path, gen_ref_file: Path | None = None) -> dict:
    """Per key: success, eye changes (minus the generator's own and the renderer's own), working or not; the
    supported set S and the figures over S's videos."""
    videos = [v for v in json.loads(results.read_text())["videos"] if v["method"] == "ours"]
    gen_ref = json.loads((gen_ref_file or HERE / "round12" / "generator_eye_change.json").read_text())
    ren_ref = json.loads((HERE / "renderer_eye_change.json").read_text())
    keys = list(dict.fromkeys(v["key"] for v in videos))
    per = {}
    for k in keys:
        size, colour = _per_prompt(videos, k, "toon_eye_size_change"), _per_prompt(videos, k, "toon_eye_color_change")
        d_gen = (size - gen_ref[k][0], colour - gen_ref[k][1])
        success = _per_prompt(videos, k, "toon_success")
        per[k] = {"success": round(success, 3), "eye_size": round(size, 3), "eye_colour": round(colour, 3),
                  "vs_generator": [round(x, 3) for x in d_gen],
                  "vs_renderer": [round(size - ren_ref[k][0], 3), round(colour - ren_ref[k][1], 3)],
                  "working": k not in UNREADABLE and success >= WORK_MIN
                  and all(abs(x) <= EYE_MAX_M2 for x in d_gen)}
    S = [k for k in keys if per[k]["working"]]
    sub = [v for v in videos if v["key"] in S]
    s = {"per_key": per, "supported": S, "n_videos": len(videos)}
    if sub:
        for name, metric in (("success", "toon_success"), ("off_target", "toon_off_target"),
                             ("drift", "toon_identity_drift")):
            m, lo, hi = _ci([v[metric] for v in sub])
            s[name] = [round(m, 4), round(lo, 4), round(hi, 4)]
    return s


def rule_motion2(runs: Path, tag: str = "m2") -> dict:
    names = RUNS_M[tag]
    scores = {r: score_run2(runs / r / "sel32" / "results.json", eye_reference(tag, "sel32")) for r in names
              if (runs / r / "sel32" / "results.json").is_file()}
    if len(scores) < len(names):
        print(f"only {sorted(scores)} are scored; the rule waits for all of {list(names)}")
        return {"scores": scores, "chosen": None, "complete": False}
    print("| run | keys in S | success over S | off-target over S | drift over S | qualifies |\n|---|---|---|---|---|---|")
    for r, s in scores.items():
        s["qualifies"] = bool(s["supported"]) and s["success"][0] >= SUPPORT_MEAN \
            and s["off_target"][0] <= OFF_TARGET_MAX and s["drift"][0] <= DRIFT_MAX
        fig = (lambda x: f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]") if s["supported"] else (lambda x: "—")
        print(f"| {r} | {len(s['supported'])}: {', '.join(s['supported'])} | {fig(s.get('success'))} | "
              f"{fig(s.get('off_target'))} | {fig(s.get('drift'))} | {s['qualifies']} |")
    print("\nper key: success, eye size / colour change minus the generator's own (working: ✓)\n")
    print("| key | " + " | ".join(scores) + " |\n|---|" + "---|" * len(scores))
    for k in next(iter(scores.values()))["per_key"]:
        cells = []
        for s in scores.values():
            p = s["per_key"][k]
            cells.append(f"{p['success']:.2f} ({p['vs_generator'][0]:+.2f}/{p['vs_generator'][1]:+.2f})"
                         + (" ✓" if p["working"] else ""))
        print(f"| {k} | " + " | ".join(cells) + " |")
    good = [r for r, s in scores.items() if s["qualifies"]]
    chosen = max(good, key=lambda r: (len(scores[r]["supported"]), scores[r]["success"][0],
                                      -scores[r]["off_target"][0])) if good else None
    print(f"\ncandidate: {chosen}" + (f" (S = {', '.join(scores[chosen]['supported'])})" if chosen else
                                      " — no run qualifies; nothing ships, v0.5 stays"))
    out = {"scores": scores, "chosen": chosen, "complete": True}
    (runs / f"selection_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def ship2(runs: Path, tag: str = "m2") -> dict:
    sel = json.loads((runs / f"selection_{tag}.json").read_text())
    chosen = sel["chosen"]
    if chosen is None:
        print("no candidate: nothing ships")
        return {"ships": False}
    S = sel["scores"][chosen]["supported"]
    rep = score_run2(runs / chosen / "report64" / "results.json", eye_reference(tag, "report64"))
    K = [k for k in S if rep["per_key"][k]["working"]]
    videos = [v for v in json.loads((runs / chosen / "report64" / "results.json").read_text())["videos"]
              if v["method"] == "ours" and v["key"] in K]
    out = {"run": chosen, "selection_supported": S, "kept": K, "report_per_key": rep["per_key"]}
    if K:
        for name, metric in (("success", "toon_success"), ("off_target", "toon_off_target"),
                             ("drift", "toon_identity_drift")):
            m, lo, hi = _ci([v[metric] for v in videos])
            out[name] = [round(m, 4), round(lo, 4), round(hi, 4)]
    out["ships"] = bool(K) and len(K) >= SHIP_KEYS_MIN_BY_TAG.get(tag, SHIP_KEYS_MIN) and out["success"][0] >= SUPPORT_MEAN \
        and min(rep["per_key"][k]["success"] for k in K) >= WORK_MIN \
        and out["off_target"][0] <= REPORT_OFF_TARGET_MAX and out["drift"][0] <= REPORT_DRIFT_MAX
    print(f"run {chosen}: S on the selection faces = {', '.join(S)}")
    print("\n| key | success | eye size Δ (generator's own) | iris colour Δ (generator's own) | working |\n|---|---|---|---|---|")
    gen_ref = json.loads(eye_reference(tag, "report64").read_text())
    for k, p in rep["per_key"].items():
        print(f"| {k} | {p['success']:.3f} | {p['eye_size']:+.3f} ({gen_ref[k][0]:+.3f}) | "
              f"{p['eye_colour']:+.3f} ({gen_ref[k][1]:+.3f}) | {'✓' if p['working'] else ''}{' (in S)' if k in S else ''} |")
    if K:
        f = lambda x: f"{x[0]:.4f} [{x[1]:.4f}, {x[2]:.4f}]"  # noqa: E731
        print(f"\nkept K = {', '.join(K)} ({len(K)} keys, {len(videos)} videos): success {f(out['success'])}, "
              f"off-target {f(out['off_target'])}, identity drift {f(out['drift'])}")
    print(f"ships as v1 (before the panel is read by eye): {out['ships']}")
    (runs / f"ship_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    what, runs = sys.argv[1], Path(sys.argv[2])
    if what == "generator":
        rule_generator(runs)
    elif what in ("generator2", "generator3"):
        rule_generator(runs, "gen_v" + what[-1])
    elif what.startswith("motion") and "m" + what.removeprefix("motion") in RUNS_M:   # motion2 … motion10
        rule_motion2(runs, "m" + what.removeprefix("motion"))
    elif what.startswith("ship") and "m" + what.removeprefix("ship") in RUNS_M:       # ship2 … ship10
        ship2(runs, "m" + what.removeprefix("ship"))
    else:
        rule_motion(runs)
    sys.exit(0)
