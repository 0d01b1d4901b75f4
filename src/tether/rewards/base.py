"""The interface every RL stage scores with: a :class:`RewardSource`.

A reward source maps a batch of (prompt, response) texts to one score each::

    scores = source.score(prompts, responses)   # torch.float32 tensor [B] on the CPU

Prompts are the raw prompt strings a prompt set gave (not wrapped in a chat
template: each source formats them the way it needs), or chat message lists.
Responses are the decoded response texts. The result is always a CPU float32
tensor, whatever the source computes with, so stages can mix sources freely.

Implementations: :class:`~tether.rewards.model.ModelReward` (one reward model),
:class:`~tether.rewards.ensemble.EnsembleReward`,
:class:`~tether.rewards.gold.GoldReward` (the built-in world's true preference),
:class:`~tether.rewards.function.FunctionReward` (a Python function by import
path), and :class:`~tether.rewards.transforms.Transformed` (normalisation and
capping on top of any of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from tether.data.records import Prompt, prompt_text
from tether.errors import TetherError


@runtime_checkable
class RewardSource(Protocol):
    """Scores a batch of prompt/response texts; ``name`` says which source it is."""

    name: str

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """One score per (prompt, response): float32 tensor [B] on the CPU."""
        ...


def check_batch(prompts: Sequence[Prompt], responses: Sequence[str]) -> None:
    """Prompts and responses must pair up one to one."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")


def as_scores(values: object, n: int, name: str) -> torch.Tensor:
    """Turn a source's output into a finite float32 CPU tensor [n], or a TetherError."""
    try:
        t = torch.as_tensor(values, dtype=torch.float32).detach().cpu().reshape(-1)  # [B]
    except (TypeError, ValueError, RuntimeError) as e:
        raise TetherError(f"reward source {name!r}: cannot read its scores as numbers ({e})") \
            from None
    if t.numel() != n:
        raise TetherError(f"reward source {name!r}: returned {t.numel()} scores for {n} responses")
    bad = (~torch.isfinite(t)).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        raise TetherError(f"reward source {name!r}: score {i} is {t[i].item()} (not finite; "
                          f"{len(bad)} of {n} scores)")
    return t


def prompt_str(prompt: Prompt) -> str:
    """The text of a prompt for sources that need a string (last user message of a chat)."""
    return prompt_text(prompt)


__all__ = ["RewardSource", "as_scores", "check_batch", "prompt_str"]
