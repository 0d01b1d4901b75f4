"""Reward sources and transforms: ensemble rules, normalisation, capping, functions, config."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tether.config import build_config
from tether.errors import ConfigError, TetherError
from tether.rewards import (
    Cap,
    EnsembleReward,
    FunctionReward,
    Normalize,
    RewardConfig,
    RewardSource,
    combine,
    load_reward_source,
    transformed,
)


class Table:
    """A reward source that looks scores up per response text."""

    def __init__(self, name: str, table: dict[str, float]) -> None:
        self.name, self.table = name, table

    def score(self, prompts: list, responses: list[str]) -> torch.Tensor:
        return torch.tensor([self.table[r] for r in responses])


def test_combination_rules_by_hand() -> None:
    s = torch.tensor([[1.0, 4.0], [3.0, 0.0]])  # [N=2, B=2]
    assert combine(s, "mean").tolist() == [2.0, 2.0]
    assert combine(s, "min").tolist() == [1.0, 0.0]
    # population std: |1-3|/2 = 1, |4-0|/2 = 2 -> mean - 1*std = [1, 0]; k=0.5 -> [1.5, 1]
    assert combine(s, "mean_minus_std", k=1.0).tolist() == [1.0, 0.0]
    assert combine(s, "mean_minus_std", k=0.5).tolist() == [1.5, 1.0]
    assert combine(s[:1], "mean_minus_std").tolist() == [1.0, 4.0]  # one member: std 0
    with pytest.raises(ConfigError, match="unknown ensemble rule 'max'"):
        combine(s, "max")


def test_ensemble_member_scores_and_disagreement() -> None:
    a = Table("a", {"x": 1.0, "y": 4.0})
    b = Table("b", {"x": 3.0, "y": 0.0})
    ens = EnsembleReward([a, b], rule="min")
    assert isinstance(ens, RewardSource)
    assert ens.member_scores(["p", "p"], ["x", "y"]).tolist() == [[1.0, 4.0], [3.0, 0.0]]
    assert ens.score(["p", "p"], ["x", "y"]).tolist() == [1.0, 0.0]
    assert ens.disagreement(["p", "p"], ["x", "y"]).tolist() == [1.0, 2.0]
    assert ens.name == "ensemble(2, min)"


def test_normalize_fit_and_cap_compose() -> None:
    src = Table("t", {"a": 1.0, "b": 3.0, "c": 5.0, "d": 100.0})
    norm = Normalize.fit(src, ["p", "p"], ["a", "b"])  # mean 2, population std 1
    assert (norm.mean, norm.std) == (2.0, 1.0)
    both = transformed(src, [norm, Cap(2.5)])
    # (1-2)/1 = -1; (5-2)/1 = 3 -> capped at 2.5; (100-2) -> 2.5
    assert both.score(["p"] * 3, ["a", "c", "d"]).tolist() == [-1.0, 2.5, 2.5]
    assert both.name == "t | normalize(mean=2, std=1) | cap(2.5)"
    assert transformed(src, []) is src
    with pytest.raises(ConfigError, match="std > 0"):
        Normalize(0.0, 0.0)
    # a constant source still gets a valid scale
    assert Normalize.fit(Table("k", {"a": 1.0}), ["p", "p"], ["a", "a"]).std > 0


@pytest.fixture
def reward_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        def shorter(prompts, responses):
            return [-len(r) for r in responses]
        def nan(prompts, responses):
            return [float("nan")] * len(responses)
        def few(prompts, responses):
            return [1.0]
        NOT_CALLABLE = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_rewards"
    sys.modules.pop("my_rewards", None)


def test_function_reward(reward_module: str) -> None:
    r = FunctionReward(f"{reward_module}:shorter")
    assert r.score(["p", [{"role": "user", "content": "q"}]], ["ab", "abcd"]).tolist() == [-2, -4]
    with pytest.raises(TetherError, match="score 0 is nan"):
        FunctionReward(f"{reward_module}:nan").score(["p"], ["x"])
    with pytest.raises(TetherError, match="returned 1 scores for 2"):
        FunctionReward(f"{reward_module}:few").score(["p", "p"], ["x", "y"])
    for spec, msg in [("no_colon", "expected 'package.module:function'"),
                      ("no_such_module_xyz:f", "cannot import"),
                      (f"{reward_module}:missing", "has no 'missing'"),
                      (f"{reward_module}:NOT_CALLABLE", "not callable")]:
        with pytest.raises(ConfigError, match=msg):
            FunctionReward(spec)


def test_reward_config_validation_and_loading(reward_module: str) -> None:
    with pytest.raises(ConfigError, match="kind 'model' needs path"):
        build_config(RewardConfig, {"kind": "model"})
    with pytest.raises(ConfigError, match="both mean and std"):
        build_config(RewardConfig, {"kind": "gold", "mean": 1.0})
    with pytest.raises(ConfigError, match="reward model directory not found"):
        load_reward_source(build_config(RewardConfig, {"path": "/nonexistent/rm"}))
    cfg = build_config(RewardConfig, {"kind": "function", "function": f"{reward_module}:shorter",
                                      "normalize": True, "cap": 0.5})
    with pytest.raises(ConfigError, match="needs samples of the reference policy"):
        load_reward_source(cfg)
    src = load_reward_source(cfg, reference=(["p", "p"], ["a", "abc"]))  # mean -2, std 1
    assert src.score(["p", "p"], ["abcd", "a"]).tolist() == [-2.0, 0.5]  # (-4+2)/1; 1 -> cap
    fixed = load_reward_source(build_config(RewardConfig, {
        "kind": "function", "function": f"{reward_module}:shorter", "mean": -1, "std": 2}))
    assert fixed.score(["p"], ["abc"]).tolist() == [-1.0]  # (-3 + 1) / 2
