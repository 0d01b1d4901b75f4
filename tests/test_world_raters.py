"""Simulated raters: each bias shows in their labels; Bayes ceiling; rankings; optimum vs gold."""

from __future__ import annotations

import math
import random

import pytest

from tether.errors import ConfigError, DataError
from tether.world.gold import gold
from tether.world.optimum import style_optimum
from tether.world.raters import PROFILES, Rater, RaterProfile, bayes_ceiling, get_profile
from tether.world.styles import render, styles_for
from tether.world.tasks import Task, sample_tasks

N = 600  # pairs per bias test


def _tasks(n: int, seed: int, kinds: tuple[str, ...] | None = None,
           false_claims: bool = False) -> list[Task]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        for t in sample_tasks(400, "train", rng):
            if kinds is not None and t.kind not in kinds:
                continue
            if false_claims and t.claim_true is not False:
                continue
            out.append(t)
    return out[:n]


def win_rate(profile: RaterProfile, pairs: list[tuple[str, str, str]], seed: int = 0) -> float:
    """Share of pairs where the rater picks the first response (shown first)."""
    rater = Rater(profile, seed)
    return sum(rater.choose(p, a, b) for p, a, b in pairs) / len(pairs)


def z_two(p1: float, p2: float, n: int) -> float:
    """Two-proportion z statistic for equal sample sizes."""
    pooled = (p1 + p2) / 2
    se = math.sqrt(2 * pooled * (1 - pooled) / n)
    return (p1 - p2) / se


def _styled_pairs(tasks: list[Task], first: str, second: str,
                  swap_order: bool = True) -> list[tuple[str, str, str, bool]]:
    """(prompt, shown first, shown second, whether the ``first`` style is shown first)."""
    rng = random.Random(7)
    out = []
    for t in tasks:
        a, b = render(t, first, rng), render(t, second, rng)
        if swap_order and rng.random() < 0.5:
            out.append((t.prompt, b, a, False))
        else:
            out.append((t.prompt, a, b, True))
    return out


def style_win_rate(profile: RaterProfile, pairs: list[tuple[str, str, str, bool]],
                   seed: int = 0) -> float:
    """Share of pairs won by the response in the ``first`` style, whatever its position."""
    rater = Rater(profile, seed)
    wins = 0
    for p, a, b, first_is_a in pairs:
        a_won = rater.choose(p, a, b)
        wins += a_won == first_is_a
    return wins / len(pairs)


def without(bias: str, profile: str = "crowd") -> RaterProfile:
    return PROFILES[profile].model_copy(update={bias: 0.0})


# -- every configured bias shows in the labels ----------------------------------------------


def test_length_bias_longer_wins_at_equal_gold():
    """Two right answers of equal gold, one longer: the crowd picks the longer one more often."""
    rng = random.Random(0)
    pairs = []
    for a in range(1, 13):
        for b in range(1, 13):
            prompt = f"What is {a} times {b}?"
            short, long = f"{a * b}.", f"{a} times {b} is {a * b}."
            assert gold(prompt, short).total == gold(prompt, long).total == 1.0
            pairs.append((prompt, long, short, True) if rng.random() < 0.5
                         else (prompt, short, long, False))
    pairs = pairs * 4  # 576 labels
    crowd = style_win_rate(PROFILES["crowd"], pairs)
    flat = style_win_rate(without("length_bias"), pairs)
    assert crowd > 0.6
    assert z_two(crowd, flat, len(pairs)) > 3, (crowd, flat)


@pytest.mark.parametrize("bias,first,second,kinds,false_claims", [
    ("format_bias", "formatted", "concise", None, False),
    ("agreement_bias", "sycophantic", "concise", ("claim_arith", "claim_capital", "claim_legs"),
     True),
    ("confidence_bias", "confident_wrong", "hedged_wrong", ("arith", "capital", "legs", "color",
                                                             "explain", "div0"), False),
])
def test_bias_shows_against_the_same_rater_without_it(bias, first, second, kinds, false_claims):
    """The biased style wins significantly more often than with that one bias set to 0."""
    tasks = [t for t in _tasks(N, 1, kinds, false_claims)
             if first in styles_for(t) and second in styles_for(t)]
    pairs = _styled_pairs(tasks, first, second)
    with_bias = style_win_rate(PROFILES["crowd"], pairs)
    no_bias = style_win_rate(without(bias), pairs)
    assert z_two(with_bias, no_bias, len(pairs)) > 3, (bias, with_bias, no_bias)


