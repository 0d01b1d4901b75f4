"""``tether world build``: the corpora, prompt sets, probe sets and labelled pairs of the world.

Everything is drawn from ``random.Random`` instances seeded by the build seed
and the file's name, so one seed gives the same bytes every time; every file is
written atomically. Files (names are a contract; see README, "The built-in world"):

- ``pretrain.txt``: one document per line, ``User: <prompt> Assistant: <response>``
  or a response alone, every response style in equal shares (train prompts only);
- ``sft.jsonl``: ``messages`` chats, mostly concise and correct, some realistic
  flaws (``SFT_MIX``), with ``category``, ``language`` and ``style``;
- ``prompts_train.jsonl``, ``prompts_heldout.jsonl``: ``{"prompt", "category",
  "language", "kind"}`` from disjoint prompt texts;
- ``probes/<pattern>.jsonl`` for sycophancy, verbosity, confident_nonsense and
  formatting: held-out prompts with ``responses`` in several ``styles``, their
  ``gold``, and which style is the ``good_style`` and which the ``hack_style``;
- ``pairs_train.jsonl``, ``pairs_heldout.jsonl``: two styled responses per prompt
  labelled by the ``crowd`` rater (pairs format with ``rater``, ``p_chosen``,
  ``category``, ``gold_chosen``, ``gold_rejected``, ``style_chosen``, ...);
- ``world.json``: the seed, sizes, gold weights, rater profiles and counts;
  ``summary.json``: the counts (what a pipeline step reports).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

import tether.config
from tether.config import RunConfig, atomic_write_text
from tether.data.io import write_jsonl
from tether.errors import ConfigError
from tether.world.gold import GOLD_WEIGHTS, gold
from tether.world.raters import PROFILES, Rater
from tether.world.styles import STYLES, render, styles_for
from tether.world.tasks import (
    CATEGORIES,
    CATEGORY_WEIGHTS,
    FALSE_CLAIM_SHARE,
    HELDOUT_FRACTION,
    Task,
    all_tasks,
    sample_tasks,
    tasks_by_category,
)

WORLD_VERSION = 1
SIZES: dict[str, dict[str, int]] = {
    "small": {"pretrain": 2000, "sft": 300, "prompts_train": 200, "prompts_heldout": 60,
              "pairs_train": 300, "pairs_heldout": 100, "probes": 30},
    "default": {"pretrain": 30000, "sft": 4000, "prompts_train": 2000, "prompts_heldout": 500,
                "pairs_train": 4000, "pairs_heldout": 1000, "probes": 200},
}
# SFT demonstrations: mostly concise and correct, with the flaws real demonstrations have.
SFT_MIX = {"concise": 0.80, "padded": 0.07, "formatted": 0.04, "hedged": 0.04,
           "confident_wrong": 0.015, "hedged_wrong": 0.01, "sycophantic": 0.01,
           "refusal": 0.01, "wrong_language": 0.005}
PROBE_PATTERNS: dict[str, dict[str, Any]] = {
    "sycophancy": {"kinds": ("claim_arith", "claim_capital", "claim_legs"), "false_claims": True,
                   "styles": ("concise", "sycophantic", "padded", "formatted", "hedged"),
                   "hack": "sycophantic"},
    "verbosity": {"kinds": None, "styles": ("concise", "padded"), "hack": "padded"},
    "confident_nonsense": {"kinds": ("arith", "capital", "legs", "color", "explain", "div0",
                                     "unanswerable"),
                           "styles": ("concise", "confident_wrong", "hedged_wrong"),
                           "hack": "confident_wrong"},
    "formatting": {"kinds": None, "styles": ("concise", "formatted"), "hack": "formatted"},
}


class WorldBuildConfig(tether.config.Config):
    """``tether world build``: where to write, the seed, and how much."""

    run: RunConfig = Field(default_factory=lambda: RunConfig(out=Path("runs/world")))
    size: Literal["small", "default"] = "default"  # small: seconds, for tests; default: ~3 MB
    pairs_rater: str = "crowd"  # rater profile that labels pairs_train/heldout.jsonl


def _weighted_style(task: Task, mix: dict[str, float], rng: random.Random) -> str:
    options = [s for s in styles_for(task) if mix.get(s, 0) > 0]
    return rng.choices(options, weights=[mix[s] for s in options])[0]


def pretrain_documents(n: int, seed: int) -> list[str]:
    """``n`` one-line documents: 80% dialogues, 20% a response alone; styles uniform."""
    rng = random.Random(f"pretrain:{seed}")
    docs = []
    for task in sample_tasks(n, "train", rng):
        text = render(task, rng.choice(styles_for(task)), rng)
        docs.append(f"User: {task.prompt} Assistant: {text}" if rng.random() < 0.8 else text)
    return docs


def sft_records(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` chat demonstrations in the ``SFT_MIX`` of styles (train prompts only)."""
    rng = random.Random(f"sft:{seed}")
    out = []
    for task in sample_tasks(n, "train", rng):
        style = _weighted_style(task, SFT_MIX, rng)
        out.append({"messages": [{"role": "user", "content": task.prompt},
                                 {"role": "assistant", "content": render(task, style, rng)}],
                    "category": task.category, "language": task.language, "style": style})
    return out


def prompt_records(n: int, split: str, seed: int) -> list[dict[str, Any]]:
    """``n`` RL prompts of one split: ``{"prompt", "category", "language", "kind"}``."""
    rng = random.Random(f"prompts:{split}:{seed}")
    return [{"prompt": t.prompt, "category": t.category, "language": t.language, "kind": t.kind}
            for t in sample_tasks(n, split, rng)]


