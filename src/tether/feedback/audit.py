"""Human auditing: put a trained policy's highest-reward outputs in front of people.

Reward hacking shows as outputs the reward model scores highly and humans judge
bad. An audit campaign samples the top-``top`` outputs by reward (from an RL
run's ``samples.jsonl``, or by sampling a policy and scoring it with a reward
model), and asks annotators "good or bad?". Its report (see
:func:`tether.feedback.quality.audit_summary`) is how often a high-reward output
was judged bad, with a Wilson 95% interval.
"""

from __future__ import annotations

import math
import os
from typing import Any

from tether.data.io import iter_records
from tether.errors import DataError, TetherError

REWARD_KEYS = ("reward", "reward/proxy", "proxy_reward", "score")


def top_by_reward(records: list[tuple[int, dict[str, Any]]], top: int,
                  reward_key: str | None = None, path: str | os.PathLike[str] = "<samples>"
                  ) -> list[dict[str, Any]]:
    """The ``top`` records with the highest reward, as audit items (best first).

    Each record needs ``prompt`` and ``response`` text and a finite number under
    ``reward_key`` (default: the first of :data:`REWARD_KEYS` the first record has).
    Duplicate (prompt, response) pairs are kept once.
    """
    if top < 1:
        raise TetherError(f"top: expected >= 1, got {top}")
    if not records:
        raise DataError(path, "no samples")
    key = reward_key or next((k for k in REWARD_KEYS if k in records[0][1]), None)
    if key is None:
        raise DataError(path, f"no reward field (looked for {list(REWARD_KEYS)}; "
                              "name it with --reward-key)", line=records[0][0])
    scored, seen = [], set()
    for line, rec in records:
        prompt, response, r = rec.get("prompt"), rec.get("response"), rec.get(key)
        for name, v in (("prompt", prompt), ("response", response)):
            if not isinstance(v, str) or not v.strip():
                raise DataError(path, "missing or empty text", line=line, field=name)
        if isinstance(r, bool) or not isinstance(r, int | float) or not math.isfinite(r):
            raise DataError(path, f"expected a finite number, got {r!r}", line=line, field=key)
        if (prompt, response) in seen:
            continue
        seen.add((prompt, response))
        scored.append((float(r), line, prompt, response))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [{"prompt": p, "response": resp, "reward": r, "rank": k, "source_line": line,
             "reward_key": key}
            for k, (r, line, p, resp) in enumerate(scored[:top])]


def audit_items_from_samples(path: str | os.PathLike[str], top: int,
                             reward_key: str | None = None) -> list[dict[str, Any]]:
    """Audit items from a samples file (``{prompt, response, reward...}`` per line)."""
    return top_by_reward(list(iter_records(path)), top, reward_key, path)


def audit_items_from_policy(policy: str, prompts_path: str | os.PathLike[str],
                            reward_model: str, top: int, n: int = 4,
                            max_new_tokens: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """Sample ``n`` responses per prompt from ``policy``, score them with a reward model
    directory (as the RL stages do), and keep the ``top`` highest."""
    from tether.feedback.serving import sample_responses
    from tether.rewards import RewardConfig, load_reward_source

    prompts = []
    for line, rec in iter_records(prompts_path):
        p = rec.get("prompt")
        if not isinstance(p, str) or not p.strip():
            raise DataError(prompts_path, "missing or empty text", line=line, field="prompt")
        prompts.append(p)
    if not prompts:
        raise DataError(prompts_path, "no prompts")
    responses = sample_responses(policy, prompts, n, max_new_tokens, seed=seed)
    flat_p = [p for p, rs in zip(prompts, responses, strict=True) for _ in rs]
    flat_r = [r for rs in responses for r in rs]
    source = load_reward_source(RewardConfig(kind="model", path=reward_model))
    scores = source.score(flat_p, flat_r).tolist()
    records = [(i + 1, {"prompt": p, "response": r, "reward": s})
               for i, (p, r, s) in enumerate(zip(flat_p, flat_r, scores, strict=True))
               if r.strip()]
    return top_by_reward(records, top, "reward", f"{policy} samples")