def test_format_bias_beats_gold_for_the_crowd_not_the_expert():
    tasks = _tasks(N, 2)
    pairs = _styled_pairs(tasks, "formatted", "concise")
    assert all(gold(p, a if f else b).total < gold(p, b if f else a).total
               for p, a, b, f in pairs)  # gold always prefers the unformatted answer
    assert style_win_rate(PROFILES["crowd"], pairs) > 0.55
    assert style_win_rate(PROFILES["expert"], pairs) < 0.2


def test_unverified_facts_are_judged_by_tone():
    """Confidently wrong beats hedged right far more often when the rater seldom checks facts."""
    tasks = _tasks(N, 3, ("capital", "legs", "color", "explain"))
    pairs = _styled_pairs(tasks, "confident_wrong", "hedged")
    checks_rarely = style_win_rate(PROFILES["crowd"].model_copy(update={"verify_prob": 0.1}),
                                   pairs)
    checks_always = style_win_rate(PROFILES["crowd"].model_copy(update={"verify_prob": 1.0}),
                                   pairs)
    assert checks_rarely > 0.5 > checks_always
    assert z_two(checks_rarely, checks_always, len(pairs)) > 3


def test_position_bias_first_shown_wins_identical_responses():
    """Two renderings of the same concise answer: the position rater favours the first shown."""
    pairs = []
    for t in _tasks(N, 4):
        text = render(t, "concise", random.Random(0))
        pairs.append((t.prompt, text, text))
    pos = win_rate(PROFILES["position"], pairs)
    flat = win_rate(without("position_bias", "position"), pairs)
    assert pos > 0.7
    assert abs(flat - 0.5) < 0.07
    assert z_two(pos, flat, len(pairs)) > 3


def test_expert_labels_agree_with_gold_more_than_crowd_labels():
    """On pairs where gold clearly prefers one side (by >= 0.1), the expert nearly always agrees."""
    tasks = _tasks(400, 5)
    rng = random.Random(0)
    pairs = []
    for t in tasks:
        s1, s2 = rng.sample(list(styles_for(t)), 2)
        a, b = render(t, s1, rng), render(t, s2, rng)
        if abs(gold(t.prompt, a).total - gold(t.prompt, b).total) >= 0.1:
            pairs.append((t.prompt, a, b))

    def agreement(profile: str) -> float:
        rater = Rater(profile, 0)
        return sum(rater.choose(p, a, b) == (gold(p, a).total > gold(p, b).total)
                   for p, a, b in pairs) / len(pairs)

    expert, crowd = agreement("expert"), agreement("crowd")
    assert expert > 0.95
    assert crowd < expert - 0.1, (crowd, expert)


# -- Bayes ceiling --------------------------------------------------------------------------


def test_bayes_ceiling_matches_monte_carlo():
    """mean(max(p, 1-p)) equals the accuracy of the best predictor on fresh labels (< 1 point)."""
    rng = random.Random(0)
    rater = Rater("crowd", seed=11)
    records = []
    for t in sample_tasks(1000, "train", rng):
        s1, s2 = rng.sample(list(styles_for(t)), 2)
        records.append(rater.label_pair(t.prompt, render(t, s1, rng), render(t, s2, rng)))
    ceiling = bayes_ceiling(records)
    hits = draws = 0
    for rec in records:
        a, b = rec["chosen"], rec["rejected"]
        if rec["chosen_position"] == 1:
            a, b = b, a  # the order the rater saw
        predict_a = rater.prob_prefer(rec["prompt"], a, b) >= 0.5
        for _ in range(25):
            hits += rater.choose(rec["prompt"], a, b) == predict_a
            draws += 1
    assert 0.6 < ceiling < 0.99
    assert abs(ceiling - hits / draws) < 0.01, (ceiling, hits / draws)


def test_bayes_ceiling_arithmetic_and_errors():
    assert bayes_ceiling([{"p_chosen": 0.9}, {"p_chosen": 0.2}, {"p_chosen": 0.5}]) == (
        pytest.approx((0.9 + 0.8 + 0.5) / 3))
    with pytest.raises(DataError, match="pairs:2: field 'p_chosen'"):
        bayes_ceiling([{"p_chosen": 0.9}, {"chosen": "x"}])
    with pytest.raises(DataError, match="p_chosen"):
        bayes_ceiling([{"p_chosen": float("nan")}])
    with pytest.raises(DataError, match="no pairs"):
        bayes_ceiling([])


