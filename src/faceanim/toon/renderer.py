"""ToonFace renderer: parameter vectors ``[B, P]`` → anti-aliased cartoon faces ``[B, 3, S, S]``.

Every part is a signed-distance field (SDF) evaluated with batched torch ops and painted with a
one-pixel linear coverage ramp, which anti-aliases edges and makes each pixel a continuous function
of every continuous factor (so intermediate expression intensities give intermediate frames).

Speed comes from three things, none of which changes a single output value:
- each part is evaluated only inside a fixed window that bounds it for all parameters and tilts
  (windows depend only on the image size, so a face renders the same alone or in any batch);
- optional parts (tears, glasses, bun, …) are evaluated only for the rows that show them;
- large smooth shapes (head, hair, body) evaluate their SDF at half resolution on an even-aligned
  grid and upsample the *distance* bilinearly before computing coverage (SDFs are smooth, so the
  edge stays one pixel sharp).

Coordinates: world units, x right and y down; the image shows the square ``VIEW``. Head parts are
drawn in *head space*, which rolls about ``PIVOT`` (the top of the neck) by ``tilt * MAX_TILT``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from faceanim.toon.factors import HAIR_STYLES, ToonParams
from faceanim.utils.perf import torch_threads

MAX_TILT = math.radians(14.0)       # head roll at tilt = ±1
PIVOT = (0.0, 0.50)                 # head rolls about this world point (top of the neck)
VIEW = (-0.82, 0.82, -0.90, 0.74)   # x0, x1, y0, y1 of the world shown by the (square) image
HEAD_CY = -0.08                     # head centre y
EYE_DY = 0.07                       # eye line below the head centre
LINE = 0.014                        # outline width of head, hair and ears (world units)

# ----------------------------------------------------------------------------------------------
# colours

SKIN_PALETTE = torch.tensor([
    [1.00, 0.90, 0.82], [0.98, 0.82, 0.70], [0.93, 0.72, 0.56],
    [0.80, 0.58, 0.40], [0.60, 0.40, 0.26], [0.40, 0.26, 0.17],
])
IRIS_PALETTE = torch.tensor([          # brown, hazel, green, blue, grey
    [0.40, 0.22, 0.10], [0.55, 0.42, 0.15], [0.22, 0.55, 0.28],
    [0.20, 0.48, 0.88], [0.50, 0.56, 0.62],
])
GREY_HAIR = torch.tensor([0.86, 0.86, 0.88])
INK = torch.tensor([0.13, 0.08, 0.08])
WHITE = torch.tensor([1.0, 1.0, 1.0])
MOUTH_INSIDE = torch.tensor([0.36, 0.06, 0.10])
TONGUE = torch.tensor([0.93, 0.42, 0.48])
TEAR = torch.tensor([0.45, 0.75, 1.0])
BLUSH = torch.tensor([1.0, 0.35, 0.42])
BLUSH_LINES = torch.tensor([0.80, 0.15, 0.25])
ANGER = torch.tensor([0.85, 0.08, 0.12])
LENS = torch.tensor([0.85, 0.93, 1.0])
FRAME_ROUND = torch.tensor([0.20, 0.12, 0.08])
FRAME_SQUARE = torch.tensor([0.05, 0.05, 0.07])
LIP_TINT = torch.tensor([0.80, 0.22, 0.30])
LIP_LINE = torch.tensor([0.55, 0.12, 0.16])


def hsl_to_rgb(h: Tensor, s: Tensor, l: Tensor) -> Tensor:
    """HSL in [0, 1] (hue periodic), any matching shapes ``[...]`` → RGB ``[..., 3]`` in [0, 1]."""
    a = s * torch.minimum(l, 1 - l)
    out = []
    for n in (0.0, 8.0, 4.0):
        k = (n + h * 12.0) % 12.0
        out.append(l - a * torch.clamp(torch.minimum(k - 3, 9 - k), -1.0, 1.0))
    return torch.stack(out, dim=-1)


def palette_lerp(t: Tensor, palette: Tensor) -> Tensor:
    """Piecewise-linear colour ramp: ``t`` ``[B]`` in [0, 1], ``palette`` ``[K, 3]`` → ``[B, 3]``."""
    x = t.clamp(0, 1) * (palette.shape[0] - 1)
    i = x.floor().clamp(max=palette.shape[0] - 2).long()
    f = (x - i)[:, None]
    return palette[i] * (1 - f) + palette[i + 1] * f


# ----------------------------------------------------------------------------------------------
# SDF primitives: arguments broadcast; distances in world units, negative inside

Num = Tensor | float


def sd_circle(u: Tensor, v: Tensor, r: Num) -> Tensor:
    return torch.sqrt(u * u + v * v) - r


def sd_ellipse(u: Tensor, v: Tensor, rx: Num, ry: Num) -> Tensor:
    """First-order ellipse distance: exact on the boundary, good near it for moderate eccentricity."""
    a, b = u / rx, v / ry
    k0 = torch.sqrt(a * a + b * b)
    k1 = torch.sqrt((a / rx) ** 2 + (b / ry) ** 2).clamp_min_(1e-6)
    return k0 * (k0 - 1.0) / k1


def sd_round_box(u: Tensor, v: Tensor, hx: Num, hy: Num, r: Num) -> Tensor:
    qx = u.abs() - hx + r
    qy = v.abs() - hy + r
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.maximum(qx, qy).clamp_max_(0) - r


def sd_segment(u: Tensor, v: Tensor, a: tuple[Num, Num], b: tuple[Num, Num]) -> Tensor:
    """Distance to the segment a→b (points are (x, y) pairs of tensors or floats)."""
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    pu, pv = u - ax, v - ay
    h = ((pu * dx + pv * dy) / (dx * dx + dy * dy + 1e-9)).clamp_(0, 1)
    return torch.sqrt((pu - h * dx) ** 2 + (pv - h * dy) ** 2)


def round_profile(un: Tensor, eps: float = 0.15) -> Tensor:
    """≈ √(1 - un²) on ``|un| ≤ 1`` (1 at the centre, 0 at the ends) but with a finite end slope.

    Lids and lips follow this profile; the exact half-ellipse would make pixels near the corners
    change like √Δ for a small parameter change Δ, i.e. jump visibly for tiny steps.
    """
    r = torch.sqrt((1 - un * un).clamp_min(0) + eps * eps) - eps
    return r / (math.sqrt(1 + eps * eps) - eps)


def _clamp_sym(u: Tensor, half: Num) -> Tensor:
    if isinstance(half, Tensor):
        return torch.maximum(torch.minimum(u, half), -half)
    return u.clamp(-half, half)


def sd_curve(u: Tensor, v: Tensor, half_len: Num, f: Callable[[Tensor], Tensor]) -> Tensor:
    """Approximate distance to the graph ``v = f(u)``, ``|u| ≤ half_len``, with round ends (for flat-ish f)."""
    uc = _clamp_sym(u, half_len)
    return torch.sqrt((u - uc) ** 2 + (v - f(uc)) ** 2)


# ----------------------------------------------------------------------------------------------
# canvas and windows


@dataclass
class _Window:
    rgb: Tensor             # [B, 3, h, w] pixels being painted
    x: Tensor               # [B|1, 1, h|1, w] x coordinate (head space if the window is a head window)
    y: Tensor               # [B|1, 1, h, w|1] y coordinate
    xc: Tensor | None       # coarse (half-resolution) coordinates, or None if the size is odd
    yc: Tensor | None
    px: float               # pixel size in world units

    def coarse(self) -> tuple[Tensor, Tensor]:
        """Half-resolution coordinates (block centres) for evaluating smooth SDFs cheaply."""
        return (self.x, self.y) if self.xc is None else (self.xc, self.yc)

    def fine(self, d: Tensor) -> Tensor:
        """Upsample a distance evaluated on ``coarse()`` to the window: ``[B,1,h/2,w/2]`` → ``[B,1,h,w]``."""
        if self.xc is None:
            return d
        d = d.expand(self.rgb.shape[0], 1, *d.shape[2:])
        return F.interpolate(d, scale_factor=2.0, mode="bilinear", align_corners=False)

    def cov(self, d: Tensor) -> Tensor:
        """Anti-aliased coverage of ``d < 0`` (linear ramp one pixel wide)."""
        return d.mul(-1.0 / self.px).add_(0.5).clamp_(0.0, 1.0)

    def soft(self, d: Tensor, width: float) -> Tensor:
        """Coverage with a ramp ``width`` world units wide (blush)."""
        return d.mul(-1.0 / max(width, self.px)).add_(0.5).clamp_(0.0, 1.0)

    def paint(self, color: Tensor, alpha: Tensor) -> None:
        """Composite ``color`` (``[B, 3]``, or ``[3]`` for all rows) with ``alpha`` ``[B|1, 1, h, w]``."""
        if color.ndim == 1:
            color = color.expand(self.rgb.shape[0], 3)
        b, _, h, w = self.rgb.shape
        self.rgb.lerp_(color[:, :, None, None].expand(b, 3, h, w), alpha.expand(b, 1, h, w))


def _grid(n: int, step: float, origin: float) -> Tensor:
    return (torch.arange(n, dtype=torch.float32) + 0.5) * step + origin


class _Canvas:
    """The image being painted, its head-space coordinates, and (for a row subset) write-back."""

    def __init__(self, rgb: Tensor, tilt: Tensor) -> None:
        """``rgb`` ``[B, 3, S, S]`` background; ``tilt`` ``[B]`` in [-1, 1]."""
        self.rgb = rgb
        b, _, s, _ = rgb.shape
        self.size = s
        self.px = (VIEW[1] - VIEW[0]) / s
        ang = tilt.clamp(-1, 1) * MAX_TILT
        c, sn = torch.cos(ang).view(b, 1, 1, 1), torch.sin(ang).view(b, 1, 1, 1)

        def rotate(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            dx, dy = x - PIVOT[0], y - PIVOT[1]
            return c * dx + sn * dy + PIVOT[0], c * dy - sn * dx + PIVOT[1]

        self.xi, self.yi = _grid(s, self.px, VIEW[0]).view(1, 1, 1, s), _grid(s, self.px, VIEW[2]).view(1, 1, s, 1)
        self.xh, self.yh = rotate(self.xi, self.yi)
        self.even = s % 2 == 0
        if self.even:
            h = s // 2
            self.xi2 = _grid(h, 2 * self.px, VIEW[0]).view(1, 1, 1, h)
            self.yi2 = _grid(h, 2 * self.px, VIEW[2]).view(1, 1, h, 1)
            self.xh2, self.yh2 = rotate(self.xi2, self.yi2)
        self.idx: Tensor | None = None
        self._open: tuple[slice, slice, Tensor] | None = None

    def subset(self, idx: Tensor) -> "_Canvas":
        """A canvas that paints only rows ``idx``; call ``flush()`` when done."""
        sub = copy.copy(self)
        sub.idx, sub._open = idx, None
        return sub

    def flush(self) -> None:
        if self._open is not None:
            rows, cols, rgb = self._open
            self.rgb[:, :, rows, cols].index_copy_(0, self.idx, rgb)
            self._open = None

    def _pixels(self, box: Sequence[float]) -> tuple[int, int, int, int]:
        """Even-aligned pixel bounds (r0, r1, c0, c1) of a world box, one pixel of margin."""
        x0, x1, y0, y1 = box

        def lo(t: float, origin: float) -> int:
            return max(0, min(self.size, (math.floor((t - origin) / self.px) - 1) // 2 * 2))

        def hi(t: float, origin: float) -> int:
            return max(0, min(self.size, -(-(math.ceil((t - origin) / self.px) + 1) // 2) * 2))

        return lo(y0, VIEW[2]), hi(y1, VIEW[2]), lo(x0, VIEW[0]), hi(x1, VIEW[0])

    def window(self, box: Sequence[float], head: bool = True) -> _Window:
        """Window over a head-space box ``(x0, x1, y0, y1)``, bounding it at every tilt (or an image box).

        On a row subset, opening a window writes the previous one back: use windows one at a time.
        """
        self.flush()
        if head:
            xs, ys = [], []
            for k in range(-4, 5):
                a = MAX_TILT * k / 4
                c, s = math.cos(a), math.sin(a)
                for bx, by in ((box[0], box[2]), (box[0], box[3]), (box[1], box[2]), (box[1], box[3])):
                    dx, dy = bx - PIVOT[0], by - PIVOT[1]
                    xs.append(c * dx - s * dy + PIVOT[0])
                    ys.append(s * dx + c * dy + PIVOT[1])
            m = 0.02   # the arc between sampled angles bulges by < m
            box = (min(xs) - m, max(xs) + m, min(ys) - m, max(ys) + m)
        r0, r1, c0, c1 = self._pixels(box)
        rows, cols = slice(r0, r1), slice(c0, c1)
        rows2, cols2 = slice(r0 // 2, r1 // 2), slice(c0 // 2, c1 // 2)
        rgb = self.rgb[:, :, rows, cols]
        if self.idx is not None:
            rgb = rgb.index_select(0, self.idx)
            self._open = (rows, cols, rgb)

        def pick(t: Tensor) -> Tensor:
            return t if self.idx is None or t.shape[0] == 1 else t.index_select(0, self.idx)

        xc = yc = None
        if head:
            x, y = pick(self.xh[:, :, rows, cols]), pick(self.yh[:, :, rows, cols])
            if self.even:
                xc, yc = pick(self.xh2[:, :, rows2, cols2]), pick(self.yh2[:, :, rows2, cols2])
        else:
            x, y = self.xi[:, :, :, cols], self.yi[:, :, rows, :]
            if self.even:
                xc, yc = self.xi2[:, :, :, cols2], self.yi2[:, :, rows2, :]
        return _Window(rgb, x, y, xc, yc, self.px)


# ----------------------------------------------------------------------------------------------
# geometry derived from the parameters

#                          bald   short  long   bun    bangs  curly
_CAP_EXTRA = torch.tensor([0.0, 0.045, 0.055, 0.030, 0.055, 0.13])    # hair volume beyond the skull
_LINE_TOP = torch.tensor([1.0, 0.62, 0.56, 0.72, 0.30, 0.56])         # forehead hairline, fraction of H above centre
_LINE_SIDE = torch.tensor([1.0, 0.08, -0.25, 0.20, 0.02, -0.05])      # temple hairline, fraction of H above centre
_SPIKES = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.045, 0.0])              # pointed fringe depth
_BUMPS = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.035])               # curly outline depth
_PART = torch.tensor([0.0, 0.0, 0.10, 0.0, 0.0, 0.0])                 # centre parting height
_LONG = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.30])                 # side curtains' length
_BUN = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])                   # bun size
assert len(HAIR_STYLES) == len(_CAP_EXTRA)

_UNIT_FACTORS = ("face_width", "face_length", "jaw", "eye_size", "brow_thickness", "nose_size", "nose_shape",
                 "mouth_width", "ear_size", "glasses", "glasses_shape", "lashes", "freckles",
                 "smile", "laugh", "sad", "angry", "surprise", "eyes_closed", "wink", "pout", "cry", "blush",
                 "grey_hair", "age")


class _Geo:
    """Per-face geometry and colours: scalars ``[B, 1, 1, 1]``, colours ``[B, 3]``."""

    def __init__(self, p: ToonParams) -> None:
        def b4(t: Tensor) -> Tensor:
            return t.reshape(-1, 1, 1, 1)

        self.v = {name: b4(p[name].clamp(0.0, 1.0)) for name in _UNIT_FACTORS}
        self.v["gaze"] = b4(p["gaze"].clamp(-1.0, 1.0))
        u = self.u
        self.W = 0.42 + 0.09 * u("face_width")
        self.H = 0.53 + 0.08 * u("face_length")
        self.cy = torch.full_like(self.W, HEAD_CY)
        self.jaw_k = 0.10 + 0.30 * u("jaw")
        self.ey = self.cy + EYE_DY
        self.ex = 0.155 + 0.07 * u("face_width")
        self.rx = 0.072 + 0.028 * u("eye_size")
        self.ry0 = self.rx * 1.22
        self.ry = self.ry0 * (1 + 0.22 * u("surprise"))
        self.my = self.ey + 0.29 + 0.03 * u("face_length")
        self.ny = self.ey + 0.165
        self.mw = 0.075 + 0.04 * u("mouth_width")
        lashes = p["lashes"].clamp(0, 1)[:, None]
        self.skin = palette_lerp(p["skin_tone"], SKIN_PALETTE)
        grey = 1 - (1 - p["grey_hair"].clamp(0, 1)) * (1 - 0.85 * p["age"].clamp(0, 1))
        hair = hsl_to_rgb(p["hair_hue"], p["hair_saturation"].clamp(0, 1), p["hair_lightness"].clamp(0, 1))
        self.hair = hair + (GREY_HAIR - hair) * grey[:, None]
        self.iris = palette_lerp(p["eye_color"], IRIS_PALETTE)
        self.lip = torch.lerp(self.skin * 0.75, LIP_TINT.expand_as(self.skin), 0.25 + 0.6 * lashes)
        self.mouth_ink = torch.lerp(INK.expand_as(self.skin), LIP_LINE.expand_as(self.skin), lashes)
        self.shirt = hsl_to_rgb(p["shirt_hue"], torch.full_like(p["shirt_hue"], 0.5), torch.full_like(p["shirt_hue"], 0.5))
        style = p["hair_style"].clamp(0, 1)
        self.hair_alpha = b4(1 - style[:, 0])
        self.cap_extra, self.line_top, self.line_side = b4(style @ _CAP_EXTRA), b4(style @ _LINE_TOP), b4(style @ _LINE_SIDE)
        self.spikes, self.bumps, self.part = b4(style @ _SPIKES), b4(style @ _BUMPS), b4(style @ _PART)
        self.long, self.bun = b4(style @ _LONG), b4(style @ _BUN)
        shape = p["glasses_shape"].clamp(0, 1)[:, None]
        self.frame = torch.lerp(FRAME_ROUND.expand_as(self.skin), FRAME_SQUARE.expand_as(self.skin), shape)
        self._pack()

    def _fields(self) -> list[tuple[str, Tensor]]:
        return [(k, t) for k, t in self.__dict__.items() if isinstance(t, Tensor) and k != "_packed"] + \
               [("v:" + k, t) for k, t in self.v.items()]

    def _pack(self) -> None:
        """Store every per-face value as a column block of one ``[B, K]`` matrix, so ``take`` is one gather."""
        fields = self._fields()
        self._packed = torch.cat([t.reshape(t.shape[0], -1) for _, t in fields], dim=1)
        self._layout = []
        start = 0
        for k, t in fields:
            width = t[0].numel()
            self._layout.append((k, start, width, tuple(t.shape[1:])))
            start += width
        self._unpack()

    def _unpack(self) -> None:
        n = self._packed.shape[0]
        for k, start, width, shape in self._layout:
            t = self._packed[:, start:start + width].view(n, *shape)
            if k.startswith("v:"):
                self.v[k[2:]] = t
            else:
                setattr(self, k, t)

    def u(self, name: str) -> Tensor:
        return self.v[name]

    def take(self, idx: Tensor) -> "_Geo":
        """The same geometry for rows ``idx`` only."""
        sub = copy.copy(self)
        sub.v = dict(self.v)
        sub._packed = self._packed.index_select(0, idx)
        sub._unpack()
        return sub

    def head_width_at(self, y: Tensor) -> Tensor:
        """Half-width multiplier of the face at height ``y`` (jaw taper, sagging jowls with age)."""
        t = ((y - self.cy) / self.H).clamp_(0.0, 1.0)
        return 1.0 - self.jaw_k * t * t + 0.10 * self.u("age") * t * (1 - t)

    def head_sdf(self, x: Tensor, y: Tensor, grow: Num = 0.0) -> Tensor:
        wf = self.head_width_at(y)
        h = torch.where(y > self.cy, self.H * (1 + 0.05 * self.u("age")), self.H)
        return sd_ellipse(x / wf, y - self.cy, self.W + grow, h + grow) * wf


# ----------------------------------------------------------------------------------------------
# layers, back to front. Each paints one part; `_LAYERS` pairs it with the rows that need it.


def _paint_outlined(w: _Window, d: Tensor, fill: Tensor, alpha: Tensor | float = 1.0, width: float = LINE) -> None:
    """Fill ``d < 0`` with ``fill`` and a darker outline ``width`` wide."""
    w.paint(fill * 0.6, w.cov(d - width) * alpha)
    w.paint(fill, w.cov(d) * alpha)


def _draw_background(p: ToonParams, size: int) -> Tensor:
    b = len(p)
    lightness = 0.42 + 0.45 * p["bg_lightness"].clamp(0, 1)
    base = hsl_to_rgb(p["bg_hue"], torch.full((b,), 0.45), lightness)
    shade = (1.06 - 0.12 * (torch.arange(size, dtype=torch.float32) + 0.5) / size).view(1, 1, size, 1)
    return (base[:, :, None, None] * shade).expand(b, 3, size, size).contiguous()


def _draw_body(cv: _Canvas, g: _Geo) -> None:
    w = cv.window((VIEW[0], VIEW[1], 0.55, VIEW[3]), head=False)
    x, y = w.coarse()
    _paint_outlined(w, w.fine(sd_ellipse(x, y - 1.12, 0.78, 0.50)), g.shirt, width=0.012)
    w = cv.window((-0.3, 0.3, 0.3, VIEW[3]), head=False)
    x, y = w.coarse()
    d = w.fine(sd_round_box(x, y - 0.52, 0.11 + 0.03 * g.u("face_width"), 0.16, 0.06))
    _paint_outlined(w, d, g.skin, width=0.012)
    w.paint(g.skin * 0.82, w.cov(torch.maximum(d, w.y - 0.58)))   # shadow under the chin


def _draw_curtain(cv: _Canvas, g: _Geo) -> None:
    """Long hair falling behind the head to the shoulders."""
    w = cv.window((-0.78, 0.78, -0.45, 0.74))
    x, y = w.coarse()
    top = g.cy - 0.32
    bottom = top + 0.04 + g.long * (0.80 - HEAD_CY)
    half_h = (bottom - top) / 2
    flare = 1 + 0.30 * ((y - top) / (bottom - top)).clamp_(0, 1) ** 2
    d = w.fine(sd_round_box(x / flare, y - (top + half_h), g.W + 0.035, half_h, 0.14) * flare)
    _paint_outlined(w, d, g.hair, g.hair_alpha * (g.long * 8).clamp(0, 1))   # fades in, never a speck


def _draw_bun(cv: _Canvas, g: _Geo) -> None:
    w = cv.window((-0.2, 0.2, VIEW[2], -0.55))
    x, y = w.coarse()
    d = w.fine(sd_circle(x, y - (g.cy - g.H - 0.06), 0.135 * g.bun))
    _paint_outlined(w, d, g.hair, g.hair_alpha * (g.bun * 8).clamp(0, 1))


def _draw_ears(cv: _Canvas, g: _Geo) -> None:
    ear = g.u("ear_size")
    rx, ry = 0.045 + 0.025 * ear, 0.075 + 0.035 * ear
    ey = g.ey + 0.05
    for sgn in (-1.0, 1.0):
        w = cv.window(sorted((sgn * 0.38, sgn * 0.66)) + [-0.16, 0.20])
        x, y = w.coarse()
        u, v = x - sgn * (g.W * g.head_width_at(ey) - 0.005), y - ey
        _paint_outlined(w, w.fine(sd_ellipse(u, v, rx, ry)), g.skin, width=0.013)
        w.paint(g.skin * 0.8, w.cov(w.fine(sd_ellipse(u - sgn * rx * 0.15, v, rx * 0.5, ry * 0.6))))


def _draw_head(cv: _Canvas, g: _Geo) -> None:
    w = cv.window((-0.58, 0.58, -0.72, 0.58))
    x, y = w.coarse()
    _paint_outlined(w, w.fine(g.head_sdf(x, y)), g.skin)


def _draw_forehead_lines(cv: _Canvas, g: _Geo) -> None:
    w = cv.window((-0.22, 0.22, -0.45, -0.15))
    for k, yy in enumerate((-0.44, -0.35)):
        hl = 0.14 - 0.03 * k
        d = sd_curve(w.x, w.y - (g.cy + yy * g.H), hl, lambda q: 0.03 * (q / 0.13) ** 2 - 0.008 * torch.sin(q * 40))
        w.paint(g.skin * 0.55, w.cov(d - 0.0065) * 0.85 * g.u("age"))


def _cheek_windows(cv: _Canvas, g: _Geo) -> Iterator[tuple[float, _Window, Tensor, Tensor]]:
    """Each cheek's window and cheek-centred coordinates; a generator, as windows must be used in turn."""
    for sgn in (-1.0, 1.0):
        w = cv.window(sorted((sgn * 0.06, sgn * 0.42)) + [HEAD_CY + EYE_DY + 0.06, HEAD_CY + EYE_DY + 0.42])
        yield sgn, w, w.x - sgn * (g.ex + 0.03), w.y - (g.ey + 0.165)


