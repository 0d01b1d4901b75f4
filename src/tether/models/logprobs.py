"""Per-token log-probabilities of sequences under a causal LM: the one shared implementation.

Every algorithm needs ``log pi(y_t | x, y_<t)`` for the policy and the
reference (PPO ratio and KL, DPO, GRPO), so it is computed once, here, and
lines up with ``input_ids``: ``logprobs[:, t]`` is the log-prob of token ``t``
given tokens ``< t``; position 0, padding, and the first real token of a
left-padded row (no context either) are 0. Multiply by any response mask.

Padding side does not matter: position ids come from the attention mask
(``cumsum - 1``), so a left-padded row gets the positions it would have
unpadded (the same convention as HF generation).

    lp = sequence_token_logprobs(policy, input_ids, attention_mask)          # [B, T]
    lp_resp = response_logprobs(policy, prompt_ids, prompt_mask, response_ids, response_mask)
"""

from __future__ import annotations

import inspect

import torch


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only: ``cumsum(mask) - 1``, 0 on leading padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # [B, T]


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(logits / temperature)`` gathered at ``labels``: ``[B, T, V], [B, T] -> [B, T]``.

    Computed as ``logit[label] - logsumexp(logits)`` one row at a time in float32,
    so no float32 ``[B, T, V]`` log-softmax copy is made (bf16 logits of a 128k
    vocabulary would otherwise double in size).
    """
    rows = []
    for row_logits, row_labels in zip(logits, labels, strict=True):  # [T, V], [T]
        z = row_logits.float()
        if temperature != 1.0:
            z = z / temperature
        picked = z.gather(-1, row_labels.unsqueeze(-1)).squeeze(-1)  # [T]
        rows.append(picked - torch.logsumexp(z, dim=-1))  # [T]
    return torch.stack(rows)  # [B, T]


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of ``softmax(logits / temperature)`` per position: ``[B, T, V] -> [B, T]``.

    ``H = logsumexp(z) - sum_v softmax(z)_v z_v``, one row at a time in float32.
    """
    rows = []
    for row_logits in logits:  # [T, V]
        z = row_logits.float()
        if temperature != 1.0:
            z = z / temperature
        rows.append(torch.logsumexp(z, -1) - (torch.softmax(z, -1) * z).sum(-1))  # [T]
    return torch.stack(rows)  # [B, T]


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the causal LM inside ``model`` (peft/DDP wrappers looked through) takes ``logits_to_keep``."""
    inner = model
    while hasattr(inner, "module") and isinstance(inner, torch.nn.parallel.DistributedDataParallel):
        inner = inner.module
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


def _shifted_logprobs(model: torch.nn.Module, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor, temperature: float, return_entropy: bool,
                      keep: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of the last ``keep`` tokens of each row: ``[B, keep]``.

    Token ``t`` is scored by the logits at ``t - 1``, so the forward pass only
    needs the logits of the last ``keep + 1`` positions (``logits_to_keep``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    T = input_ids.shape[1]
    kwargs = {}
    if keep + 1 < T and _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep + 1
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), use_cache=False, **kwargs)
    logits = out.logits[:, -(keep + 1):-1]  # [B, keep, V]: logits at t - 1 score token t
    labels = input_ids[:, T - keep:]  # [B, keep]
    # A token counts when it is real and has a real token before it.
    mask = attention_mask[:, T - keep:].bool() & attention_mask[:, T - keep - 1:-1].bool()  # [B, keep]
    logprobs = token_logprobs(logits, labels, temperature)  # [B, keep]
    # where, not multiply: logits at padding may be anything, even non-finite.
    logprobs = torch.where(mask, logprobs, torch.zeros_like(logprobs))
    entropy = None
    if return_entropy:
        entropy = token_entropy(logits, temperature)  # [B, keep]
        entropy = torch.where(mask, entropy, torch.zeros_like(entropy))
    return logprobs, entropy


def sequence_token_logprobs(model: torch.nn.Module, input_ids: torch.Tensor,
                            attention_mask: torch.Tensor, temperature: float = 1.0,
                            return_entropy: bool = False
                            ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``log p(input_ids[:, t] | input_ids[:, :t])`` for every position: ``[B, T]``.

    0 at position 0, at padding and at the first real token of a left-padded
    row. ``temperature`` divides the logits, as in sampling. With
    ``return_entropy`` also the policy entropy at the position that predicts
    each token (``[B, T]``, 0 where the log-prob is 0). Keeps the autograd
    graph; wrap in ``torch.no_grad()`` for the reference model.
    """
    B, T = input_ids.shape
    if T < 2:
        zeros = input_ids.new_zeros((B, T), dtype=torch.float32)
        return (zeros, zeros.clone()) if return_entropy else zeros
    logprobs, entropy = _shifted_logprobs(model, input_ids, attention_mask, temperature,
                                          return_entropy, keep=T - 1)  # [B, T-1]
    zero = logprobs.new_zeros((B, 1))
    logprobs = torch.cat([zero, logprobs], dim=1)  # [B, T]
    if return_entropy:
        return logprobs, torch.cat([zero, entropy], dim=1)  # [B, T], [B, T]
    return logprobs


def response_logprobs(model: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                      response_ids: torch.Tensor, response_mask: torch.Tensor,
                      temperature: float = 1.0, return_entropy: bool = False
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the response tokens only: ``[B, R]``, 0 on response padding.

    ``prompt_ids [B, P]`` left-padded and ``response_ids [B, R]`` right-padded
    (the layout of :class:`tether.models.generation.Generation`) are
    concatenated, so the response follows its prompt with no gap. Only the last
    ``R + 1`` logits are computed when the model allows it.
    """
    if prompt_ids.shape[1] == 0:  # no prompt at all: the response is the whole sequence
        return sequence_token_logprobs(model, response_ids, response_mask, temperature,
                                       return_entropy)
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)  # [B, P+R]
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)  # [B, P+R]
    R = response_ids.shape[1]
    if R == 0:
        empty = response_ids.new_zeros((response_ids.shape[0], 0), dtype=torch.float32)
        return (empty, empty.clone()) if return_entropy else empty
    logprobs, entropy = _shifted_logprobs(model, input_ids, attention_mask, temperature,
                                          return_entropy, keep=R)  # [B, R]
    return (logprobs, entropy) if return_entropy else logprobs
