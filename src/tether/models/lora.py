"""LoRA adapters through peft, and the reference model as "the same weights, adapter off".

With LoRA the policy is ``W + (alpha / r) * B @ A`` on top of frozen base
weights ``W`` (Hu et al. 2021, eq. 3), so the reference model of PPO/DPO/GRPO is
free: run the same module with the adapter disabled. No second copy in memory.

    policy = apply_lora(model, cfg.lora)
    with torch.no_grad(), reference_model(policy) as ref:
        ref_logprobs = sequence_token_logprobs(ref, input_ids, attention_mask)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from tether.config import LoraConfig


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    while isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return model


def has_lora(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or the module DDP wraps) is a peft model with a LoRA adapter."""
    from peft import PeftModel, PeftType

    inner = unwrap(model)
    return isinstance(inner, PeftModel) and any(
        c.peft_type == PeftType.LORA for c in inner.peft_config.values())


def apply_lora(model: torch.nn.Module, cfg: LoraConfig, task_type: str = "CAUSAL_LM"
               ) -> torch.nn.Module:
    """Wrap ``model`` in a peft LoRA adapter; only adapter weights (and task heads) stay trainable.

    ``task_type`` is a peft task: ``CAUSAL_LM`` for policies, ``SEQ_CLS`` for
    reward models and ``TOKEN_CLS`` for value models (peft then also trains the
    freshly initialised ``score`` head). Applies the adapter whatever
    ``cfg.enabled`` says; callers check ``enabled``.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if has_lora(model):
        raise ValueError("apply_lora: the model already has a LoRA adapter")
    peft_cfg = PeftLoraConfig(task_type=task_type, r=cfg.r, lora_alpha=cfg.alpha,
                              lora_dropout=cfg.dropout, target_modules=cfg.target_modules)
    return get_peft_model(model, peft_cfg)


@contextmanager
def reference_model(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Context in which ``model`` computes as its base weights, with the LoRA adapter off.

    Yields ``model`` itself. A model without an adapter has no built-in
    reference: that is a ``ValueError`` (keep a frozen copy of it instead).
    """
    if not has_lora(model):
        raise ValueError("reference_model: the model has no LoRA adapter; "
                         "use a separate frozen reference model")
    with unwrap(model).disable_adapter():
        yield model
