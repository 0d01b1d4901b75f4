"""The built-in world's true preference as a reward source.

Only the world can score responses by the gold preference (DESIGN.md, "The
built-in world"); RL stages use it for the ``reward/gold`` curve beside
``reward/proxy``, or as the reward itself (an oracle run: what a perfect reward
model would give).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tether.data.records import Prompt
from tether.rewards.base import as_scores, check_batch, prompt_str


class GoldReward:
    """``tether.world.gold.gold_scores`` of (prompt, response) texts."""

    name = "gold"

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """Gold scores [B]; chat prompts are scored by their last user message."""
        from tether.world.gold import gold_scores

        check_batch(prompts, responses)
        values = gold_scores([prompt_str(p) for p in prompts], list(responses))
        return as_scores(values, len(responses), self.name)
