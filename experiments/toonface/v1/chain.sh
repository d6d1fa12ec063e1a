#!/usr/bin/env bash
# ToonFace v1 (issue 19): the whole round, resumable; every phase continues from its checkpoint or is skipped when
# its output exists. Rules: seeds.md / rules.py (fixed before their inputs).
#
#   RUNS=runs/toon19 bash experiments/toonface/v1/chain.sh [PHASE ...]     # from the repository root
#
# PHASE: generator | rule-g | generator2 | rule-g2 | generator3 | rule-g3 | pilot3 | seeds | select | rule-m
#        | round12 | rule-m2 | report2 | ship2   (round 12, seeds.md rule M2: THREADS=1, two jobs at a time)
#        | round13 | rule-m3 | report3 | ship3   (seeds.md rule M3: frozen eye / identity directions)
#        | round14 | rule-m4 | report4 | ship4   (seeds.md rule M4: the directional CLIP loss)
#        | round15 | rule-m5 | report5 | ship5   (seeds.md rule M5: random views in the contrastive loss)
#        | round16 | rule-m6 | report6 | ship6   (seeds.md rule M6: an ensemble of loss CLIPs)
#        | round17 | rule-m7 | report7 | ship7   (seeds.md rule M7: change outside the prompt's region)
#        | round18 | rule-m8 | report8 | ship8   (seeds.md rule M8: the same at larger weights)
#        | round19 | rule-m9 | report9 | ship9   (seeds.md rule M9: λ 300, and λ 100 on seed 1)
#        | round20 | rule-m10 | report10 | ship10   (seeds.md rule M10: the target-latent term)
#        | round21 | rule-m11 | rule-m11d | report11 | ship11   (seeds.md rule M11: its weight, with loss.outside; alone)
#        | round22 | rule-m12 | rule-m12d | report12 | ship12   (seeds.md rule M12: past the target, gain 1.5)
#        | round23 | rule-m13 | report13 | ship13   (seeds.md rule M13: the target image term)
#        | round24 | rule-m14 | report14 | ship14   (seeds.md rule M14: λ_px 300; with the outside term)
#        | round25 | rule-m15 | report15 | ship15   (seeds.md rule M15: paired eye reference; seed 1, gain 1.4)
#        | round26 | rule-m16 | report16 | ship16   (seeds.md rule M16: seeds 2 and 3; ships with ≥ 6 keys)
#        | round27 | rule-m17 | report17 | ship17   (seeds.md rule M17: one target gain per prompt; seeds 1 and 2)
# (default: generator rule-g seeds select rule-m; rounds 2 and 3 of the generator, seeds.md rules G2/G3, and the
# pilot of G3 run only when named). SEEDS="0 1" limits the seeds;
# THREADS (default 1) is OMP_NUM_THREADS of each job. Weights stay under RUNS (git-ignored).
set -euo pipefail
RUNS=${RUNS:-runs/toon19}
SEEDS=${SEEDS:-0 1 2 3}
export OMP_NUM_THREADS=${THREADS:-1}
BASE=runs/toonface                      # experiments/toonface/restore_weights.sh puts the build weights here
KEYS=smile,laugh,sad,angry,surprise,eyes_closed,wink,pout,cry,blush,gaze_left,gaze_right,tilt_left,tilt_right,grey_hair,age
FOCUS=laugh,sad,angry,eyes_closed,wink,pout,cry,blush,gaze_left,gaze_right,age
phases=${*:-generator rule-g seeds select rule-m}
say() { echo "[$(date -u +%H:%M:%S)] $*"; }

export_v03() {  # v0.3's generator in fp32, exported from its checkpoint (no step left: writes generator/)
  [ -d "$RUNS/gen_v03/generator" ] && return
  mkdir -p "$RUNS/gen_v03" && cp -r "$BASE/generator_v03/checkpoint" "$RUNS/gen_v03/"
  faceanim toon train-generator -o "$RUNS/gen_v03" --resume --steps 9000 --lr 5e-4 --beta1 0.9 \
    --mapping-lr-multiplier 1.0 --faces 256 --expression-weight 25
}

