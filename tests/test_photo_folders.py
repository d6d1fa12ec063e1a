"""Issue 17 points 3 and 4: `align` and `invert` on folders (resumable, failures skipped and listed, one name → code
file that training reads), `invert -g DIR --encoder e4e.pt` without a bundle, and the official e4e file going into a
bundle (`convert`, `bundle create --encoder FILE`, `animate --encoder`).

Files are written here in the official layouts with random weights: a rosinality generator (16 px, w 512, so that
an e4e encoder fits it) and an e4e ``.pt`` for it (test_e4e.write_official_e4e, with that generator as its decoder).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.cli.main import main
from faceanim.data.latents import ImageLatentDataset, load_latents, load_latents_metadata

import rosinality_reference as ref
from test_e4e import write_official_e4e
from test_photo_cli import _err, needs_dlib
from tiny_models import CLIP_RN, CLIP_VIT

CHANNELS = {4: 32, 8: 32, 16: 16}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A rosinality 16 px generator (.pt and converted), an official-layout e4e .pt for it, its converted encoder."""
    root = tmp_path_factory.mktemp("recipe")
    g = ref.make_state(16, 512, 2, CHANNELS, seed=3)
    torch.save({"g_ema": g, "latent_avg": torch.randn(512) * 0.1}, root / "gen16.pt")
    write_official_e4e(root / "e4e16.pt", 16, seed=0, decoder=g)
    assert main(["convert", str(root / "gen16.pt"), str(root / "gen16")]) == 0
    return root


@pytest.fixture()
def crops(tmp_path):
    """Two 'already aligned' crops and a file that is not an image."""
    folder = tmp_path / "crops"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.jpg"):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(folder / name)
    (folder / "c.png").write_text("not an image")
    return folder


def _expected_code(e4e_path, image_path) -> torch.Tensor:
    """Independently: the centered square at 256 px → the official-layout encoder → + latent_avg."""
    from faceanim.align.prepare import prepare_face
    from faceanim.inversion import load_e4e
    from faceanim.utils.images import image_to_tensor, load_image

    face = prepare_face(load_image(image_path), str(image_path), 256, no_align=True)
    with torch.no_grad():
        return load_e4e(e4e_path)(image_to_tensor(face.image))[0]


def test_invert_folder_with_generator_and_e4e_file_without_bundle(files, crops, tmp_path, capsys):
    out = tmp_path / "latents.safetensors"
    args = ["invert", str(crops), "-g", str(files / "gen16"), "--encoder", str(files / "e4e16.pt"), "--no-align",
            "-o", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "inverted 2 of 3 images" in text and "1 failed" in text and "failed c.png:" in text
    codes = load_latents(out)
    assert sorted(codes) == ["a", "b"] and all(c.shape == (6, 512) for c in codes.values())
    assert torch.allclose(codes["a"], _expected_code(files / "e4e16.pt", crops / "a.jpg"), atol=1e-5)
    assert not torch.equal(codes["a"], codes["b"])
    meta = load_latents_metadata(out)
    assert meta["method"] == "e4e" and meta["bundle"] == "gen16" and meta["format"] == "faceanim.latents-by-name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crops", "latents.safetensors"]  # no reconstructions

    # what training reads: configs/ffhq_paper.yaml's images + latents
    data = ImageLatentDataset(crops, out, image_size=16, num_ws=6, w_dim=512)
    assert len(data) == 2 and torch.equal(data[0]["w_inv"], codes["a"])

    # resumed: done names skipped, a new photo inverted, its reconstruction written on request
    Image.new("RGB", (20, 20), (200, 30, 30)).save(crops / "d.png")
    assert main([*args, "--reconstruction", str(tmp_path / "recon")]) == 0
    text = capsys.readouterr().out
    assert "inverted 1 of 4 images" in text and "2 already done" in text
    again = load_latents(out)
    assert sorted(again) == ["a", "b", "d"] and torch.equal(again["a"], codes["a"])
    assert sorted(p.name for p in (tmp_path / "recon").iterdir()) == ["d.png"]


