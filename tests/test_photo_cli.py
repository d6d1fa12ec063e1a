"""`faceanim align`, `faceanim invert` and `faceanim animate PHOTO` on a tiny bundle; their bad-input errors."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.cli.main import main
from faceanim.outputs import load_latents_file, load_latents_metadata

from tiny_models import tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("b"))


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """A non-square 'already aligned' image (stands in for a ToonFace render)."""
    path = tmp_path_factory.mktemp("img") / "crop.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    return path


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


def _alignment_available() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    from faceanim.align import default_landmarks_path

    return default_landmarks_path() is not None


needs_dlib = pytest.mark.skipif(not _alignment_available(), reason="dlib or face_recognition_models not installed")


def test_invert_writes_a_latent_animate_reads(bundle, crop, tmp_path, capsys):
    lat, recon = tmp_path / "face.safetensors", tmp_path / "recon.png"
    assert main(["invert", str(crop), "-b", str(bundle), "--no-align", "--steps", "40", "-o", str(lat),
                 "--reconstruction", str(recon)]) == 0
    text = capsys.readouterr().out
    assert "with the projector (40 steps in W" in text and "MSE" in text
    code = load_latents_file(lat)
    assert code.shape == (6, 32) and torch.equal(code, code[:1].expand_as(code))
    meta = load_latents_metadata(lat)
    assert meta["method"] == "projector" and meta["aligned"] == "no" and meta["steps"] == "40"
    with Image.open(recon) as im:
        assert im.size == (16, 16)
    out = tmp_path / "anim.gif"
    assert main(["animate", "-b", str(bundle), "-p", "smiling", "-n", "4", "--latent", str(lat), "-o", str(out)]) == 0
    with Image.open(out) as im:
        assert im.n_frames == 4
    wp = tmp_path / "wp.safetensors"
    assert main(["invert", str(crop), "-b", str(bundle), "--no-align", "--steps", "5", "--space", "wplus",
                 "-o", str(wp)]) == 0
    assert load_latents_file(wp).shape == (6, 32)


def test_animate_image_no_align_and_paste_back(bundle, crop, tmp_path, capsys):
    out = tmp_path / "photo.gif"
    assert main(["animate", str(crop), "--no-align", "-b", str(bundle), "-p", "smiling", "-n", "4",
                 "--invert-steps", "20", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "inverted with projector" in text and "inversion" in text
    with Image.open(out) as im:
        assert im.n_frames == 4 and im.size == (16, 16)
    frames = tmp_path / "pasted/"
    assert main(["animate", str(crop), "--no-align", "--paste-back", "-b", str(bundle), "-p", "smiling", "-n", "3",
                 "--invert-steps", "5", "-o", str(frames)]) == 0
    first = np.asarray(Image.open(tmp_path / "pasted" / "frame_0000.png"))
    original = np.asarray(Image.open(crop))
    assert first.shape == original.shape  # the photo's own size
    # outside the centre square the photo is untouched; inside, the animated face
    assert np.array_equal(first[:, :10], original[:, :10]) and np.array_equal(first[:, -10:], original[:, -10:])
    assert not np.array_equal(first[:, 20:40], original[:, 20:40])


@needs_dlib
def test_align_astronaut(tmp_path, capsys):
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    out, geometry = tmp_path / "aligned.png", tmp_path / "aligned.json"
    assert main(["align", str(photo), "--out", str(out), "--size", "96", "--save-transform", str(geometry)]) == 0
    assert "96x96 crop of face 0" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == (96, 96)
    g = json.loads(geometry.read_text())
    assert g["output_size"] == 96 and g["source_size"] == [512, 512] and np.array(g["quad"]).shape == (4, 2)
    assert np.array(g["aligned_to_source"]).shape == (3, 3) and np.array(g["landmarks"]).shape == (68, 2)


@needs_dlib
def test_align_size_defaults_to_the_bundle(bundle, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    assert main(["align", str(photo), "-o", str(tmp_path / "a.png"), "-b", str(bundle)]) == 0
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (16, 16)


def _bad(tmp_path, case):
    if case == "not-an-image":
        path = tmp_path / "face.jpg"
        path.write_text("not an image")
    elif case == "blank":
        path = tmp_path / "blank.png"
        Image.new("RGB", (200, 200), (128, 128, 128)).save(path)
    else:
        import skimage.data

        path = tmp_path / "astronaut.png"
        Image.fromarray(skimage.data.astronaut()).save(path)
    return path


@pytest.mark.parametrize("command", ["align", "invert", "animate"])
@pytest.mark.parametrize("case,extra,needle", [
    ("not-an-image", [], "not an image"),
    pytest.param("blank", [], "no face found", marks=needs_dlib),
    pytest.param("astronaut", ["--face-index", "7"], "--face-index 7 is out of range", marks=needs_dlib),
])
def test_bad_photos(bundle, tmp_path, capsys, command, case, extra, needle):
    photo = _bad(tmp_path, case)
    out = tmp_path / {"align": "out.png", "invert": "out.safetensors", "animate": "out.gif"}[command]
    args = [command, str(photo), "-o", str(out), *extra]
    if command != "align":
        args += ["-b", str(bundle)]
    if command == "animate":
        args += ["-p", "smiling"]
    before = set(tmp_path.iterdir())
    assert main(args) == 2
    assert needle in _err(capsys)
    assert set(tmp_path.iterdir()) == before  # nothing written, no temporary left


@needs_dlib
def test_bundle_alignment_center_crop_needs_no_face_detection(bundle, tmp_path, capsys):
    """A bundle that states ``alignment: center-crop`` (ToonFace) takes the centred square of any image: no dlib
    detection (which finds no cartoon face) and no refusal; an FFHQ-aligned bundle refuses an image without a face."""
    toon = tmp_path / "centered"
    shutil.copytree(bundle, toon)
    info = json.loads((toon / "bundle.json").read_text())
    (toon / "bundle.json").write_text(json.dumps({**info, "alignment": "center-crop"}))
    blank = _bad(tmp_path, "blank")
    out = tmp_path / "x.gif"
    assert main(["animate", str(blank), "-b", str(toon), "-p", "smiling", "-n", "2", "--invert-steps", "2",
                 "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["animate", str(blank), "-b", str(bundle), "-p", "smiling", "-o", str(tmp_path / "y.gif")]) == 2
    assert "no face found" in _err(capsys) and not (tmp_path / "y.gif").exists()


def test_missing_dlib_says_how_to_install(bundle, crop, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib → ImportError
    assert main(["align", str(crop), "-o", str(tmp_path / "a.png")]) == 2
    assert 'pip install "faceanim[align]"' in _err(capsys)
    assert not (tmp_path / "a.png").exists()


def test_bad_encoders_and_options(bundle, crop, tmp_path, capsys):
    base = ["invert", str(crop), "--no-align", "-b", str(bundle), "-o", str(tmp_path / "x.safetensors")]
    truncated = tmp_path / "e4e.pt"
    torch.save({"state_dict": {"encoder.w": torch.zeros(1000)}, "opts": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:600])
    bad = [
        (["--encoder", str(truncated)], "truncated"),
        (["--encoder", str(bundle / "generator")], "expected 'e4e-encoder'"),
        (["--encoder", str(tmp_path / "nope.pt")], "no such file"),
        (["--method", "e4e"], "needs an encoder"),
        (["--steps", "0"], "--steps must be between"),
        (["--reconstruction", str(tmp_path / "r.bmp")], "--reconstruction"),
    ]
    for extra, needle in bad:
        assert main([*base, *extra]) == 2, extra
        assert needle in _err(capsys), extra
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e4e.pt"]
    assert main(["animate", "-b", str(bundle), "-p", "smiling", "--paste-back", "-o", str(tmp_path / "x.gif")]) == 2
    assert "give IMAGE" in _err(capsys)
