#!/usr/bin/env bash
# CLIP fine-tune on the generator's drawings → motion model → bundle → evaluation.
# Usage (from the repository root, in the project's virtualenv): chain.sh GEN_DIR TAG [RUNS_DIR]
# (As run in session 4, with options in today's names; the evaluator then lived in work/toonface/evaluator/evaluator.)
set -euo pipefail
G=$1; T=$2; R=${3:-runs}/$T
mkdir -p $R
echo "== $(date) clip"
faceanim toon train-clip --out $R/clip --steps 400 --lr 1e-4 --seed 6 --short-captions 0.5 --blur 0.2 \
  --init-from src/faceanim/bundles/toonface/motion/clip --generator $G --generator-mix 0.4 --generator-pool 3000 > $R/clip.log 2>&1
faceanim toon eval-clip $R/clip/clip --generator $G > $R/eval_clip.json 2>$R/eval_clip.err
echo "== $(date) motion"
FACEANIM_NO_PROGRESS=1 faceanim toon train-motion --generator $G --clip $R/clip/clip --out $R/motion --steps 1000 \
  --prompt-keys smile,laugh,surprise,grey_hair,age,tilt_left,tilt_right \
  --set motion.mapper_input=offset --set loss.w_reg=10 --set loss.path_reg=30 \
  --set motion.inference_rates=matched --set grad_clip=5 > $R/motion.log 2>&1
M=$(ls -d $R/motion/*/ | tail -1)motion_model
echo "== $(date) bundle"
faceanim toon build-bundle --generator $G --motion $M --out $R/bundle --evaluator work/toonface/evaluator/evaluator > $R/bundle.json
echo "== $(date) evaluate"
faceanim evaluate --bundle $R/bundle --methods ours --prompts smile,laugh,surprise,grey_hair,age,tilt_left \
  --faces 8 --frames 16 --real 512 --grid-faces 4 --out $R/eval > $R/eval.log 2>&1
echo "== $(date) done"
