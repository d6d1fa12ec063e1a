"""CLIPEncoder and prompt templates, on tiny random CLIPs saved in the formats users bring.

References are computed directly with open_clip/torch/torchvision on the same weights: the
original open_clip module fed by hand-preprocessed images and open_clip-tokenized sentences,
and open_clip's own OpenAI-archive loader.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import warnings
from pathlib import Path

import open_clip
import pytest
import torch
import torchvision.transforms.functional as TF
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from safetensors.torch import save_file

from faceanim.encoders import CLIPConfig, CLIPEncoder
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.data.prompts import TEMPLATES, apply_template

CONTEXT = 16
# OpenAI's layout: text heads = width // 64, ModifiedResNet heads = width * 32 // 64, ViT heads = width // 64.
TEXT_CFG = {"context_length": CONTEXT, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}
VISION_CFGS = {
    "rn": {"layers": [1, 1, 1, 1], "width": 16, "patch_size": None, "image_size": 64},
    "vit": {"layers": 1, "width": 64, "patch_size": 16, "image_size": 32},
}
MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def tiny_config(kind: str = "rn", **kw) -> CLIPConfig:
    return CLIPConfig(embed_dim=32, vision_cfg=VISION_CFGS[kind], text_cfg=TEXT_CFG, name=f"tiny-{kind}", quick_gelu=True, **kw)


def random_open_clip(kind: str, seed: int, fp16_exact: bool) -> open_clip.model.CLIP:
    """A tiny open_clip CLIP with every tensor randomized (BN statistics too), in eval mode.

    ``fp16_exact`` rounds the weights to float16 values, as in OpenAI's archives, so that
    open_clip's loader (which casts to float16) reproduces them exactly.
    """
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(embed_dim=32, vision_cfg=VISION_CFGS[kind], text_cfg=TEXT_CFG, quick_gelu=True).eval()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand_like(t))
            else:
                t.add_(0.05 * torch.randn_like(t))
            if fp16_exact:
                t.copy_(t.half().float())
    return model


def save_openai_archive(model: open_clip.model.CLIP, path: Path, context_length: int = CONTEXT) -> Path:
    """Save ``model`` as OpenAI ships CLIP: a TorchScript archive whose state dict uses OpenAI's key
    names (open_clip's ``CLIP`` keeps them) plus the integer entries input_resolution, context_length,
    vocab_size, and no attn_mask buffer."""
    archive = copy.deepcopy(model)
    archive._buffers.pop("attn_mask")
    archive._non_persistent_buffers_set.discard("attn_mask")
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    for key, value in {"input_resolution": size, "context_length": context_length, "vocab_size": 49408}.items():
        archive.__dict__.pop(key, None)
        archive.register_buffer(key, torch.tensor(value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation and tracer warnings
        traced = torch.jit.trace_module(archive, {"encode_image": (torch.zeros(1, 3, size, size),)},
                                        check_trace=False)  # the check re-traces: slow, and flaky on ViTs
        torch.jit.save(traced, str(path))
    return path


def reference_image_features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``images`` [B, 3, S, S] in [-1, 1], already at the model's size → unit-norm features [B, D]."""
    return model.encode_image(((images + 1) / 2 - MEAN) / STD, normalize=True)


def reference_text_features(model: torch.nn.Module, sentences: list[str]) -> torch.Tensor:
    return model.encode_text(open_clip.tokenize(sentences, context_length=CONTEXT), normalize=True)


@pytest.fixture(scope="module", params=["rn", "vit"])
def archive(request, tmp_path_factory):
    """(kind, original open_clip model, path of its OpenAI TorchScript archive)."""
    model = random_open_clip(request.param, seed=1, fp16_exact=True)
    path = save_openai_archive(model, tmp_path_factory.mktemp("openai") / f"tiny-{request.param}.pt")
    return request.param, model, path


@pytest.fixture(scope="module")
def encoder() -> CLIPEncoder:
    enc = CLIPEncoder.from_config(tiny_config("rn"))
    enc.model.load_state_dict(random_open_clip("rn", seed=2, fp16_exact=False).state_dict())
    return enc


# ---------------------------------------------------------------------------- OpenAI archives
@torch.no_grad()
def test_openai_archive_matches_references(archive):
    kind, model, path = archive
    enc = CLIPEncoder.from_pretrained(path)
    assert enc.config == dataclasses.replace(tiny_config(kind), name=path.stem)
    assert enc.origin == f"CLIP {path.stem}, QuickGELU (from the OpenAI archive: its QuickGELU modules)"
    assert (enc.embed_dim, enc.image_size, enc.context_length) == (32, VISION_CFGS[kind]["image_size"], CONTEXT)

    torch.manual_seed(0)
    s = enc.image_size
    images = torch.rand(2, 3, s, s) * 2 - 1
    prompts, sentences = ["smiling", "closing eyes"], ["The person is smiling.", "The person is closing eyes."]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        open_clip_loaded = open_clip.load_openai_model(str(path), device="cpu")
    img, txt = enc.encode_image(images), enc.encode_text(prompts, template="person")
    assert img.shape == txt.shape == (2, 32)
    for ref in (model, open_clip_loaded):
        assert torch.allclose(img, reference_image_features(ref, images), atol=1e-5)
        assert torch.allclose(txt, reference_text_features(ref, sentences), atol=1e-5)
    raw = enc.encode_image(images, normalize=False)
    assert torch.allclose(raw, model.encode_image(((images + 1) / 2 - MEAN) / STD), atol=1e-5)


def test_bare_name_found_in_cache_dir_and_faceanim_home(archive, tmp_path, monkeypatch):
    kind, model, path = archive
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "tiny.pt").write_bytes(path.read_bytes())
    a = CLIPEncoder.from_pretrained("tiny", cache_dir=tmp_path / "clip")
    monkeypatch.setenv("FACEANIM_HOME", str(tmp_path))
    b = CLIPEncoder.from_pretrained("tiny")
    assert a.config == b.config and a.config.name == "tiny"
    for k, v in model.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v), k


