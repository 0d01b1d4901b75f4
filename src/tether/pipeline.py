"""Run a pipeline of stages from one YAML file, caching the stages already done.

A pipeline file names its stages in order; each stage block is that stage's
config (the same keys as ``tether STAGE --config``), plus ``uses:`` (the stage
kind when the block's name is not the kind) and ``config:`` (a stage config
file the block's keys are merged over). ``{out}`` in any string is the
pipeline's output directory, so a stage can read what an earlier one wrote::

    out: runs/demo
    seed: 0
    stages:
      world: {size: small}
      pretrain:
        config: pretrain.yaml             # relative to this file
        data: {path: "{out}/world/pretrain.txt"}
      sft:
        model: {path: "{out}/pretrain/model"}
        data: {path: "{out}/world/sft.jsonl"}
    profiles:
      quick: ["stages.pretrain.train.max_steps=20"]

Each stage writes to ``OUT/NAME``. A stage whose resolved config is unchanged
since it last finished (``summary.json`` present, same config hash) is skipped,
so re-running a pipeline after a failure or an edit runs only what changed and
what comes after it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from tether.config import (
    Config,
    apply_overrides,
    atomic_write_text,
    build_config,
    config_to_dict,
    read_yaml,
)
from tether.errors import ConfigError

STAMP = ".pipeline.json"


class PipelineConfig(Config):
    """A pipeline file: where it writes, its seed, its ordered stages."""

    out: Path = Path("runs/pipeline")  # pipeline output directory; stage NAME writes OUT/NAME
    seed: int = 0  # default run.seed of every stage
    stages: dict[str, dict[str, Any]]  # stage name -> stage config block (ordered)
    profiles: dict[str, list[str]] = Field(default_factory=dict)  # name -> overrides


def _substitute(value: Any, out: str) -> Any:
    """Replace ``{out}`` in every string of a nested structure."""
    if isinstance(value, str):
        return value.replace("{out}", out)
    if isinstance(value, dict):
        return {k: _substitute(v, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, out) for v in value]
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``."""
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _world_step() -> tuple[type[Config], Callable[[Any], dict[str, Any]]]:
    """The built-in world as a pipeline step: ``world build`` into ``run.out``."""
    from tether.world.corpora import WorldBuildConfig, build_world

    return WorldBuildConfig, build_world


# Steps that are not training stages; every other kind is ``tether.stages.<kind>``.
STEPS: dict[str, Callable[[], tuple[type[Config], Callable[[Any], dict[str, Any]]]]] = {
    "world": _world_step,
}
# Command names whose stage module is named otherwise.
STAGE_MODULES = {"rm": "reward"}


def stage_entry(kind: str, name: str) -> tuple[type[Config], Callable[[Any], dict[str, Any]]]:
    """The config class and the run function of a stage kind."""
    if kind in STEPS:
        return STEPS[kind]()
    try:
        mod = importlib.import_module(f"tether.stages.{STAGE_MODULES.get(kind, kind)}")
    except ModuleNotFoundError:
        raise ConfigError(f"pipeline stage {name!r}: unknown stage kind {kind!r}") from None
    return mod.Config, mod.run


def resolve_stages(cfg: PipelineConfig, base: Path = Path(".")
                   ) -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, kind, resolved block)`` for every stage, in order; nothing is run.

    ``config:`` files are found relative to ``base``, the pipeline file's folder.
    """
    out = str(cfg.out)
    resolved = []
    for name, raw in cfg.stages.items():
        block = dict(raw or {})
        kind = block.pop("uses", name)
        if "config" in block:
            block = _merge(read_yaml(base / block.pop("config")), block)
        block = _substitute(block, out)
        run = dict(block.get("run") or {})
        run["out"] = str(Path(out) / name)  # the pipeline owns where each stage writes
        run.setdefault("seed", cfg.seed)
        block["run"] = run
        resolved.append((name, kind, block))
    return resolved


def _hash(kind: str, block: dict[str, Any]) -> str:
    text = json.dumps({"kind": kind, "config": block}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_pipeline(path: str | Path, overrides: list[str] | None = None,
                 profile: str | None = None, force: bool = False,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage of the pipeline file ``path``; returns {stage: summary}."""
    data = read_yaml(path)
    extra = list(overrides or [])
    if profile is not None:
        profiles = data.get("profiles") or {}
        if profile not in profiles:
            raise ConfigError(f"{path}: profiles.{profile}: no such profile")
        extra = list(profiles[profile]) + extra
    if extra:
        data = apply_overrides(data, extra)
    cfg = build_config(PipelineConfig, data, f"{path}" + (" + overrides" if extra else ""))

    # Every stage's config is checked before the first one runs: a typo in the
    # last stage must not cost the minutes of the ones before it.
    stages = []
    for name, kind, block in resolve_stages(cfg, Path(path).parent):
        cls, fn = stage_entry(kind, name)
        block["run"]["overwrite"] = True
        stages.append((name, kind, build_config(cls, block, f"pipeline stage {name!r}"), fn))

    summaries: dict[str, Any] = {}
    rerun_rest = force
    for name, kind, stage_cfg, fn in stages:
        stage_out = Path(stage_cfg.run.out)
        digest = _hash(kind, config_to_dict(stage_cfg))
        stamp = stage_out / STAMP
        done = (stage_out / "summary.json").is_file() and stamp.is_file()
        if done and not rerun_rest and json.loads(stamp.read_text()).get("hash") == digest:
            log(f"[{name}] cached ({stage_out})")
            summaries[name] = json.loads((stage_out / "summary.json").read_text())
            continue
        rerun_rest = True  # a stage that runs again invalidates what depends on it
        log(f"[{name}] running {kind} -> {stage_out}")
        t0 = time.time()
        summaries[name] = fn(stage_cfg)
        atomic_write_text(stamp, json.dumps({"hash": digest, "kind": kind,
                                             "seconds": round(time.time() - t0, 1)}))
        log(f"[{name}] done in {time.time() - t0:.0f}s")
    return summaries
