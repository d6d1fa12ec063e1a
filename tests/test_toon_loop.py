"""The loop the ToonFace trainers share: cadence of logs, evaluations and checkpoints, and exact resume."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from faceanim.toon.loop import LoopConfig, TrainLoop


@dataclass
class ToyConfig(LoopConfig):
    lr: float = 0.1


class ToyTrainer(TrainLoop):
    """Least squares on random batches: every batch comes from the step's generator."""

    log_every = 2

    def __init__(self, cfg: ToyConfig, run_dir, evaluate: bool = True):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        super().__init__(model, torch.optim.Adam(model.parameters(), lr=cfg.lr), cfg, run_dir)
        self.evals = [] if evaluate else None

    def lr_at(self, step: int) -> float:
        return self.cfg.lr / (1 + step)

    def train_step(self, g):
        x = torch.randn(4, 3, generator=g)
        loss = (self.model(x).squeeze(1) - x.sum(1)).square().mean()
        return loss, 4, {"loss": loss.item()}

    def evaluate(self):
        if self.evals is None:
            return None
        assert not self.model.training and not torch.is_grad_enabled()
        self.evals.append(self.step)
        return {"bias": float(self.model.bias)}


def test_cadence_of_logs_evaluations_and_checkpoints(tmp_path):
    t = ToyTrainer(ToyConfig(steps=5, eval_every=2, checkpoint_every=3), tmp_path)
    lines = []
    t.train(log=lines.append)
    assert t.evals == [2, 4] and not t.model.training
    logged = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logged] == [2, 4, 5] and {"lr", "img_per_s", "loss"} <= set(logged[0])
    assert [json.loads(x)["step"] for x in (tmp_path / "eval.jsonl").read_text().splitlines()] == [2, 4]
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 5
    assert any(x.startswith("eval step 4: ") for x in lines)
    t.eval_at_end = True  # evaluates after the last step too
    t.train(steps=7, log=lambda _: None)
    assert t.evals == [2, 4, 6, 7]


def test_resume_continues_exactly(tmp_path):
    full = ToyTrainer(ToyConfig(steps=6, eval_every=100), tmp_path / "a")
    full.train(log=lambda _: None)
    half = ToyTrainer(ToyConfig(steps=6, eval_every=100), tmp_path / "b")
    half.train(steps=3, log=lambda _: None)
    again = ToyTrainer(ToyConfig(steps=6, eval_every=100), tmp_path / "b")
    assert again.resume() == 3
    again.train(log=lambda _: None)
    for a, b in zip(full.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