def _draw_freckles(cv: _Canvas, g: _Geo) -> None:
    dots = ((-0.05, 0.0), (-0.02, 0.03), (0.01, -0.01), (0.035, 0.025), (0.06, 0.0), (0.0, 0.055))
    for sgn, w, u, v in _cheek_windows(cv, g):
        d = torch.stack([sd_circle(u - sgn * ox, v - oy, 0.0085) for ox, oy in dots]).amin(0)
        w.paint(g.skin * 0.62, w.cov(d) * 0.8 * g.u("freckles"))


def _draw_blush(cv: _Canvas, g: _Geo) -> None:
    blush = g.u("blush")
    for sgn, w, u, v in _cheek_windows(cv, g):
        w.paint(BLUSH, w.soft(sd_ellipse(u, v, 0.085, 0.045), 0.035) * 0.65 * blush)
        d = torch.stack([sd_segment(u, v, (o - 0.018, 0.02), (o + 0.012, -0.02)) for o in (-0.04, 0.0, 0.04)]).amin(0)
        w.paint(BLUSH_LINES, w.cov(d - 0.006) * blush)


def _draw_folds(cv: _Canvas, g: _Geo) -> None:
    """Nasolabial folds of an ageing face: brackets from beside the nose to past the mouth corners."""
    xa, ya = 0.085, g.ny - 0.01
    xb, yb = g.mw + 0.045, g.my + 0.03
    for sgn, w, _, _ in _cheek_windows(cv, g):
        t = ((w.y - ya) / (yb - ya)).clamp(0, 1)
        yc = ya + t * (yb - ya)
        d = torch.sqrt((sgn * w.x - (xa + (xb - xa) * (2 * t - t * t))) ** 2 + (w.y - yc) ** 2)
        w.paint(g.skin * 0.55, w.cov(d - 0.0065) * 0.85 * g.u("age"))


