#!/usr/bin/env bash
# IV-D ablations on the shipped ToonFace recipe: train → bundle → evaluate (ours only, evaluator ground truth).
# Kept as it ran on the build machine (session 2): /work/runs/generator/generator is the exported final generator
# (re-export: faceanim toon train-generator --out work/toonface/generator --steps 8400 --resume --beta1 0.9
# --mapping-lr-multiplier 1.0), /work/runs/clip6/clip the final CLIP (also in the bundle, motion/clip/, as fp16).
set -uo pipefail
source /work/venv/bin/activate
cd /work/main
mkdir -p /work/runs/abl_bundles /work/runs/abl_eval
export OMP_NUM_THREADS=1
G=/work/runs/generator/generator
CLIP=/work/runs/clip6/clip
KEYS=smile,laugh,surprise,grey_hair,age,tilt_left,tilt_right
BASE="--set motion.mapper_input=offset --set loss.w_reg=10 --set loss.path_reg=30 --set motion.inference_rates=matched --set grad_clip=5"
run() {  # name, extra args...
  name=$1; shift
  echo "== $(date) $name"
  faceanim toon train-motion --generator $G --clip $CLIP --out-dir /work/runs/abl/$name --steps 1000 $BASE "$@" > /work/runs/abl_$name.log 2>&1 || { echo "train failed"; return; }
  run_dir=$(ls -d /work/runs/abl/$name/*/ | tail -1)
  faceanim toon build-bundle --generator $G --motion ${run_dir}motion_model --out /work/runs/abl_bundles/$name > /dev/null
  faceanim evaluate --bundle /work/runs/abl_bundles/$name --methods ours --prompts smile,laugh,surprise,grey_hair,age,tilt_left \
    --faces 8 --frames 16 --evaluator work/toonface/evaluator/evaluator --real 512 --grid-faces 0 --out /work/runs/abl_eval/$name > /dev/null 2>&1
  echo "   done $name"
}
run no-contrast --prompt-keys $KEYS --set loss.contrastive=0
run batch2 --prompt-keys $KEYS --batch-size 2
run batch8 --prompt-keys $KEYS,cry --batch-size 8
run no-path-reg --prompt-keys $KEYS --set loss.path_reg=0
run path-first-order --prompt-keys $KEYS --set loss.path_order=1
run paper-weights --prompt-keys $KEYS --set motion.mapper_input=offset --set loss.w_reg=1 --set loss.path_reg=1
echo "== $(date) all done"
