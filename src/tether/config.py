"""Typed configs: YAML file + ``key=value`` overrides -> a validated pydantic model.

Every stage declares one config class (a :class:`Config` subclass) built from the
shared sections below. Unknown keys, wrong types and bad values are errors that
name the key and the file; the CLI turns them into one line and exit code 2.

    cfg = load_config(SFTConfig, "configs/sft.yaml", ["optim.lr=3e-4"])
    write_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.errors import ConfigError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of every config section: unknown keys are errors, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              protected_namespaces=())


class RunConfig(Config):
    """Where a stage writes and how it is seeded."""

    out: Path = Path("runs/default")  # run directory of this stage (runs/NAME/STAGE)
    seed: int = 0  # seeds python, numpy and torch
    resume: bool = False  # continue from the newest complete checkpoint in out/
    overwrite: bool = False  # allow writing into an out/ that already holds a finished run


class ModelConfig(Config):
    """Which model to load, or which tiny model to create."""

    path: str | None = None  # a Hugging Face model directory; None: create a tiny model
    tokenizer: str | None = None  # tokenizer directory; default: same as path
    tiny: dict[str, Any] = Field(default_factory=dict)  # overrides of the tiny Llama config
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights dtype
    trust_remote_code: bool = False  # passed to from_pretrained


class LoraConfig(Config):
    """LoRA through peft; the reference model is the same weights with the adapter off."""

    enabled: bool = False
    r: int = Field(8, gt=0)  # rank
    alpha: int = Field(16, gt=0)  # scaling numerator (scale = alpha / r)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"  # peft target_modules


class OptimConfig(Config):
    """AdamW with a warmup + decay schedule, accumulation and clipping."""

    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # final lr / peak lr for linear and cosine
    max_grad_norm: float | None = Field(1.0, gt=0)  # None: no clipping
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimiser step


class TrainConfig(Config):
    """Length of training, batch sizes, precision, logging and checkpoints."""

    max_steps: int = Field(100, ge=1)  # optimiser steps
    batch_size: int = Field(8, ge=1)  # global batch per optimiser step (all ranks, all micro-batches)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast where the device supports it
    log_every: int = Field(1, ge=1)
    save_every: int = Field(0, ge=0)  # 0: only at the end
    keep_last: int = Field(2, ge=1)  # checkpoints kept
    max_bad_steps: int = Field(5, ge=1)  # non-finite losses in a row before the run stops
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    fsdp: bool = False  # wrap the model in FSDP instead of DDP when distributed
    progress: bool = True  # rich progress bar on stderr
    tensorboard: bool = True  # write tb/ when tensorboard is installed


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> ``(["optim", "lr"], 0.0003)``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``a.b.c=value`` in a copy of the nested dict ``data``."""
    data = copy.deepcopy(data) if data else {}  # keeps key order: pipeline stages are ordered
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a section")
            node = child
        node[keys[-1]] = value
    return data


def _format_error(err: ValidationError, source: str, overrides: list[str] | None = None) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
        # name an unknown section as the user typed it: "bogus.key", not "bogus"
        for item in overrides or []:
            typed = item.split("=", 1)[0].strip()
            if typed.startswith(key + "."):
                key = typed
                break
    else:
        msg = first["msg"]
        if "input" in first and not isinstance(first["input"], dict):
            msg += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    tail = f" (and {more} more)" if more > 0 else ""
    return f"{source}: {key}: {msg}{tail}"


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or non-mapping is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of keys at the top level")
    return data


def build_config(cls: type[C], data: dict[str, Any], source: str = "config",
                 overrides: list[str] | None = None) -> C:
    """Validate a nested dict into ``cls``; errors name the key and ``source``."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source, overrides)) from None


def load_config(cls: type[C], path: str | os.PathLike[str] | None = None,
                overrides: list[str] | None = None) -> C:
    """Load ``path`` (optional), apply ``key=value`` overrides and validate into ``cls``."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " + overrides"
        data = apply_overrides(data, overrides)
    return build_config(cls, data, source, overrides)


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config (paths and tuples become str and lists)."""
    return yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    from tether.data.io import atomic_file

    with atomic_file(path) as f:
        f.write(text)


def write_config(cfg: BaseModel, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def exact_div(a: int, b: int, what: str) -> int:
    """``a / b`` when it divides exactly, else a :class:`ConfigError` naming ``what``."""
    if b <= 0 or a % b:
        raise ConfigError(f"{what}: {a} is not divisible by {b}")
    return a // b