def _draw_nose(cv: _Canvas, g: _Geo) -> None:
    w = cv.window((-0.1, 0.1, HEAD_CY + EYE_DY + 0.06, HEAD_CY + EYE_DY + 0.26))
    size, shape = g.u("nose_size"), g.u("nose_shape")
    rx = (0.026 + 0.02 * size) * (1 - 0.35 * shape)
    ry = (0.022 + 0.014 * size) * (1 + 1.0 * shape)
    u, v = w.x, w.y - (g.ny - ry * 0.4)
    w.paint(g.skin * 0.82, w.cov(sd_ellipse(u, v, rx, ry)))
    d_line = sd_curve(u, v - ry * 0.55, rx * 0.7, lambda q: -0.25 * q * q / (rx * 0.7))
    w.paint(g.skin * 0.5, w.cov(d_line - 0.006) * 0.8)
    w.paint(WHITE, w.cov(sd_circle(u + rx * 0.3, v + ry * 0.35, 0.3 * rx)) * 0.55)


def _mouth_window(cv: _Canvas) -> _Window:
    top = HEAD_CY + EYE_DY + 0.29
    return cv.window((-0.30, 0.30, top - 0.11, top + 0.25))


def _draw_pout(cv: _Canvas, g: _Geo) -> None:
    """Puckered, tinted lips, under the (narrowed) mouth line."""
    w = _mouth_window(cv)
    po = g.u("pout")
    u, v = w.x, w.y - g.my
    d = torch.minimum(sd_ellipse(u, v + 0.020, 0.068, 0.034), sd_ellipse(u, v - 0.022, 0.060, 0.037))
    _paint_outlined(w, d, g.lip, po, width=0.011)
    w.paint(WHITE, w.cov(sd_ellipse(u + 0.018, v - 0.036, 0.018, 0.009)) * 0.6 * po)


