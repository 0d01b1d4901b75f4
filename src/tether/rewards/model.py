"""A trained reward model as a reward source, and the text encoding it is trained with.

A reward model is ``AutoModelForSequenceClassification`` with ``num_labels=1``:
a transformer with a scalar head. For a causal LM (Llama, the SFT model) the
head reads the hidden state of the last non-pad token; for an encoder (BERT,
MiniLM) it reads the pooled first token.

How a (prompt, response) becomes tokens — :func:`encode`, shared by training
(``tether rm``) and scoring, so the two never drift apart:

- tokenizer with a chat template (the tiny models, most chat LLMs): the prompt
  as a user message (or the prompt's own message list) plus the response as an
  assistant message, rendered by the template, which ends the assistant turn
  with eos; the head then reads the eos token. Too long: cut from the left,
  so the end of the response, where the score is read, survives.
- no chat template (BERT-style encoders): the tokenizer's text-pair encoding
  ``[CLS] prompt [SEP] response [SEP]`` (a cross-encoder), truncated from the
  longer side. A chat prompt is rendered as ``role: content`` lines. Token
  type ids are not passed (all segment 0), in training and scoring alike:
  sentence-transformers' MiniLM was trained that way.

Batches are right-padded; the scores do not depend on padding (tested).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from tether.data.records import Prompt
from tether.rewards.base import as_scores, check_batch


def _messages(prompt: Prompt, response: str) -> list[dict[str, str]]:
    head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return head + [{"role": "assistant", "content": response}]


def _plain(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def tokenize(tokenizer: Any, prompts: Sequence[Prompt], responses: Sequence[str],
             max_length: int = 512) -> list[list[int]]:
    """Token ids of each (prompt, response) for a reward model, unpadded (see module docstring)."""
    check_batch(prompts, responses)
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template(_messages(p, r), tokenize=False)
                 for p, r in zip(prompts, responses, strict=True)]
        side = tokenizer.truncation_side
        tokenizer.truncation_side = "left"  # keep the response's end, where the score is read
        try:
            enc = tokenizer(texts, add_special_tokens=False, truncation=True,
                            max_length=max_length)
        finally:
            tokenizer.truncation_side = side
    else:
        enc = tokenizer([_plain(p) for p in prompts], list(responses),
                        truncation="longest_first", max_length=max_length)
    return [list(ids) for ids in enc["input_ids"]]


def pad_right(sequences: Sequence[Sequence[int]], pad_token_id: int
              ) -> dict[str, torch.Tensor]:
    """Right-pad token id lists: ``input_ids``, ``attention_mask`` [B, T]."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pad_right: every sequence needs at least one token")
    T = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), T), pad_token_id, dtype=torch.long)  # [B, T]
    mask = torch.zeros((len(sequences), T), dtype=torch.long)  # [B, T]
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def encode(tokenizer: Any, prompts: Sequence[Prompt], responses: Sequence[str],
           max_length: int = 512) -> dict[str, torch.Tensor]:
    """Tokenise and right-pad (prompt, response) pairs: ``input_ids``, ``attention_mask`` [B, T]."""
    return pad_right(tokenize(tokenizer, prompts, responses, max_length), tokenizer.pad_token_id)


def reward_forward(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
                   ) -> torch.Tensor:
    """Scalar rewards [B] (float32) of a sequence-classification model with one label.

    Goes through :func:`tether.models.heads.reward_scores`, which right-aligns
    the batch, so the head reads the right token whatever the padding side.
    """
    from tether.models.heads import reward_scores

    return reward_scores(model, input_ids, attention_mask).float()  # [B]


class ModelReward:
    """A reward model (directory or in-memory model + tokenizer) scoring in batches."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "rm", batch_size: int = 32,
                 max_length: int = 512) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.name, self.batch_size, self.max_length = name, batch_size, max_length

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu", dtype: str = "float32",
             batch_size: int = 32, max_length: int = 512) -> ModelReward:
        """Load a reward model directory (``save_pretrained`` layout, tokenizer beside)."""
        from tether.models.load import load_reward_model, load_tokenizer

        model = load_reward_model(str(path), dtype=dtype).to(device).eval()
        return cls(model, load_tokenizer(str(path)), name=f"rm:{path}", batch_size=batch_size,
                   max_length=max_length)

    @torch.no_grad()
    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """Scores [B] (float32, CPU); the model's train/eval mode is restored after."""
        check_batch(prompts, responses)
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        out = []
        try:
            for i in range(0, len(responses), self.batch_size):
                enc = encode(self.tokenizer, prompts[i:i + self.batch_size],
                             responses[i:i + self.batch_size], self.max_length)
                out.append(reward_forward(self.model, enc["input_ids"].to(device),
                                          enc["attention_mask"].to(device)).cpu())
        finally:
            self.model.train(was_training)
        scores = torch.cat(out) if out else torch.zeros(0)  # [B]
        return as_scores(scores, len(responses), self.name)
