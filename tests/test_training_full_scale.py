"""What breaks training at full scale (issue 17), on tiny models: bounded sampling, the result saved before the
optional outputs, resume from another directory, dry runs that write nothing, LPIPS frames and size, activation
checkpointing of the synthesis, and DDP's unused-parameter search."""

from __future__ import annotations

import os

import pytest
import torch
import yaml

from faceanim.cli.main import main
from faceanim.models.stylegan2 import Generator, GeneratorConfig, synthesize_checkpointed
from faceanim.training.build import build_trainer, ddp_needs_unused_parameter_search
from faceanim.training.config import TrainConfig

from tiny_models import PROMPTS, tiny_config, tiny_generator

os.environ.setdefault("TQDM_DISABLE", "1")


def _randomize_last_layers(animator):
    with torch.no_grad():
        for p in animator.motion_mapper.layers[-1].parameters():
            p.normal_(0, 0.01)


def _spy_synthesis(trainer) -> list[int]:
    """Batch sizes of every forward of the frozen synthesis (recomputations in the backward included: a pre-hook,
    since a recomputation stops as soon as it has what the backward needs)."""
    calls: list[int] = []
    trainer.G.synthesis.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0]))
    return calls


# -- point 1: sampling and metrics bounded, motion model first ------------------------------------------------------
def test_samples_and_metrics_render_in_chunks_of_render_batch_size(tmp_path):
    from faceanim.evaluation.hooks import training_metrics

    cfg = TrainConfig.from_yaml(tiny_config(tmp_path, steps=1, sample_every=1, sample_frames=5, metrics_every=1,
                                            metrics_videos=3, render_batch_size=3, sample_size=8))
    trainer = build_trainer(cfg, metrics_hook=training_metrics)
    calls = _spy_synthesis(trainer)
    path = trainer.write_samples(count=4)
    assert calls and max(calls) <= 3 and sum(calls) == 4 * 5  # 20 frames, never more than 3 per generator call
    from PIL import Image

    assert Image.open(path).size == (5 * 8 + 6 * 2, 4 * 8 + 5 * 2)  # the grid holds 8 px frames (sample_size)
    calls.clear()
    values = trainer.log_metrics()
    assert max(calls) <= 3 and sum(calls) == 3 * 5 and "latent_accel" in values


def test_final_step_writes_the_motion_model_before_samples_even_if_they_fail(tmp_path, capsys):
    trainer = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path, steps=2, sample_every=1)))
    order = []
    save = trainer.save_motion_model

    def failing_samples(count: int = 4):
        order.append(("samples", (trainer.run_dir / "motion_model" / "model.safetensors").is_file()))
        raise MemoryError("no room for 64 frames")

    trainer.save_motion_model = lambda: order.append(("motion_model", None)) or save()
    trainer.write_samples = failing_samples
    hist = trainer.train()
    assert len(hist) == 2
    assert order == [("samples", False), ("motion_model", None), ("samples", True)]  # step 1; step 2: model first
    assert (trainer.run_dir / "motion_model" / "model.safetensors").is_file()
    assert (trainer.run_dir / "checkpoints" / "latest" / "state.json").is_file()
    err = capsys.readouterr().err
    assert "warning: samples at step 2 failed (MemoryError: no room for 64 frames)" in err


def test_a_non_finite_loss_stops_the_run_before_it_saves(tmp_path):
    import json

    trainer = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path, steps=2, checkpoint_every=1)))
    step = trainer.train_step
    trainer.train_step = lambda k: step(k) if k == 0 else {**step(k), "loss": float("nan")}
    with pytest.raises(FloatingPointError, match="at step 2"):
        trainer.train()
    state = json.loads((trainer.checkpoint_dir / "state.json").read_text())
    assert state["step"] == 1 and not (trainer.run_dir / "motion_model").exists()  # step 1's checkpoint is kept
    assert [json.loads(x)["step"] for x in (trainer.run_dir / "log.jsonl").read_text().splitlines()] == [1, 2]


def test_cli_run_whose_final_samples_fail_still_ends_with_its_motion_model(tmp_path, monkeypatch, capsys):
    from faceanim.training.trainer import Trainer

    def boom(self, count=4):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Trainer, "write_samples", boom)
    assert main(["train", "--config", str(tiny_config(tmp_path, steps=2, sample_every=2))]) == 0
    run = next((tmp_path / "runs").iterdir())
    assert (run / "motion_model" / "model.safetensors").is_file()
    captured = capsys.readouterr()
    assert "done: 2 steps" in captured.out and "samples at step 2 failed" in captured.err