def _draw_mouth(cv: _Canvas, g: _Geo) -> None:
    w = _mouth_window(cv)
    sm, la, sa, an = g.u("smile"), g.u("laugh"), g.u("sad"), g.u("angry")
    su, po, cr = g.u("surprise"), g.u("pout"), g.u("cry")
    mw = (g.mw * (1 + 0.40 * sm + 0.45 * la - 0.55 * po - 0.40 * su + 0.10 * cr - 0.20 * an)).clamp_min(0.025)
    k = (0.06 * sm + 0.03 * la - 0.055 * sa - 0.045 * cr - 0.02 * an - 0.015 * g.u("age")).clamp(-0.07, 0.08)
    o_top = (0.012 * la + 0.055 * su + 0.012 * cr).clamp(1e-3, 0.06)
    o_bot = (0.125 * la + 0.065 * su + 0.030 * cr).clamp(1e-3, 0.14)
    u, v = w.x, w.y - g.my
    # opening between the lips: centre line v = k(1 - un²), lips at -o_top·s and +o_bot·s, s = √(1 - un²)
    uc = _clamp_sym(u, mw)
    un = uc / mw
    s = round_profile(un, 0.1)
    vb = v - k * (1 - un * un)
    d_line = -2 * k * un / mw
    d_s = -un / (mw * s.clamp_min(0.2))   # slope of s, for distance normalisation (capped)
    n_top = torch.sqrt(1 + (d_line - o_top * d_s) ** 2)
    n_bot = torch.sqrt(1 + (d_line + o_bot * d_s) ** 2)
    d = torch.maximum((-o_top * s - vb) / n_top, (vb - o_bot * s) / n_bot)
    beyond = (u.abs() - mw).clamp_min(0)
    d = torch.where(beyond > 0, torch.sqrt(beyond * beyond + d * d), d)
    # a round "O" is better served by the ellipse estimate (same zero set, so blending keeps the shape)
    roundness = ((torch.minimum(o_top, o_bot) / mw - 0.15) / 0.35).clamp(0, 1)
    if bool((roundness > 0).any()):
        d_round = sd_ellipse(u, vb, mw, torch.where(vb < 0, o_top, o_bot)) / torch.sqrt(1 + d_line * d_line)
        d = d + (d_round - d) * roundness
    w.paint(MOUTH_INSIDE, w.cov(d))
    if bool((la > 0).any()):
        w.paint(WHITE * 0.97, w.cov(torch.maximum(d, vb + o_top * s - 0.035 * la)) * la)
        d_tongue = torch.maximum(d, sd_ellipse(u, vb - o_bot * 0.85, mw * 0.55, o_bot * 0.45))
        w.paint(TONGUE, w.cov(d_tongue) * la)
    t = 0.0105 + 0.002 * (la + su + cr).clamp(0, 1)
    w.paint(g.mouth_ink, w.cov(d.abs() - t))


