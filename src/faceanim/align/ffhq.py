"""FFHQ face alignment (dlib detector + 68-point landmarks) and its inverse, pasting generated frames back.

The alignment is the procedure used to build FFHQ (Karras et al. 2019, ``recreate_aligned_images``), so an
aligned crop sits where StyleGAN2 and its encoders expect a face: from the eye centres and mouth corners an
oriented square ``c ± x ± y`` is built with

    x ∝ eye_to_eye − rot90(eye_to_mouth),   |x| = max(2·|eye_to_eye|, 1.8·|eye_to_mouth|),   y = rot90(x),
    c = eye_avg + 0.1·eye_to_mouth,

and that square is resampled to ``output_size`` (via a ``transform_size`` supersampled intermediate). Large
inputs are shrunk first; the quad is cropped with a border and, where it leaves the image, the image is
reflect-padded, blurred and blended towards its median colour so the outside looks like plausible background.

Coordinates: landmarks and quads are in source pixel coordinates where pixel ``(i, j)`` has its centre at
``(i, j)`` (dlib's convention); the corners of a quad are the top-left, bottom-left, bottom-right and top-right
corners of the aligned image, in this order (the order of PIL's ``Image.QUAD``). Because ``x ⟂ y`` and
``|x| = |y|`` the quad is a rotated square and the aligned image is an affine (similarity) map of the source.

Nothing heavy is imported here: dlib and the landmark model load on the first ``detect``/``align`` call.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from faceanim.errors import FaceanimError

if TYPE_CHECKING:
    from PIL import Image

LANDMARKS_MODEL = "shape_predictor_68_face_landmarks.dat"  # in face_recognition_models/models/
CNN_DETECTOR_MODEL = "mmod_human_face_detector.dat"  # same place; used by detector="cnn"

# 68-point (iBUG 300-W) indices; "left"/"right" are as seen in the image.
EYE_LEFT = slice(36, 42)
EYE_RIGHT = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


@dataclass(frozen=True)
class Face:
    """One detected face."""

    box: tuple[int, int, int, int]  # (left, top, right, bottom) in source pixels, as dlib reports it
    score: float  # detector confidence (HOG: SVM margin; CNN: MMOD confidence); higher is surer
    landmarks: np.ndarray = field(repr=False)  # [68, 2] float (x, y), iBUG 300-W order

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(right - left, 0) * max(bottom - top, 0)


@dataclass
class AlignedFace:
    """An FFHQ-aligned crop and everything needed to map it back onto the source image."""

    image: "Image.Image"  # output_size × output_size RGB
    quad: np.ndarray  # [4, 2] source pixel coordinates of the aligned image's TL, BL, BR, TR corners
    landmarks: np.ndarray  # [68, 2] source pixel coordinates
    face_index: int  # index into ``FaceAligner.detect`` order (largest first)
    face: Face
    source_size: tuple[int, int]  # (width, height) of the source image

    @property
    def output_size(self) -> int:
        return self.image.size[0]

    @property
    def transform(self) -> np.ndarray:
        """[3, 3] affine matrix taking aligned pixel coordinates (of ``image``) to source pixel coordinates."""
        return aligned_to_source_matrix(self.quad, self.image.size)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Aligned pixel coordinates ``[..., 2]`` → source pixel coordinates."""
        return _apply(self.transform, points)

    def to_aligned(self, points: np.ndarray) -> np.ndarray:
        """Source pixel coordinates ``[..., 2]`` → aligned pixel coordinates (e.g. landmarks in the crop)."""
        return _apply(np.linalg.inv(self.transform), points)

    def paste_back(self, original: "Image.Image", frames, feather: float = 0.1) -> list["Image.Image"]:
        """``paste_back(original, frames, self.quad, feather)``."""
        return paste_back(original, frames, self.quad, feather=feather)


def default_landmarks_path() -> str | None:
    """The 68-point model shipped by ``face_recognition_models``, found without importing it (its
    ``__init__`` needs ``pkg_resources``), or None."""
    return model_file(LANDMARKS_MODEL)


