"""One config section every RL stage uses to build its reward: :class:`RewardConfig`.

    reward:
      kind: model            # model | ensemble | gold | function
      path: runs/x/rm/model  # a reward model dir, or an ensemble dir from `tether rm`
      normalize: true        # mean 0, std 1 on the reference policy's samples
      cap: 3.0               # maximum score (after normalisation)

An ensemble directory written by ``tether rm`` with ``ensemble.members: N``
holds ``ensemble.json`` and ``member-0/ .. member-{N-1}/``; ``kind: model``
pointing at it loads the ensemble (with its rule, unless ``rule`` is set
here). ``kind: ensemble`` with ``paths`` combines reward models trained apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tether.config import Config
from tether.data.records import Prompt
from tether.errors import ConfigError, DataError
from tether.rewards.base import RewardSource
from tether.rewards.transforms import Cap, Normalize, Transform, transformed

ENSEMBLE_FILE = "ensemble.json"


class RewardConfig(Config):
    """Which reward an RL stage optimises, and how it is normalised and capped."""

    kind: Literal["model", "ensemble", "gold", "function"] = "model"  # which source
    path: str | None = None  # model: an RM dir or an ensemble dir (holding ensemble.json)
    paths: list[str] = Field(default_factory=list)  # ensemble: member RM dirs
    rule: Literal["mean", "min", "mean_minus_std"] | None = None  # ensemble rule; None: saved or mean
    k: float = Field(1.0, ge=0)  # mean_minus_std: how many member stds to subtract
    function: str | None = None  # function: "package.module:function" (prompts, responses) -> floats
    normalize: bool = False  # mean 0, std 1 on the reference policy's samples (each member for ensembles)
    mean: float | None = None  # fixed normalisation instead of fitting: (score - mean) / std
    std: float | None = Field(None, gt=0)
    cap: float | None = None  # maximum score after normalisation; None: no cap
    batch_size: int = Field(32, ge=1)  # responses per reward-model forward
    max_length: int = Field(512, ge=8)  # tokens of prompt + response; longer: cut from the left
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # reward model weights

    @model_validator(mode="after")
    def _check(self) -> RewardConfig:
        if self.kind == "model" and not self.path:
            raise ValueError("kind 'model' needs path (a reward model directory)")
        if self.kind == "ensemble" and not (self.paths or self.path):
            raise ValueError("kind 'ensemble' needs paths (member directories) or path")
        if self.kind == "function" and not self.function:
            raise ValueError("kind 'function' needs function ('package.module:function')")
        if (self.mean is None) != (self.std is None):
            raise ValueError("set both mean and std for a fixed normalisation, or neither")
        if self.normalize and self.mean is not None:
            raise ValueError("normalize fits mean and std; do not also set them")
        return self


def is_ensemble_dir(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble written by ``tether rm`` (it holds ensemble.json)."""
    return (Path(path) / ENSEMBLE_FILE).is_file()


def read_ensemble_dir(path: str | Path) -> tuple[list[Path], str, float]:
    """Member dirs, rule and k of an ensemble dir."""
    p = Path(path) / ENSEMBLE_FILE
    try:
        meta = json.loads(p.read_text())
        members = [Path(path) / m for m in meta["members"]]
        return members, str(meta.get("rule", "mean")), float(meta.get("k", 1.0))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(p, f"not a valid ensemble description ({e})") from None


def _model_sources(cfg: RewardConfig, device: str) -> tuple[list[RewardSource], str, float]:
    from tether.rewards.model import ModelReward

    rule, k = cfg.rule or "mean", cfg.k
    if cfg.paths:
        dirs = [Path(p) for p in cfg.paths]
    elif cfg.path and is_ensemble_dir(cfg.path):
        dirs, saved_rule, saved_k = read_ensemble_dir(cfg.path)
        rule, k = cfg.rule or saved_rule, cfg.k if cfg.rule else saved_k
    else:
        dirs = [Path(str(cfg.path))]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"reward model directory not found: {d}")
    sources: list[RewardSource] = [
        ModelReward.load(d, device=device, dtype=cfg.dtype, batch_size=cfg.batch_size,
                         max_length=cfg.max_length) for d in dirs]
    return sources, rule, k


def load_reward_source(cfg: RewardConfig, reference: tuple[Sequence[Prompt], Sequence[str]]
                       | None = None, device: str = "cpu") -> RewardSource:
    """Build the reward source ``cfg`` describes.

    ``reference``: (prompts, responses) sampled from the reference policy, needed
    when ``cfg.normalize`` is set; the fitted mean and std show in the source's
    ``name``. Order of transforms: normalise, then cap.
    """
    from tether.rewards.ensemble import EnsembleReward
    from tether.rewards.function import FunctionReward
    from tether.rewards.gold import GoldReward

    if cfg.normalize and reference is None:
        raise ConfigError("reward.normalize needs samples of the reference policy to fit on")

    def normalised(src: RewardSource) -> RewardSource:
        if not cfg.normalize:
            return src
        assert reference is not None
        return transformed(src, [Normalize.fit(src, reference[0], reference[1],
                                               batch_size=cfg.batch_size)])

    source: RewardSource
    if cfg.kind == "gold":
        source = normalised(GoldReward())
    elif cfg.kind == "function":
        source = normalised(FunctionReward(str(cfg.function)))
    else:
        members, rule, k = _model_sources(cfg, device)
        if len(members) == 1 and cfg.kind == "model":
            source = normalised(members[0])
        else:  # each member normalised before combining (see tether.rewards.ensemble)
            source = EnsembleReward([normalised(m) for m in members], rule=rule, k=k)
    transforms: list[Transform] = []
    if cfg.mean is not None and cfg.std is not None:
        transforms.append(Normalize(cfg.mean, cfg.std))
    if cfg.cap is not None:
        transforms.append(Cap(cfg.cap))
    return transformed(source, transforms)
