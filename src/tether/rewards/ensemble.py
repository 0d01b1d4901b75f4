"""Reward-model ensembles: N members, combined as mean, worst case or mean - k std.

Members differ by seed and/or a bootstrap sample of the training pairs
(``tether rm`` with ``ensemble.members: N``). Where the data pins the reward
down, they agree; off the training distribution (the responses a policy finds
when it starts to hack the proxy) they disagree, and a conservative rule turns
that disagreement into a lower reward (Coste et al. 2023, "Reward Model
Ensembles Help Mitigate Overoptimization", sec. 3: mean, worst-case and
uncertainty-weighted optimisation; Eisenstein et al. 2023).

Rules, on member scores ``s`` [N, B]:

- ``mean``: s.mean(0)
- ``min``: s.min(0) (worst case)
- ``mean_minus_std``: s.mean(0) - k * s.std(0), the population std (correction
  0, so one member gives std 0 rather than NaN; two members give |a - b| / 2).

Members are usually normalised first (each to mean 0, std 1 on the reference
policy's samples; see :func:`tether.rewards.config.load_reward_source`):
Bradley-Terry fixes a reward only up to a constant, so raw members can sit at
different offsets and ``min`` would just pick the lowest offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from tether.data.records import Prompt
from tether.errors import ConfigError
from tether.rewards.base import RewardSource, as_scores, check_batch


def combine_mean(member_scores: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Mean over members: [N, B] -> [B]."""
    return member_scores.mean(0)


def combine_min(member_scores: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Worst case over members: [N, B] -> [B]."""
    return member_scores.min(0).values


def combine_mean_minus_std(member_scores: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """Uncertainty-weighted: mean - k * population std over members, [N, B] -> [B]."""
    return member_scores.mean(0) - k * member_scores.std(0, correction=0)


RULES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "mean": combine_mean,
    "min": combine_min,
    "mean_minus_std": combine_mean_minus_std,
}


def combine(member_scores: torch.Tensor, rule: str = "mean", k: float = 1.0) -> torch.Tensor:
    """Combine member scores [N, B] into one score per response [B] by ``rule``."""
    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; expected one of {sorted(RULES)}")
    if member_scores.ndim != 2 or member_scores.shape[0] == 0:
        raise ValueError(f"member scores must be [N, B] with N >= 1, got {tuple(member_scores.shape)}")
    return RULES[rule](member_scores, k)


class EnsembleReward:
    """N reward sources combined by ``rule`` (``mean``, ``min``, ``mean_minus_std``)."""

    def __init__(self, members: Sequence[RewardSource], rule: str = "mean", k: float = 1.0,
                 name: str | None = None) -> None:
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        if rule not in RULES:
            raise ConfigError(f"unknown ensemble rule {rule!r}; expected one of {sorted(RULES)}")
        self.members = list(members)
        self.rule, self.k = rule, k
        rule_name = f"mean-{k:g}std" if rule == "mean_minus_std" else rule
        self.name = name or f"ensemble({len(self.members)}, {rule_name})"

    def member_scores(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """Every member's scores, [N, B]."""
        check_batch(prompts, responses)
        return torch.stack([as_scores(m.score(prompts, responses), len(responses), m.name)
                            for m in self.members])  # [N, B]

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """Combined score [B]."""
        return combine(self.member_scores(prompts, responses), self.rule, self.k)

    def disagreement(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """Population std of member scores per response [B]: the ensemble's uncertainty."""
        return self.member_scores(prompts, responses).std(0, correction=0)
