"""Reward models on the built-in world: rater biases show up in the RM, ensembles see novelty,
and (slow) a tiny causal-LM RM comes within 3 points of the raters' Bayes ceiling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tether.config import build_config
from tether.data.io import write_jsonl

torch.set_num_threads(1)

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 64}


def world_pairs(path: Path, n: int, split: str, rater: object = "crowd") -> Path:
    from tether.world.corpora import pair_records

    write_jsonl(path, pair_records(n, split, seed=0, rater=rater))  # type: ignore[arg-type]
    return path


def train_rm(out: Path, train: Path, heldout: Path | None, steps: int, **extra: object
             ) -> dict:
    from tether.stages.reward import Config, run

    cfg = {"run": {"out": str(out)}, "model": {"tiny": TINY},
           "optim": {"lr": 3e-3, "warmup_steps": 0},
           "train": {"max_steps": steps, "batch_size": 16, "progress": False,
                     "tensorboard": False},
           "data": {"train": str(train), "eval": str(heldout) if heldout else None,
                    "max_length": 96}}
    for key, value in extra.items():
        section, field = key.split("__")
        cfg.setdefault(section, {})[field] = value
    return run(build_config(Config, cfg))


def test_rm_bias_grows_with_rater_bias(tmp_path: Path) -> None:
    """The same response pairs labelled by the crowd rater, and by a crowd rater whose
    length and formatting biases are turned up: the second RM's scores correlate more
    with length and with formatting on the same held-out responses."""
    from tether.world.raters import PROFILES

    biased = PROFILES["crowd"].model_copy(update={"name": "crowd-biased", "length_bias": 0.3,
                                                  "format_bias": 0.5})
    heldout = world_pairs(tmp_path / "heldout.jsonl", 200, "heldout")
    evals = {}
    for name, rater in (("crowd", "crowd"), ("biased", biased)):
        train = world_pairs(tmp_path / f"{name}.jsonl", 800, "train", rater)
        evals[name] = train_rm(tmp_path / name, train, heldout, steps=120)["eval"]
    for key in ("bias/length_spearman", "bias/format_pearson"):
        assert evals["biased"][key] > evals["crowd"][key] + 0.1, (key, evals)
    assert evals["biased"]["bias/prefers_longer"] > evals["crowd"]["bias/prefers_longer"]


OFF_DISTRIBUTION = [  # nothing like the world's responses: other scripts, code, noise
    "Zzyzx qwv plorb fnord glim glam.", "答案是十二。", "def f(x):\n    return x ** 2",
    "Ответ: двенадцать.", "!!!!! ????? ##### @@@@@ %%%%%", "答えは東京です。",
    "SELECT * FROM users WHERE id = 1;", "정답은 열둘입니다.",
]


def test_ensemble_disagrees_more_off_distribution(tmp_path: Path) -> None:
    """Three members (seeds 0, 1, 2; same 200 world pairs) agree more on held-out world
    responses than on responses unlike anything in the world. Measured (population std of
    normalised member scores; run.seed 0, 1, 2): 0.314 vs 0.567, 0.308 vs 0.510, 0.274 vs
    0.468. With ensemble.bootstrap the members disagree on a third of their own training
    data too, and the gap narrows (held-out 0.46 vs noise 0.49 and other scripts 0.65 at
    run.seed 0): bootstrap is not used here."""
    from tether.data.records import read_pairs
    from tether.rewards import RewardConfig, load_reward_source

    train = world_pairs(tmp_path / "train.jsonl", 200, "train")
    train_rm(tmp_path / "ens", train, None, steps=150, ensemble__members=3)
    seen = read_pairs(train)
    held = read_pairs(world_pairs(tmp_path / "heldout.jsonl", 48, "heldout"))
    # members normalised on in-distribution samples, as an RL stage does on its reference
    # policy's samples: Bradley-Terry fixes each member only up to an offset and a scale
    cfg = build_config(RewardConfig, {"path": str(tmp_path / "ens" / "model"),
                                      "normalize": True})
    ens = load_reward_source(cfg, reference=([p.prompt for p in seen] * 2,
                                             [p.chosen for p in seen] + [p.rejected for p in seen]))
    prompts = [p.prompt for p in held]
    in_dist = ens.disagreement(prompts * 2, [p.chosen for p in held] + [p.rejected for p in held])
    off_dist = ens.disagreement(prompts, OFF_DISTRIBUTION * 6)
    assert off_dist.mean() > 1.3 * in_dist.mean(), (float(off_dist.mean()),
                                                    float(in_dist.mean()))


def test_text_ceiling_is_what_the_bayes_predictor_reaches(tmp_path: Path) -> None:
    """The raters' ceiling from their own p_chosen counts draws no model can see (did this
    rater check this prompt's facts?); the text-level ceiling marginalises them out and is
    what the Bayes-optimal predictor of the label from the texts actually scores."""
    from tether.data.records import read_pairs
    from tether.eval.rm import text_bayes_ceiling
    from tether.world.raters import Rater, bayes_ceiling

    pairs = read_pairs(world_pairs(tmp_path / "h.jsonl", 300, "heldout"))
    text = text_bayes_ceiling(pairs, n_raters=32)
    world = bayes_ceiling([p.metadata for p in pairs])
    assert text is not None and 0.5 < text < world
    # the Bayes predictor: the side the raters pick more often, over their private draws
    raters = [Rater("crowd", s) for s in range(2000, 2032)]
    hits = 0
    for p in pairs:
        first = p.metadata["chosen_position"] == 0
        a, b = (p.chosen, p.rejected) if first else (p.rejected, p.chosen)
        q_a = sum(r.prob_prefer(p.prompt, a, b) for r in raters) / len(raters)
        hits += (q_a > 0.5) == first
    assert abs(hits / len(pairs) - text) < 0.05
    for p in pairs:  # not a built-in rater profile: no text-level ceiling
        p.metadata["rater"] = "someone"
    assert text_bayes_ceiling(pairs) is None


@pytest.mark.slow
def test_tiny_causal_rm_within_3_points_of_bayes_ceiling(tmp_path: Path) -> None:
    """The acceptance run: `tether world build`, then `tether rm --config configs/rm.yaml`
    on its crowd-labelled pairs; held-out accuracy within 3 points of the Bayes ceiling
    that a text-only model can reach (the raters' own-p ceiling is reported beside it)."""
    world = tmp_path / "world"
    cli = [sys.executable, "-m", "tether.cli"]
    subprocess.run([*cli, "world", "build", "--out", str(world)], check=True,
                   capture_output=True, timeout=600)
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([*cli, "rm", "--config", str(root / "configs" / "rm.yaml"),
                          f"run.out={tmp_path / 'rm'}", f"data.train={world}/pairs_train.jsonl",
                          f"data.eval={world}/pairs_heldout.jsonl", "train.progress=false"],
                         capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads(res.stdout)["eval"]
    assert ev["raters/bayes_ceiling_text"] - ev["rm/accuracy"] <= 0.03, ev
    assert ev["raters/bayes_ceiling_text"] < ev["raters/bayes_ceiling"]
    assert ev["gold/accuracy"] > 0.5
