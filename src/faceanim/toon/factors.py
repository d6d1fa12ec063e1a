"""The ToonFace factor space: every factor of a face, its range and its slot in the parameter vector.

A face is a float vector ``[P]`` (a batch is ``[B, P]``). Continuous factors take one slot each, in
``[0, 1]`` (``kind="unit"``, 0 = neutral/least) or ``[-1, 1]`` (``kind="signed"``, 0 = neutral);
categorical factors take a one-hot block (``kind="onehot"``) that the renderer reads *linearly*, so a
blend of two one-hots renders as a blend of the two styles and every slot is continuous.

Groups: ``identity`` (who the person is; fixed during an animation), ``expression`` (what language
animates: smile, wink, gaze, …) and ``attribute`` (the paper's Fig. 8 changes "beyond expression":
hair turning grey and ageing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch

Group = Literal["identity", "expression", "attribute"]
Kind = Literal["unit", "signed", "onehot"]


@dataclass(frozen=True)
class Factor:
    name: str                   # key used everywhere (captions, regressors, edits)
    group: Group                # identity | expression | attribute
    kind: Kind                  # unit [0,1] | signed [-1,1] | onehot block
    doc: str                    # what the factor does to the picture
    choices: tuple[str, ...] = ()  # category names of a one-hot factor

    @property
    def dim(self) -> int:
        return len(self.choices) if self.kind == "onehot" else 1

    @property
    def low(self) -> float:
        return -1.0 if self.kind == "signed" else 0.0


HAIR_STYLES: tuple[str, ...] = ("bald", "short", "long", "bun", "bangs", "curly")

FACTORS: tuple[Factor, ...] = (
    # --- identity ------------------------------------------------------------------------------
    Factor("face_width", "identity", "unit", "narrow (0) to broad (1) head"),
    Factor("face_length", "identity", "unit", "short (0) to long (1) head"),
    Factor("jaw", "identity", "unit", "round, wide jaw (0) to narrow, pointed chin (1)"),
    Factor("skin_tone", "identity", "unit", "pale (0) to deep brown (1) skin, along a fixed palette"),
    Factor("hair_style", "identity", "onehot", "hair cut", HAIR_STYLES),
    Factor("hair_hue", "identity", "unit", "hair hue on the colour circle (periodic)"),
    Factor("hair_lightness", "identity", "unit", "hair lightness: black (0) to very light (1)"),
    Factor("hair_saturation", "identity", "unit", "hair saturation: grey (0) to vivid (1)"),
    Factor("eye_color", "identity", "unit", "iris colour along brown, hazel, green, blue, grey"),
    Factor("eye_size", "identity", "unit", "small (0) to large (1) eyes"),
    Factor("brow_thickness", "identity", "unit", "thin (0) to bushy (1) eyebrows"),
    Factor("nose_size", "identity", "unit", "small (0) to large (1) nose"),
    Factor("nose_shape", "identity", "unit", "round button (0) to long, narrow (1) nose"),
    Factor("mouth_width", "identity", "unit", "narrow (0) to wide (1) mouth"),
    Factor("ear_size", "identity", "unit", "small (0) to large (1) ears"),
    Factor("glasses", "identity", "unit", "no glasses (0) to glasses (1); sampled as 0 or 1"),
    Factor("glasses_shape", "identity", "unit", "round thin frames (0) to square thick frames (1)"),
    Factor("lashes", "identity", "unit", "eyelashes and tinted lips (1, read as female) or none (0)"),
    Factor("freckles", "identity", "unit", "no (0) to many (1) freckles on the cheeks"),
    Factor("shirt_hue", "identity", "unit", "shirt hue (periodic)"),
    Factor("bg_hue", "identity", "unit", "background hue (periodic)"),
    Factor("bg_lightness", "identity", "unit", "background lightness, darker (0) to lighter (1)"),
    # --- expression (0 = neutral) ------------------------------------------------------------
    Factor("smile", "expression", "unit", "mouth corners up, cheeks raise the eyes a little"),
    Factor("laugh", "expression", "unit", "wide open D-shaped mouth with teeth and tongue, ^^ eyes"),
    Factor("sad", "expression", "unit", "mouth corners down, inner brow ends raised, drooping lids"),
    Factor("angry", "expression", "unit", "brows down and in (V), lowered inner lids, tight frown"),
    Factor("surprise", "expression", "unit", "brows high, wide eyes with small pupils, round open mouth"),
    Factor("eyes_closed", "expression", "unit", "both eyelids close (to a sleeping arc)"),
    Factor("wink", "expression", "unit", "the eye on the image's right closes (to a happy arc)"),
    Factor("pout", "expression", "unit", "narrow, puckered, protruding tinted lips"),
    Factor("cry", "expression", "unit", "tears run down both cheeks, sad brows and mouth, lids half shut"),
    Factor("blush", "expression", "unit", "pink cheeks with blush strokes"),
    Factor("gaze", "expression", "signed", "pupils to the image's left (-1) or right (+1)"),
    Factor("tilt", "expression", "signed", "head rolls so its top goes to the image's left (-1) or right (+1)"),
    # --- attributes beyond expression (paper Fig. 8) -------------------------------------------
    Factor("grey_hair", "attribute", "unit", "hair and brows turn silver-grey/white (continuous)"),
    Factor("age", "attribute", "unit", "ageing: wrinkles, eye bags, greying hair, sagging jaw and mouth"),
)

FACTOR_BY_NAME: Mapping[str, Factor] = {f.name: f for f in FACTORS}


def _layout() -> tuple[dict[str, slice], int]:
    slices: dict[str, slice] = {}
    i = 0
    for f in FACTORS:
        slices[f.name] = slice(i, i + f.dim)
        i += f.dim
    return slices, i


SLICES, PARAM_DIM = _layout()
"""``SLICES[name]`` is the factor's slice of the vector; ``PARAM_DIM`` (P) is the vector length."""