generator() {
  export_v03
  [ -d "$RUNS/gen_v1/generator" ] && return
  local start=(--init-from "$RUNS/gen_v03/checkpoint")
  [ -f "$RUNS/gen_v1/checkpoint/state.json" ] && start=(--resume)
  say "generator fine-tune ${start[*]}"
  faceanim toon train-generator -o "$RUNS/gen_v1" "${start[@]}" --steps 2000 --lr 3e-4 --beta1 0.9 \
    --mapping-lr-multiplier 1.0 --faces 256 --expression-weight 25 --focus-keys "$FOCUS" --focus-share 0.5 --seed 19
}

round_n() {  # seeds.md, rules G2 (12,000 steps, lost at 525) and G3 (the same cut to 4,000): $1 = 2 | 3
  export_v03
  local out="$RUNS/gen_v$1" steps=$([ "$1" = 2 ] && echo 12000 || echo 4000)
  [ -d "$out/generator" ] && return
  local start=(--init-from "$RUNS/gen_v03/checkpoint")
  [ -f "$out/checkpoint/state.json" ] && start=(--resume)
  say "generator round $1 ${start[*]}"
  faceanim toon train-generator -o "$out" "${start[@]}" --steps "$steps" --lr 3e-4 --beta1 0.9 \
    --mapping-lr-multiplier 1.0 --faces 256 --expression-weight 25 \
    --focus-keys wink,sad,cry,angry,eyes_closed,pout,blush,laugh,age --focus-share 0.75 --seed 20
}

rule_gn() {
  [ -s "$RUNS/gen_v03/eval_generator.json" ] ||    # v0.3's reading, committed (the same command, same weights)
    cp experiments/toonface/v1/round10/eval_generator_v03.json "$RUNS/gen_v03/eval_generator.json"
  if [ ! -s "$RUNS/gen_v$1/eval_generator.json" ]; then
    say "eval-generator gen_v$1"
    faceanim toon eval-generator "$RUNS/gen_v$1/generator" --faces 1000 --faces-per-key 32 \
      --grid "$RUNS/gen_v$1/eval_grid.png" > "$RUNS/gen_v$1/eval_generator.json.tmp"
    mv "$RUNS/gen_v$1/eval_generator.json.tmp" "$RUNS/gen_v$1/eval_generator.json"
  fi
  python experiments/toonface/v1/rules.py "generator$1" "$RUNS" | tee "$RUNS/generator_choice_gen_v$1.md"
}

chosen_generator() {  # the latest round (G3, G2) whose rule accepted its fine-tune, else rule G's choice
  python - "$RUNS" <<'PY'
import json, sys
from pathlib import Path
runs = Path(sys.argv[1])
for name in ("generator_choice_gen_v3.json", "generator_choice_gen_v2.json", "generator_choice.json"):
    f = runs / name
    if f.is_file() and (json.loads(f.read_text())["accepted_fine_tune"] or name == "generator_choice.json"):
        print(json.loads(f.read_text())["generator"])
        break
PY
}

rule_g() {
  for g in gen_v03 gen_v1; do
    [ -s "$RUNS/$g/eval_generator.json" ] && continue
    say "eval-generator $g"
    faceanim toon eval-generator "$RUNS/$g/generator" --faces 1000 --faces-per-key 32 \
      --grid "$RUNS/$g/eval_grid.png" > "$RUNS/$g/eval_generator.json.tmp"
    mv "$RUNS/$g/eval_generator.json.tmp" "$RUNS/$g/eval_generator.json"
  done
  [ -s "$RUNS/generator_choice.json" ] || python experiments/toonface/v1/rules.py generator "$RUNS" | tee "$RUNS/generator_choice.md"
}

motion_run() {  # the recipe of rule M (resumable): $1 out folder, $2 generator, $3 steps, $4 seed, $5… more --set
  local out=$1 gen=$2 steps=$3 seed=$4 run="$1/00000-toonface-motion"
  shift 4
  [ -f "$out/done" ] && return
  if [ -f "$run/checkpoints/latest/state.json" ]; then
    say "$out: resume"
    faceanim train --resume "$run" >> "$out/stdout.log" 2>&1
  else
    say "$out: start on $gen"
    mkdir -p "$out"
    faceanim toon train-motion --generator "$gen" --clip "$BASE/clip15/clip" --loss-clip "$BASE/clip8/clip" \
      -o "$out" --steps "$steps" --batch-size 16 --paraphrases --prompt-keys "$KEYS" \
      --set motion.mapper_input=offset --set loss.w_reg=10 --set loss.path_reg=30 \
      --set motion.inference_rates=matched --set grad_clip=5 --set seed="$seed" "$@" >> "$out/stdout.log" 2>&1
  fi
  touch "$out/done"
}

