"""`tether rm` and `tether rm eval` through the CLI, on tiny models and synthetic feedback."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tether.config import load_config
from tether.data.records import PreferencePair, load_pairs, rankings_to_pairs, read_rankings

torch.set_num_threads(1)

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 64}
GOOD = ["Sure, happy to help.", "Here it is, done.", "Yes, glad to help you.",
        "Of course, here you go."]
BAD = ["No. Go away.", "Whatever, figure it out.", "I will not, stop asking.", "Ugh, no."]


def synthetic_pairs(path: Path, n: int, seed: int) -> Path:
    """Polite (chosen) vs rude (rejected) replies to varied prompts: easy to learn."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            f.write(json.dumps({"prompt": f"Please add {a} and {b}.", "chosen": rng.choice(GOOD),
                                "rejected": rng.choice(BAD), "category": "xy"[i % 2]}) + "\n")
    return path


def tether(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether.cli", *args], capture_output=True,
                          text=True, timeout=300)


def write_config(path: Path, out: Path, train: Path, heldout: Path | None, **extra: object
                 ) -> Path:
    cfg = {"run": {"out": str(out)}, "model": {"tiny": TINY},
           "train": {"max_steps": 15, "batch_size": 8, "progress": False, "tensorboard": False},
           "optim": {"lr": 3e-3, "warmup_steps": 0},
           "data": {"train": str(train), "eval": str(heldout) if heldout else None,
                    "max_length": 64}}
    for key, value in extra.items():
        section, field = key.split("__")
        cfg.setdefault(section, {})[field] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("rmdata")
    return synthetic_pairs(d / "train.jsonl", 160, 0), synthetic_pairs(d / "heldout.jsonl", 40, 1)


def test_rm_cli_trains_evaluates_and_keeps_run_dir_contract(tmp_path: Path,
                                                            data: tuple[Path, Path]) -> None:
    train, heldout = data
    out = tmp_path / "rm"
    cfg_path = write_config(tmp_path / "rm.yaml", out, train, heldout)
    res = tether("rm", "--config", str(cfg_path))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "model",
                 "eval/summary.json", "eval/reliability.png"):
        assert (out / name).exists(), name
    assert (out / "model" / "config.json").is_file()
    assert (out / "model" / "tokenizer.json").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 16))
    assert all(math.isfinite(x["loss/total"]) for x in lines)
    assert summary["loss/final"] < summary["loss/first"]
    assert summary["perf/pairs_per_s"] > 0 and summary["pairs_trained"] == 15 * 8
    assert summary["shared_prompt"] is True
    assert summary["eval"]["rm/accuracy"] >= 0.9
    assert set(summary["eval"]["rm/accuracy_by_category"]) == {"x", "y"}

    # the weights moved away from their (seeded, reproducible) initialisation
    from tether.models.load import load_reward_model
    from tether.stages.reward import Config, build_reward_model

    cfg = load_config(Config, cfg_path)
    init, _ = build_reward_model(cfg, load_pairs(train), cfg.run.seed)
    trained = load_reward_model(out / "model")
    assert not torch.allclose(init.score.weight, trained.score.weight)

    # `tether rm eval` on the saved model gives the same figures
    res = tether("rm", "eval", "--model", str(out / "model"), "--data", str(heldout),
                 "--out", str(tmp_path / "ev"))
    assert res.returncode == 0, res.stderr
    ev = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert ev["rm/accuracy"] == summary["eval"]["rm/accuracy"]
    assert ev["rm/ece"] == pytest.approx(summary["eval"]["rm/ece"], abs=1e-6)
    assert (tmp_path / "ev" / "reliability.png").is_file()


def test_malformed_pair_exits_2_naming_file_line_field(tmp_path: Path,
                                                       data: tuple[Path, Path]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n'
                   '{"prompt": "p", "rejected": "r"}\n')
    out = tmp_path / "never"
    res = tether("rm", f"data.train={bad}", f"run.out={out}")
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {bad}:2: field 'chosen': missing"
    assert not out.exists()  # nothing half-written
    bad.write_text('{"prompt": "p", "chosen": 5, "rejected": "r"}\n')
    res = tether("rm", "eval", "--model", str(tmp_path), "--data", str(bad))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {bad}:1: field 'chosen': expected a string, got int"

    from typer.testing import CliRunner

    from tether.cli import app

    runner = CliRunner()
    for record, msg in [('{"prompt": "p", "chosen": " ", "rejected": "r"}', "'chosen': empty text"),
                        ('{"prompt": "p", "chosen": ["x"], "rejected": "r"}', "'chosen[0]'"),
                        ('{"prompt": "", "chosen": "c", "rejected": "r"}', "'prompt': empty")]:
        bad.write_text(record + "\n")
        res = runner.invoke(app, ["rm", f"data.train={bad}", f"run.out={out}"])
        assert res.exit_code == 2 and f"{bad}:1: field {msg}" in res.output, res.output
    res = runner.invoke(app, ["rm", f"data.train={data[0]}", "optim.lrr=1"])
    assert res.exit_code == 2 and "optim.lrr: unknown key" in res.output
    assert not out.exists()