def _indices(group: Group) -> list[int]:
    return [i for f in FACTORS if f.group == group for i in range(SLICES[f.name].start, SLICES[f.name].stop)]


IDENTITY: list[int] = _indices("identity")
EXPRESSION: list[int] = _indices("expression")
ATTRIBUTE: list[int] = _indices("attribute")
EXPRESSION_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS if f.group == "expression")
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS if f.group == "attribute")

# Natural and cartoon hair colours that identity sampling draws from, as (hue, lightness, saturation).
HAIR_PALETTE: dict[str, tuple[float, float, float]] = {
    "black": (0.07, 0.10, 0.20),
    "dark brown": (0.06, 0.22, 0.45),
    "brown": (0.07, 0.36, 0.50),
    "auburn": (0.02, 0.33, 0.62),
    "red": (0.03, 0.48, 0.78),
    "blonde": (0.12, 0.68, 0.72),
    "blue": (0.60, 0.50, 0.65),
    "pink": (0.93, 0.72, 0.65),
    "green": (0.38, 0.42, 0.50),
    "purple": (0.77, 0.45, 0.50),
}
_HAIR_WEIGHTS = (0.15, 0.17, 0.17, 0.08, 0.09, 0.14, 0.05, 0.05, 0.04, 0.06)
_STYLE_WEIGHTS = (0.08, 0.26, 0.26, 0.13, 0.15, 0.12)