def test_arch_argument(archive, tmp_path):
    """With arch=, open_clip's named config is used; OpenAI archives always get QuickGELU; a wrong arch fails cleanly."""
    kind, model, path = archive
    other = "vit" if kind == "rn" else "rn"
    for k in (kind, other):  # register the tiny architectures with open_clip under test-only names
        cfg = {"embed_dim": 32, "vision_cfg": VISION_CFGS[k], "text_cfg": TEXT_CFG}
        (tmp_path / f"faceanim-test-{k}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    enc = CLIPEncoder.from_pretrained(path, arch=f"faceanim-test-{kind}")
    assert enc.config.name == f"faceanim-test-{kind}" and enc.config.quick_gelu
    images = torch.rand(1, 3, enc.image_size, enc.image_size) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(enc.encode_image(images), reference_image_features(model, images), atol=1e-5)
    with pytest.raises(CheckpointError) as exc:
        CLIPEncoder.from_pretrained(path, arch=f"faceanim-test-{other}")
    assert "do not match the CLIP architecture" in one_line(exc)


# ---------------------------------------------------------------------------- native format, state dicts
@torch.no_grad()
def test_native_round_trip(encoder, tmp_path):
    folder = encoder.save_pretrained(tmp_path / "clip")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["kind"] == "clip"
    loaded = CLIPEncoder.from_pretrained(folder)
    assert loaded.config == encoder.config
    for k, v in encoder.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(loaded.encode_image(images), encoder.encode_image(images))
    assert torch.equal(loaded.encode_text(["smiling"]), encoder.encode_text(["smiling"]))


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_state_dict_in_openai_layout_loads_in_fp32(encoder, tmp_path, fmt):
    """Plain state dicts (DDP prefix, {"state_dict": ...} wrapper) keep full fp32 precision."""
    sd = encoder.model.state_dict()
    if fmt == "pt":
        path = tmp_path / "finetuned.pt"
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    else:
        path = tmp_path / "finetuned.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    with pytest.raises(CheckpointError) as exc:  # nothing in it tells GELU from QuickGELU
        CLIPEncoder.from_pretrained(path)
    assert "does not tell its CLIP activation" in one_line(exc) and "--clip-arch" in str(exc.value)
    loaded = CLIPEncoder.from_pretrained(path, arch="quickgelu")
    assert loaded.config.vision_cfg == VISION_CFGS["rn"] and loaded.config.quick_gelu
    assert loaded.origin == "CLIP finetuned, QuickGELU (as asked; architecture read from the weights)"
    for k, v in sd.items():
        assert torch.equal(loaded.model.state_dict()[k], v), k


def _gelu_twin(model: open_clip.model.CLIP, kind: str) -> open_clip.model.CLIP:
    """The same weights in a GELU CLIP (what LAION-trained open_clip checkpoints use)."""
    twin = open_clip.model.CLIP(embed_dim=32, vision_cfg=VISION_CFGS[kind], text_cfg=TEXT_CFG, quick_gelu=False)
    twin.load_state_dict(model.state_dict())
    return twin.eval()


@torch.no_grad()
def test_openai_state_dict_named_rn50_gets_quickgelu(tmp_path):
    """Issue 17 point 10: an OpenAI-layout state dict found by the name RN50 (which open_clip's config calls GELU)
    gets QuickGELU, told by the file's OpenAI entries, and says so."""
    model = random_open_clip("rn", seed=3, fp16_exact=False)
    sd = {**model.state_dict(), "input_resolution": torch.tensor(64), "context_length": torch.tensor(CONTEXT),
          "vocab_size": torch.tensor(49408)}
    (tmp_path / "clip").mkdir()
    torch.save(sd, tmp_path / "clip" / "RN50.pt")
    enc = CLIPEncoder.from_pretrained("RN50", cache_dir=tmp_path / "clip")
    assert enc.config.quick_gelu and enc.config.vision_cfg == VISION_CFGS["rn"]
    assert enc.origin == ("CLIP RN50, QuickGELU (from the OpenAI state dict: its input_resolution/context_length/"
                          "vocab_size entries)")
    sentences = ["The person is smiling.", "The person is crying."]
    ours = enc.encode_text(sentences, template=None)  # the text transformer is where the activation acts
    assert torch.allclose(ours, reference_text_features(model, sentences), atol=1e-5)
    assert not torch.allclose(ours, reference_text_features(_gelu_twin(model, "rn"), sentences), atol=1e-5)


@torch.no_grad()
def test_open_clip_checkpoint_with_explicit_arch_gets_what_was_asked(tmp_path):
    """An open_clip checkpoint (no OpenAI entries) given by path: arch decides, by name or by activation alone."""
    model = random_open_clip("vit", seed=4, fp16_exact=False)
    gelu = _gelu_twin(model, "vit")
    path = tmp_path / "laion.pt"
    torch.save(model.state_dict(), path)
    for name, quick in (("faceanim-gelu-vit", False), ("faceanim-gelu-vit-quickgelu", True)):
        cfg = {"embed_dim": 32, "vision_cfg": VISION_CFGS["vit"], "text_cfg": TEXT_CFG, **({"quick_gelu": True} if quick else {})}
        (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    for arch, reference, label in (("faceanim-gelu-vit", gelu, "GELU"), ("gelu", gelu, "GELU"),
                                   ("faceanim-gelu-vit-quickgelu", model, "QuickGELU"), ("quickgelu", model, "QuickGELU")):
        enc = CLIPEncoder.from_pretrained(path, arch=arch)
        assert enc.config.quick_gelu == (label == "QuickGELU") and f", {label} (as asked" in enc.origin, enc.origin
        assert torch.allclose(enc.encode_image(images), reference_image_features(reference, images), atol=1e-5), arch
    spec = CLIPEncoder.from_spec({"path": str(path), "arch": "gelu"})  # the YAML form
    assert not spec.config.quick_gelu
    with pytest.raises(FaceanimError, match="unknown keys"):
        CLIPEncoder.from_spec({"path": str(path), "activation": "gelu"})


def test_custom_config_build_and_open_clip_configs():
    cfg = {
        "embed_dim": 24,
        "vision_cfg": {"layers": 1, "width": 64, "patch_size": 8, "image_size": 16},
        "text_cfg": {"context_length": 8, "width": 64, "heads": 2, "layers": 1},
        "name": "ours",
    }
    enc = CLIPEncoder.from_config(cfg)
    assert (enc.embed_dim, enc.image_size, enc.context_length) == (24, 16, 8)
    assert enc.encode_image(torch.zeros(3, 3, 20, 16)).shape == (3, 24)
    assert enc.encode_text(["smiling"]).shape == (1, 24)

    vit = CLIPConfig.from_open_clip("ViT-B/32")  # config only: no weights built
    assert (vit.name, vit.embed_dim, vit.image_size, vit.context_length) == ("ViT-B-32", 512, 224, 77)
    assert CLIPConfig.from_open_clip("RN50").embed_dim == 1024
    with pytest.raises(CheckpointError, match="unknown fields"):
        CLIPConfig.from_dict({**cfg, "vision_cfg": {"layerz": 1}})
    with pytest.raises(CheckpointError, match="invalid CLIP config"):
        CLIPConfig.from_dict({**cfg, "colour": "red"})
    with pytest.raises(CheckpointError, match="unknown CLIP architecture"):
        CLIPConfig.from_open_clip("RN51")


def test_two_encoders_coexist_and_move(encoder):
    """An RN-style and a ViT-style encoder side by side (conditioning CLIP vs loss CLIP)."""
    vit = CLIPEncoder.from_config(tiny_config("vit"))
    images = torch.rand(1, 3, 40, 40) * 2 - 1
    assert encoder.encode_image(images).shape == vit.encode_image(images).shape == (1, 32)
    vit64 = copy.deepcopy(vit).to(torch.float64).to("cpu")
    assert vit64.device == torch.device("cpu") and vit64.mean.dtype == torch.float64
    assert vit64.encode_image(images).dtype == torch.float64
    assert encoder.mean.dtype == torch.float32


# ---------------------------------------------------------------------------- image preprocessing
@torch.no_grad()
@pytest.mark.parametrize("h, w", [(51, 37), (37, 51), (131, 97), (64, 90)])
def test_preprocessing_matches_torchvision(encoder, h, w):
    """Odd sizes, up- and down-scaling: same as torchvision's Resize(bicubic, antialias) + CenterCrop + Normalize."""
    torch.manual_seed(h * w)
    images = torch.rand(2, 3, h, w) * 2 - 1
    x = TF.resize((images + 1) / 2, 64, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    x = TF.normalize(TF.center_crop(x, [64, 64]), OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    assert torch.allclose(encoder.preprocess(images), x, atol=1e-5)
    assert torch.allclose(encoder.encode_image(images), encoder.model.encode_image(x, normalize=True), atol=1e-5)


def test_gradient_reaches_the_image(encoder):
    images = (torch.rand(2, 3, 50, 70) * 2 - 1).requires_grad_(True)
    with torch.no_grad():
        target = encoder.encode_text(["smiling", "surprised"], template="person")
    loss = 1 - (encoder.encode_image(images) * target).sum(-1).mean()
    loss.backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- prompts
@pytest.mark.parametrize(
    "prompt, template, expected",
    [
        ("smiling", "person", "The person is smiling."),
        ("  closing eyes ", "person", "The person is closing eyes."),
        ("smiling", "cartoon_girl", "The cartoon girl is smiling."),
        ("barking", "dog", "The dog is barking."),
        ("Smiling widely", "person", "The person is Smiling widely."),  # capital but only 2 words
        ("She opens her mouth", "person", "She opens her mouth"),        # capital + ≥ 3 words
        ("opening mouth.", "person", "opening mouth."),                   # ends with '.'
        ("a person smiling", "person", "a person smiling"),               # names the subject
        ("the CARTOON GIRL smiles", "cartoon_girl", "the CARTOON GIRL smiles"),
        ("personal smile", "person", "The person is personal smile."),    # whole words only
        ("smiling", "A face {}", "A face smiling"),                       # custom format string
        ("smiling", None, "smiling"),
    ],
)
def test_apply_template(prompt, template, expected):
    assert apply_template(prompt, template) == expected


def test_template_errors_and_table():
    assert all(t.count("{}") == 1 for t in TEMPLATES.values())
    with pytest.raises(FaceanimError, match="unknown prompt template"):
        apply_template("smiling", "robot")
    for bad in ("", "   \n"):
        with pytest.raises(FaceanimError, match="empty prompt"):
            apply_template(bad, "person")


# ---------------------------------------------------------------------------- errors
def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_truncated_and_garbage_files(archive, tmp_path):
    _, _, path = archive
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(random.Random(0).randbytes(4096))
    for bad in (cut, junk):
        with pytest.raises(CheckpointError) as exc:
            CLIPEncoder.from_pretrained(bad)
        assert "not a readable CLIP checkpoint" in one_line(exc)
    with pytest.raises(CheckpointError, match="not found"):
        CLIPEncoder.from_pretrained(tmp_path / "absent.pt")


def test_safetensors_that_is_not_clip(tmp_path):
    path = tmp_path / "generator.safetensors"
    save_file({"style.1.weight": torch.zeros(4, 4), "conv1.bias": torch.zeros(4)}, str(path))
    with pytest.raises(CheckpointError) as exc:
        CLIPEncoder.from_pretrained(path)
    assert "not a CLIP in OpenAI's layout" in one_line(exc) and "arch=" in str(exc.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError) as exc:
        CLIPEncoder.from_pretrained(broken)
    one_line(exc)


def test_mismatched_native_folder(encoder, tmp_path):
    folder = encoder.save_pretrained(tmp_path / "clip")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["embed_dim"] = 16
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as exc:
        CLIPEncoder.from_pretrained(folder)
    assert "do not match the CLIP architecture" in one_line(exc) and "wrong shape" in str(exc.value)


def test_missing_cache_file_message(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEANIM_HOME", str(tmp_path / "home"))
    with pytest.raises(CheckpointError) as exc:
        CLIPEncoder.from_pretrained("ViT-B/32")
    msg = one_line(exc)
    assert "ViT-B-32.pt" in msg and str(tmp_path / "home" / "clip") in msg and "never downloads" in msg


def test_empty_and_over_long_prompts(encoder):
    for bad in ([""], ["smiling", "  "], []):
        with pytest.raises(FaceanimError):
            encoder.encode_text(bad)
    encoder.encode_text(["a " * (CONTEXT - 2)])  # exactly at the limit: start + 14 words + end
    with pytest.raises(FaceanimError) as exc:
        encoder.encode_text(["a " * (CONTEXT - 1)])
    assert f"{CONTEXT + 1} tokens, limit {CONTEXT}" in one_line(exc)
    with pytest.raises(FaceanimError, match=r"\d+ tokens, limit 16"):
        encoder.encode_text(["opening the mouth wide and then slowly closing both eyes"], template="cartoon_girl")


@pytest.mark.parametrize("kind, size, key", [("rn", 128, "visual.attnpool.positional_embedding"),
                                             ("vit", 64, "visual.positional_embedding")])
def test_with_image_size_keeps_weights_and_resamples_the_grid(kind, size, key, tmp_path):
    torch.manual_seed(0)
    enc = CLIPEncoder.from_config(tiny_config(kind))
    with torch.no_grad():  # a grid embedding that is constant along each row resamples to the same values
        pos = enc.model.state_dict()[key]
        g = int((pos.shape[0] - 1) ** 0.5)
        rows = torch.randn(g, 1, pos.shape[1]).expand(g, g, -1).reshape(g * g, -1)
        pos[1:] = rows
    big = enc.with_image_size(size)
    assert big.image_size == size and big.config.vision_cfg["image_size"] == size
    assert enc.image_size == VISION_CFGS[kind]["image_size"]  # the original is untouched
    old, new = enc.model.state_dict(), big.model.state_dict()
    assert set(old) == set(new)
    for name in old:
        if name != key:
            assert torch.equal(old[name], new[name]), name
    n = int((new[key].shape[0] - 1) ** 0.5)
    assert n == 2 * g and torch.equal(new[key][0], old[key][0])
    grid = new[key][1:].reshape(n, n, -1)
    assert torch.allclose(grid, grid[:, :1].expand_as(grid), atol=1e-5)  # still constant along each row
    assert torch.allclose(grid[0, 0], old[key][1], atol=0.35 * old[key][1:].abs().max())
    assert torch.equal(big.encode_text(["smiling"]), enc.encode_text(["smiling"]))
    assert big.encode_image(torch.zeros(2, 3, size, size)).shape == (2, 32)
    big.save_pretrained(tmp_path / "big")
    again = CLIPEncoder.from_pretrained(tmp_path / "big")
    assert again.image_size == size and torch.equal(again.model.state_dict()[key], new[key])