def _eyelids(g: _Geo, sgn: float) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Upper and lower lid curves ``v(u)`` of one eye, in eye-local coordinates."""
    wink = g.u("wink") if sgn > 0 else torch.zeros_like(g.W)
    closed, cry, age = g.u("eyes_closed"), g.u("cry"), g.u("age")
    happy = (0.30 * g.u("smile") + g.u("laugh")).clamp(0, 1)
    a = (1 - closed) * (1 - happy) * (1 - 0.45 * cry) * (1 - 0.15 * age) * (1 - wink)   # openness
    w_sleep = closed + 0.45 * cry + 0.15 * age + 1e-3
    w_happy = happy + wink
    bend = (0.35 * w_sleep - 0.55 * w_happy) / (w_sleep + w_happy)   # ∪ when sleeping, ∩ when happy
    rx, ry = g.rx, g.ry
    angry, sad = g.u("angry"), g.u("sad")

    def lids(uc: Tensor) -> tuple[Tensor, Tensor]:
        un = uc / rx
        s = round_profile(un)
        shut = bend * ry * s
        u_in = -sgn * un   # +1 at the inner corner
        droop = angry * ry * (0.30 + 0.30 * u_in) + sad * ry * (0.22 - 0.22 * u_in)
        lo = a * ry * s + (1 - a) * shut
        up = torch.minimum(a * (droop - ry) * s + (1 - a) * shut, lo)
        return up, lo

    return lids


def _eye_window(cv: _Canvas, sgn: float) -> _Window:
    return cv.window(sorted((sgn * 0.03, sgn * 0.40)) + [HEAD_CY + EYE_DY - 0.22, HEAD_CY + EYE_DY + 0.22])


def _draw_eyes(cv: _Canvas, g: _Geo) -> None:
    surprise, lashes = g.u("surprise"), g.u("lashes")
    rx, ry = g.rx, g.ry
    for sgn in (-1.0, 1.0):
        w = _eye_window(cv, sgn)
        u, v = w.x - sgn * g.ex, w.y - g.ey
        lids = _eyelids(g, sgn)
        uc = _clamp_sym(u, rx)
        up, lo = lids(uc)
        d_vis = torch.maximum(sd_ellipse(u, v, rx, ry), torch.maximum(up - v, v - lo))
        vis = w.cov(d_vis)
        w.paint(WHITE, vis)
        ri = 0.66 * rx
        iu, iv = u - g.u("gaze") * 0.45 * rx, v - 0.04 * ry
        d_iris = sd_circle(iu, iv, ri)
        w.paint(g.iris, vis * w.cov(d_iris))
        w.paint(g.iris * 0.55, vis * w.cov(d_iris.abs() - 0.006))
        w.paint(INK, vis * w.cov(sd_circle(iu, iv, ri * 0.52 * (1 - 0.45 * surprise))))
        w.paint(WHITE, vis * w.cov(sd_circle(iu - 0.3 * ri, iv + 0.3 * ri, 0.27 * ri)))
        # lid lines: thin around the visible eye, thick along the upper lid, lash flicks at the outer corner
        d = torch.minimum(d_vis.abs() - 0.005, torch.sqrt((u - uc) ** 2 + (v - up) ** 2) - 0.011 - 0.003 * lashes)
        w.paint(INK, w.cov(d))
        corner = sgn * rx * 0.92
        cu, _ = lids(corner * torch.ones_like(rx))
        d_lash = torch.minimum(sd_segment(u, v, (corner, cu), (corner + sgn * 0.04, cu - 0.035)),
                               sd_segment(u, v, (corner - sgn * 0.018, cu - 0.01), (corner + sgn * 0.012, cu - 0.048)))
        w.paint(INK, w.cov(d_lash - 0.0065) * lashes)


def _draw_eye_age(cv: _Canvas, g: _Geo) -> None:
    """Eye bags and crow's feet."""
    rx, ry = g.rx, g.ry
    for sgn in (-1.0, 1.0):
        w = _eye_window(cv, sgn)
        u, v = w.x - sgn * g.ex, w.y - g.ey
        d_bag = sd_curve(u, v - ry * 1.05 - 0.02, rx * 0.7, lambda q: -0.5 * q * q / rx)
        out = sgn * (rx + 0.025)
        d_feet = torch.minimum(sd_segment(u, v, (out, -0.005), (out + sgn * 0.045, -0.03)),
                               sd_segment(u, v, (out, 0.012), (out + sgn * 0.045, 0.035)))
        w.paint(g.skin * 0.55, w.cov(torch.minimum(d_bag, d_feet) - 0.006) * 0.85 * g.u("age"))


