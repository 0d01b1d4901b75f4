"""Batched sampling from a causal LM into a typed :class:`Generation` (the rollout's text part).

Prompts are formatted with the tokenizer's chat template, left-padded (so every
row's next token is in the last column) and sampled with HF ``generate`` and its
KV cache. Only temperature, top-p and top-k shape the distribution: the model's
own ``generation_config`` (repetition penalties, default top-k 50, ...) is not
used, so the sampled tokens come from exactly the distribution that
:func:`tether.models.logprobs.response_logprobs` scores at the same temperature
(with top-p/top-k 1.0/0) -- on-policy PPO/GRPO ratios start at 1.

    gen = sample(policy, tokenizer, ["What is 2 plus 3?"], max_new_tokens=32, generator_seed=0)
    lp = response_logprobs(policy, gen.prompt_ids, gen.prompt_mask, gen.response_ids, gen.response_mask)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase

from tether.errors import TetherError
from tether.models.lora import unwrap

Prompt = str | list[dict[str, Any]]


@dataclass
class Generation:
    """Prompts and sampled responses, token-aligned for scoring and training."""

    prompt_ids: torch.Tensor  # [B, P] left-padded with the pad id
    prompt_mask: torch.Tensor  # [B, P] 1 on real prompt tokens
    response_ids: torch.Tensor  # [B, R] right-padded with the pad id after EOS
    response_mask: torch.Tensor  # [B, R] 1 up to and including EOS
    prompts: list[str]  # each prompt as the model saw it (chat template applied)
    responses: list[str]  # decoded responses, special tokens stripped
    finished: torch.Tensor  # [B] bool: the response ended with EOS (not cut by max_new_tokens)
    inputs: list[Prompt]  # the prompts as passed to sample(), for reward functions

    @property
    def sequence_ids(self) -> torch.Tensor:
        """Prompt and response side by side: ``[B, P+R]``."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def sequence_mask(self) -> torch.Tensor:
        """Attention mask of :attr:`sequence_ids`: ``[B, P+R]``."""
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, chat: bool = True) -> str:
    """The text the model is conditioned on: the chat template with the assistant turn opened.

    A string becomes one user message; a list is taken as chat messages
    (``{"role": ..., "content": ...}``). ``chat=False`` returns a string prompt
    as is (base models without a chat template).
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise TetherError("prompt: empty text")
        if not chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        if not chat:
            raise TetherError("prompt: a message list needs chat=True")
        if not prompt:
            raise TetherError("prompt: empty message list")
        for i, m in enumerate(prompt):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) \
                    or not isinstance(m.get("content"), str):
                raise TetherError(f"prompt: message {i} needs string 'role' and 'content'")
        messages = prompt
    else:
        raise TetherError(f"prompt: expected a string or a message list, got {type(prompt).__name__}")
    if tokenizer.chat_template is None:
        raise TetherError("prompt: the tokenizer has no chat_template; use chat=False "
                          "(model.chat: false) or a tokenizer with a template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _left_pad(rows: list[list[int]], pad_id: int, width: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ``[B, W]`` ids and mask, padded on the left."""
    width = max(len(r) for r in rows) if width is None else width
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids, mask