def test_invert_folder_where_every_face_fails_exits_non_zero(files, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.png").write_text("no")
    out = tmp_path / "codes.safetensors"
    assert main(["invert", str(folder), "-g", str(files / "gen16"), "--encoder", str(files / "e4e16.pt"),
                 "--no-align", "-o", str(out)]) == 2
    assert "no image inverted: all 1 failed" in _err(capsys) and not out.exists()


def test_mismatch_and_bundle_flag_errors_are_one_line_before_any_work(files, crops, tmp_path, capsys):
    e4e1024 = write_official_e4e(tmp_path / "e4e_ffhq_encode.pt", 1024, hollow_encoder=True)
    out = tmp_path / "x.safetensors"
    assert main(["invert", str(crops), "-g", str(files / "gen16"), "--encoder", str(e4e1024), "-o", str(out)]) == 2
    assert "writes 18 W+ codes but the generator of gen16 takes 6" in _err(capsys)
    assert main(["invert", str(crops / "a.jpg"), "-b", str(files / "gen16"), "-o", str(out)]) == 2
    err = _err(capsys)
    assert "is a converted generator" in err and "-g/--generator" in err
    assert main(["invert", str(crops / "a.jpg"), "-g", str(files / "gen16"), "-b", "toonface", "-o", str(out)]) == 2
    assert "not both" in _err(capsys)
    assert not out.exists()


@needs_dlib
def test_align_folder_resumes_and_lists_failures(tmp_path, capsys):
    skimage_data = pytest.importorskip("skimage.data")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(photos / "astronaut.jpg")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(photos / "blank.png")
    (photos / "broken.jpg").write_text("not an image")
    out = tmp_path / "aligned"
    args = ["align", str(photos), "-o", str(out), "--size", "64", "--save-transform", str(tmp_path / "geometry")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "aligned 1 of 3 images" in text and "failed blank.png: no face found" in text and "failed broken.jpg" in text
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png"]
    assert json.loads((tmp_path / "geometry" / "astronaut.json").read_text())["output_size"] == 64
    with Image.open(out / "astronaut.png") as im:
        assert im.size == (64, 64)
    before = (out / "astronaut.png").stat().st_mtime_ns
    assert main(args) == 0
    assert "aligned 0 of 3 images" in capsys.readouterr().out and (out / "astronaut.png").stat().st_mtime_ns == before
    (photos / "astronaut.jpg").unlink()
    shutil.rmtree(out)
    assert main(args) == 2
    assert "no image aligned: all 2 failed" in _err(capsys)


# -- the official e4e file into a bundle ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def motion(files):
    """An image-mode motion model for the 16 px, w-512 generator (untrained, with some motion)."""
    from faceanim.encoders.clip import CLIPEncoder
    from faceanim.motion import LanguageGuidedAnimator, MotionConfig

    torch.manual_seed(1)
    cfg = MotionConfig(z_dim=32, h_dim=16, num_ws=6, w_dim=512, mapper_hidden=32, mode="image")
    A = LanguageGuidedAnimator(cfg, CLIPEncoder.from_config(CLIP_RN))
    with torch.no_grad():
        for p in A.motion_mapper.layers[-1].parameters():
            p.normal_(0, 0.05)
    A.save_pretrained(files / "motion")
    CLIPEncoder.from_config(CLIP_VIT).save_pretrained(files / "loss_clip")
    return files / "motion"


def test_convert_e4e_file_writes_its_encoder_or_its_generator(files, tmp_path, capsys):
    from faceanim.inversion import E4EInverter, load_e4e
    from faceanim.models.stylegan2 import Generator

    assert main(["convert", str(files / "e4e16.pt"), str(tmp_path / "enc")]) == 0
    text = capsys.readouterr().out
    assert "converted the e4e encoder of e4e checkpoint" in text and "W+ 6x512" in text
    native, official = E4EInverter.from_pretrained(tmp_path / "enc"), load_e4e(files / "e4e16.pt")
    for k, v in official.state_dict().items():
        assert torch.equal(native.state_dict()[k], v), k
    assert main(["convert", str(files / "e4e16.pt"), str(tmp_path / "gen"), "--part", "generator"]) == 0
    a, b = Generator.from_pretrained(tmp_path / "gen"), Generator.from_pretrained(files / "gen16")
    for k, v in b.state_dict().items():
        if k != "mapping.w_avg":  # e4e keeps latent_avg per layer, not the generator's
            assert torch.equal(a.state_dict()[k], v), k
    assert main(["convert", str(files / "gen16.pt"), str(tmp_path / "x"), "--part", "encoder"]) == 2
    assert "holds no e4e encoder" in _err(capsys)


def test_e4e_file_into_a_bundle_and_animate_encoder(files, motion, crops, tmp_path, capsys):
    bundle = tmp_path / "ffhq16"
    assert main(["bundle", "create", str(bundle), "--generator", str(files / "gen16.pt"), "--motion", str(motion),
                 "--encoder", str(files / "e4e16.pt"), "--loss-clip", str(files / "loss_clip")]) == 0
    text = capsys.readouterr().out
    assert "e4e encoder (IR-SE-50) for a 16 px generator" in text and "converted the e4e encoder" in text
    assert "loss CLIP: CLIP tiny-vit, GELU (from loss_clip/config.json)" in text
    photo = crops / "a.jpg"
    assert main(["animate", str(photo), "--no-align", "-b", str(bundle), "-p", "smiling", "-n", "2",
                 "-o", str(tmp_path / "a.gif")]) == 0
    assert "inverted with e4e" in capsys.readouterr().out

    plain = tmp_path / "plain"  # the same bundle without its encoder: --encoder provides one
    shutil.copytree(bundle, plain)
    shutil.rmtree(plain / "encoder")
    info = json.loads((plain / "bundle.json").read_text())
    info["components"].pop("encoder")
    (plain / "bundle.json").write_text(json.dumps(info))
    for enc in (files / "e4e16.pt", bundle / "encoder"):
        assert main(["animate", str(photo), "--no-align", "-b", str(plain), "-p", "smiling", "-n", "2",
                     "--encoder", str(enc), "--save-latents", str(tmp_path / "l.safetensors"),
                     "-o", str(tmp_path / "b.gif")]) == 0
        assert "inverted with e4e" in capsys.readouterr().out
    from faceanim.data.latents import load_latents_file

    first = load_latents_file(tmp_path / "l.safetensors")[0]
    assert first.shape == (6, 512)

    e4e1024 = write_official_e4e(tmp_path / "e4e_ffhq_encode.pt", 1024, hollow_encoder=True)
    assert main(["animate", str(photo), "--no-align", "-b", str(plain), "-p", "smiling", "--encoder", str(e4e1024),
                 "-o", str(tmp_path / "c.gif")]) == 2
    assert "writes 18 W+ codes but the generator of" in _err(capsys) and not (tmp_path / "c.gif").exists()
    assert main(["animate", "-b", str(plain), "-p", "smiling", "--encoder", str(e4e1024),
                 "-o", str(tmp_path / "c.gif")]) == 2
    assert "give IMAGE" in _err(capsys)
    assert main(["bundle", "create", str(tmp_path / "bad"), "--generator", str(files / "gen16"), "--motion",
                 str(motion), "--encoder", str(e4e1024)]) == 2
    assert "writes 18 W+ codes but the generator takes 6" in _err(capsys) and not (tmp_path / "bad").exists()


def test_e4e_without_reconstruction_renders_nothing(files, monkeypatch):
    """A folder run without --reconstruction skips G(w) (≈5 s per 1024 px face on CPU)."""
    import math

    from faceanim.inversion import Inverter
    from faceanim.models.stylegan2 import Generator

    G = Generator.from_pretrained(files / "gen16")
    code = torch.randn(1, G.num_ws, G.w_dim)
    inverter = Inverter(G, encoder=lambda images: code)
    calls = []
    monkeypatch.setattr(G.synthesis, "forward", lambda *a, **k: calls.append(1))
    result = inverter.invert(torch.zeros(1, 3, 16, 16), reconstruct=False)
    assert calls == [] and result.reconstruction is None and math.isnan(result.mse)
    assert torch.equal(result.w_plus, code[0])