def model_file(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", name)
    return path if os.path.isfile(path) else None


class FaceAligner:
    """dlib face detection + 68 landmarks + FFHQ alignment. Models load lazily on first use."""

    def __init__(
        self,
        landmarks_path: str | os.PathLike | None = None,  # dlib 68-point predictor; None: face_recognition_models'
        detector: str = "hog",  # "hog" (dlib frontal detector, fast) or "cnn" (dlib MMOD, slower, more robust)
        upsample: int = 1,  # detector image upsampling passes (1 finds faces down to ~40 px)
    ):
        if detector not in ("hog", "cnn"):
            raise FaceanimError(f"unknown face detector {detector!r}; choose 'hog' or 'cnn'")
        self.landmarks_path = None if landmarks_path is None else os.fspath(landmarks_path)
        self.detector_kind = detector
        self.upsample = int(upsample)
        self._detector = None
        self._predictor = None

    # -- models ------------------------------------------------------------------------------------------------
    def _load(self):
        if self._predictor is not None:
            return
        try:
            import dlib
        except ImportError:
            raise FaceanimError('face alignment needs dlib: pip install "faceanim[align]"') from None
        path = self.landmarks_path or default_landmarks_path()
        if path is None:
            raise FaceanimError(
                f'no face landmark model: pip install "faceanim[align]" (face_recognition_models), '
                f"or pass the path of {LANDMARKS_MODEL}"
            )
        if not os.path.isfile(path):
            raise FaceanimError(f"landmark model not found: {path}")
        try:
            predictor = dlib.shape_predictor(path)
        except RuntimeError as exc:
            raise FaceanimError(f"{path} is not a dlib shape predictor ({exc})") from None
        if self.detector_kind == "cnn":
            cnn_path = model_file(CNN_DETECTOR_MODEL)
            if cnn_path is None:
                raise FaceanimError(f"detector='cnn' needs {CNN_DETECTOR_MODEL} from face_recognition_models")
            self._detector = dlib.cnn_face_detection_model_v1(cnn_path)
        else:
            self._detector = dlib.get_frontal_face_detector()
        self._predictor = predictor

    # -- detection ---------------------------------------------------------------------------------------------
    def detect(self, image: "Image.Image | str | os.PathLike") -> list[Face]:
        """All faces, largest box first (ties: higher score first), each with its 68 landmarks."""
        self._load()
        arr = _as_rgb_array(image)
        if self.detector_kind == "cnn":
            dets = self._detector(arr, self.upsample)
            found = [(d.rect, float(d.confidence)) for d in dets]
        else:
            rects, scores, _ = self._detector.run(arr, self.upsample)
            found = list(zip(rects, map(float, scores)))
        faces = []
        for rect, score in found:
            shape = self._predictor(arr, rect)
            if shape.num_parts != 68:
                raise FaceanimError(f"the landmark model gives {shape.num_parts} points; the 68-point one is needed")
            lm = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), score, lm))
        faces.sort(key=lambda f: (-f.area, -f.score))
        return faces

    # -- alignment ---------------------------------------------------------------------------------------------
    def align(
        self,
        image: "Image.Image | str | os.PathLike",
        output_size: int = 1024,  # side of the aligned square
        face_index: int | None = None,  # which face in detect() order; None: the largest
        transform_size: int | None = None,  # supersampled intermediate side; None: 4·output_size (FFHQ: 4096)
        faces: Sequence[Face] | None = None,  # detect(image) already run on this image; None: detect now
    ) -> AlignedFace:
        """Detect, pick one face and FFHQ-align it."""
        name = image if isinstance(image, (str, os.PathLike)) else "the image"
        img = _as_pil(image)
        faces = self.detect(img) if faces is None else list(faces)
        if not faces:
            raise FaceanimError(f"no face found in {name}")
        index = 0 if face_index is None else face_index
        if not -len(faces) <= index < len(faces):
            n = len(faces)
            raise FaceanimError(
                f"face_index {face_index} is out of range: {n} face{'s' if n != 1 else ''} found in {name} "
                f"(valid: 0..{n - 1})"
            )
        index %= len(faces)
        face = faces[index]
        quad = ffhq_quad(face.landmarks)
        out = warp_quad(img, quad, output_size, transform_size)
        return AlignedFace(out, quad, face.landmarks, index, face, img.size)