# -- point 5: resume from another working directory -------------------------------------------------------------------
def test_resume_from_another_working_directory(tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "configs").mkdir(parents=True)
    b.mkdir()
    tiny_generator(a / "gen")
    (a / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    cfg = yaml.safe_load(tiny_config(tmp_path, steps=2, checkpoint_every=1).read_text())
    cfg.update(generator="gen", prompts="prompts.txt", out_dir="runs")  # relative to the working directory a/
    (a / "configs" / "run.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(a)
    assert main(["train", "--config", "configs/run.yaml"]) == 0
    run = next((a / "runs").iterdir())
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["generator"] == str(a / "gen") and saved["out_dir"] == str(a / "runs")
    assert saved["prompts"] == "prompts.txt" and (run / "prompts.txt").read_text() == (a / "prompts.txt").read_text()
    (a / "prompts.txt").unlink()  # the run has its own copy
    monkeypatch.chdir(b)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "steps=3"]) == 0
    out = capsys.readouterr().out
    assert "at step 2" in out and "done: 3 steps" in out
    assert not any(b.iterdir())  # nothing written in the other directory


# -- point 6: dry runs -------------------------------------------------------------------------------------------------
def test_dry_run_creates_no_run_folder(tmp_path, capsys):
    path = tiny_config(tmp_path, steps=2)
    assert main(["train", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "runs").exists()
    assert "dry run: nothing written" in out and str(tmp_path / "runs" / "00000-tiny") in out
    assert main(["train", "--config", str(path)]) == 0  # the real run is then the first one
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["00000-tiny"]
    run = tmp_path / "runs" / "00000-tiny"
    before = (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "--set", "steps=5", "--dry-run"]) == 0
    assert (run / "config.yaml").read_text() == before  # a resumed dry run leaves the run's config alone


def test_dry_run_names_the_missing_path_and_its_config_key(tmp_path, capsys):
    path = tiny_config(tmp_path, generator=str(tmp_path / "nowhere" / "ffhq-1024"))
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "config key `generator`" in err and str(tmp_path / "nowhere" / "ffhq-1024") in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


# -- point 7: LPIPS frames and size ----------------------------------------------------------------------------------
@pytest.mark.parametrize("frames,size", [("first", 0), ("first_last", 0), ("first_last", 96)])
def test_lpips_compares_the_configured_frames_at_the_configured_size(tmp_path, lpips_backbone, frames, size):
    cfg = TrainConfig.from_yaml(tiny_config(tmp_path, loss={"lpips": 1.0, "contrastive": 0.0, "lpips_frames": frames,
                                                            "lpips_size": size}))
    trainer = build_trainer(cfg)
    _randomize_last_layers(trainer.animator)
    expected = [0] if frames == "first" else [0, 3]
    assert trainer.loss.pixel_frames(4) == expected
    rendered, compared, model_inputs = [], [], []
    render = trainer.render
    trainer.render = lambda ws: rendered.append(render(ws)) or rendered[-1]
    lpips = trainer.loss.lpips
    forward = lpips.forward
    lpips.forward = lambda x, y: compared.append((x.detach(), y.detach())) or forward(x, y)
    lpips.model.register_forward_hook(lambda m, args, out: model_inputs.append(tuple(args[0].shape[-2:])))
    r = trainer.train_step(0)
    imgs = rendered[0].detach().reshape(4, len(expected), 3, 16, 16)  # the frames the losses read
    source = rendered[1]  # latent mode: the source faces rendered from w_s
    assert len(compared) == len(expected)
    for j, (x, y) in enumerate(compared):
        assert torch.equal(x, imgs[:, j])
    side = size or 16
    assert all(tuple(y.shape[-2:]) == (side, side) for _, y in compared)
    if size:
        assert torch.allclose(compared[0][1], torch.nn.functional.adaptive_avg_pool2d(source, size), atol=1e-6)
        assert set(model_inputs) == {(96, 96)}
    with torch.no_grad():
        by_hand = sum(forward(x, y) for x, y in compared)
    assert r["lpips"] == pytest.approx(float(by_hand), rel=1e-5)


def test_paper_config_follows_the_official_lpips():
    root = os.path.join(os.path.dirname(__file__), "..", "configs", "ffhq_paper.yaml")
    data = yaml.safe_load(open(root).read())
    assert data["loss"]["lpips_frames"] == "first_last" and data["loss"]["lpips_size"] == 224
    assert TrainConfig().loss.lpips_frames == "first"
    with pytest.raises(Exception, match="lpips_frames"):
        TrainConfig.from_dict({"mode": "latent", "loss": {"lpips_frames": "last"}})


