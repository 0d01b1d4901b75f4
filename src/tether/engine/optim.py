"""AdamW and its learning-rate schedule (constant, linear or cosine, after a linear warmup)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from tether.config import OptimConfig


def lr_factor(step: int, schedule: str, warmup_steps: int, max_steps: int,
              min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr for the update made at (0-based) ``step``.

    Warmup rises linearly, reaching 1 at ``step == warmup_steps - 1``; then
    ``constant`` stays at 1, ``linear`` falls to ``min_lr_ratio`` at the last step,
    and ``cosine`` follows half a cosine to ``min_lr_ratio`` (Loshchilov & Hutter
    2017, SGDR, without restarts).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    if schedule == "cosine":
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def param_groups(named_params: Iterable[tuple[str, torch.nn.Parameter]],
                 weight_decay: float) -> list[dict]:
    """Two AdamW groups: decay on matrices, none on biases, norms and other vectors.

    Decaying gains and biases hurts and is skipped by GPT-2/nanoGPT practice.
    """
    decay, no_decay = [], []
    for _, p in named_params:
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``."""
    groups = param_groups(model.named_parameters(), cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                    max_steps: int) -> LambdaLR:
    """A LambdaLR stepping once per optimiser step with :func:`lr_factor`."""
    return LambdaLR(optimizer, lambda s: lr_factor(s, cfg.schedule, cfg.warmup_steps,
                                                   max_steps, cfg.min_lr_ratio))
