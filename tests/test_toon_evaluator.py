"""ToonFace evaluator: output layout, files, a short real training, exact resume and the train-evaluator command."""

from __future__ import annotations

import json

import pytest
import torch

from faceanim.cli.main import main
from faceanim.toon import EvaluatorConfig, ToonEvaluator
from faceanim.toon.captions import PROMPT_TARGETS
from faceanim.toon.evaluator import PERIODIC
from faceanim.toon.factors import FACTORS, IDENTITY, PARAM_DIM, SLICES, ToonParams
from faceanim.toon.renderer import render
from faceanim.toon.train_evaluator import EvaluatorTrainConfig, EvaluatorTrainer, evaluator_batch
from faceanim.utils.images import gaussian_blur

TINY = dict(image_size=32, width=8, hidden=32)


def tiny_trainer(run_dir, steps: int, **overrides) -> EvaluatorTrainer:
    torch.manual_seed(0)
    cfg = EvaluatorTrainConfig(**{"steps": steps, "batch_size": 8, "render_size": 32, "checkpoint_every": 1000,
                                  **overrides})
    return EvaluatorTrainer(ToonEvaluator(EvaluatorConfig(**TINY)), cfg, run_dir)


def test_periodic_factors_are_the_documented_ones():
    assert set(PERIODIC) == {f.name for f in FACTORS if "periodic" in f.doc}


def test_output_layout_and_ranges():
    model = ToonEvaluator().eval()
    assert 3e5 < sum(p.numel() for p in model.parameters()) < 1e6
    images = render(ToonParams.sample(3, seed=1, expressions=True), size=128)  # any size: resized to 64
    with torch.no_grad():
        v = model.predict(images)
        feats = model.identity_features(images)
        expr = model.expression(images)
        scores = model.prompt_scores(images)
    assert v.shape == (3, PARAM_DIM) and torch.isfinite(v).all()
    for f in FACTORS:
        sl = v[:, SLICES[f.name]]
        assert sl.min() >= f.low and sl.max() <= 1.0
        if f.kind == "onehot":
            torch.testing.assert_close(sl.sum(1), torch.ones(3))
    assert feats.shape == (3, model.identity_dim) and model.identity_dim > len(IDENTITY) - 6
    assert set(expr) == {f.name for f in FACTORS if f.group != "identity"} and expr["smile"].shape == (3,)
    assert set(scores) == set(PROMPT_TARGETS)
    torch.testing.assert_close(scores["gaze_left"], -expr["gaze"])
    assert model.factor(images, "hair_style").shape == (3, 6)


def test_factor_subset_leaves_the_rest_nan():
    model = ToonEvaluator(EvaluatorConfig(**TINY, factors=("smile", "face_width", "hair_style"))).eval()
    with torch.no_grad():
        v = model.predict(torch.zeros(2, 3, 32, 32))
    assert torch.isfinite(v[:, SLICES["smile"]]).all() and torch.isnan(v[:, SLICES["jaw"]]).all()
    assert model.identity_dim == 1 + 6 and set(model.prompt_scores(torch.zeros(1, 3, 32, 32))) == {"smile"}
    with pytest.raises(KeyError):
        model.factor(torch.zeros(1, 3, 32, 32), "wink")


def test_identity_features_of_ground_truth_have_the_promised_scale():
    model = ToonEvaluator(EvaluatorConfig(**TINY))
    p = ToonParams.sample(2000, seed=5, expressions=True)
    f = model.identity_features_from(p.vector)
    d_other = (f - f.roll(1, 0)).norm(dim=1).square().mean().sqrt()
    assert 1.3 < float(d_other) < 1.55  # ≈ √2 between random identities
    same = model.identity_features_from(p.neutral().replace(smile=1.0, gaze=-1.0).vector)
    torch.testing.assert_close(same, f)  # expressions do not move the identity embedding


def test_save_load_round_trip(tmp_path):
    model = ToonEvaluator(EvaluatorConfig(**TINY)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "ev")
    assert json.loads((tmp_path / "ev" / "config.json").read_text())["kind"] == "toon-evaluator"
    loaded = ToonEvaluator.from_pretrained(tmp_path / "ev")
    assert loaded.config == model.config
    x = render(ToonParams.sample(2, seed=3), size=32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(x), model.predict(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded.identity_features(x), model.identity_features(x), rtol=0, atol=0)


def test_blur_is_normalised_and_identity_at_zero():
    x = torch.rand(2, 3, 16, 16)
    y = gaussian_blur(x, torch.tensor([0.0, 1.5]))
    torch.testing.assert_close(y[0], x[0])
    assert y[1].std() < x[1].std()
    torch.testing.assert_close(gaussian_blur(torch.ones(1, 3, 16, 16), torch.tensor([1.0])), torch.ones(1, 3, 16, 16))
    images, params = evaluator_batch(4, torch.Generator().manual_seed(0), size=32)
    assert images.shape == (4, 3, 32, 32) and params.shape == (4, PARAM_DIM)


def test_short_training_lowers_the_loss(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=40, batch_size=16, lr=3e-3)
    held = evaluator_batch(64, torch.Generator().manual_seed(123), size=32)
    trainer.model.eval()
    with torch.no_grad():
        before, _ = trainer.loss(*held)
    trainer.train(log=lambda s: None)
    with torch.no_grad():
        after, _ = trainer.loss(*held)
    assert float(after) < 0.9 * float(before)
    assert (tmp_path / "checkpoint" / "model.safetensors").is_file()


def test_resume_is_exact(tmp_path):
    full = tiny_trainer(tmp_path / "a", steps=4)
    full.train(log=lambda s: None)
    half = tiny_trainer(tmp_path / "b", steps=4)
    half.train(steps=2, log=lambda s: None)
    again = tiny_trainer(tmp_path / "b", steps=4)
    assert again.resume() == 2
    again.train(log=lambda s: None)
    a, b = full.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_train_evaluator_command(tmp_path):
    out = tmp_path / "run"
    assert main(["toon", "train-evaluator", "--out", str(out), "--steps", "2", "--batch-size", "4", "--width", "8",
                 "--render-size", "64", "--faces", "8", "--faces-per-key", "2"]) == 0
    model = ToonEvaluator.from_pretrained(out / "evaluator")
    assert model.config.width == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["prompt_accuracy"]) == set(PROMPT_TARGETS)
    assert set(metrics["accuracy"]) == {"hair_style"}
    assert set(metrics["mae"]) == {f.name for f in FACTORS if f.kind != "onehot"}
    assert {"identity_mae_mean", "prompt_accuracy_mean", "blurred_prompt_accuracy_mean"} <= set(metrics["summary"])
    assert set(metrics["identity_distance"]) == {"same_identity_expression_change", "different_identities"}
    assert main(["toon", "train-evaluator", "--out", str(out), "--steps", "3", "--batch-size", "4", "--width", "8",
                 "--render-size", "64", "--faces", "8", "--faces-per-key", "2", "--resume"]) == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 3