def _right_pad(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    """Pad ``[B, W]`` on the right to ``[B, width]`` with ``value``."""
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def _eos_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's eos plus any the model's generation config names (e.g. an end-of-turn id)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(extra, int):
        extra = [extra]
    ids += [i for i in (extra or []) if i not in ids]
    if not ids:
        raise TetherError("the tokenizer has no eos token; generation could not stop")
    return ids


def _cut_at_eos(response: torch.Tensor, eos: torch.Tensor, pad_id: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask 1 up to and including the first EOS, pad after it: ids, mask ``[B, R]``, finished ``[B]``."""
    is_eos = torch.isin(response, eos)  # [B, R]
    finished = is_eos.any(dim=1)  # [B]
    # Tokens strictly after the first EOS are those with an EOS before them.
    after = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0  # [B, R]
    mask = (~after).long()  # [B, R]
    return torch.where(after, torch.full_like(response, pad_id), response), mask, finished


def sample(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[Prompt],
           max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0,
           do_sample: bool = True, chat: bool = True, batch_size: int | None = None,
           generator_seed: int | None = None, top_k: int = 0) -> Generation:
    """Sample one response per prompt, batched, with the KV cache; greedy when ``do_sample`` is False.

    The model runs in eval mode without gradients and is put back in its
    previous mode afterwards. With ``generator_seed`` the result is the same on
    every call (the global RNG is saved and restored around sampling).
    """
    if not prompts:
        raise ValueError("sample: no prompts")
    if max_new_tokens < 1:
        raise ValueError(f"sample: max_new_tokens must be >= 1 (got {max_new_tokens})")
    if do_sample and temperature <= 0:
        raise ValueError(f"sample: temperature must be > 0 when sampling (got {temperature})")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = _eos_ids(model, tokenizer)
    texts = []
    for i, p in enumerate(prompts):
        try:
            texts.append(format_prompt(tokenizer, p, chat))
        except TetherError as e:
            raise TetherError(f"prompts[{i}]: {e}") from None
    # A chat template writes its own bos; a raw prompt gets the tokenizer's special tokens.
    rows = tokenizer(texts, add_special_tokens=not chat)["input_ids"]
    model = unwrap(model)  # DDP has no generate(); the wrapped module samples the same
    device = next(model.parameters()).device
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=do_sample, top_k=top_k if do_sample else None,
        temperature=temperature if do_sample else None, top_p=top_p if do_sample else None,
        eos_token_id=eos_ids, pad_token_id=pad_id, bos_token_id=tokenizer.bos_token_id)
    step = batch_size or len(rows)
    outputs = []  # (prompt ids, prompt mask, response ids) per batch
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(
                devices=[device] if device.type == "cuda" else []):
            if generator_seed is not None:
                torch.manual_seed(generator_seed)
            for start in range(0, len(rows), step):
                ids, mask = _left_pad(rows[start:start + step], pad_id)  # [b, p]
                ids, mask = ids.to(device), mask.to(device)
                out = model.generate(input_ids=ids, attention_mask=mask,
                                     generation_config=gen_cfg)  # [b, p + r]
                outputs.append((ids, mask, out[:, ids.shape[1]:]))
    finally:
        model.train(was_training)

    eos = torch.tensor(eos_ids, device=device)
    # Cut each batch at its EOS before padding batches to one width, so that
    # padding can never pass for an EOS (some tokenizers use eos as pad).
    cut = [_cut_at_eos(resp, eos, pad_id) for _, _, resp in outputs]
    P = max(ids.shape[1] for ids, _, _ in outputs)
    R = max(ids.shape[1] for ids, _, _ in cut)
    prompt_ids = torch.cat([torch.nn.functional.pad(ids, (P - ids.shape[1], 0), value=pad_id)
                            for ids, _, _ in outputs])  # [B, P]
    prompt_mask = torch.cat([torch.nn.functional.pad(m, (P - m.shape[1], 0), value=0)
                             for _, m, _ in outputs])  # [B, P]
    response_ids = torch.cat([_right_pad(ids, R, pad_id) for ids, _, _ in cut])  # [B, R]
    response_mask = torch.cat([_right_pad(m, R, 0) for _, m, _ in cut])  # [B, R]
    finished = torch.cat([f for _, _, f in cut])  # [B]
    responses = tokenizer.batch_decode(
        [r[m.bool()].tolist() for r, m in zip(response_ids, response_mask, strict=True)],
        skip_special_tokens=True)
    return Generation(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                      response_mask=response_mask, prompts=texts, responses=responses,
                      finished=finished, inputs=list(prompts))
