"""FFHQ alignment on a real portrait (scikit-image's astronaut) and its inverse, paste-back."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402

from faceanim.align import (  # noqa: E402
    FaceAligner,
    aligned_to_source_matrix,
    default_landmarks_path,
    ffhq_quad,
    paste_back,
)
from faceanim.align.ffhq import warp_quad  # noqa: E402
from faceanim.errors import FaceanimError  # noqa: E402
from faceanim.utils.images import load_image  # noqa: E402

pytestmark = pytest.mark.skipif(default_landmarks_path() is None, reason="face_recognition_models not installed")

SIZE = 256


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner()


@pytest.fixture(scope="module")
def portrait():
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def aligned(aligner, portrait):
    return aligner.align(portrait, output_size=SIZE)


def eye_centres(lm):
    return lm[36:42].mean(0), lm[42:48].mean(0)


def mouth_centre(lm):
    return (lm[48] + lm[54]) / 2


def test_detect_portrait(aligner, portrait):
    faces = aligner.detect(portrait)
    assert faces, "no face in the astronaut portrait"
    keys = [(-f.area, -f.score) for f in faces]
    assert keys == sorted(keys)  # largest first, ties by score
    lm = faces[0].landmarks
    assert lm.shape == (68, 2)
    assert (lm >= 0).all() and (lm[:, 0] < portrait.width).all() and (lm[:, 1] < portrait.height).all()
    left, right = eye_centres(lm)
    assert left[0] < right[0]
    assert max(left[1], right[1]) < mouth_centre(lm)[1] - 20  # eyes well above the mouth
    left_box, top, right_box, bottom = faces[0].box
    assert left_box <= lm[36:48, 0].min() and lm[36:48, 0].max() <= right_box


def test_import_is_lazy():
    code = "import sys, faceanim.align; assert 'dlib' not in sys.modules and 'PIL' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_quad_is_rotated_square(aligned):
    lm = aligned.landmarks
    left, right = eye_centres(lm)
    eye_to_eye = right - left
    eye_to_mouth = mouth_centre(lm) - (left + right) / 2
    half = max(2 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth))  # |x|
    q = aligned.quad
    sides = [q[1] - q[0], q[2] - q[1], q[3] - q[2], q[0] - q[3]]
    np.testing.assert_allclose([np.hypot(*s) for s in sides], 2 * half, rtol=1e-9)
    assert abs(np.dot(sides[0], sides[1])) < 1e-6 * half**2  # right angles
    # Centre c = eye_avg + 0.1·eye_to_mouth.
    np.testing.assert_allclose(q.mean(0), (left + right) / 2 + 0.1 * eye_to_mouth, atol=1e-9)
    np.testing.assert_array_equal(q, ffhq_quad(lm))


def test_transform_maps_corners_and_inverts(aligned):
    # The aligned image's outer corners (pixel edges at -0.5 and SIZE-0.5) land on the quad.
    corners = np.array([[-0.5, -0.5], [-0.5, SIZE - 0.5], [SIZE - 0.5, SIZE - 0.5], [SIZE - 0.5, -0.5]])
    np.testing.assert_allclose(aligned.to_source(corners), aligned.quad, atol=1e-9)
    pts = np.random.default_rng(0).uniform(0, 512, (10, 2))
    np.testing.assert_allclose(aligned.to_source(aligned.to_aligned(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(aligned.transform, aligned_to_source_matrix(aligned.quad, (SIZE, SIZE)))


def test_aligned_eyes_at_ffhq_positions(aligner, aligned):
    assert aligned.image.size == (SIZE, SIZE) and aligned.image.mode == "RGB"
    # Expected positions from the procedure: with the eyes on the x axis and the mouth on the y axis, the
    # crop's half side is |x| = max(2·e, 1.8·m) (e = eye-to-eye, m = eye-to-mouth); the eyes sit at
    # u = 1/2 ± e/(4|x|) and v = 1/2 − 0.1·m/(2|x|) of the side.
    left, right = eye_centres(aligned.landmarks)
    e = np.hypot(*(right - left))
    m = np.hypot(*(mouth_centre(aligned.landmarks) - (left + right) / 2))
    half = max(2 * e, 1.8 * m)
    assert 2 * e > 1.8 * m  # the eye distance sets the scale here, so the eyes land at 3/8 and 5/8 exactly
    expected_u = (0.5 - e / (4 * half), 0.5 + e / (4 * half))
    expected_v = 0.5 - 0.1 * m / (2 * half)
    assert expected_u == pytest.approx((0.375, 0.625)) and 0.45 < expected_v < 0.5

    # Re-detect on the aligned pixels (independent of the transform bookkeeping).
    faces = aligner.detect(aligned.image)
    assert faces
    al, ar = (p / SIZE for p in eye_centres(faces[0].landmarks))
    assert abs(al[1] - ar[1]) < 0.01  # horizontal
    assert abs((al[0] + ar[0]) / 2 - 0.5) < 0.01  # symmetric about the centre
    assert al[0] == pytest.approx(expected_u[0], abs=0.015) and ar[0] == pytest.approx(expected_u[1], abs=0.015)
    assert al[1] == pytest.approx(expected_v, abs=0.015) and ar[1] == pytest.approx(expected_v, abs=0.015)
    # The bookkeeping agrees with what is in the pixels.
    mapped = aligned.to_aligned(aligned.landmarks[36:48])
    assert np.abs(mapped - faces[0].landmarks[36:48]).mean() < 2.0


def test_rotated_input_gives_upright_face(aligner, portrait, aligned):
    rotated = portrait.rotate(15, resample=Image.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    result = aligner.align(rotated, output_size=SIZE)
    angle = np.degrees(np.arctan2(*(result.quad[3] - result.quad[0])[::-1]))
    angle0 = np.degrees(np.arctan2(*(aligned.quad[3] - aligned.quad[0])[::-1]))
    assert angle - angle0 == pytest.approx(-15, abs=2)  # PIL rotates counter-clockwise: y points down
    faces = aligner.detect(result.image)
    assert faces
    left, right = eye_centres(faces[0].landmarks)
    assert abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))) < 2.5


def _save_variants(portrait, tmp_path):
    gray = portrait.convert("L")
    paths = {}
    paths["gray"] = tmp_path / "gray.png"
    gray.save(paths["gray"])
    rgba = portrait.convert("RGBA")
    alpha = np.full((portrait.height, portrait.width), 255, np.uint8)
    alpha[:, :60] = 0  # a transparent strip far from the face
    rgba.putalpha(Image.fromarray(alpha))
    paths["rgba"] = tmp_path / "rgba.png"
    rgba.save(paths["rgba"])
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": store the picture turned the other way
    paths["exif"] = tmp_path / "exif.png"
    portrait.transpose(Image.Transpose.ROTATE_90).save(paths["exif"], exif=exif)
    paths["16bit"] = tmp_path / "gray16.png"
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(paths["16bit"])
    return paths


def test_input_formats_align(aligner, portrait, aligned, tmp_path):
    paths = _save_variants(portrait, tmp_path)
    assert Image.open(paths["16bit"]).mode.startswith("I")
    for kind, path in paths.items():
        image = load_image(path)
        assert image.size == portrait.size and image.mode == "RGB", kind
        if kind in ("exif", "rgba"):  # orientation undone / opaque pixels kept exactly
            np.testing.assert_array_equal(np.asarray(image)[:, 60:], np.asarray(portrait)[:, 60:], kind)
        result = aligner.align(path, output_size=SIZE)  # paths go through load_image too
        assert result.image.size == (SIZE, SIZE)
        assert np.abs(result.quad - aligned.quad).max() < 4.0, kind


def test_no_face_and_face_index_errors(aligner, portrait):
    with pytest.raises(FaceanimError, match="no face found in"):
        aligner.align(Image.new("RGB", (200, 160), (200, 190, 180)))
    n = len(aligner.detect(portrait))
    with pytest.raises(FaceanimError, match=rf"face_index {n} is out of range: {n} faces? found"):
        aligner.align(portrait, output_size=64, face_index=n)
    assert aligner.align(portrait, output_size=64, face_index=-n).face_index == 0


def test_bad_landmark_model_path(portrait, tmp_path):
    with pytest.raises(FaceanimError, match="landmark model not found"):
        FaceAligner(landmarks_path=tmp_path / "missing.dat").detect(portrait)
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(b"not a model")
    with pytest.raises(FaceanimError, match="not a dlib shape predictor"):
        FaceAligner(landmarks_path=bogus).detect(portrait)
    with pytest.raises(FaceanimError, match="unknown face detector"):
        FaceAligner(detector="mtcnn")


def test_shrink_keeps_geometry(portrait, aligned):
    # Upscaled input takes the shrink branch (qsize ≫ output_size) and must give the same crop.
    big = portrait.resize((2048, 2048), Image.BICUBIC)
    small = warp_quad(portrait, aligned.quad, 64)
    shrunk = warp_quad(big, aligned.quad * 4 + 1.5, 64)  # pixel centres: (p + ½)·4 − ½
    assert np.abs(np.asarray(small, float) - np.asarray(shrunk, float)).mean() < 3.0


def test_quad_outside_image_is_padded(aligner, portrait, aligned):
    cropped = portrait.crop((150, 40, 512, 512))  # the quad now leaves the image on the left and top
    result = aligner.align(cropped, output_size=SIZE)
    assert result.quad[:, 0].min() < 0 and result.quad[:, 1].min() < 0
    out = np.asarray(result.image, float)
    ref = np.asarray(aligned.image, float)
    centre = slice(SIZE // 4, 3 * SIZE // 4)
    assert np.abs(out[centre, centre] - ref[centre, centre]).mean() < 3.0  # the face itself is unchanged
    corner = out[:16, :16]
    assert corner.mean() > 10 and corner.std() < 40  # blended padding, not black


def test_paste_back_round_trip(portrait, aligned):
    frames = paste_back(portrait, [aligned.image], aligned.quad)
    assert len(frames) == 1 and frames[0].size == portrait.size
    orig = np.asarray(portrait, float)
    out = np.asarray(frames[0], float)
    left, top, right, bottom = aligned.face.box
    face_err = np.abs(out[top:bottom, left:right] - orig[top:bottom, left:right]).mean()
    assert face_err < 4.0

    # Sensitivity: a crop shifted by 6 px pastes visibly wrong.
    shifted = Image.fromarray(np.roll(np.asarray(aligned.image), 6, axis=1))
    bad = np.asarray(paste_back(portrait, shifted, aligned.quad)[0], float)
    assert np.abs(bad[top:bottom, left:right] - orig[top:bottom, left:right]).mean() > 2 * face_err

    # Pixels outside the quad are untouched, bit for bit.
    ys, xs = np.mgrid[0:portrait.height, 0:portrait.width]
    uv = aligned.to_aligned(np.stack([xs, ys], -1).astype(float))
    outside = ((uv < -2) | (uv > SIZE + 1)).any(-1)
    assert outside.mean() > 0.5
    np.testing.assert_array_equal(out[outside], orig[outside])


def test_paste_back_array_frames(portrait, aligned):
    frames = np.stack([np.asarray(aligned.image), np.zeros((SIZE, SIZE, 3), np.uint8)])
    out = aligned.paste_back(portrait, frames, feather=0.2)
    assert len(out) == 2 and all(f.size == portrait.size for f in out)
    cx, cy = np.rint(aligned.quad.mean(0)).astype(int)
    assert np.asarray(out[1])[cy, cx].max() == 0  # the centre shows the (black) frame
    with pytest.raises(ValueError, match="uint8 frames"):
        paste_back(portrait, frames.astype(np.float32), aligned.quad)


@pytest.mark.slow
def test_cnn_detector_finds_the_same_face(portrait, aligned):
    faces = FaceAligner(detector="cnn", upsample=0).detect(portrait)  # ~4 s on one CPU core
    assert faces
    assert np.abs(ffhq_quad(faces[0].landmarks) - aligned.quad).max() < 6.0