# -- the FFHQ procedure, as functions of landmarks and quads ------------------------------------------------------
def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """[68, 2] landmarks → [4, 2] FFHQ crop quad (TL, BL, BR, TR), same pixel coordinates."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected [68, 2] landmarks, got {list(lm.shape)}")
    eye_left, eye_right = lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) / 2
    eye_to_mouth = mouth_avg - eye_avg

    # rot90(v) = (v_y, -v_x) turns the downward eye→mouth vector into a rightward one, so both cues vote for x.
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    x *= max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth)) / np.hypot(*x)
    y = np.array([-x[1], x[0]])  # x turned 90° towards the chin
    c = eye_avg + 0.1 * eye_to_mouth
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def warp_quad(
    image: "Image.Image",
    quad: np.ndarray,
    output_size: int = 1024,
    transform_size: int | None = None,
) -> "Image.Image":
    """Resample the square ``quad`` of ``image`` to ``output_size``² the FFHQ way (shrink, crop, pad, transform)."""
    from PIL import Image

    img = image.convert("RGB")
    transform_size = 4 * output_size if transform_size is None else int(transform_size)
    # Work in continuous coordinates (pixel (i, j) covers [i, i+1) × [j, j+1)), which PIL's transforms use.
    q = np.asarray(quad, dtype=np.float64) + 0.5
    qsize = float(np.hypot(*(q[3] - q[0])))

    # Shrink: never resample from more than ~2× the needed resolution.
    shrink = int(math.floor(qsize / output_size * 0.5))
    if shrink > 1:
        size = (max(int(round(img.width / shrink)), 1), max(int(round(img.height / shrink)), 1))
        q = q * (np.array(size) / np.array(img.size))
        qsize /= shrink
        img = img.resize(size, Image.LANCZOS)

    # Crop to the quad plus a border.
    border = max(int(round(qsize * 0.1)), 3)
    lo = np.floor(q.min(0)).astype(int) - border
    hi = np.ceil(q.max(0)).astype(int) + border
    crop = (max(lo[0], 0), max(lo[1], 0), min(hi[0], img.width), min(hi[1], img.height))
    if crop != (0, 0, img.width, img.height):
        img = img.crop(crop)
        q = q - crop[:2]

    # Pad where the quad (plus border) leaves the image.
    lo = np.floor(q.min(0)).astype(int)
    hi = np.ceil(q.max(0)).astype(int)
    pad = (max(border - lo[0], 0), max(border - lo[1], 0),
           max(hi[0] - img.width + border, 0), max(hi[1] - img.height + border, 0))  # left, top, right, bottom
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(round(qsize * 0.3)))  # pad generously: the blend needs room to fade
        img = _pad_reflect_blend(img, pad, qsize)
        q = q + pad[:2]

    img = img.transform((transform_size, transform_size), Image.QUAD, tuple(q.flatten()), Image.BILINEAR)
    if output_size != transform_size:
        img = img.resize((output_size, output_size), Image.LANCZOS)
    return img


def _pad_reflect_blend(img: "Image.Image", pad: np.ndarray, qsize: float) -> "Image.Image":
    """Reflect-pad by ``pad`` (left, top, right, bottom), then fade the padding into a blur and the median colour."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    left, top, right, bottom = (int(p) for p in pad)
    arr = np.pad(np.asarray(img, dtype=np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = arr.shape
    ys = np.arange(h, dtype=np.float32)[:, None, None]
    xs = np.arange(w, dtype=np.float32)[None, :, None]
    # 0 on the original image's edge, rising to 1 at the outer edge of the padding, negative inside.
    with np.errstate(divide="ignore", invalid="ignore"):
        fx = 1.0 - np.minimum(xs / max(left, 1), (w - 1 - xs) / max(right, 1))
        fy = 1.0 - np.minimum(ys / max(top, 1), (h - 1 - ys) / max(bottom, 1))
    mask = np.maximum(fx, fy)
    sigma = qsize * 0.02
    arr += (gaussian_filter(arr, [sigma, sigma, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


# -- the inverse: aligned frames back onto the source -------------------------------------------------------------
def aligned_to_source_matrix(quad: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[3, 3] affine matrix: pixel coordinates of a ``size`` = (W, H) aligned image → source pixel coordinates."""
    q = np.asarray(quad, dtype=np.float64)
    w, h = size
    ax = (q[3] - q[0]) / w  # source step per aligned pixel to the right
    ay = (q[1] - q[0]) / h  # ... and downward
    origin = q[0] + 0.5 * (ax + ay)  # where the centre of aligned pixel (0, 0) lands
    return np.array([[ax[0], ay[0], origin[0]], [ax[1], ay[1], origin[1]], [0.0, 0.0, 1.0]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:2, :2].T + matrix[:2, 2]


def paste_back(
    original: "Image.Image",
    aligned_frames,  # list of PIL images, one PIL image, or uint8 array [T, H, W, 3] / [H, W, 3]
    quad: np.ndarray,  # [4, 2] from AlignedFace.quad
    feather: float = 0.1,  # width of the blend ramp inside the square's edges, as a fraction of its side
) -> list["Image.Image"]:
    """Map each aligned frame back onto ``quad`` of ``original`` and blend it in with a feathered square mask.

    Pixels outside the quad are returned unchanged, so the output keeps the user's framing and size. For
    model output ``[T, 3, H, W]`` in [-1, 1] use ``faceanim.utils.images.to_uint8`` first.
    """
    from PIL import Image

    frames = _as_frame_list(aligned_frames)
    base = np.asarray(original.convert("RGB"))
    height, width = base.shape[:2]
    q = np.asarray(quad, dtype=np.float64) + 0.5  # continuous coordinates
    if q.shape != (4, 2):
        raise ValueError(f"expected a [4, 2] quad, got {list(q.shape)}")
    x0, y0 = (int(v) for v in np.maximum(np.floor(q.min(0)), 0))
    x1, y1 = int(min(np.ceil(q[:, 0].max()), width)), int(min(np.ceil(q[:, 1].max()), height))
    if x1 <= x0 or y1 <= y0:  # the quad lies outside the image
        return [Image.fromarray(base.copy()) for _ in frames]

    # Source continuous point p ↦ unit-square coordinates st = basis⁻¹ (p − q0).
    basis_inv = np.linalg.inv(np.column_stack([q[3] - q[0], q[1] - q[0]]))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    st = np.einsum("ij,jhw->ihw", basis_inv, np.stack([xs - q[0, 0], ys - q[0, 1]]))
    edge = np.minimum(np.minimum(st[0], 1 - st[0]), np.minimum(st[1], 1 - st[1]))  # 0 on the square's border
    mask = np.clip(edge / feather, 0, 1) if feather > 0 else (edge > 0).astype(np.float64)
    mask = mask.astype(np.float32)[..., None]
    region = base[y0:y1, x0:x1].astype(np.float32)
    side = np.hypot(*(q[3] - q[0])), np.hypot(*(q[1] - q[0]))

    out = []
    for frame in frames:
        # Downscale first when the frame has far more pixels than the quad (the affine resampler does not low-pass).
        target = (max(int(round(side[0])), 1), max(int(round(side[1])), 1))
        if frame.size[0] > 1.5 * target[0] or frame.size[1] > 1.5 * target[1]:
            frame = frame.resize(target, Image.LANCZOS)
        fw, fh = frame.size
        m = np.diag([fw, fh]) @ basis_inv  # source continuous → frame continuous
        off = m @ (np.array([x0, y0], dtype=np.float64) - q[0])
        data = (m[0, 0], m[0, 1], off[0], m[1, 0], m[1, 1], off[1])
        warped = frame.transform((x1 - x0, y1 - y0), Image.AFFINE, data, Image.BICUBIC)
        blend = region + (np.asarray(warped, dtype=np.float32) - region) * mask
        result = base.copy()
        result[y0:y1, x0:x1] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(result))
    return out


# -- input helpers ----------------------------------------------------------------------------------------------
def _as_pil(image) -> "Image.Image":
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        from faceanim.utils.images import load_image

        return load_image(image)
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    raise TypeError(f"expected a PIL image or a path, got {type(image).__name__}")


def _as_rgb_array(image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(_as_pil(image), dtype=np.uint8))


def _as_frame_list(frames) -> list["Image.Image"]:
    from PIL import Image

    if isinstance(frames, Image.Image):
        return [frames.convert("RGB")]
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.shape[-1] != 3 or frames.ndim not in (3, 4):
            raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
        return [Image.fromarray(f) for f in (frames[None] if frames.ndim == 3 else frames)]
    if isinstance(frames, Sequence):
        return [_as_frame_list(f)[0] if not isinstance(f, Image.Image) else f.convert("RGB") for f in frames]
    raise TypeError(f"expected PIL images or a uint8 array, got {type(frames).__name__}")
