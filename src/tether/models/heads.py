"""Reward and value heads: scalar scores per sequence and values per token.

A reward model is an HF ``...ForSequenceClassification`` with one label and a
value model an HF ``...ForTokenClassification`` with one label (see
:mod:`tether.models.load`). These functions call them the same way whatever the
padding side of the batch, and build them from an in-memory causal LM (the tiny
models of a quick run have no directory yet).

    scores = reward_scores(reward_model, input_ids, attention_mask)   # [B]
    values = token_values(value_model, input_ids, attention_mask)     # [B, T]
"""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedModel,
)

from tether.models.logprobs import position_ids_from_mask


def right_align(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_token_id: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens to the left (right padding), order kept; padding gets ``pad_token_id``."""
    T = attention_mask.shape[1]
    mask = attention_mask.bool()  # [B, T]
    # Stable sort on "is padding" puts real tokens first, in their original order.
    order = torch.sort((~mask).int(), dim=1, stable=True).indices  # [B, T]
    ids = input_ids.gather(1, order)  # [B, T]
    lengths = mask.sum(1, keepdim=True)  # [B, 1]
    new_mask = torch.arange(T, device=mask.device).unsqueeze(0) < lengths  # [B, T]
    ids = torch.where(new_mask, ids, torch.full_like(ids, pad_token_id))
    return ids, new_mask.to(attention_mask.dtype)


def reward_scores(model: torch.nn.Module, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar reward per sequence: ``[B, T] -> [B]``, same numbers for left or right padding.

    The batch is right-aligned first: decoder heads score the last real token
    (found through ``config.pad_token_id``), encoder heads the first token
    (CLS), and both are right where padding is on the right.
    """
    pad = model.config.pad_token_id
    if pad is None:
        raise ValueError("reward_scores: model.config.pad_token_id is not set "
                         "(load it with tether.models.load.load_reward_model)")
    if (attention_mask.sum(1) == 0).any():
        raise ValueError("reward_scores: a row has no real tokens")
    ids, mask = right_align(input_ids, attention_mask, pad)  # [B, T], [B, T]
    return model(input_ids=ids, attention_mask=mask).logits[:, 0]  # [B]


def token_values(model: torch.nn.Module, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor) -> torch.Tensor:
    """Value per token from a token-classification model: ``[B, T] -> [B, T]``, 0 at padding.

    ``values[:, t]`` is the critic's estimate after reading tokens ``<= t``.
    Position ids come from the mask, so padding side does not matter.
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask))
    values = out.logits[..., 0].float()  # [B, T]
    return torch.where(attention_mask.bool(), values, torch.zeros_like(values))


def _head_from_causal_lm(auto_cls: type, causal_lm: PreTrainedModel, seed: int,
                         **config_overrides: object) -> PreTrainedModel:
    """A model of ``auto_cls`` with one label whose backbone is a copy of ``causal_lm``'s.

    The new head is initialised from ``seed``; the global RNG is left as it was.
    """
    config = causal_lm.config.__class__.from_dict(causal_lm.config.to_dict())
    config.num_labels = 1
    for key, value in config_overrides.items():
        setattr(config, key, value)
    if config.pad_token_id is None:
        config.pad_token_id = config.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_cls.from_config(config)
    backbone = causal_lm.base_model.state_dict()
    model.base_model.load_state_dict(backbone, strict=True)
    return model.to(causal_lm.dtype)


def reward_model_from_causal_lm(causal_lm: PreTrainedModel, seed: int = 0) -> PreTrainedModel:
    """A reward model (sequence classification, one label) on a copy of ``causal_lm``'s backbone."""
    return _head_from_causal_lm(AutoModelForSequenceClassification, causal_lm, seed)


def value_model_from_causal_lm(causal_lm: PreTrainedModel, seed: int = 0) -> PreTrainedModel:
    """A value model (token classification, one label, no dropout) on a copy of ``causal_lm``'s backbone."""
    return _head_from_causal_lm(AutoModelForTokenClassification, causal_lm, seed,
                                classifier_dropout=0.0)
