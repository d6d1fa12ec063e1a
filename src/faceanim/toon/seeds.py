"""The fixed seeds of ToonFace's held-out draws, in one place.

Training batches use the seeds ``seed · 1_000_003 + step`` (``toon.loop``); every held-out draw sits near
``EVAL_SEED``, far from those, and each use has its own offset so two evaluations never share faces.
"""

EVAL_SEED = 1_000_000_007

GENERATOR_EVAL = EVAL_SEED            # train-generator: the periodic held-out PSNR batch
W_AVG = EVAL_SEED + 1                 # the neutral identities whose mean W is the exported generator's w_avg
BUNDLE_CHECK = EVAL_SEED + 3          # build-bundle: the faces of the fp16-vs-fp32 check
GENERATOR_HELDOUT = EVAL_SEED + 7     # eval-generator: the PSNR draws
DRAWN_LEVELS = EVAL_SEED + 11         # eval-generator: the identities of the per-expression check
ZERO_SHOT = EVAL_SEED + 100           # zero-shot CLIP eval: + key index + ZERO_SHOT_SET_STRIDE · face set
ZERO_SHOT_SET_STRIDE = 7919
EVALUATOR_HELDOUT = EVAL_SEED + 300   # train-evaluator's held-out draws (its prompt keys use the seeds just above)
CLIP_GENERATOR_POOL = EVAL_SEED - 1   # train-clip: the generator faces drawn once (--generator-pool)
CLIP_GROUP_POOL = EVAL_SEED - 2       # train-clip: the generator's same-face groups drawn once
FACTOR_DIRECTIONS = EVAL_SEED - 3     # train-motion --freeze-factors: the faces of the mean W directions
