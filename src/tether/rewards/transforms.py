"""Reward transforms every RL stage can put on any reward source.

- :class:`Normalize` shifts and scales scores to mean 0, std 1 on the reference
  policy's samples (Ziegler et al. 2019, sec. 2.2: "we normalize the reward
  model so that it has mean 0 and variance 1" on samples of the initial
  policy), so a KL coefficient means the same thing whichever RM is used.
- :class:`Cap` clips scores at a maximum: past it, more proxy reward buys the
  policy nothing, which blunts the incentive to over-optimise an imperfect
  proxy (a simple guard against reward hacking; Gao et al. 2023 show gold
  reward falling as proxy reward keeps rising).

Compose them with :func:`transformed`: ``transformed(rm, [Normalize.fit(...),
Cap(2.0)])`` applies them in order and is itself a
:class:`~tether.rewards.base.RewardSource`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from tether.data.records import Prompt
from tether.errors import ConfigError
from tether.rewards.base import RewardSource, as_scores, check_batch


class Transform(Protocol):
    """A function of a score tensor [B] -> [B] with a short ``describe()``."""

    def __call__(self, scores: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Normalize:
    """``(score - mean) / std``; fit on reference samples with :meth:`fit`."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std)) or self.std <= 0:
            raise ConfigError(f"reward normalisation needs a finite mean and std > 0, "
                              f"got mean={self.mean}, std={self.std}")

    @classmethod
    def fit(cls, source: RewardSource, prompts: Sequence[Prompt], responses: Sequence[str],
            batch_size: int = 64, eps: float = 1e-6) -> Normalize:
        """Mean and std of ``source``'s scores on (reference) samples."""
        check_batch(prompts, responses)
        if len(prompts) < 2:
            raise ConfigError(f"reward normalisation needs >= 2 reference samples, "
                              f"got {len(prompts)}")
        scores = torch.cat([source.score(prompts[i:i + batch_size], responses[i:i + batch_size])
                            for i in range(0, len(prompts), batch_size)])  # [N]
        # eps: a source that scores every reference sample the same still gets a valid scale
        return cls(float(scores.mean()), max(float(scores.std(correction=0)), eps))

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return (scores - self.mean) / self.std

    def describe(self) -> str:
        return f"normalize(mean={self.mean:.4g}, std={self.std:.4g})"


@dataclass(frozen=True)
class Cap:
    """``min(score, max_score)``."""

    max_score: float

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.clamp(max=self.max_score)

    def describe(self) -> str:
        return f"cap({self.max_score:g})"


class Transformed:
    """A reward source whose scores pass through ``transforms`` in order."""

    def __init__(self, source: RewardSource, transforms: Sequence[Transform]) -> None:
        self.source = source
        self.transforms = list(transforms)
        self.name = " | ".join([source.name] + [t.describe() for t in self.transforms])

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """The source's scores [B], transformed."""
        scores = as_scores(self.source.score(prompts, responses), len(responses), self.source.name)
        for t in self.transforms:
            scores = t(scores)
        return scores


def transformed(source: RewardSource, transforms: Sequence[Transform]) -> RewardSource:
    """``source`` with ``transforms`` applied in order (``source`` itself when there are none)."""
    return Transformed(source, transforms) if transforms else source