def _draw_tears(cv: _Canvas, g: _Geo) -> None:
    cry = g.u("cry")
    alpha = (cry * 2.5).clamp(0, 1) * 0.9
    for sgn in (-1.0, 1.0):
        w = cv.window(sorted((sgn * 0.06, sgn * 0.42)) + [HEAD_CY + EYE_DY - 0.02, HEAD_CY + EYE_DY + 0.5])
        x0, y0 = sgn * (g.ex + 0.35 * g.rx), g.ey + 0.55 * g.ry
        y1 = y0 + 0.30 * cry
        d = torch.minimum(sd_segment(w.x, w.y, (x0, y0), (x0 + sgn * 0.01, y1)) - 0.018,
                          sd_circle(w.x - x0 - sgn * 0.01, w.y - y1, 0.03 * cry.sqrt()))
        _paint_outlined(w, d, TEAR.expand_as(g.skin), alpha, width=0.008)
        d_glint = sd_segment(w.x, w.y, (x0 - sgn * 0.006, y0 + 0.02), (x0 - sgn * 0.004, (y0 + y1) / 2))
        w.paint(WHITE, w.cov(d_glint - 0.004) * alpha)


def _cap_sdf(g: _Geo, x: Tensor, y: Tensor) -> Tensor:
    """The hair volume over the skull, thinning towards the temples (curly hair gets a bumpy outline)."""
    side = g.cy - g.line_side * g.H
    d = g.head_sdf(x, y, grow=g.cap_extra * ((side - y) / 0.25 + 0.1).clamp(0, 1))
    if bool((g.bumps > 0).any()):
        d = d - g.bumps * 0.6 * (1 + torch.cos(torch.atan2(y - g.cy, x) * 16))
    return d


