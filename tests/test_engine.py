"""Engine: schedules, sharded sampler, run directory, checkpoints and resume,
accumulation invariance and the non-finite guard, on small plain torch modules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tether.config import Config, OptimConfig, RunConfig, TrainConfig
from tether.engine import (
    RunDirError,
    ShardedSampler,
    Trainer,
    fit,
    latest_checkpoint,
    list_checkpoints,
    lr_factor,
    setup_run,
)
from tether.errors import ConfigError, TrainingError

torch.set_num_threads(1)


class StageConfig(Config):
    run: RunConfig = RunConfig()
    train: TrainConfig = TrainConfig()
    optim: OptimConfig = OptimConfig()


def _cfg(out: Path, **train) -> StageConfig:
    t = {"max_steps": 6, "batch_size": 4, "progress": False, "tensorboard": False, **train}
    return StageConfig(run=RunConfig(out=out), train=TrainConfig(**t),
                       optim=OptimConfig(lr=1e-2, schedule="constant", max_grad_norm=None))


def _data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)  # [N, 3]
    return x, x.sum(-1, keepdim=True)  # [N, 1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def _mse(model: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict]:
    x, y = batch[0], batch[1]
    return ((model(x) - y) ** 2).mean(), {"loss/mse": ((model(x) - y) ** 2).mean().detach()}


def _train(cfg: StageConfig, loss_fn=_mse, resume: bool = False) -> tuple[Trainer, dict]:
    cfg.run.resume = resume
    setup_run(cfg)
    x, y = _data()
    sampler = ShardedSampler(len(x), cfg.train.batch_size, cfg.optim.grad_accum, seed=0)
    trainer = Trainer(cfg.run, cfg.train, cfg.optim, _model())
    trainer.extra_state = lambda: {"data": sampler.position(trainer.step)}
    trainer.resume()
    summary = fit(trainer, lambda s: [(x[i], y[i], s) for i in sampler.micro_batches(s)],
                  loss_fn)
    return trainer, trainer.write_summary(summary)


def _params(m: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


# -- schedule ------------------------------------------------------------------

def test_lr_factor_warmup_then_cosine_and_linear() -> None:
    # warmup 2: steps 0, 1 -> 1/2, 2/2; then cosine over steps 2..10 (span 8)
    assert lr_factor(0, "cosine", 2, 11) == 0.5
    assert lr_factor(1, "cosine", 2, 11) == 1.0
    assert lr_factor(2, "cosine", 2, 11) == 1.0
    assert lr_factor(6, "cosine", 2, 11) == pytest.approx(0.5)  # half way: cos(pi/2) = 0
    assert lr_factor(10, "cosine", 2, 11, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(6, "linear", 2, 11, min_lr_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(9, "constant", 2, 11) == 1.0


# -- sampler -------------------------------------------------------------------

def test_sampler_shards_without_repeats_and_is_a_function_of_the_step() -> None:
    n, batch, world, accum = 50, 8, 2, 2  # 6 steps per epoch, 2 examples dropped
    shards = [ShardedSampler(n, batch, accum, seed=3, rank_=r, world=world)
              for r in range(world)]
    assert shards[0].micro_batch_size == 2
    seen: list[int] = []
    for step in range(shards[0].steps_per_epoch):
        per_rank = [sum(s.micro_batches(step), []) for s in shards]
        assert all(len(p) == 4 for p in per_rank)
        assert sorted(per_rank[0] + per_rank[1]) == sorted(shards[0].global_batch(step))
        seen += per_rank[0] + per_rank[1]
    assert len(seen) == len(set(seen)) == 48  # no example twice in the epoch
    fresh = ShardedSampler(n, batch, accum, seed=3, rank_=1, world=world)
    assert fresh.micro_batches(4) == shards[1].micro_batches(4)  # resumable by step
    assert shards[0].global_batch(6) != shards[0].global_batch(0)  # epoch 1 reshuffled
    assert shards[0].position(7) == {"epoch": 1, "step_in_epoch": 1}


def test_sampler_rejects_indivisible_and_too_small() -> None:
    with pytest.raises(ConfigError, match="not divisible"):
        ShardedSampler(100, 6, 4, rank_=0, world=1)
    with pytest.raises(ConfigError, match="larger than the data"):
        ShardedSampler(3, 4, 1, rank_=0, world=1)


# -- run directory ---------------------------------------------------------------

def test_run_directory_contract_and_refusals(tmp_path: Path) -> None:
    out = tmp_path / "stage"
    cfg = _cfg(out, save_every=2, keep_last=2)
    _train(cfg)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.yaml", "metrics.jsonl", "summary.json"]
    assert [s for s, _ in list_checkpoints(out)] == [4, 6]  # keep the last 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss/total", "loss/mse", "train/lr", "train/grad_norm",
            "train/skipped_steps", "perf/tokens_per_s"} <= set(rows[0])
    assert json.loads((out / "summary.json").read_text())["steps"] == 6

    with pytest.raises(RunDirError, match="finished run"):
        setup_run(_cfg(out))
    (out / "summary.json").unlink()
    with pytest.raises(RunDirError, match="unfinished run with checkpoints"):
        setup_run(_cfg(out))
    over = _cfg(out)
    over.run.overwrite = True
    (out / "keep.txt").write_text("not ours")
    setup_run(over)
    assert (out / "summary.json").exists() is False and (out / "checkpoints").exists()
    Trainer(over.run, over.train, over.optim, _model())  # clears the old run, writes config
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "keep.txt"]


def test_half_written_checkpoints_are_ignored_and_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "stage"
    _train(_cfg(out, max_steps=4, save_every=2))
    ckpts = out / "checkpoints"
    (ckpts / ".tmp-step-000006-999").mkdir()  # a kill during a write
    (ckpts / ".tmp-step-000006-999" / "model.pt").write_bytes(b"half")
    (ckpts / "step-000008").mkdir()  # no meta.json: never complete
    assert latest_checkpoint(out) == ckpts / "step-000004"
    cfg = _cfg(out, max_steps=6, save_every=2)
    cfg.run.resume = True
    setup_run(cfg)
    Trainer(cfg.run, cfg.train, cfg.optim, _model())
    assert not (ckpts / ".tmp-step-000006-999").exists()


# -- resume ----------------------------------------------------------------------

def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    full, _ = _train(_cfg(tmp_path / "a", max_steps=6))

    class Killed(Exception):
        pass

    def dies_at_5(model, batch):
        if batch[2] == 4:  # fails while computing step 5, after the checkpoint of step 4
            raise Killed
        return _mse(model, batch)

    with pytest.raises(Killed):
        _train(_cfg(tmp_path / "b", max_steps=6, save_every=2), loss_fn=dies_at_5)
    resumed, summary = _train(_cfg(tmp_path / "b", max_steps=6, save_every=2), resume=True)
    assert summary["steps_this_run"] == 2
    assert torch.equal(_params(full.unwrap()), _params(resumed.unwrap()))
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


# -- accumulation and weighting --------------------------------------------------

def test_weighted_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    # Items carry a mask: each micro-batch's loss is a mean over its own masked
    # items, and fit weights it by its count, so 4 micro-batches of uneven counts
    # give the update of one batch of 8 (mean over all masked items).
    x, y = _data(16)
    mask = torch.tensor([1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1], dtype=torch.float)

    def masked_mse(model, b):
        err = ((model(b[0]) - b[1]) ** 2).squeeze(-1) * b[2]  # [B]
        return err.sum() / b[2].sum().clamp(min=1), {}

    weights = []
    for accum in (1, 4):
        cfg = _cfg(tmp_path / f"acc{accum}", max_steps=2, batch_size=8)
        cfg.optim.grad_accum = accum
        setup_run(cfg)
        sampler = ShardedSampler(16, 8, accum, seed=0, rank_=0, world=1)
        trainer = Trainer(cfg.run, cfg.train, cfg.optim, _model())
        fit(trainer, lambda s, sm=sampler: [(x[i], y[i], mask[i]) for i in sm.micro_batches(s)],
            masked_mse, weight_fn=lambda b: float(b[2].sum()))
        weights.append(_params(trainer.unwrap()))
    assert torch.allclose(weights[0], weights[1], atol=1e-6)


# -- non-finite guard ------------------------------------------------------------

def test_nan_loss_is_skipped_counted_and_stops_the_run(tmp_path: Path) -> None:
    bad_steps = {2}

    def nan_at(model, batch):
        loss, m = _mse(model, batch)
        return (loss * math.nan if batch[2] in bad_steps else loss), m

    out = tmp_path / "nan"
    cfg = _cfg(out, max_steps=5, max_bad_steps=2)
    trainer, summary = _train(cfg, loss_fn=nan_at)
    assert summary["train/skipped_steps"] == 1
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[2]["loss/total"] is None  # NaN is written as null
    assert [r["train/skipped_steps"] for r in rows] == [0, 0, 1, 1, 1]
    assert [r["train/skipped"] for r in rows] == [0, 0, 1, 0, 0]
    assert math.isfinite(rows[-1]["loss/total"])

    # From step 3 on every loss is NaN: 2 in a row stop the run with a checkpoint
    # whose weights are those after step 3, the last good one.
    bad_steps.clear()
    bad_steps.update(range(3, 100))
    good = {}

    def recording(model, batch):
        if batch[2] == 3:
            good["w"] = _params(model).clone()
        return nan_at(model, batch)

    out2 = tmp_path / "stop"
    with pytest.raises(TrainingError, match="2 steps in a row had a non-finite loss"):
        _train(_cfg(out2, max_steps=20, max_bad_steps=2), loss_fn=recording)
    ckpt = latest_checkpoint(out2)
    assert ckpt is not None and ckpt.name == "step-000005"
    saved = torch.load(ckpt / "model.pt", weights_only=True)["model"]
    assert torch.equal(torch.cat([v.flatten() for v in saved.values()]), good["w"])
    assert not (out2 / "summary.json").exists()


def test_nan_gradient_with_finite_loss_is_skipped(tmp_path: Path) -> None:
    def nan_grad(model, batch):
        loss, m = _mse(model, batch)
        if batch[2] == 1:  # d/dp sqrt(0 * p) = inf * 0 = NaN, while the loss stays finite
            loss = loss + torch.sqrt(0.0 * sum((p ** 2).sum() for p in model.parameters()))
        return loss, m

    trainer, summary = _train(_cfg(tmp_path / "g", max_steps=3), loss_fn=nan_grad)
    assert summary["train/skipped_steps"] == 1
    assert torch.isfinite(_params(trainer.unwrap())).all()


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16),
                                                   ("fp16", torch.float16)])
def test_autocast_trains_on_cpu(tmp_path: Path, precision: str, dtype: torch.dtype) -> None:
    trainer, summary = _train(_cfg(tmp_path / precision, max_steps=5, precision=precision))
    assert trainer.autocast_dtype == dtype
    assert math.isfinite(summary["loss/final"])
    if precision == "fp16":
        # GradScaler starts at 2**16 and halves on overflow: such skips are counted
        # but are not "bad" steps for the stop rule.
        assert trainer.scaler is not None and trainer.scaler.get_scale() < 2**16
        assert summary["train/skipped_steps"] <= 2 and trainer.bad_in_row == 0
    else:
        assert trainer.scaler is None and summary["train/skipped_steps"] == 0
    with trainer.autocast():
        assert trainer.unwrap()(torch.randn(2, 3)).dtype == dtype
