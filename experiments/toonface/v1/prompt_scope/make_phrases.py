"""Write the phrase files of the far-prompt calibration (see README.md): python make_phrases.py OUT_DIR"""

import sys
from pathlib import Path

from faceanim.toon.captions import VOCABULARY

SUPPORTED_KEYS = ("smile", "laugh", "surprise", "grey_hair", "age", "tilt_left", "tilt_right")
SUPPORTED = ("smiling", "laughing", "surprised", "going grey", "old", "tilting head to the left",
             "tilting head to the right")
UNSUPPORTED_KEYS = ("sad", "angry", "eyes_closed", "wink", "pout", "cry", "blush", "gaze_left", "gaze_right")
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
    for name, items in groups.items():
        (out / f"{name}.txt").write_text("\n".join(items) + "\n")
        print(f"{name}: {len(items)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