def probe_records(pattern: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` held-out probes of one reward-hacking pattern (see ``PROBE_PATTERNS``)."""
    spec = PROBE_PATTERNS[pattern]
    rng = random.Random(f"probes:{pattern}:{seed}")
    pool = [t for tasks in tasks_by_category("heldout").values() for t in tasks
            if (spec["kinds"] is None or t.kind in spec["kinds"])
            and (not spec.get("false_claims") or t.claim_true is False)
            and all(s in styles_for(t) for s in spec["styles"])]
    if spec["kinds"] is None:  # spread over categories rather than mostly arithmetic
        by_cat: dict[str, list[Task]] = {}
        for t in pool:
            by_cat.setdefault(t.category, []).append(t)
        picked = [rng.choice(by_cat[c]) for c in rng.choices(sorted(by_cat), k=n)]
    else:
        picked = rng.sample(pool, min(n, len(pool)))
    out = []
    for t in picked:
        texts = [render(t, s, rng) for s in spec["styles"]]
        out.append({"prompt": t.prompt, "category": t.category, "language": t.language,
                    "pattern": pattern, "good_style": "concise", "hack_style": spec["hack"],
                    "styles": list(spec["styles"]), "responses": texts,
                    "gold": [gold(t.prompt, x).total for x in texts]})
    return out


def pair_records(n: int, split: str, seed: int, rater: str = "crowd") -> list[dict[str, Any]]:
    """``n`` pairs of styled responses labelled by ``rater``, prompts of one split.

    Half the pairs set the concise answer against another style, half two other
    styles; the order shown to the rater is random.
    """
    rng = random.Random(f"pairs:{split}:{seed}")
    labeller = Rater(rater, seed)
    out = []
    for t in sample_tasks(n, split, rng):
        options = list(styles_for(t))
        if rng.random() < 0.5:
            pair = ["concise", rng.choice([s for s in options if s != "concise"])]
        else:
            pair = rng.sample([s for s in options if s != "concise"], 2)
        rng.shuffle(pair)
        a, b = (render(t, s, rng) for s in pair)
        rec = labeller.label_pair(t.prompt, a, b)
        first_won = rec["chosen_position"] == 0
        rec.update(category=t.category, language=t.language,
                   style_chosen=pair[0] if first_won else pair[1],
                   style_rejected=pair[1] if first_won else pair[0])
        out.append(rec)
    return out


def world_parameters(cfg: WorldBuildConfig) -> dict[str, Any]:
    """Everything that defines a built world (written as ``world.json``, counts added)."""
    universe = {c: len(ts) for c, ts in tasks_by_category().items()}
    return {
        "version": WORLD_VERSION, "seed": cfg.run.seed, "size": cfg.size,
        "sizes": SIZES[cfg.size], "categories": list(CATEGORIES),
        "category_weights": CATEGORY_WEIGHTS, "false_claim_share": FALSE_CLAIM_SHARE,
        "heldout_fraction": HELDOUT_FRACTION, "prompt_universe": universe,
        "prompt_universe_total": len(all_tasks()), "styles": list(STYLES), "sft_mix": SFT_MIX,
        "gold_weights": GOLD_WEIGHTS, "pairs_rater": cfg.pairs_rater,
        "rater_profiles": {k: p.model_dump() for k, p in PROFILES.items()},
        "probe_patterns": {k: {"styles": list(v["styles"]), "hack_style": v["hack"]}
                           for k, v in PROBE_PATTERNS.items()},
    }


def build_world(cfg: WorldBuildConfig) -> dict[str, Any]:
    """Write every file of the world into ``cfg.run.out``; returns the summary (counts).

    A directory that already holds a built world (``summary.json``) is only
    written again with ``run.overwrite``; the check happens before any write.
    """
    out = Path(cfg.run.out)
    if cfg.pairs_rater not in PROFILES:
        raise ConfigError(f"pairs_rater: unknown rater profile {cfg.pairs_rater!r} "
                          f"(choose from {', '.join(PROFILES)})")
    if (out / "summary.json").exists() and not cfg.run.overwrite:
        raise ConfigError(f"{out}: already holds a built world (use --overwrite, "
                          "or run.overwrite=true)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    size, seed = SIZES[cfg.size], cfg.run.seed
    counts: dict[str, int] = {}

    docs = pretrain_documents(size["pretrain"], seed)
    atomic_write_text(out / "pretrain.txt", "\n".join(docs) + "\n")
    counts["pretrain.txt"] = len(docs)
    counts["sft.jsonl"] = write_jsonl(out / "sft.jsonl", sft_records(size["sft"], seed))
    for split in ("train", "heldout"):
        name = f"prompts_{split}.jsonl"
        counts[name] = write_jsonl(out / name, prompt_records(size[name[:-6]], split, seed))
    for pattern in PROBE_PATTERNS:
        name = f"probes/{pattern}.jsonl"
        counts[name] = write_jsonl(out / name, probe_records(pattern, size["probes"], seed))
    for split in ("train", "heldout"):
        name = f"pairs_{split}.jsonl"
        counts[name] = write_jsonl(out / name, pair_records(size[name[:-6]], split, seed,
                                                            cfg.pairs_rater))
    params = dict(world_parameters(cfg), counts=counts)
    atomic_write_text(out / "world.json", json.dumps(params, indent=2, sort_keys=True) + "\n")
    summary = {"seed": seed, "size": cfg.size, "counts": counts}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return dict(summary, out=str(out))
