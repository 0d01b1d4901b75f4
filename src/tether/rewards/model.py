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


# ------------------------------------------------------------------ shared-prompt training rows
#
# The chosen and rejected sequences of a pair start with the same tokens (the
# rendered prompt). A decoder reward model can read that prefix once: one row
# ``[prefix | chosen rest | rejected rest]`` whose attention mask lets the
# rejected tokens see the prefix and themselves but not the chosen tokens, and
# whose position ids restart the rejected part where the prefix ends. Each
# token then computes exactly what it computes in its own sequence (tested to
# 1e-5), with P + C + R tokens per pair instead of 2P + C + R. Short pairs
# share a row (block-diagonal mask) up to the length of the longest pair, so
# little is spent on padding. The scores are read from the head's per-token
# output (a forward hook) at the last token of each part.


def shared_prefix_len(chosen_ids: Sequence[int], rejected_ids: Sequence[int]) -> int:
    """Length of the common token prefix, leaving at least one token in each sequence."""
    n = 0
    limit = min(len(chosen_ids), len(rejected_ids)) - 1
    while n < limit and chosen_ids[n] == rejected_ids[n]:
        n += 1
    return n


def score_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The per-token scalar head (``score``) of a decoder reward model, through DDP and peft.

    None for models this does not apply to: encoders (BERT's head reads the
    pooled CLS token) and attention kernels that take no 4D mask.
    """
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if hasattr(inner, "get_base_model"):  # peft
        inner = inner.get_base_model()
    config = getattr(inner, "config", None)
    if getattr(config, "is_encoder_decoder", False) or \
            getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    head = getattr(inner, "score", None)
    return head if isinstance(head, torch.nn.Module) else None


def shared_prompt_batch(chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]],
                        pad_token_id: int, float_mask_dtype: torch.dtype | None = None
                        ) -> dict[str, torch.Tensor]:
    """Pairs as ``[prefix | chosen rest | rejected rest]`` segments packed into rows.

    Segments are packed first-fit by decreasing length into rows no longer than
    the longest segment (so no row grows past what one pair needs: short pairs
    share a row instead of padding). The 4D mask is block-diagonal, one causal
    block per pair with the rejected part blind to the chosen part.

    Returns ``input_ids``, ``position_ids`` [R, L], ``attention_mask`` [R, 1, L, L]
    (bool, True = attend, for SDPA; with ``float_mask_dtype`` an additive 0 / min
    mask for eager attention), ``chosen_index`` and ``rejected_index`` [P] (flat
    indices into the [R * L] token positions of the last token of each part, in
    the order of the pairs given) and ``n_tokens`` (real tokens). Padding tokens
    attend only to themselves.
    """
    segments = []
    for c, r in zip(chosen, rejected, strict=True):
        k = shared_prefix_len(c, r)
        segments.append((list(c[:k]), list(c[k:]), list(r[k:])))
    sizes = [len(a) + len(b) + len(c) for a, b, c in segments]
    L = max(sizes)
    rows: list[list[int]] = []  # pair indices per row
    free: list[int] = []  # room left per row
    for i in sorted(range(len(segments)), key=lambda i: -sizes[i]):
        for row, room in enumerate(free):
            if sizes[i] <= room:
                rows[row].append(i)
                free[row] -= sizes[i]
                break
        else:
            rows.append([i])
            free.append(L - sizes[i])
    R = len(rows)
    ids = torch.full((R, L), pad_token_id, dtype=torch.long)  # [R, L]
    pos = torch.zeros((R, L), dtype=torch.long)  # [R, L]
    allow = torch.zeros((R, L, L), dtype=torch.bool)  # [R, L, L]
    chosen_index = torch.empty(len(segments), dtype=torch.long)  # [P]
    rejected_index = torch.empty(len(segments), dtype=torch.long)  # [P]
    for row, members in enumerate(rows):
        o = 0
        for i in members:
            pre, c_rest, r_rest = segments[i]
            k, nc, n = len(pre), len(c_rest), sizes[i]
            ids[row, o:o + n] = torch.tensor(pre + c_rest + r_rest)
            pos[row, o:o + k + nc] = torch.arange(k + nc)
            pos[row, o + k + nc:o + n] = torch.arange(k, n - nc)  # rejected continues the prefix
            block = torch.ones(n, n, dtype=torch.bool).tril()  # causal within the pair
            block[k + nc:, k:k + nc] = False  # rejected tokens never see chosen tokens
            allow[row, o:o + n, o:o + n] = block
            chosen_index[i], rejected_index[i] = row * L + o + k + nc - 1, row * L + o + n - 1
            o += n
        allow[row, o:, o:] = torch.eye(L - o, dtype=torch.bool)  # padding: only itself
    mask = allow[:, None]  # [R, 1, L, L]
    if float_mask_dtype is not None:
        mask = torch.zeros(mask.shape, dtype=float_mask_dtype).masked_fill(
            ~mask, torch.finfo(float_mask_dtype).min)
    return {"input_ids": ids, "position_ids": pos, "attention_mask": mask,
            "chosen_index": chosen_index, "rejected_index": rejected_index,
            "n_tokens": torch.tensor(float(sum(sizes)))}


def shared_prompt_rewards(model: torch.nn.Module, batch: dict[str, torch.Tensor]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen and rejected rewards [P], [P] from one forward over :func:`shared_prompt_batch` rows.

    ``model`` is called as a whole (so DDP synchronises gradients); the head's
    per-token output is taken with a forward hook and read at the two indices.
    """
    head = score_head(model)
    if head is None:
        raise ValueError("shared_prompt_rewards needs a decoder reward model with a `score` head")
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], use_cache=False)
    finally:
        handle.remove()
    logits = captured[-1][..., 0].float().reshape(-1)  # [R * L]
    return logits[batch["chosen_index"]], logits[batch["rejected_index"]]  # [P], [P]
