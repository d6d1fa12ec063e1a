"""Evaluation (issue 7): metrics against hand-computed values and independent references, the baselines, the
``faceanim evaluate`` command end to end on the tiny bundle, and the ablation overrides of IV-D."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from faceanim.cli.main import main
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.evaluation import METRICS, register_metric
from faceanim.evaluation.baselines import Ours, RandomMotion, StyleCLIPConfig, StyleCLIPInterpolation
from faceanim.evaluation.metrics import (MetricContext, Video, average_content_distance, bootstrap_ci,
                                         content_distance, feature_stats, frechet_distance, latent_acceleration,
                                         latent_step, nondecreasing_fraction, pixel_flicker, spearman_rho)
from faceanim.toon.factors import FACTORS, PARAM_DIM, SLICES
from faceanim.toon.metrics import change_alignment, toon_scores

from tiny_models import tiny_bundle, tiny_config


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(tiny_bundle(tmp_path_factory.mktemp("b")))


@pytest.fixture(scope="module")
def pipe(bundle):
    from faceanim.pipelines import AnimationPipeline

    return AnimationPipeline.from_bundle(bundle)


@pytest.fixture(scope="module")
def loss_clip(bundle):
    from faceanim.encoders.clip import CLIPEncoder

    return CLIPEncoder.from_pretrained(f"{bundle}/loss_clip").requires_grad_(False)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


# ----------------------------------------------------------------------------------------------------------------
# FID


def test_frechet_distance_matches_scipy_and_torchmetrics():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    mu1, s1 = feature_stats(torch.from_numpy(a))
    mu2, s2 = feature_stats(torch.from_numpy(b))
    assert np.allclose(s1.numpy(), np.cov(a, rowvar=False)) and np.allclose(mu2.numpy(), b.mean(0))
    ours = frechet_distance(mu1, s1, mu2, s2)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy_linalg.sqrtm(c1 @ c2).real
    ref = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))
    assert np.allclose(ours, ref, rtol=1e-8, atol=1e-10)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    assert np.allclose(ours, float(fid_module._compute_fid(mu1, s1, mu2, s2)), rtol=1e-6)


def test_frechet_distance_one_dimension_by_hand():
    # N(μ1, σ1²) vs N(μ2, σ2²): (μ1 − μ2)² + (σ1 − σ2)²
    d = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[9.0]]))
    assert d == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)


def test_inception_features_never_download(tmp_path, monkeypatch):
    from faceanim.evaluation.features import InceptionFeatures

    with pytest.raises(FaceanimError, match="not found"):
        InceptionFeatures(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"x": SimpleNamespace(a=1)}, bad)  # not a plain state dict: refused before torch-fidelity unpickles
    with pytest.raises(CheckpointError):
        InceptionFeatures(bad)
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    cls = fe.FeatureExtractorInceptionV3
    # random weights in torch-fidelity's layout, made without any download
    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(cls, "load_state_dict", lambda self, sd, *a, **k: None)
    torch.manual_seed(0)
    state = cls("inception-v3-compat", ["2048"]).state_dict()
    monkeypatch.undo()
    path = tmp_path / "inception.pth"
    torch.save(state, path)

    def no_download(*a, **k):
        raise AssertionError("tried to download Inception weights")

    monkeypatch.setattr(fe, "load_state_dict_from_url", no_download)
    feats = InceptionFeatures(path)(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


# ----------------------------------------------------------------------------------------------------------------
# ACD, identity, smoothness, CLIP alignment


def test_acd_by_hand():
    v1 = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])  # pairwise distances 5, 10, 5
    v2 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # 1, 1, 0
    assert content_distance(v1) == pytest.approx(20 / 3)
    # the paper's formula: 2 Σ_n Σ_{i<j} ‖f_nj − f_ni‖ / (N T (T − 1)), N = 2, T = 3
    assert average_content_distance([v1, v2]) == pytest.approx(2 * (20 + 2) / (2 * 3 * 2))
    assert math.isnan(content_distance(v1[:1]))


class _FixedIdentity:
    """Identity features given per frame index; frame k of a video holds the value k in every pixel."""

    name, differentiable = "fixed", False

    def __init__(self, feats, found):
        self.feats, self.found = torch.as_tensor(feats, dtype=torch.float64), torch.as_tensor(found)

    def __call__(self, images):
        idx = images[:, 0, 0, 0].round().long()
        return self.feats[idx], self.found[idx]


def test_registered_identity_metrics_skip_missing_faces():
    frames = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    ident = _FixedIdentity([[1, 1], [4, 5], [9, 9], [7, 9]], [True, True, False, True])
    ctx = MetricContext(identity=ident)
    video = Video(frames, torch.zeros(4, 2, 3), "smiling")
    out = METRICS["acd"].fn(video, ctx)
    assert out == {"acd": pytest.approx(20 / 3), "faces_missing": 1.0}
    sim = METRICS["identity_similarity"].fn(video, ctx)
    assert sim["id_distance"] == pytest.approx(10.0)
    assert sim["id_similarity"] == pytest.approx(16 / (math.sqrt(2) * math.sqrt(130)))
    ident.found[0] = False
    assert math.isnan(METRICS["identity_similarity"].fn(Video(frames, video.latents, "x"), ctx)["id_distance"])


def test_smoothness_by_hand():
    t = torch.arange(5.0).view(5, 1, 1)
    linear = torch.tensor([[1.0, 2.0], [0.5, -1.0]])[None] * t + 3.0  # [5, 2, 2], a straight path
    assert latent_acceleration(linear) == pytest.approx(0.0, abs=1e-12)
    assert latent_step(linear) == pytest.approx(math.sqrt(1 + 4 + 0.25 + 1))
    wobble = torch.zeros(3, 1, 2)
    wobble[1, 0, 0] = 1.0  # second difference (−2, 0) → norm 2
    assert latent_acceleration(wobble) == pytest.approx(2.0)
    a = 0.25
    frames = (a * (-1.0) ** torch.arange(6.0)).view(6, 1, 1, 1).expand(6, 3, 4, 4)  # ±a alternating
    assert pixel_flicker(frames) == pytest.approx(4 * a)
    assert pixel_flicker(torch.linspace(-1, 1, 6).view(6, 1, 1, 1).expand(6, 3, 4, 4)) == pytest.approx(0, abs=1e-7)
    out = METRICS["smoothness"].fn(Video(frames, linear[:, :, :], "x"), MetricContext())
    assert set(out) == {"latent_step", "latent_accel", "pixel_flicker"}
    assert math.isnan(latent_acceleration(linear[:2]))


def test_clip_alignment_against_direct_computation(loss_clip):
    torch.manual_seed(0)
    frames = torch.rand(3, 3, 16, 16) * 2 - 1
    ctx = MetricContext(clip=loss_clip, template="The cartoon person is {}.")
    out = METRICS["clip_alignment"].fn(Video(frames, torch.zeros(3, 1, 1), "smiling"), ctx)
    with torch.no_grad():
        t = loss_clip.encode_text(["smiling"], template="The cartoon person is {}.")[0]
        v = loss_clip.encode_image(frames)
    assert out["clip_first"] == pytest.approx(float(v[0] @ t), abs=1e-5)
    assert out["clip_last"] == pytest.approx(float(v[2] @ t), abs=1e-5)
    assert out["clip_gain"] == pytest.approx(out["clip_last"] - out["clip_first"])


def test_dlib_descriptor_finds_a_real_face_and_skips_a_blank():
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    from faceanim.align.ffhq import model_file
    from faceanim.evaluation.features import DlibFaceDescriptor

    if model_file("dlib_face_recognition_resnet_model_v1.dat") is None:
        pytest.skip("face_recognition_models not installed")
    face = torch.from_numpy(skdata.astronaut()[:256, 96:352].copy()).permute(2, 0, 1).float() / 127.5 - 1
    blank = torch.zeros_like(face)
    frames = torch.stack([face, face, blank])
    desc = DlibFaceDescriptor()
    feats, found = desc(frames)
    assert found.tolist() == [True, True, False] and feats.shape == (3, 128)
    assert 0.5 < float(feats[0].norm()) < 3.0  # dlib descriptors are not unit-norm
    out = METRICS["acd"].fn(Video(frames, torch.zeros(3, 1, 1), "x"), MetricContext(identity=desc))
    assert out["acd"] == pytest.approx(0.0, abs=1e-9) and out["faces_missing"] == 1.0


# ----------------------------------------------------------------------------------------------------------------
# Statistics, ToonFace ground truth


def test_spearman_and_monotone_fraction():
    stats = pytest.importorskip("scipy.stats")
    y = [0.1, 0.3, 0.3, 0.2, 0.9, 0.9, 1.0]
    assert spearman_rho(y) == pytest.approx(stats.spearmanr(np.arange(len(y)), y).statistic)
    assert spearman_rho([0.5] * 4) == 0.0 and spearman_rho([3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho([0.5, 0.5 + 1e-9, 0.5 + 2e-9]) == 0.0  # float noise is no rise
    assert nondecreasing_fraction([0.0, 0.5, 0.49, 0.3, 0.6], tol=0.02) == pytest.approx(3 / 4)


def test_bootstrap_ci():
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_ci([5.0, float("nan")]) == (5.0, 5.0, 5.0)
    assert all(math.isnan(x) for x in bootstrap_ci([float("nan")]))
    vals = list(np.random.default_rng(1).normal(10, 2, size=40))
    mean, lo, hi = bootstrap_ci(vals)
    assert mean == pytest.approx(np.mean(vals)) and lo < mean < hi
    assert (lo, hi) == bootstrap_ci(vals)[1:]  # seeded
    se = np.std(vals, ddof=1) / math.sqrt(len(vals))  # ≈ ±1.96 standard errors for a normal sample
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)


def _toon_video(rows: list[dict[str, float]]) -> torch.Tensor:
    v = torch.zeros(len(rows), PARAM_DIM)
    for t, row in enumerate(rows):
        for name, val in row.items():
            v[t, SLICES[name].start] = val
    return v


def test_toon_scores_by_hand():
    n_ident = sum(f.dim for f in FACTORS if f.group == "identity")
    n_other = sum(1 for f in FACTORS if f.group in ("expression", "attribute")) - 1
    base = {"face_width": 0.2, "bg_hue": 0.95}
    v = _toon_video([{**base, "smile": 0.0}, {**base, "smile": 0.2}, {**base, "smile": 0.5, "sad": 0.1},
                     {"face_width": 0.47, "bg_hue": 0.05, "smile": 0.8, "sad": 0.3}])
    s = toon_scores(v, "smile", 1.0)
    assert s["toon_success"] == 1.0 and s["toon_level"] == pytest.approx(0.8) and s["toon_gain"] == pytest.approx(0.8)
    assert s["toon_spearman"] == pytest.approx(1.0) and s["toon_monotone"] == 1.0
    assert s["toon_identity_drift"] == pytest.approx((0.27 + 0.1) / n_ident, abs=1e-6)  # hue 0.95 → 0.05 is 0.1 away
    assert s["toon_off_target"] == pytest.approx(0.3 / n_other, abs=1e-6)
    assert s["toon_eye_size_change"] == s["toon_eye_color_change"] == 0.0
    eyes = toon_scores(_toon_video([{"eye_size": 0.5, "eye_color": 0.2}, {"eye_size": 0.4, "eye_color": 0.5}]), "smile", 1.0)
    assert eyes["toon_eye_size_change"] == pytest.approx(-0.1) and eyes["toon_eye_color_change"] == pytest.approx(0.3)
    # gaze_left asks for gaze → −1: progress is −gaze
    g = toon_scores(_toon_video([{"gaze": 0.0}, {"gaze": -0.1}, {"gaze": -0.6}]), "gaze", -1.0)
    assert g["toon_success"] == 1.0 and g["toon_level"] == pytest.approx(0.6)
    # a face that already smiles and does not rise further is no success (margin)
    flat = toon_scores(_toon_video([{"smile": 0.7}, {"smile": 0.7}, {"smile": 0.75}]), "smile", 1.0)
    assert flat["toon_success"] == 0.0 and flat["toon_gain"] == pytest.approx(0.05)


class _VectorEvaluator:
    """ToonEvaluator stand-in: the factor vector is written in the first P pixels of channel 0."""

    def predict(self, images):
        return images[:, 0].flatten(1)[:, :PARAM_DIM].double()

    def identity_features(self, images):
        return self.predict(images)[:, :4]

    def factor(self, images, name):
        return self.predict(images)[:, SLICES[name].start]


def test_toon_truth_metric_reads_the_evaluator():
    v = _toon_video([{"cry": 0.0}, {"cry": 0.4}, {"cry": 0.3}, {"cry": 0.9}])
    frames = torch.zeros(4, 3, 8, 8)
    frames[:, 0].view(4, -1)[:, :PARAM_DIM] = v
    ctx = MetricContext(evaluator=_VectorEvaluator())
    out = METRICS["toon_truth"].fn(Video(frames, torch.zeros(4, 1, 1), "crying", key="cry"), ctx)
    assert out == toon_scores(v, "cry", 1.0)
    assert out["toon_monotone"] == pytest.approx(2 / 3) and out["toon_spearman"] == pytest.approx(0.8)
    assert METRICS["toon_truth"].fn(Video(frames, torch.zeros(4, 1, 1), "free text"), ctx) == {}


def test_change_alignment_by_hand():
    r = torch.tensor([3.0, 4.0, 0.0])
    assert change_alignment(torch.tensor([6.0, 8.0, 0.0]), r) == {"toon_ref_cos": pytest.approx(1.0),
                                                                  "toon_ref_gain": pytest.approx(2.0)}
    # d = (0, 5, 5): ⟨d, r⟩ = 20, ‖d‖ = 5√2, ‖r‖ = 5 → cos 20 / (25√2), gain 20 / 25
    out = change_alignment(torch.tensor([0.0, 5.0, 5.0]), r)
    assert out["toon_ref_cos"] == pytest.approx(20 / (25 * math.sqrt(2))) and out["toon_ref_gain"] == pytest.approx(0.8)
    assert change_alignment(torch.zeros(3), r) == {"toon_ref_cos": 0.0, "toon_ref_gain": 0.0}  # a still video
    assert all(math.isnan(v) for v in change_alignment(r, torch.zeros(3)).values())


def test_toon_reference_metric_follows_the_generators_own_change():
    """A video that moves W exactly as the mapping moves for the prompted factor scores cos 1 and gain 1; its
    reverse −1; a still video 0; a prompt without a key is not scored."""
    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.latent import Z_DIM, encode

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=Z_DIM, w_dim=32, img_resolution=16, channel_base=256, channel_max=32,
                                  mapping_layers=2)).eval()
    p = ToonParams.sample(1, seed=3)
    z = encode(p)[0]
    with torch.no_grad():
        w0 = G.to_wplus(G.mapping(z[None]))[0]
        w1 = G.to_wplus(G.mapping(encode(p.replace(smile=1.0))))[0]
        ws = torch.stack([w0, (w0 + w1) / 2, w1])
        frames = G.synthesis(ws).clamp(-1, 1)  # videos hold clamped frames
    ctx = MetricContext(generator=G)
    fn = METRICS["toon_reference"].fn
    out = fn(Video(frames, ws, "smiling", key="smile", source_z=z), ctx)
    assert out["toon_ref_cos"] == pytest.approx(1.0, abs=1e-5) and out["toon_ref_gain"] == pytest.approx(1.0, abs=1e-4)
    away = torch.stack([w0, 2 * w0 - w1])  # the opposite direction in W
    with torch.no_grad():
        rev = fn(Video(G.synthesis(away), away, "smiling", key="smile", source_z=z), ctx)
    assert rev["toon_ref_cos"] < -0.5 and rev["toon_ref_gain"] < 0
    still = fn(Video(frames[:1].repeat(3, 1, 1, 1), w0.expand(3, -1, -1), "smiling", key="smile", source_z=z), ctx)
    assert still == {"toon_ref_cos": 0.0, "toon_ref_gain": 0.0}
    assert fn(Video(frames, ws, "free text", source_z=z), ctx) == {}
    assert fn(Video(frames, ws, "smiling", key="smile"), ctx) == {}  # no source z: not a ToonFace latent


def test_registry():
    assert {"fid", "acd", "clip_alignment", "identity_similarity", "smoothness", "toon_truth",
            "toon_reference"} <= set(METRICS)
    assert METRICS["fid"].scope == "set" and "acd" in METRICS["acd"].lower_is_better
    with pytest.raises(ValueError, match="already registered"):
        register_metric("acd")(lambda v, c: {})
    with pytest.raises(ValueError, match="requirements"):
        register_metric("new_metric", requires=("gpu",))


# ----------------------------------------------------------------------------------------------------------------
# Baselines


def test_methods_share_one_call_and_shapes(pipe, loss_clip):
    from faceanim.evaluation.features import CLIPIdentity

    w_s = pipe.latent_from_seed(5)
    sc = StyleCLIPInterpolation.from_pipeline(pipe, loss_clip, CLIPIdentity(loss_clip), StyleCLIPConfig(steps=4))
    mo = RandomMotion.from_pipeline(pipe, step_size=0.05)
    for method in (Ours(pipe), sc, mo):
        out = method("smiling", latent=w_s, num_frames=5, rng=torch.Generator().manual_seed(1))
        assert out.frames.shape == (5, 3, 16, 16) and out.latents.shape == (5, pipe.G.num_ws, pipe.G.w_dim)
        assert torch.allclose(out.latents[0], w_s, atol=1e-6)  # every method starts at the source face
        assert torch.allclose(out.frames, pipe.G.synthesis(out.latents, noise_mode="const").clamp(-1, 1), atol=1e-5)
    # seeds give the pipeline's faces
    assert torch.equal(mo("x", seed=5, num_frames=3).latents[0], w_s)
    with pytest.raises(FaceanimError):
        sc("smiling", latent=w_s[:1, :3], num_frames=3)


def test_styleclip_lowers_its_loss_and_interpolates_linearly(pipe, loss_clip):
    from faceanim.evaluation.features import CLIPIdentity, DlibFaceDescriptor

    sc = StyleCLIPInterpolation.from_pipeline(pipe, loss_clip, CLIPIdentity(loss_clip), StyleCLIPConfig(steps=25))
    out = sc("smiling", seed=2, num_frames=6)
    h = sc.last_history
    assert len(h) == 26 and set(h[0]) >= {"clip", "l2", "id", "total"}
    assert h[0]["l2"] == 0 and h[0]["id"] == pytest.approx(0, abs=1e-6)
    assert h[-1]["total"] < h[0]["total"] and h[-1]["clip"] < h[0]["clip"]
    assert latent_acceleration(out.latents) < 1e-4 * latent_step(out.latents)  # linear (float32 rounding)
    assert StyleCLIPConfig(steps=100).lr_at(0) == 0 and StyleCLIPConfig(steps=100).lr_at(50) == pytest.approx(0.1)
    with pytest.raises(FaceanimError, match="differentiable"):
        StyleCLIPInterpolation.from_pipeline(pipe, loss_clip, DlibFaceDescriptor())


def test_random_motion_is_text_free_and_scaled(pipe):
    mo = RandomMotion.from_pipeline(pipe, step_size=0.05)
    a = mo("smiling", seed=1, num_frames=16, rng=torch.Generator().manual_seed(3))
    b = mo("crying", seed=1, num_frames=16, rng=torch.Generator().manual_seed(3))
    assert torch.equal(a.latents, b.latents)  # the prompt is ignored
    c = mo("smiling", seed=1, num_frames=16, rng=torch.Generator().manual_seed(4))
    assert not torch.equal(a.latents, c.latents)
    steps = [latent_step(mo("x", seed=1, num_frames=16, rng=torch.Generator().manual_seed(s)).latents)
             for s in range(8)]
    assert np.mean(steps) == pytest.approx(0.05, rel=0.25)
    d = a.latents[1:] - a.latents[:-1]
    assert torch.allclose(d, d[:, :1].expand_as(d))  # one W move for every layer
    with pytest.raises(FaceanimError):
        RandomMotion.from_pipeline(pipe, step_size=0.0)


# ----------------------------------------------------------------------------------------------------------------
# faceanim evaluate


def test_evaluate_end_to_end(bundle, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["evaluate", "--bundle", bundle, "-p", "smiling", "-p", "crying", "--faces", "2", "--frames", "4",
                 "--out", str(out), "--steps", "3", "--identity", "clip", "--grid-format", "gif"]) == 0
    assert "wrote" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert len(res["videos"]) == 3 * 2 * 2
    assert set(res["methods"]) == {"ours", "styleclip", "mocogan"}
    for m in res["methods"].values():
        for name in ("acd", "clip_last", "clip_gain", "id_similarity", "latent_accel", "pixel_flicker", "seconds"):
            s = m["overall"][name]
            assert s["n"] == 4 and s["low"] <= s["mean"] <= s["high"], (name, s)
        assert set(m["per_prompt"]) == {"smiling", "crying"} and m["per_prompt"]["crying"]["acd"]["n"] == 2
    assert res["confidence_interval"]["kind"].startswith("percentile bootstrap")
    assert res["methods"]["styleclip"]["overall"]["latent_accel"]["mean"] < 1e-4  # a straight W+ line
    md = (out / "results.md").read_text()
    assert "| acd ↓ |" in md and "## Per prompt" in md and "[" in md
    assert sorted(p.name for p in out.glob("grid_*.gif")) == ["grid_00_smiling.gif", "grid_01_crying.gif"]


def test_evaluate_toonface_ground_truth_and_fid(bundle, tmp_path, capsys):
    from faceanim.toon.evaluator import EvaluatorConfig, ToonEvaluator

    torch.manual_seed(0)
    ToonEvaluator(EvaluatorConfig(image_size=16, width=4, hidden=16)).save_pretrained(tmp_path / "evaluator")
    out = tmp_path / "toon"
    assert main(["evaluate", "-b", bundle, "-p", "smile", "-p", "looking left", "-p", "free text", "--steps", "2",
                 "--faces", "2", "-n", "3", "-o", str(out), "--evaluator", str(tmp_path / "evaluator"), "--real", "8",
                 "--grid-faces", "0"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["domain"] == "toon" and res["features"]["identity"] == "toon-evaluator"
    assert [p["key"] for p in res["prompts"]] == ["smile", "gaze_left", None]
    assert res["prompts"][0]["text"] == "smiling"
    for m in res["methods"].values():
        assert m["overall"]["toon_success"]["n"] == 4  # the free-text prompt has no ground truth
        assert m["overall"]["acd"]["n"] == 6
        assert m["set"]["fid"] >= 0 and m["set"]["fid_frames"] == 3 * 3 * 2
    assert any("names no ToonFace factor" in n for n in res["notes"]) and not res["grids"]
    assert any("identity loss on toon-evaluator" in n for n in res["notes"])  # StyleCLIP's identity term


@pytest.mark.parametrize("args, message", [
    (["--methods", "ours,dreamgan"], "unknown method 'dreamgan'"),
    (["--faces", "0"], "--faces: 0 is not in the range x>=1"),
    (["--faces", "-3"], "--faces: -3 is not in the range x>=1"),
    (["--frames", "1"], "--frames: 1 is not in the range 2<=x<=1024"),
    (["--evaluator", "/no/such/folder"], "folder not found"),
])
def test_evaluate_bad_input_is_one_line(bundle, tmp_path, capsys, args, message):
    assert main(["evaluate", "-b", bundle, "-o", str(tmp_path / "r"), *args]) == 2
    err = _err(capsys)
    assert message in err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------------------------------------
# Ablations of IV-D: the override keys exist and reach the loss


def test_ablation_overrides_reach_the_loss(tmp_path):
    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig

    cfg = TrainConfig.from_yaml("configs/ffhq_paper.yaml", ["loss.contrastive=0", "batch_size=2",
                                                            "loss.path_reg=0", "loss.path_order=1"])
    assert (cfg.loss.contrastive, cfg.batch_size, cfg.loss.path_reg, cfg.loss.path_order) == (0, 2, 0, 1)
    assert cfg.loss.w_reg == 1.0 and cfg.loss.lpips == 1.0  # the other weights keep the paper's values
    for sub in "abc":
        (tmp_path / sub).mkdir()
    no_contrast = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path / "a"), ["loss.contrastive=0"]))
    assert "contrastive" not in no_contrast.loss.active and no_contrast.loss.pixel_frames(4) == []
    first = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path / "b"), ["loss.path_order=1"]))
    assert first.loss.path_reg.order == 1 and "path_reg" in first.loss.active
    off = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path / "c"), ["loss.path_reg=0"]))
    assert "path_reg" not in off.loss.active


def test_toon_train_motion_ablation_command_lines(monkeypatch, capsys):
    """The command lines of docs/RESULTS.md reach TrainConfig (training itself is replaced by a stub)."""
    import faceanim.training.build as build

    seen = []

    def fake_build(cfg, run_dir=None):
        seen.append(cfg)
        return SimpleNamespace(run_dir=Path("run"), train=lambda: None)

    monkeypatch.setattr(build, "build_trainer", fake_build)
    assert main(["toon", "train-motion", "--batch-size", "8", "--set", "loss.contrastive=0"]) == 0
    assert main(["toon", "train-motion", "--set", "loss.path_order=1"]) == 0
    assert main(["toon", "train-motion", "--set", "loss.path_reg=0"]) == 0
    a, b, c = seen
    assert a.batch_size == 8 and a.loss.contrastive == 0 and a.loss.lpips == 0 and a.loss.path_reg == 1.0
    assert b.loss.path_order == 1 and b.loss.contrastive == 0.5 and b.loss.lpips == 0
    assert c.loss.path_reg == 0 and c.loss.path_order == 2
