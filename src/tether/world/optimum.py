"""Which response style each scorer rewards most: the raters' optimum against gold's.

A policy that maximised the raters' utility would write, for each prompt, the
style with the highest expected rater utility; one that maximised gold, the
style with the highest gold score. :func:`style_optimum` measures both over a
sample of prompts and reports the gold each policy would get: the gap is the
reward hacking the raters' biases invite (README, "The built-in world").
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from tether.world.gold import gold
from tether.world.raters import Rater, RaterProfile
from tether.world.styles import render, styles_for
from tether.world.tasks import sample_tasks


def style_optimum(profile: str | RaterProfile = "crowd", n_prompts: int = 400, seed: int = 0,
                  split: str = "train") -> dict[str, Any]:
    """Per-style mean gold and mean rater utility, and the gold of each argmax policy.

    Returns ``styles`` ({style: {"gold", "utility", "gold_vs_concise",
    "utility_vs_concise", "prompts"}}: means over the prompts where the style
    applies, and the mean difference to the concise answer on those same
    prompts, so that styles of different prompts compare), ``gold_optimum`` and
    ``rater_optimum`` (the style with the largest mean gain over concise on
    each scale; concise itself gains 0), and for the two per-prompt
    policies (best style by rater utility, best style by gold) their mean
    gold: ``policy_gold/rater`` and ``policy_gold/gold``, and their mean rater
    utility: ``policy_utility/rater`` and ``policy_utility/gold``.
    """
    rng = random.Random(f"optimum:{seed}")
    rater = Rater(profile, seed)
    tasks = sample_tasks(n_prompts, split, rng)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0])
    pol = {"gold": [0.0, 0.0], "rater": [0.0, 0.0]}  # [gold, utility] sums
    picks: dict[str, int] = defaultdict(int)
    for task in tasks:
        scored = []
        for style in styles_for(task):
            text = render(task, style, rng)
            g = gold(task.prompt, text).total
            u = rater.expected_utility(task.prompt, text)
            scored.append((style, g, u))
        _, g0, u0 = next(x for x in scored if x[0] == "concise")
        for style, g, u in scored:
            s = sums[style]
            s[0], s[1], s[2], s[3], s[4] = s[0] + g, s[1] + u, s[2] + g - g0, s[3] + u - u0, s[4] + 1
        by_gold = max(scored, key=lambda x: x[1])
        by_rater = max(scored, key=lambda x: x[2])
        picks[by_rater[0]] += 1
        for name, (_, g, u) in (("gold", by_gold), ("rater", by_rater)):
            pol[name][0] += g
            pol[name][1] += u
    styles = {k: {"gold": v[0] / v[4], "utility": v[1] / v[4], "gold_vs_concise": v[2] / v[4],
                  "utility_vs_concise": v[3] / v[4], "prompts": int(v[4])}
              for k, v in sorted(sums.items())}
    n = len(tasks)
    return {
        "rater": rater.profile.name,
        "prompts": n,
        "styles": styles,
        "gold_optimum": max(styles, key=lambda k: styles[k]["gold_vs_concise"]),
        "rater_optimum": max(styles, key=lambda k: styles[k]["utility_vs_concise"]),
        "policy_gold/gold": pol["gold"][0] / n,
        "policy_gold/rater": pol["rater"][0] / n,
        "policy_utility/gold": pol["gold"][1] / n,
        "policy_utility/rater": pol["rater"][1] / n,
        "rater_policy_styles": dict(sorted(picks.items())),
    }