def _hairline(g: _Geo, x: Tensor) -> tuple[Tensor, Tensor]:
    """Fringe edge ``y(x)`` (hair is above it) and its slope ``dy/dx``."""
    s = (x / g.W).clamp(-1, 1)
    a = s.abs()
    top = g.cy - g.line_top * g.H
    side = g.cy - g.line_side * g.H
    y = top + (side - top) * a ** 4 * (5 - 4 * a)          # flat forehead, temples reached with zero slope
    dy = (side - top) * 20 * s ** 3 * (1 - a) / g.W
    period = 0.085
    ph = math.pi * x / period
    sn, cs = torch.sin(ph), torch.cos(ph)
    y = y + g.spikes * (1 - sn.abs()) + g.bumps * sn.abs()
    dy = dy + (g.bumps - g.spikes) * torch.sign(sn) * cs * (math.pi / period)
    e = torch.exp(-(x / 0.07) ** 2)
    return y - g.part * e, dy + g.part * e * 2 * x / 0.07 ** 2


def _draw_front_hair(cv: _Canvas, g: _Geo) -> None:
    w = cv.window((-0.70, 0.70, VIEW[2], 0.14))
    x, y = w.coarse()
    yl, dy = _hairline(g, x)
    d = w.fine(torch.maximum(_cap_sdf(g, x, y), (y - yl) / torch.sqrt(1 + dy * dy)))
    _paint_outlined(w, d, g.hair, g.hair_alpha)


def _draw_shine(cv: _Canvas, g: _Geo) -> None:
    """A light arc on the crown."""
    w = cv.window((-0.26, 0.02, -0.80, -0.52))
    x, y = w.coarse()
    d = torch.maximum(sd_curve(x + 0.12, y - (g.cy - g.H * 0.82), 0.09, lambda q: 0.9 * q * q) - 0.012,
                      _cap_sdf(g, x, y) + 0.03)
    w.paint(WHITE, w.cov(w.fine(d)) * 0.35 * g.hair_alpha)


def _draw_brows(cv: _Canvas, g: _Geo) -> None:
    color = g.hair * 0.75
    t = 0.009 + 0.016 * g.u("brow_thickness")
    surprise, angry, sad = g.u("surprise"), g.u("angry"), g.u("sad")
    by = g.ey - g.ry0 - 0.06 - 0.075 * surprise + 0.03 * angry - 0.01 * sad
    half = g.rx * 1.05
    arch = 0.022 + 0.02 * surprise - 0.015 * angry
    slope = 0.065 * angry - 0.05 * (sad + g.u("cry")).clamp(0, 1)   # > 0: inner end down
    for sgn in (-1.0, 1.0):
        w = cv.window(sorted((0.0, sgn * 0.42)) + [HEAD_CY + EYE_DY - 0.42, HEAD_CY + EYE_DY - 0.06])
        u, v = w.x - sgn * g.ex, w.y - by
        un = _clamp_sym(u, half) / half
        d = torch.sqrt((u - un * half) ** 2 + (v + arch * (1 - un * un) + slope * sgn * un) ** 2)
        w.paint(color, w.cov(d - t * (0.75 - 0.25 * sgn * un)))


def _draw_glasses(cv: _Canvas, g: _Geo) -> None:
    shape, on = g.u("glasses_shape"), g.u("glasses")
    w = cv.window((-0.62, 0.62, HEAD_CY + EYE_DY - 0.2, HEAD_CY + EYE_DY + 0.2))
    hx, hy = g.rx + 0.035, g.ry0 + 0.02
    r = torch.minimum(hx, hy) * (1 - shape) + 0.02 * shape
    v = w.y - g.ey
    d_lens = torch.minimum(sd_round_box(w.x + g.ex, v, hx, hy, r), sd_round_box(w.x - g.ex, v, hx, hy, r))
    inner = g.ex - hx
    d_bridge = sd_curve(w.x, v + hy * 0.35, inner, lambda q: 0.3 * q * q / inner)
    side = g.W * g.head_width_at(g.ey) + 0.01
    d_arms = torch.minimum(sd_segment(w.x, v, (g.ex + hx, -hy * 0.5), (side, -hy * 0.7)),
                           sd_segment(w.x, v, (-g.ex - hx, -hy * 0.5), (-side, -hy * 0.7)))
    d = torch.minimum(torch.minimum(d_lens.abs(), d_bridge), d_arms) - (0.008 + 0.007 * shape)
    w.paint(LENS, w.cov(d_lens) * 0.12 * on)
    a, b = (0.35 * hx, -0.15 * hy), (0.65 * hx, -0.6 * hy)
    glare = torch.minimum(sd_segment(w.x + g.ex, v, a, b), sd_segment(w.x - g.ex, v, a, b))
    w.paint(WHITE, w.cov(torch.maximum(glare - 0.006, d_lens)) * 0.35 * on)
    w.paint(g.frame, w.cov(d) * on)