seed_run() {  # rule M, one seed, on the chosen generator
  motion_run "$RUNS/m_s$1" "$(chosen_generator)" 1000 "$1"
}

select_seed() {  # the 32 selection faces 100-131, 16 prompts
  local seed=$1 out="$RUNS/m_s$1"
  [ -s "$out/sel32/results.json" ] && return
  gen=$(chosen_generator)
  [ -d "$out/bundle" ] || faceanim toon build-bundle --generator "$gen" \
    --motion "$out/00000-toonface-motion/motion_model" --evaluator src/faceanim/bundles/toonface/evaluator -o "$out/bundle"
  say "seed $seed: selection faces"
  local prompts=()
  for k in ${KEYS//,/ }; do prompts+=(-p "$k"); done
  faceanim evaluate -b "$out/bundle" --methods ours --faces 32 --seed 100 --frames 16 "${prompts[@]}" \
    --real 64 --grid-faces 4 --grid-format png -o "$out/sel32" > "$out/sel32.log" 2>&1
}

evaluate_run() {  # $1 run folder, $2 generator, $3 name (sel32 | report64), $4 faces, $5 first face
  local out=$1 gen=$2
  [ -s "$out/$3/results.json" ] && return
  [ -d "$out/bundle" ] || faceanim toon build-bundle --generator "$gen" \
    --motion "$out/00000-toonface-motion/motion_model" --evaluator src/faceanim/bundles/toonface/evaluator -o "$out/bundle"
  say "$out: $3"
  local prompts=()
  for k in ${KEYS//,/ }; do prompts+=(-p "$k"); done
  faceanim evaluate -b "$out/bundle" --methods ours --faces "$4" --seed "$5" --frames 16 "${prompts[@]}" \
    --real 64 --grid-faces 4 --grid-format png -o "$out/$3" > "$out/$3.log" 2>&1
}

variant_job() {  # $1 run folder, $2 seed, $3… extra training options: rule M's recipe on v0.3's generator, then
  local out=$1 seed=$2       # the 32 selection faces
  shift 2
  motion_run "$out" "$RUNS/gen_v03/generator" 1000 "$seed" "$@"
  evaluate_run "$out" "$RUNS/gen_v03/generator" sel32 32 100
}

m2_job() {  # rule M2 (seeds.md): $1 variant a (offsets on W+ 0-7) | b (all entries), $2 seed; train, then score
  local out="$RUNS/m2_$1_s$2" extra=()
  [ "$1" = a ] && extra=(--set motion.edit_ws=8)
  variant_job "$out" "$2" "${extra[@]}"
}

round12() {  # the four runs of rule M2, two at a time (one thread each)
  export_v03
  for s in 0 1; do
    m2_job a "$s" & m2_job b "$s" & wait
  done
}

m3_job() {  # rule M3 (seeds.md): $1 variant c | d, seed 0; M2's b recipe with frozen factor directions
  local out="$RUNS/m3_$1_s0" factors=eye_size,eye_color
  [ "$1" = d ] && factors=eye_size,eye_color,skin_tone,face_width,face_length,jaw,brow_thickness,nose_size,nose_shape,mouth_width,ear_size,lashes,freckles,glasses
  variant_job "$out" 0 --freeze-factors "$factors"
}

round13() {  # the two runs of rule M3 at once (one thread each)
  export_v03
  m3_job c & m3_job d & wait
}

m4_job() {  # rule M4 (seeds.md): $1 variant e (directional 0.5) | f (2.0), seed 0; M2's b recipe
  local out="$RUNS/m4_$1_s0" weight=0.5
  [ "$1" = f ] && weight=2.0
  variant_job "$out" 0 --set loss.directional="$weight"
}

round14() {  # the two runs of rule M4 at once (one thread each)
  export_v03
  m4_job e & m4_job f & wait
}

m5_job() {  # rule M5 (seeds.md): $1 variant g (views 4) | h (views 4, directional 0.5), seed 0; M2's b recipe
  local out="$RUNS/m5_$1_s0" extra=(--set loss.views=4)
  [ "$1" = h ] && extra+=(--set loss.directional=0.5)
  variant_job "$out" 0 "${extra[@]}"
}

round15() {  # the two runs of rule M5 at once (one thread each)
  export_v03
  m5_job g & m5_job h & wait
}

m6_job() {  # rule M6 (seeds.md): $1 variant i (loss CLIPs 8 + 11 + 15b) | j (the same, directional 0.5), seed 0
  local out="$RUNS/m6_$1_s0" extra=(--loss-clip "$BASE/clip11/clip" --loss-clip "$BASE/clip15/clip")
  [ "$1" = j ] && extra+=(--set loss.directional=0.5)
  variant_job "$out" 0 "${extra[@]}"   # motion_run names clip 8 first: the three form the ensemble
}

round16() {  # the two runs of rule M6 at once (one thread each)
  export_v03
  m6_job i & m6_job j & wait
}

outside_job() {  # rules M7-M9 (seeds.md): $1 run name, $2 seed, $3 λ of loss.outside; M2's b recipe
  variant_job "$RUNS/$1" "$2" --set region_masks=toonface --set loss.outside="$3"
}

round17() {  # the two runs of rule M7 at once (one thread each)
  export_v03
  outside_job m7_k_s0 0 3 & outside_job m7_l_s0 0 10 & wait
}

round18() {  # the two runs of rule M8 at once (one thread each)
  export_v03
  outside_job m8_m_s0 0 30 & outside_job m8_n_s0 0 100 & wait
}

round19() {  # the two runs of rule M9 at once (one thread each)
  export_v03
  outside_job m9_o_s0 0 300 & outside_job m9_p_s1 1 100 & wait
}

round20() {  # the two runs of rule M10 at once (one thread each): the target-latent term, forms w and direction
  export_v03
  variant_job "$RUNS/m10_q_s0" 0 --set target_latents=toonface --set loss.target=30 --set loss.target_form=w &
  variant_job "$RUNS/m10_r_s0" 0 --set target_latents=toonface --set loss.target=1 --set loss.target_form=direction &
  wait
}

round21() {  # the three runs of rule M11 at once (one thread each); m11_u_s0 is a diagnostic, not a candidate
  export_v03
  local t=(--set target_latents=toonface --set loss.target_form=w)
  variant_job "$RUNS/m11_s_s0" 0 "${t[@]}" --set loss.target=300 &
  variant_job "$RUNS/m11_t_s0" 0 "${t[@]}" --set loss.target=30 --set region_masks=toonface --set loss.outside=100 &
  variant_job "$RUNS/m11_u_s0" 0 "${t[@]}" --set loss.target=30 --set loss.contrastive=0 &
  wait
}

round22() {  # the three runs of rule M12 at once (one thread each); m12_x_s0 is a diagnostic, not a candidate
  export_v03
  local t=(--set target_latents=toonface --set loss.target_form=w --set loss.target=100 --set loss.target_gain=1.5)
  variant_job "$RUNS/m12_v_s0" 0 "${t[@]}" &
  variant_job "$RUNS/m12_w_s0" 0 "${t[@]}" --set loss.contrastive=0.05 &
  variant_job "$RUNS/m12_x_s0" 0 "${t[@]}" --set loss.contrastive=0 &
  wait
}

target_job() {  # rules M13-M16: M12's w recipe with the target image term (contrastive 0.05, λ_t 100); $1 run name,
  local run=$1 seed=$2 gain=$3 px=$4   # $2 seed, $3 gain, $4 λ_px, $5… more options
  shift 4
  variant_job "$RUNS/$run" "$seed" --set target_latents=toonface --set loss.target_form=w --set loss.target=100 \
    --set loss.contrastive=0.05 --set loss.target_pixels="$px" --set loss.target_gain="$gain" "$@"
}

round23() {  # the two runs of rule M13 at once (one thread each): gain 1.5 and 1.25
  export_v03
  target_job m13_y_s0 0 1.5 100 & target_job m13_z_s0 0 1.25 100 & wait
}

round24() {  # the two runs of rule M14 at once (one thread each): M13's z recipe with λ_px 300, and the outside term
  export_v03
  target_job m14_a_s0 0 1.25 300 & target_job m14_b_s0 0 1.25 300 --set region_masks=toonface --set loss.outside=100 &
  wait
}

round25() {  # the two runs of rule M15 at once (one thread each): M13's z recipe on seed 1, and at gain 1.4
  export_v03
  target_job m15_e_s1 1 1.25 100 & target_job m15_f_s0 0 1.4 100 & wait
}

round26() {  # the two runs of rule M16 at once (one thread each)
  export_v03
  target_job m16_g_s2 2 1.25 100 & target_job m16_h_s3 3 1.25 100 & wait
}

# rule M17's per-prompt gains (seeds.md; the rest keep loss.target_gain 1.25)
M17_GAINS="loss.target_gains={'smiling': 1.0, 'winking': 2.0, 'going grey': 1.0, 'tilting head to the left': 1.0, \
'tilting head to the right': 1.0}"

round27() {  # the two runs of rule M17 at once (one thread each): M13's z recipe with one gain per prompt
  export_v03
  target_job m17_i_s1 1 1.25 100 --set "$M17_GAINS" & target_job m17_j_s2 2 1.25 100 --set "$M17_GAINS" & wait
}

report2() {  # rule M2's (or, with $1 = m3, M3's) candidate on the 64 report faces
  local chosen tag=${1:-m2}
  chosen=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['chosen'] or '')" "$RUNS/selection_$tag.json")
  [ -n "$chosen" ] || { say "rule ${tag^^} chose no run: no report"; return; }
  evaluate_run "$RUNS/$chosen" "$RUNS/gen_v03/generator" report64 64 0
}

pilot3() {  # seeds.md, rule G3: the 16-key pilot (paraphrases, 400 steps; not a candidate) on gen_v3, faces 200-207
  local out="$RUNS/pilot3" run="$RUNS/pilot3/00000-toonface-motion"
  motion_run "$out" "$RUNS/gen_v3/generator" 400 0
  [ -d "$out/bundle" ] || faceanim toon build-bundle --generator "$RUNS/gen_v3/generator" \
    --motion "$run/motion_model" --evaluator src/faceanim/bundles/toonface/evaluator -o "$out/bundle"
  local prompts=()
  for k in ${KEYS//,/ }; do prompts+=(-p "$k"); done
  [ -s "$out/eval8/results.json" ] || faceanim evaluate -b "$out/bundle" --methods ours --faces 8 --seed 200 \
    --frames 16 "${prompts[@]}" --real 64 --grid-faces 4 --grid-format png -o "$out/eval8" > "$out/eval8.log" 2>&1
  say "pilot evaluated: $out/eval8"
}

for phase in $phases; do
  case $phase in
    generator) generator ;;
    rule-g) rule_g ;;
    generator2 | generator3) round_n "${phase: -1}" ;;
    rule-g2 | rule-g3) rule_gn "${phase: -1}" ;;
    seeds) for s in $SEEDS; do seed_run "$s"; done ;;
    select) for s in $SEEDS; do select_seed "$s"; done ;;
    pilot3) pilot3 ;;
    round12 | round13 | round14 | round15 | round16 | round17 | round18 | round19 | round20 | round21 | round22 | round23 | round24 | round25 | round26 | round27) "$phase" ;;
    rule-m[2-9] | rule-m1[0-7] | rule-m1[12]d) python experiments/toonface/v1/rules.py "motion${phase#rule-m}" "$RUNS" | tee "$RUNS/selection_m${phase#rule-m}.md" ;;
    report[2-9] | report1[0-7]) report2 "m${phase#report}" ;;
    ship[2-9] | ship1[0-7]) python experiments/toonface/v1/rules.py "ship${phase#ship}" "$RUNS" | tee "$RUNS/ship_m${phase#ship}.md" ;;
    rule-m) python experiments/toonface/v1/rules.py motion "$RUNS" | tee "$RUNS/selection.md" ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
say "done: $phases"