# -- point 11: activation checkpointing --------------------------------------------------------------------------------
def test_checkpointed_synthesis_gives_the_gradients_of_the_plain_one():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=32, img_resolution=32, channel_base=256, channel_max=32,
                                  mapping_layers=2)).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)  # constant noise takes part
    ws0, weights = torch.randn(5, G.num_ws, 32), torch.randn(5, 3, 32, 32)

    def grad(fn):
        ws = ws0.clone().requires_grad_(True)
        out = fn(ws)
        (out * weights).sum().backward()
        return out.detach(), ws.grad

    plain_out, plain = grad(lambda ws: G.synthesis(ws))
    for chunk in (1, 2, 5):
        out, ck = grad(lambda ws: synthesize_checkpointed(G.synthesis, ws, chunk))
        _, same_chunks = grad(lambda ws: torch.cat([G.synthesis(ws[i:i + chunk]) for i in range(0, 5, chunk)]))
        assert torch.equal(ck, same_chunks)  # checkpointing itself changes nothing
        assert (ck - plain).abs().max() <= 1e-6 * plain.abs().max()  # chunks: float rounding of other batch sizes
        assert torch.allclose(out, plain_out, atol=1e-5)
    with pytest.raises(ValueError, match="deterministic"):
        synthesize_checkpointed(G.synthesis, ws0, noise_mode="random")


def test_training_step_with_checkpointing_renders_twice_and_matches(tmp_path):
    grads, losses, calls = {}, {}, {}
    for on in (False, True):
        (tmp_path / str(on)).mkdir()
        trainer = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path / str(on), activation_checkpointing=on)))
        assert trainer.checkpointing is on
        _randomize_last_layers(trainer.animator)
        calls[on] = _spy_synthesis(trainer)
        losses[on] = trainer.train_step(0)["loss"]
        grads[on] = [p.grad.clone() for g in trainer.optimizer.param_groups for p in g["params"] if p.grad is not None]
    assert calls[False] == [4] and calls[True] == [1] * 8  # 4 last frames; with checkpointing once more each
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)
    for a, b in zip(grads[False], grads[True]):
        assert (a - b).abs().max() <= 1e-5 * a.abs().max() + 1e-12


def test_checkpointing_is_on_by_default_from_512_px():
    cfg = TrainConfig.from_dict({"mode": "latent"})
    assert cfg.activation_checkpointing == "auto"
    assert [cfg.uses_checkpointing(r) for r in (16, 256, 512, 1024)] == [False, False, True, True]
    assert TrainConfig.from_dict({"mode": "latent", "activation_checkpointing": False}).uses_checkpointing(1024) is False
    with pytest.raises(Exception, match="activation_checkpointing"):
        TrainConfig.from_dict({"mode": "latent", "activation_checkpointing": "sometimes"})


# -- point 11: DDP's find_unused_parameters ----------------------------------------------------------------------------
def _image_data(tmp_path):
    import numpy as np
    from PIL import Image

    d = tmp_path / "faces"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")
    torch.save(torch.randn(4, 6, 32) * 0.1, tmp_path / "lat.pt")
    return {"mode": "image", "images": str(d), "latents": str(tmp_path / "lat.pt")}


@pytest.mark.parametrize("case", [
    {"num_frames": 4}, {"num_frames": 2}, {"num_frames": 3}, {"num_frames": 4, "train_text_encoder": False},
    {"num_frames": 4, "motion": {"mapper_input": "offset"}}, {"num_frames": 4, "loss": {"contrastive": 0.0}},
    {"image": True, "num_frames": 4}, {"image": True, "num_frames": 2},
    {"image": True, "num_frames": 4, "anchor_first_frame": True, "train_visual_encoder": False},
])
def test_ddp_unused_parameter_rule_matches_the_gradients_of_a_step(tmp_path, case):
    """find_unused_parameters is on exactly when a trainable parameter gets no gradient in a training step."""
    case = dict(case)
    extra = _image_data(tmp_path) if case.pop("image", False) else {}
    cfg = TrainConfig.from_yaml(tiny_config(tmp_path, **case, **extra))
    trainer = build_trainer(cfg)
    _randomize_last_layers(trainer.animator)
    trainer.train_step(0)
    unused = [p for g in trainer.optimizer.param_groups for p in g["params"] if p.requires_grad and p.grad is None]
    assert bool(unused) == ddp_needs_unused_parameter_search(cfg)


def test_clip_given_as_path_and_arch_is_saved_with_an_absolute_path(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.chdir(tmp_path)
    (tmp_path / "laion.pt").write_bytes(b"x")
    cfg = TrainConfig.from_yaml(str(tiny_config(tmp_path, steps=2)), [])
    cfg = dataclasses.replace(cfg, loss_clip={"path": "laion.pt", "arch": "gelu"})
    assert cfg.with_absolute_paths().loss_clip == {"path": str(tmp_path / "laion.pt"), "arch": "gelu"}


def test_render_chunk_keeps_the_pixels_per_call_constant_unless_set():
    auto = TrainConfig.from_dict({"mode": "latent"})
    assert [auto.render_chunk(r) for r in (16, 128, 256, 512, 1024)] == [8, 8, 8, 2, 1]
    assert TrainConfig.from_dict({"mode": "latent", "render_batch_size": 3}).render_chunk(1024) == 3
    with pytest.raises(Exception, match="render_batch_size"):
        TrainConfig.from_dict({"mode": "latent", "render_batch_size": -1})