def _draw_anger_mark(cv: _Canvas, g: _Geo) -> None:
    """The cartoon 'popping vein' cross on the forehead, fading in with anger."""
    w = cv.window((0.12, 0.42, -0.62, -0.28))
    u, v = w.x - g.W * 0.52, w.y - (g.cy - g.H * 0.58)
    d = None
    for qx, qy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        dq = torch.maximum(sd_circle(u - qx * 0.045, v - qy * 0.045, 0.032).abs(), torch.maximum(qx * u, qy * v))
        d = dq if d is None else torch.minimum(d, dq)
    w.paint(ANGER, w.cov(d - 0.011) * ((g.u("angry") - 0.2) * 2.0).clamp(0, 1))


Rows = Callable[[_Geo], Tensor]   # which faces a layer touches: [B] bool


def _flat(t: Tensor) -> Tensor:
    return t.reshape(-1)


_LAYERS: tuple[tuple[Callable[[_Canvas, _Geo], None], Rows | None], ...] = (
    (_draw_curtain, lambda g: _flat((g.long > 0) & (g.hair_alpha > 0))),
    (_draw_bun, lambda g: _flat((g.bun > 0) & (g.hair_alpha > 0))),
    (_draw_ears, None),
    (_draw_head, None),
    (_draw_forehead_lines, lambda g: _flat(g.u("age") > 0)),
    (_draw_freckles, lambda g: _flat(g.u("freckles") > 0)),
    (_draw_blush, lambda g: _flat(g.u("blush") > 0)),
    (_draw_folds, lambda g: _flat(g.u("age") > 0)),
    (_draw_nose, None),
    (_draw_pout, lambda g: _flat(g.u("pout") > 0)),
    (_draw_mouth, None),
    (_draw_eyes, None),
    (_draw_eye_age, lambda g: _flat(g.u("age") > 0)),
    (_draw_tears, lambda g: _flat(g.u("cry") > 0)),
    (_draw_front_hair, lambda g: _flat((g.hair_alpha > 0) & (g.bumps == 0))),   # split so only curly
    (_draw_front_hair, lambda g: _flat((g.hair_alpha > 0) & (g.bumps > 0))),    # rows pay for the bumps
    (_draw_shine, lambda g: _flat(g.hair_alpha > 0)),
    (_draw_brows, None),
    (_draw_glasses, lambda g: _flat(g.u("glasses") > 0)),
    (_draw_anger_mark, lambda g: _flat(g.u("angry") > 0.2)),
)


def _run(cv: _Canvas, g: _Geo, layer: Callable[[_Canvas, _Geo], None], rows: Tensor | None) -> None:
    if rows is None or bool(rows.all()):
        layer(cv, g)
        cv.flush()
        return
    idx = rows.nonzero()[:, 0]
    if idx.numel():
        sub = cv.subset(idx)
        layer(sub, g.take(idx))
        sub.flush()


# ----------------------------------------------------------------------------------------------
# public API


def _as_vector(params: ToonParams | Tensor) -> Tensor:
    v = params.vector if isinstance(params, ToonParams) else torch.as_tensor(params)
    return ToonParams(v.detach().to("cpu", torch.float32)).vector


@torch.no_grad()
def render_unit(params: ToonParams | Tensor, size: int = 128, chunk: int = 64, threads: int | None = 1) -> Tensor:
    """Render faces as float RGB in [0, 1]: ``[B, P]`` (or ``ToonParams``/``[P]``) → ``[B, 3, size, size]`` on CPU.

    ``chunk`` bounds memory (rows rendered together); the output does not depend on it.
    ``threads``: intra-op threads while rendering (``None`` keeps torch's setting). The renderer runs
    many small element-wise ops, for which one thread is fastest and, on a busy machine, several
    threads can be 10× slower; to use more cores, render different batches in different processes.
    """
    v = _as_vector(params)
    with torch_threads(threads):
        out = [_render_chunk(ToonParams(v[i:i + chunk]), size) for i in range(0, v.shape[0], chunk)]
    return torch.cat(out) if out else torch.zeros(0, 3, size, size)


def _render_chunk(p: ToonParams, size: int) -> Tensor:
    g = _Geo(p)
    cv = _Canvas(_draw_background(p, size), p["tilt"])
    _draw_body(cv, g)
    for layer, rows in _LAYERS:
        _run(cv, g, layer, None if rows is None else rows(g))
    return cv.rgb.clamp_(0.0, 1.0)


def render(params: ToonParams | Tensor, size: int = 128, threads: int | None = 1) -> Tensor:
    """Render faces as float RGB in [-1, 1] (the generator's convention): ``[B, 3, size, size]``."""
    return render_unit(params, size, threads=threads).mul_(2.0).sub_(1.0)


def render_uint8(params: ToonParams | Tensor, size: int = 128, threads: int | None = 1) -> Tensor:
    """Render faces as ``uint8`` RGB ``[B, 3, size, size]``."""
    return render_unit(params, size, threads=threads).mul_(255.0).round_().to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# contact sheet (docs, demos)

SHEET_COLUMNS: tuple[tuple[str, dict[str, float]], ...] = (
    ("neutral", {}), ("smile", {"smile": 1.0}), ("laugh", {"laugh": 1.0}), ("sad", {"sad": 1.0}),
    ("angry", {"angry": 1.0}), ("surprise", {"surprise": 1.0}), ("eyes closed", {"eyes_closed": 1.0}),
    ("wink", {"wink": 1.0}), ("pout", {"pout": 1.0}), ("cry", {"cry": 1.0}), ("blush", {"blush": 1.0}),
    ("gaze left", {"gaze": -1.0}), ("gaze right", {"gaze": 1.0}), ("tilt left", {"tilt": -1.0}),
    ("tilt right", {"tilt": 1.0}), ("grey hair", {"grey_hair": 1.0}), ("age", {"age": 1.0}),
)


def expression_sheet(params: ToonParams, size: int = 128) -> Tensor:
    """Rows = faces, columns = ``SHEET_COLUMNS`` (neutral, each expression at full intensity, grey hair,
    age): ``uint8`` ``[3, B * size, len(SHEET_COLUMNS) * size]``."""
    neutral = params.neutral()
    cols = torch.stack([render_uint8(neutral.replace(**edit), size) for _, edit in SHEET_COLUMNS], 1)
    b, c = cols.shape[:2]
    return cols.permute(2, 0, 3, 1, 4).reshape(3, b * size, c * size)