def test_rankings_become_one_weighted_unit(tmp_path: Path) -> None:
    from tether.models.factory import tiny_model_and_tokenizer
    from tether.stages.reward import PairBatcher, bt_loss_fn, make_units

    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"prompt": "q", "responses": ["a", "bb", "ccc"],
                                "ranking": [2, 0, 1]}) + "\n")
    pairs = rankings_to_pairs(read_rankings(path))
    pairs += [PreferencePair("p", "yes", "no", margin=0.5), PreferencePair("p2", "ok", "bad")]
    units = make_units(pairs)
    assert [len(u) for u in units] == [3, 1, 1]  # the ranking's 3 pairs stay together
    lm, tok = tiny_model_and_tokenizer(seed=0, **TINY)
    batcher = PairBatcher(tok, units, max_length=32, use_margin=True)
    batch = batcher.collate([0, 1])
    assert batch["input_ids"].shape[0] == 8  # 4 chosen rows, then 4 rejected rows
    assert batch["weights"].tolist() == pytest.approx([1 / 3] * 3 + [1.0])
    assert batch["margin"].tolist() == [0.0, 0.0, 0.0, 0.5]
    # the ranking as a whole weighs as much as the one plain pair: check against the loss
    from tether.models.heads import reward_model_from_causal_lm

    rm = reward_model_from_causal_lm(lm)
    loss, metrics = bt_loss_fn(centering=0.1)(rm, batch)
    with torch.no_grad():
        r = rm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    c, j = r[:4], r[4:]
    per_pair = -torch.nn.functional.logsigmoid(c - j - batch["margin"])
    expected = (per_pair[:3].mean() + per_pair[3]) / 2 + 0.1 * ((c + j) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert "loss/rm_centering" in metrics
    # the shared-prompt layout (pairs packed in rows, prompt read once) gives the same loss
    shared = PairBatcher(tok, units, max_length=32, use_margin=True, share_prompt=True)
    batch = shared.collate([0, 1])
    assert batch["input_ids"].shape[0] <= 4 and batch["attention_mask"].ndim == 4
    loss_shared, _ = bt_loss_fn(centering=0.1)(rm, batch)
    assert loss_shared.item() == pytest.approx(loss.item(), rel=1e-5)


def test_ensemble_bootstrap_rule_and_resume(tmp_path: Path, data: tuple[Path, Path]) -> None:
    train, heldout = data
    out = tmp_path / "ens"
    cfg_path = write_config(tmp_path / "e.yaml", out, train, heldout, ensemble__members=2,
                            ensemble__bootstrap=True, ensemble__rule="min", train__max_steps=5)
    res = tether("rm", "train", "--config", str(cfg_path))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    meta = json.loads((out / "model" / "ensemble.json").read_text())
    assert meta == {"members": ["member-0", "member-1"], "rule": "min", "k": 1.0,
                    "bootstrap": True}
    assert (out / "model" / "member-1" / "config.json").is_file()
    assert (out / "members" / "member-0" / "metrics.jsonl").is_file()
    assert summary["eval"]["reward"] == "ensemble(2, min)"
    assert summary["eval"]["ensemble/disagreement_mean"] > 0
    assert summary["steps"] == 10
    # resuming a finished ensemble trains nothing again
    from tether.stages.reward import Config, run

    again = run(load_config(Config, cfg_path, ["run.resume=true"]))
    assert again["steps"] == 0 and again["eval"]["rm/accuracy"] == summary["eval"]["rm/accuracy"]


def test_lora_reward_model_saves_merged(tmp_path: Path, data: tuple[Path, Path]) -> None:
    from tether.rewards import ModelReward
    from tether.stages.reward import Config, run

    train, heldout = data
    cfg = load_config(Config, write_config(tmp_path / "l.yaml", tmp_path / "lora", train, None,
                                           lora__enabled=True, lora__r=4, train__max_steps=3))
    summary = run(cfg)
    assert math.isfinite(summary["loss/final"])
    keys = json.dumps(json.loads((tmp_path / "lora" / "model" / "config.json").read_text()))
    assert "lora" not in keys
    rm = ModelReward.load(tmp_path / "lora" / "model")
    assert rm.score(["q"], ["Sure, happy to help."]).shape == (1,)


def test_minilm_encoder_trains_and_evaluates(tmp_path: Path, data: tuple[Path, Path]) -> None:
    from tether.models.load import load_reward_model, minilm_path
    from tether.stages.reward import Config, run

    train, heldout = data
    cfg = load_config(Config, write_config(
        tmp_path / "m.yaml", tmp_path / "minilm", train, heldout, model__path="minilm",
        train__max_steps=4, train__batch_size=4, optim__lr=1e-4))
    summary = run(cfg)
    assert all(math.isfinite(summary[k]) for k in ("loss/first", "loss/final"))
    assert summary["eval"]["pairs"] == 40 and 0 <= summary["eval"]["rm/accuracy"] <= 1
    before = load_reward_model(minilm_path())
    after = load_reward_model(tmp_path / "minilm" / "model")
    assert after.config.model_type == "bert"
    w0 = before.bert.encoder.layer[0].attention.self.query.weight
    w1 = after.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.allclose(w0, w1)  # the encoder itself was fine-tuned