# -- rankings, ratings, thumbs ----------------------------------------------------------------


def test_rank_follows_plackett_luce_top_choice_probabilities():
    """Top-1 frequencies of sampled rankings match softmax(utility / temperature)."""
    rater = Rater("expert", 0)
    prompt = "What is 7 plus 5?"
    responses = ["12", "I think it is 12, but I am not sure.", "Maybe 13, but I am not sure."]
    u = [rater.utility(prompt, r) / rater.profile.temperature for r in responses]
    z = sum(math.exp(x - max(u)) for x in u)
    expected = [math.exp(x - max(u)) / z for x in u]
    n = 4000
    top = [0, 0, 0]
    for _ in range(n):
        ranking = rater.rank(prompt, responses)
        assert sorted(ranking) == [0, 1, 2]
        top[ranking[0]] += 1
    for i in range(3):
        se = math.sqrt(expected[i] * (1 - expected[i]) / n) + 1e-3
        assert abs(top[i] / n - expected[i]) < 4 * se, (top, expected)


def test_rank_position_bias():
    rater = Rater("position", 0)
    prompt = "What is 2 plus 2?"
    firsts = sum(rater.rank(prompt, ["4", "4", "4", "4"])[0] == 0 for _ in range(1000))
    assert firsts > 400  # 250 expected without position bias


def test_likert_and_thumbs_follow_quality():
    rater = Rater("expert", 0)
    prompt = "What is the capital of Spain?"
    good, bad = "The capital of Spain is Madrid.", "Definitely, the capital of Spain is Lisbon."
    ratings = [rater.likert(prompt, good) for _ in range(50)]
    assert set(ratings[0]) == {"helpfulness", "accuracy", "harmlessness", "concision"}
    assert all(1 <= v <= 5 for r in ratings for v in r.values())
    bad_ratings = [rater.likert(prompt, bad) for _ in range(50)]
    mean = lambda rs, d: sum(r[d] for r in rs) / len(rs)  # noqa: E731
    assert mean(ratings, "accuracy") > mean(bad_ratings, "accuracy") + 1.5
    assert mean(ratings, "helpfulness") > mean(bad_ratings, "helpfulness") + 1
    ups = sum(rater.thumbs(prompt, good) for _ in range(200))
    downs = sum(not rater.thumbs(prompt, bad) for _ in range(200))
    assert ups > 180 and downs > 180


def test_same_seed_same_labels_and_no_global_random_state():
    def labels(seed: int) -> list[bool]:
        rater = Rater("crowd", seed)
        return [rater.choose("What is 2 plus 2?", "4", "It is 4, definitely.") for _ in range(50)]

    random.seed(1)
    first = labels(3)
    random.seed(2)
    assert labels(3) == first
    assert labels(4) != first


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown profile"):
        get_profile("lazy")
    with pytest.raises(ConfigError):
        Rater("nobody")


# -- the optimum of the raters' utility is not the optimum of gold ------------------------


def test_rater_optimum_differs_from_gold_optimum():
    """Over the built-in styles, the crowd's favourite is not gold's, and costs gold."""
    crowd = style_optimum("crowd", n_prompts=300, seed=0)
    assert crowd["gold_optimum"] == "concise"
    assert crowd["rater_optimum"] != "concise"
    assert crowd["styles"]["formatted"]["utility_vs_concise"] > 0
    assert crowd["styles"]["sycophantic"]["utility_vs_concise"] > 0
    # the policy that maximises the crowd's utility gets clearly less gold
    assert crowd["policy_gold/rater"] < crowd["policy_gold/gold"] - 0.05
    assert crowd["policy_utility/rater"] > crowd["policy_utility/gold"]
    expert = style_optimum("expert", n_prompts=300, seed=0)
    assert expert["rater_optimum"] == "concise"
    assert expert["policy_gold/rater"] == pytest.approx(expert["policy_gold/gold"], abs=0.01)


def test_profiles_are_documented_and_valid():
    assert set(PROFILES) == {"expert", "crowd", "position"}
    for name, p in PROFILES.items():
        assert p.name == name and p.temperature > 0
    with pytest.raises(Exception, match="temperature"):
        RaterProfile(temperature=0)
