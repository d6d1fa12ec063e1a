"""Write the phrase files of the far-prompt calibration (see README.md):

    python make_phrases.py OUT_DIR [KEY,KEY,…]     # the bundle's supported prompt keys (default: v0.5's seven)

also writes OUT_DIR/supported_prompts.txt, the canonical phrase of each supported key (`toon build-bundle
--supported-prompts`)."""

import sys
from pathlib import Path

from faceanim.toon.captions import EXPRESSION_PROMPTS, VOCABULARY

V05_KEYS = ("smile", "laugh", "surprise", "grey_hair", "age", "tilt_left", "tilt_right")
SUPPORTED_KEYS = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else V05_KEYS
SUPPORTED = tuple(EXPRESSION_PROMPTS[k] for k in SUPPORTED_KEYS)
UNSUPPORTED_KEYS = tuple(k for k in EXPRESSION_PROMPTS if k not in SUPPORTED_KEYS)
UNRELATED = """riding a bicycle | eating a bowl of soup | the stock market | playing the violin | a red sports car |
raining in London | reading a newspaper | walking the dog | eating an apple | jumping on a trampoline |
swimming in the sea | dancing the tango | talking on the phone | wearing sunglasses | holding an umbrella |
running a marathon | cooking dinner | typing on a laptop | singing in the shower | waving hello |
drinking coffee | a mountain landscape | a sleeping cat | quantum physics | the number seven |
turning into a robot | growing a beard | wearing a hat | putting on glasses | becoming a zombie |
flying a kite | a spreadsheet of taxes | painting a fence | climbing a ladder | brushing teeth |
opening a door | a bowl of fruit | driving a truck | planting a tree | lifting weights |
with a blue scarf | with long earrings | with a tattoo | wearing a crown | eating spaghetti |
a thunderstorm | building a sandcastle | playing chess | an empty parking lot | sneezing loudly |
shaving | juggling three balls | knitting a sweater | a cup of tea | reading a map |
a sunset over the ocean | fixing a car engine | writing a letter | skiing down a slope | a loud trumpet"""


def phrases(keys, split):
    out = []
    for k in keys:
        p = VOCABULARY[k][split]
        out += list(p.adj) + list(p.pred) + [f"with {w}" for w in p.with_]
    return list(dict.fromkeys(out))


def main(out: Path) -> None:
    groups = {
        "heldout_paraphrases": phrases(SUPPORTED_KEYS, "heldout"),
        "train_paraphrases": [p for p in phrases(SUPPORTED_KEYS, "train") if p not in SUPPORTED],
        "unrelated": [p.strip() for p in UNRELATED.replace("\n", " ").split("|")],
        "unsupported_motions": phrases(UNSUPPORTED_KEYS, "train") + phrases(UNSUPPORTED_KEYS, "heldout"),
    }
    groups["supported_prompts"] = list(SUPPORTED)
    for name, items in groups.items():
        (out / f"{name}.txt").write_text("\n".join(items) + "\n")
        print(f"{name}: {len(items)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
