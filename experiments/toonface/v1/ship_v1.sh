#!/usr/bin/env bash
# ToonFace v1 (issue 19): assemble the bundle of rule M2's candidate with its kept keys (RUNS/ship_TAG.json), calibrate
# its far-prompt note, and draw the panel and the README GIF. Run only when `rules.py ship2` said it ships.
#
#   RUNS=runs/toon19 bash experiments/toonface/v1/ship_v1.sh            # from the repository root
#
# Writes RUNS/v1_bundle (then copied over src/faceanim/bundles/toonface by hand, after the panel is read by eye),
# experiments/toonface/v1/prompt_scope_v1/ (phrase files, calibration.json), docs/images/ (panel, GIF).
set -euo pipefail
RUNS=${RUNS:-runs/toon19}
TAG=${TAG:-m3}                          # which rule's ship file: ship_m2.json or ship_m3.json
export OMP_NUM_THREADS=${THREADS:-2}
read -r run keys < <(python -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['run'], ','.join(d['kept']))" \
  "$RUNS/ship_$TAG.json")
scope=experiments/toonface/v1/prompt_scope_v1
mkdir -p "$scope"
python experiments/toonface/v1/prompt_scope/make_phrases.py "$scope" "$keys"
faceanim toon build-bundle --generator "$RUNS/gen_v03/generator" --motion "$RUNS/$run/00000-toonface-motion/motion_model" \
  --evaluator src/faceanim/bundles/toonface/evaluator --supported-prompts "$scope/supported_prompts.txt" \
  --model-card src/faceanim/bundles/toonface/MODEL_CARD.md -o "$RUNS/v1_bundle" --force | tee "$scope/build_bundle.json"
faceanim bundle calibrate-prompts "$RUNS/v1_bundle" -P "$scope/heldout_paraphrases.txt" -P "$scope/train_paraphrases.txt" \
  -N "$scope/unrelated.txt" -N "$scope/unsupported_motions.txt" -o "$scope/calibration.json" --write \
  | tee "$scope/calibration.log"
prompts=()
while IFS= read -r p; do prompts+=(-p "$p"); done < "$scope/supported_prompts.txt"
faceanim toon motion-grid -b "$RUNS/v1_bundle" "${prompts[@]}" --faces 8 --seed 0 \
  -o docs/images/toon_faces_prompts.png --video docs/images/toon_faces_prompts.mp4
