"""Reward-model metrics: accuracy, calibration, bias correlations, worked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tether.data.records import PreferencePair
from tether.eval.rm import (
    accuracy_by_category,
    calibration_bins,
    evaluate_reward_model,
    evaluate_scores,
    expected_calibration_error,
    markdown_markers,
    pairwise_accuracy,
    pearson,
    preference_probs,
    prefers_longer,
    spearman,
)


def test_pairwise_accuracy_counts_ties_half() -> None:
    # wins: 1 > 0, loss: 0 < 2, tie: 1 == 1 -> (1 + 0 + 0.5) / 3
    assert pairwise_accuracy([1, 0, 1], [0, 2, 1]) == pytest.approx(0.5)
    assert accuracy_by_category([1, 0, 1], [0, 2, 1], ["a", "b", "a"]) == {"a": 0.75, "b": 0.0}


def test_preference_probs_is_sigmoid_and_stable() -> None:
    p = preference_probs([0.0, 1.0, 1000.0], [0.0, 0.0, -1000.0])
    assert p[0] == 0.5 and p[1] == pytest.approx(1 / (1 + math.e ** -1)) and p[2] == 1.0


def test_ece_by_hand() -> None:
    # 5 bins over [0.5, 1]: p=0.95 twice (conf .95, right) -> bin 4, acc 1, |1-.95| * 2/4
    # p=0.15 (conf .85, wrong: rejected was more probable) -> bin 3, |0-.85| * 1/4
    # p=0.65 (conf .65, right) -> bin 1, |1-.65| * 1/4;  ECE = .025 + .2125 + .0875 = .325
    probs = [0.95, 0.95, 0.15, 0.65]
    assert expected_calibration_error(probs, n_bins=5) == pytest.approx(0.325)
    bins = calibration_bins(probs, n_bins=5)
    assert [b["count"] for b in bins] == [0, 1, 0, 1, 2]
    # a calibrated model: confidence 0.8 and right 80% of the time -> ECE 0
    assert expected_calibration_error([0.8] * 8 + [0.2] * 2, n_bins=5) == pytest.approx(0.0)


def test_correlations() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)  # monotone, not linear
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    # ties get average ranks: x ranks [1, 2.5, 2.5, 4], y ranks [1, 3, 2, 4]
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 3, 2, 4])
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = np.random.default_rng(0).integers(0, 5, (2, 50))
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


def test_markdown_and_longer() -> None:
    assert markdown_markers("# Title\n- a\n- b\n**bold** text") == 4
    assert markdown_markers("Just 4.") == 0
    # pair 1: longer chosen scores higher (longer wins); pair 2: longer rejected scores lower
    assert prefers_longer([2, 0], [1, 1], ["a b c", "x"], ["a", "x y z"]) == 1.0


def pairs(n: int) -> list[PreferencePair]:
    return [PreferencePair("q", f"good {i}", f"bad answer number {i}",
                           metadata={"category": "ab"[i % 2], "gold_chosen": 1.0,
                                     "gold_rejected": 0.0 if i % 4 else 1.0, "p_chosen": 0.8})
            for i in range(n)]


def test_evaluate_scores_world_fields() -> None:
    ps = pairs(8)
    chosen, rejected = np.arange(8.0), np.full(8, 3.5)  # right on i >= 4
    s = evaluate_scores(ps, chosen, rejected)
    assert s["rm/accuracy"] == 0.5
    assert s["rm/accuracy_by_category"] == {"a": 0.5, "b": 0.5}
    # gold ties on i = 0, 4: 6 decided pairs, RM right on i in {5, 6, 7}
    assert s["gold/pairs"] == 6 and s["gold/accuracy"] == pytest.approx(0.5)
    assert s["raters/bayes_ceiling"] == pytest.approx(0.8)
    assert s["rm/accuracy_gap_to_ceiling"] == pytest.approx(0.3)
    assert s["bias/length_pearson"] is not None
    json.dumps(s, allow_nan=False)  # NaN became None: valid JSON


class LengthReward:
    name = "length"

    def score(self, prompts: list, responses: list[str]) -> torch.Tensor:
        return torch.tensor([-float(len(r.split())) for r in responses])


def test_evaluate_reward_model_writes_summary_and_png(tmp_path: Path) -> None:
    s = evaluate_reward_model(LengthReward(), pairs(10), tmp_path, batch_size=3)
    assert s["rm/accuracy"] == 1.0  # chosen is always shorter
    assert s["bias/length_pearson"] == pytest.approx(-1.0)
    assert s["bias/prefers_longer"] == 0.0
    assert json.loads((tmp_path / "summary.json").read_text())["reward"] == "length"
    png = (tmp_path / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