def _uniform(g: torch.Generator, n: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _choice(g: torch.Generator, n: int, weights: tuple[float, ...]) -> torch.Tensor:
    return torch.multinomial(torch.tensor(weights), n, replacement=True, generator=g)


@dataclass
class ToonParams:
    """A batch of ToonFace parameter vectors.

    ``vector`` is ``[B, P]`` float32 (``P = PARAM_DIM``); index it by factor name with ``params["smile"]``
    (``[B]``, or ``[B, K]`` for a one-hot factor).
    """

    vector: torch.Tensor

    def __post_init__(self) -> None:
        v = torch.as_tensor(self.vector, dtype=torch.float32)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[1] != PARAM_DIM:
            raise ValueError(f"ToonParams expects a [B, {PARAM_DIM}] vector, got {tuple(v.shape)}")
        self.vector = v

    def __len__(self) -> int:
        return self.vector.shape[0]

    def __getitem__(self, name: str) -> torch.Tensor:
        v = self.vector[:, SLICES[name]]
        return v if FACTOR_BY_NAME[name].kind == "onehot" else v[:, 0]

    @classmethod
    def from_vector(cls, vector: torch.Tensor) -> "ToonParams":
        """Wrap a ``[B, P]`` (or ``[P]``) vector."""
        return cls(vector)

    def to_vector(self) -> torch.Tensor:
        """The ``[B, P]`` float32 vector (a copy)."""
        return self.vector.clone()

    def replace(self, **values: float | torch.Tensor | str) -> "ToonParams":
        """A copy with factors set, e.g. ``replace(smile=1.0, hair_style="bun")``.

        Scalars broadcast over the batch; tensors are ``[B]`` (or ``[B, K]`` one-hot); a one-hot factor
        also accepts a category name.
        """
        v = self.vector.clone()
        for name, value in values.items():
            f = FACTOR_BY_NAME[name]
            if f.kind == "onehot":
                if isinstance(value, str):
                    value = torch.nn.functional.one_hot(torch.tensor(f.choices.index(value)), f.dim).float()
                v[:, SLICES[name]] = torch.as_tensor(value, dtype=torch.float32)
            else:
                v[:, SLICES[name].start] = torch.as_tensor(value, dtype=torch.float32)
        return ToonParams(v)

    def neutral(self) -> "ToonParams":
        """The same identities with every expression and attribute at 0."""
        v = self.vector.clone()
        v[:, EXPRESSION + ATTRIBUTE] = 0.0
        return ToonParams(v)

    def clamped(self) -> "ToonParams":
        """Every slot clipped to its factor's range."""
        v = self.vector.clone()
        for f in FACTORS:
            v[:, SLICES[f.name]] = v[:, SLICES[f.name]].clamp(f.low, 1.0)
        return ToonParams(v)

    def hair_style_names(self) -> list[str]:
        """The dominant hair style of each face."""
        return [HAIR_STYLES[i] for i in self["hair_style"].argmax(dim=1).tolist()]

    @classmethod
    def sample(
        cls,
        n: int,
        rng: torch.Generator | None = None,
        seed: int | None = None,
        expressions: bool = False,
        attributes: bool = False,
    ) -> "ToonParams":
        """Draw ``n`` random identities (deterministic for a given ``seed`` / ``rng`` state).

        Expressions and attributes are neutral (0) unless ``expressions``/``attributes`` is set; then
        each face gets 0–2 random expressions at intensities in [0.3, 1] (and sometimes gaze/tilt),
        or, for attributes, grey hair and age with probability 0.2 each.
        """
        g = rng if rng is not None else torch.Generator().manual_seed(0 if seed is None else seed)
        v = torch.zeros(n, PARAM_DIM)

        def put(name: str, value: torch.Tensor) -> None:
            v[:, SLICES[name].start] = value

        for name in ("face_width", "face_length", "jaw", "skin_tone", "eye_color", "eye_size",
                     "brow_thickness", "nose_size", "nose_shape", "mouth_width", "ear_size",
                     "glasses_shape", "shirt_hue", "bg_hue"):
            put(name, _uniform(g, n))
        put("bg_lightness", _uniform(g, n, 0.2, 1.0))
        style = _choice(g, n, _STYLE_WEIGHTS)
        v[:, SLICES["hair_style"]] = torch.nn.functional.one_hot(style, len(HAIR_STYLES)).float()
        hsl = torch.tensor(list(HAIR_PALETTE.values()))[_choice(g, n, _HAIR_WEIGHTS)]
        jitter = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([0.03, 0.08, 0.15])
        hsl = hsl + jitter
        put("hair_hue", hsl[:, 0] % 1.0)
        put("hair_lightness", hsl[:, 1].clamp(0, 1))
        put("hair_saturation", hsl[:, 2].clamp(0, 1))
        put("glasses", (torch.rand(n, generator=g) < 0.3).float())
        put("lashes", (torch.rand(n, generator=g) < 0.5).float())
        put("freckles", (torch.rand(n, generator=g) < 0.25).float() * _uniform(g, n, 0.5, 1.0))
        if expressions:
            _sample_expressions(g, v)
        if attributes:
            for name in ATTRIBUTE_NAMES:
                put(name, (torch.rand(n, generator=g) < 0.2).float() * _uniform(g, n, 0.3, 1.0))
        return cls(v)


def _sample_expressions(g: torch.Generator, v: torch.Tensor) -> None:
    """Give each row 0–2 unit expressions at intensity U(0.3, 1), and gaze/tilt with prob. 0.25 each."""
    n = v.shape[0]
    units = [f.name for f in FACTORS if f.group == "expression" and f.kind == "unit"]
    count = _choice(g, n, (0.2, 0.5, 0.3))
    starts = torch.tensor([SLICES[u].start for u in units])
    rows = torch.arange(n)
    for _ in range(2):
        pick = starts[torch.randint(len(units), (n,), generator=g)]
        level = _uniform(g, n, 0.3, 1.0)
        on = count > 0
        v[rows[on], pick[on]] = level[on]
        count = count - 1
    for name in ("gaze", "tilt"):
        on = (torch.rand(n, generator=g) < 0.25).float()
        v[:, SLICES[name].start] = on * _uniform(g, n, -1.0, 1.0)
