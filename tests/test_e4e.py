"""e4e encoder: official checkpoint layout → our module, checked against a functional reference forward.

The official layout (omertov/encoder4editing: models/encoders/psp_encoders.py, helpers.py,
models/psp.py, utils/model_utils.py, training/coach.py) is rebuilt here by hand as a spec — key
names and shapes — without using our module, so a naming or shape slip in faceanim shows up.
IR-SE-50 with a 1024px generator is 267 M parameters; the big fixture is built once per module.
"""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from faceanim.errors import CheckpointError
from faceanim.inversion import E4EConfig, E4EInverter, Encoder4Editing, load_e4e

STAGES = [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)]   # (in, depth, units) of IR-50


def official_spec(stylegan_size: int = 1024) -> dict[str, tuple[int, ...]]:
    """Key → shape of ``Encoder4Editing(50, 'ir_se', opts).state_dict()`` in the official code."""
    spec: dict[str, tuple[int, ...]] = {}

    def bn(p, c):
        spec.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,),
                     f"{p}.running_var": (c,), f"{p}.num_batches_tracked": ()})

    spec["input_layer.0.weight"] = (64, 3, 3, 3)
    bn("input_layer.1", 64)
    spec["input_layer.2.weight"] = (64,)
    u = 0
    for cin, depth, units in STAGES:
        for k in range(units):
            i = cin if k == 0 else depth
            p = f"body.{u}"
            if i != depth:
                spec[f"{p}.shortcut_layer.0.weight"] = (depth, i, 1, 1)
                bn(f"{p}.shortcut_layer.1", depth)
            bn(f"{p}.res_layer.0", i)
            spec[f"{p}.res_layer.1.weight"] = (depth, i, 3, 3)
            spec[f"{p}.res_layer.2.weight"] = (depth,)
            spec[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
            bn(f"{p}.res_layer.4", depth)
            spec[f"{p}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            spec[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
            u += 1
    n_styles = 2 * int(math.log2(stylegan_size)) - 2
    for s in range(n_styles):
        spatial = 16 if s < 3 else 32 if s < 7 else 64
        for j in range(int(math.log2(spatial))):
            spec[f"styles.{s}.convs.{2 * j}.weight"] = (512, 512, 3, 3)
            spec[f"styles.{s}.convs.{2 * j}.bias"] = (512,)
        spec[f"styles.{s}.linear.weight"] = (512, 512)
        spec[f"styles.{s}.linear.bias"] = (512,)
    spec["latlayer1.weight"], spec["latlayer1.bias"] = (512, 256, 1, 1), (512,)
    spec["latlayer2.weight"], spec["latlayer2.bias"] = (512, 128, 1, 1), (512,)
    return spec


def random_weights(spec: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but well-scaled weights (activations stay O(1) through the 24 residual units)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in spec.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(("running_mean", "bias")):
            out[k] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:   # BN gamma, PReLU slope
            out[k] = (0.25 if ".2.weight" in k else 1.0) + 0.1 * torch.randn(shape, generator=g)
        elif "linear" in k:     # EqualLinear stores N(0,1) and scales by 1/sqrt(in) at run time
            out[k] = torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            gain = 0.5 if "res_layer.3" in k else 1.0
            out[k] = gain * torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return out


# ---- independent reference: the official forward written functionally over the state dict ----

def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def _unit(x, sd, p, stride):
    if f"{p}.shortcut_layer.0.weight" in sd:
        short = _bn(F.conv2d(x, sd[f"{p}.shortcut_layer.0.weight"], stride=stride), sd, f"{p}.shortcut_layer.1")
    else:
        short = x[:, :, ::stride, ::stride]   # MaxPool2d(1, stride)
    r = _bn(x, sd, f"{p}.res_layer.0")
    r = F.prelu(F.conv2d(r, sd[f"{p}.res_layer.1.weight"], padding=1), sd[f"{p}.res_layer.2.weight"])
    r = _bn(F.conv2d(r, sd[f"{p}.res_layer.3.weight"], stride=stride, padding=1), sd, f"{p}.res_layer.4")
    gate = r.mean(dim=(2, 3), keepdim=True)
    gate = torch.sigmoid(F.conv2d(F.relu(F.conv2d(gate, sd[f"{p}.res_layer.5.fc1.weight"])),
                                  sd[f"{p}.res_layer.5.fc2.weight"]))
    return r * gate + short


def _head(x, sd, s):
    j = 0
    while f"styles.{s}.convs.{j}.weight" in sd:
        x = F.leaky_relu(F.conv2d(x, sd[f"styles.{s}.convs.{j}.weight"], sd[f"styles.{s}.convs.{j}.bias"],
                                  stride=2, padding=1), 0.01)
        j += 2
    x = x.view(-1, 512)
    return F.linear(x, sd[f"styles.{s}.linear.weight"] / math.sqrt(512), sd[f"styles.{s}.linear.bias"])


def reference_e4e(sd: dict, x: torch.Tensor, n_styles: int) -> torch.Tensor:
    h = _bn(F.conv2d(x, sd["input_layer.0.weight"], padding=1), sd, "input_layer.1")
    h = F.prelu(h, sd["input_layer.2.weight"])
    feats = {}
    u = 0
    for _, _, units in STAGES:
        for k in range(units):
            h = _unit(h, sd, f"body.{u}", 2 if k == 0 else 1)
            feats[u] = h
            u += 1
    c1, c2, c3 = feats[6], feats[20], feats[23]
    up = lambda a, b: F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=True) + b  # noqa: E731
    w0 = _head(c3, sd, 0)
    w = w0.repeat(n_styles, 1, 1).permute(1, 0, 2).clone()
    features = c3
    for i in range(1, n_styles):   # ProgressiveStage.Inference: every delta
        if i == 3:
            p2 = features = up(c3, F.conv2d(c2, sd["latlayer1.weight"], sd["latlayer1.bias"]))
        elif i == 7:
            features = up(p2, F.conv2d(c1, sd["latlayer2.weight"], sd["latlayer2.bias"]))
        w[:, i] += _head(features, sd, i)
    return w


def official_checkpoint(encoder_sd: dict, latent_avg, opts) -> dict:
    state = {f"encoder.{k}": v for k, v in encoder_sd.items()}
    state.update({"decoder.style.1.weight": torch.zeros(4, 4), "decoder.input.input": torch.zeros(1, 4, 4, 4)})
    ckpt = {"state_dict": state, "opts": opts}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    return ckpt


FFHQ_OPTS = {"encoder_type": "Encoder4Editing", "dataset_type": "ffhq_encode", "stylegan_size": 1024,
             "start_from_latent_avg": True, "checkpoint_path": None}


def hollow(spec: dict) -> dict[str, torch.Tensor]:
    """Right shapes, one-element storage (stride 0): tiny files for the error paths."""
    return {k: torch.zeros(()).expand(s) if s else torch.tensor(0) for k, s in spec.items()}


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    spec = official_spec(1024)
    sd = random_weights(spec)
    latent_avg = torch.randn(18, 512)   # coach.py saves pSp.latent_avg, repeated to [n_styles, 512]
    path = tmp_path_factory.mktemp("e4e") / "e4e_ffhq_encode.pt"
    torch.save(official_checkpoint(sd, latent_avg, FFHQ_OPTS), path)
    return path, sd, latent_avg


@pytest.fixture(scope="module")
def loaded(official):
    return load_e4e(official[0])


def test_names_and_shapes_match_official_layout():
    with torch.device("meta"):
        ours = Encoder4Editing(E4EConfig(stylegan_size=1024))
    spec = official_spec(1024)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == spec
    assert len({k.split(".")[1] for k in spec if k.startswith("body.")}) == 24
    assert len(ours.styles) == ours.n_styles == 18
    assert sum(p.numel() for p in ours.parameters()) == 267_136_704
    with torch.device("meta"):
        assert Encoder4Editing(E4EConfig(stylegan_size=256)).n_styles == 14


def test_load_e4e_matches_reference_forward(official, loaded):
    _, sd, latent_avg = official
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        out = loaded(x)
        ref = reference_e4e(sd, x, 18) + latent_avg.repeat(1, 1, 1)
    assert out.shape == (1, 18, 512)
    assert torch.isfinite(ref).all() and 0.1 < ref.std() < 100
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-5), (out - ref).abs().max()
    # every delta is active at inference: codes differ from w0 on all layers
    assert ((out - out[:, :1]).abs().amax(dim=-1)[:, 1:] > 1e-3).all()


def test_resizes_any_size_to_256(loaded, monkeypatch):
    seen = []

    def spy(x):
        seen.append(x)
        return torch.zeros(x.shape[0], 18, 512)

    monkeypatch.setattr(loaded.encoder, "forward", spy)
    img = torch.rand(2, 3, 300, 200) * 2 - 1
    out = loaded(img)
    assert seen[0].shape == (2, 3, 256, 256)
    expect = F.interpolate(img, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(seen[0], expect)
    assert torch.equal(out, loaded.latent_avg.expand(2, 18, 512))
    x256 = torch.rand(1, 3, 256, 256)
    loaded(x256[0])   # a single [C, H, W] image is accepted and passed through unchanged
    assert torch.equal(seen[1], x256)


def test_native_round_trip(loaded, tmp_path):
    loaded.save_pretrained(tmp_path / "e4e")
    again = E4EInverter.from_pretrained(tmp_path / "e4e")
    assert again.config == loaded.config
    a, b = loaded.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and "latent_avg" in a
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_namespace_opts_and_single_latent_avg(tmp_path):
    spec = official_spec(1024)
    avg = torch.randn(512)
    path = tmp_path / "ns.pt"
    opts = argparse.Namespace(encoder_type="Encoder4Editing", dataset_type="ffhq_encode", start_from_latent_avg=True)
    torch.save(official_checkpoint(hollow(spec), avg, opts), path)
    model = load_e4e(path)
    assert model.n_styles == 18 and torch.equal(model.latent_avg, avg.expand(18, 512))


@pytest.mark.parametrize("case, match", [
    ("psp", "GradualStyleEncoder"),
    ("missing", "1 missing"),
    ("shape", "wrong shape"),
    ("size", "style heads"),
    ("no_avg", "latent_avg"),
    ("no_opts", "opts"),
])
def test_bad_checkpoints(tmp_path, case, match):
    spec = official_spec(1024)
    sd, opts, avg = hollow(spec), dict(FFHQ_OPTS), torch.zeros(18, 512)
    if case == "psp":
        opts["encoder_type"] = "GradualStyleEncoder"
    elif case == "missing":
        del sd["styles.17.linear.bias"]
    elif case == "shape":
        sd["latlayer2.weight"] = torch.zeros(()).expand(512, 64, 1, 1)
    elif case == "size":
        opts["dataset_type"] = "church_encode"   # → 256px generator, 14 codes, but 18 heads stored
    elif case == "no_avg":
        avg = None
    ckpt = official_checkpoint(sd, avg, opts)
    if case == "no_opts":
        del ckpt["opts"]
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_e4e(path)
    assert "\n" not in str(info.value)


def test_truncated_file(official, tmp_path):
    bad = tmp_path / "trunc.pt"
    with open(official[0], "rb") as f:
        bad.write_bytes(f.read(4096))
    with pytest.raises(CheckpointError, match="truncated|not a readable"):
        load_e4e(bad)


def test_missing_folder_and_wrong_kind(tmp_path):
    with pytest.raises(CheckpointError):
        E4EInverter.from_pretrained(tmp_path / "nope")


def write_official_e4e(path, stylegan_size: int = 16, seed: int = 0, decoder: dict | None = None,
                       hollow_encoder: bool = False):
    """An e4e ``.pt`` exactly as the official training writes it (``state_dict`` with ``encoder.*`` and, if given,
    a rosinality ``decoder.*``, ``opts`` as an argparse.Namespace, ``latent_avg`` [n_styles, 512]) for a generator
    of ``stylegan_size`` px; random encoder weights (or hollow ones: right shapes, a few bytes)."""
    spec = official_spec(stylegan_size)
    encoder = hollow(spec) if hollow_encoder else random_weights(spec, seed)
    n_styles = 2 * int(math.log2(stylegan_size)) - 2
    latent_avg = torch.randn(n_styles, 512, generator=torch.Generator().manual_seed(seed + 1))
    opts = argparse.Namespace(encoder_type="Encoder4Editing", stylegan_size=stylegan_size,
                              start_from_latent_avg=True, checkpoint_path=None)
    state = {f"encoder.{k}": v for k, v in encoder.items()}
    state.update({f"decoder.{k}": v for k, v in (decoder or {}).items()})
    torch.save({"state_dict": state, "opts": opts, "latent_avg": latent_avg}, path)
    return path
