"""SFT examples: records -> token ids with labels on the response only; padding and packing.

Three record shapes (Hugging Face conventions, DESIGN.md):

- ``messages``: a chat, ``[{"role": ..., "content": ...}, ...]``, rendered with the
  tokenizer's chat template; the loss covers every assistant turn (its content
  and the end-of-turn tokens the template puts after it, eos included).
- ``prompt`` / ``completion``: two strings (plain text: prompt, completion, eos;
  loss on completion and eos) or two message lists (a chat; loss on the
  assistant turns of ``completion`` only).
- ``text``: plain text; loss on every token, eos appended.

Labels are ``-100`` on every system, user and prompt token, so those tokens add
nothing to the loss (nor to its gradient).

Chats are cut at the turn boundaries of the rendered template: each assistant
turn ``i`` spans from the render of ``messages[:i]`` with the generation prompt
to the render of ``messages[:i+1]``, and each span is tokenized on its own, so
the prompt tokens are exactly those a generation from that prompt would see. A
template that does not render prefix-consistently is a :class:`ConfigError`.
A tokenizer without a chat template gets Tether's (see
:mod:`tether.models.tokenizer`), which is then saved with the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from tether.data.io import iter_records
from tether.errors import ConfigError, DataError

IGNORE = -100


@dataclass
class SFTExample:
    """One tokenized example; ``labels[i]`` is ``IGNORE`` where no loss is taken."""

    input_ids: list[int]
    labels: list[int]


def ensure_chat_template(tokenizer: Any) -> None:
    """Give a tokenizer without a chat template Tether's default template."""
    if getattr(tokenizer, "chat_template", None):
        return
    from tether.models.tokenizer import CHAT_TEMPLATE

    tokenizer.chat_template = CHAT_TEMPLATE


def _check_messages(messages: Any, path: Any, line: int, field: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise DataError(path, "expected a non-empty list of messages", line=line, field=field)
    out = []
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise DataError(path, f"expected an object, got {type(m).__name__}", line=line,
                            field=where)
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise DataError(path, "missing or not a string", line=line, field=f"{where}.role")
        if not isinstance(content, str):
            raise DataError(path, "missing or not a string", line=line,
                            field=f"{where}.content")
        if role == "assistant" and not content.strip():
            raise DataError(path, "empty assistant content", line=line,
                            field=f"{where}.content")
        out.append({"role": role, "content": content})
    return out


def _render(tokenizer: Any, messages: list[dict[str, str]], gen: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], train_from: int = 0,
                where: str = "messages") -> SFTExample:
    """Token ids of a rendered chat with labels on assistant turns at index >= ``train_from``."""
    spans: list[tuple[str, bool]] = []  # (text, trained)
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or i < train_from:
            continue
        prompt = _render(tokenizer, messages[:i], gen=True)
        full = _render(tokenizer, messages[:i + 1], gen=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ConfigError(f"{where}: the tokenizer's chat template does not render "
                              f"prefix-consistently; cannot mask the prompt")
        spans += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    if not spans:
        raise DataError(where, "no assistant turn to train on")
    rest = _render(tokenizer, messages, gen=False)
    if rest.startswith(done) and rest[len(done):]:
        spans.append((rest[len(done):], False))
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in spans:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    eos = tokenizer.eos_token_id
    if eos is not None and eos not in [t for t, lab in zip(ids, labels, strict=True)
                                       if lab != IGNORE]:
        # The template ends turns without eos: train on one after the last answer.
        last = max(i for i, lab in enumerate(labels) if lab != IGNORE) + 1
        ids.insert(last, eos)
        labels.insert(last, eos)
    return SFTExample(ids, labels)


def encode_prompt_completion(tokenizer: Any, prompt: str, completion: str) -> SFTExample:
    """Plain text: ``prompt`` (with bos, masked) + ``completion`` + eos (trained)."""
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        c = c + [tokenizer.eos_token_id]
    return SFTExample(p + c, [IGNORE] * len(p) + c)


def encode_text(tokenizer: Any, text: str) -> SFTExample:
    """Plain text + eos, loss on every token."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return SFTExample(ids, list(ids))


def encode_record(tokenizer: Any, rec: dict[str, Any], path: Any, line: int) -> SFTExample:
    """One record (``messages``, ``prompt``/``completion`` or ``text``) -> an example."""
    if "messages" in rec:
        msgs = _check_messages(rec["messages"], path, line, "messages")
        if not any(m["role"] == "assistant" for m in msgs):
            raise DataError(path, "no assistant message", line=line, field="messages")
        return _encode_chat_at(tokenizer, msgs, 0, path, line, "messages")
    if "prompt" in rec or "completion" in rec:
        prompt, completion = rec.get("prompt"), rec.get("completion")
        if prompt is None:
            raise DataError(path, "missing", line=line, field="prompt")
        if completion is None:
            raise DataError(path, "missing", line=line, field="completion")
        if isinstance(prompt, list) and isinstance(completion, list):
            p = _check_messages(prompt, path, line, "prompt")
            c = _check_messages(completion, path, line, "completion")
            if not any(m["role"] == "assistant" for m in c):
                raise DataError(path, "no assistant message", line=line, field="completion")
            return _encode_chat_at(tokenizer, p + c, len(p), path, line, "completion")
        if not isinstance(prompt, str):
            raise DataError(path, f"expected a string or a message list, got "
                                  f"{type(prompt).__name__}", line=line, field="prompt")
        if not isinstance(completion, str):
            raise DataError(path, f"expected a string (like prompt), got "
                                  f"{type(completion).__name__}", line=line, field="completion")
        if not completion.strip():
            raise DataError(path, "empty", line=line, field="completion")
        return encode_prompt_completion(tokenizer, prompt, completion)
    if "text" in rec:
        text = rec["text"]
        if not isinstance(text, str):
            raise DataError(path, f"expected a string, got {type(text).__name__}", line=line,
                            field="text")
        if not text.strip():
            raise DataError(path, "empty", line=line, field="text")
        return encode_text(tokenizer, text)
    raise DataError(path, "expected 'messages', 'prompt'/'completion' or 'text'", line=line,
                    field="messages")


def _encode_chat_at(tokenizer: Any, msgs: list[dict[str, str]], train_from: int, path: Any,
                    line: int, field: str) -> SFTExample:
    from jinja2 import TemplateError

    try:
        return encode_chat(tokenizer, msgs, train_from, where=f"{path}:{line}")
    except TemplateError as e:
        raise DataError(path, f"chat template failed: {e}", line=line, field=field) from None


@dataclass
class SFTData:
    """Tokenized examples and what preprocessing did to them."""

    examples: list[SFTExample]
    records: int
    truncated: int  # examples cut to max_len
    dropped: int  # examples with no trained token left after the cut


def load_sft(path: str | os.PathLike[str], tokenizer: Any, max_len: int) -> SFTData:
    """Read and tokenize an SFT file; examples longer than ``max_len`` are cut on the right."""
    ensure_chat_template(tokenizer)
    examples: list[SFTExample] = []
    records = truncated = dropped = 0
    for line, rec in iter_records(path):
        records += 1
        ex = encode_record(tokenizer, rec, path, line)
        if len(ex.input_ids) > max_len:
            truncated += 1
            ex = SFTExample(ex.input_ids[:max_len], ex.labels[:max_len])
        if not any(lab != IGNORE for lab in ex.labels[1:]):
            dropped += 1  # nothing left to predict (labels shift by one)
            continue
        examples.append(ex)
    if not examples:
        raise DataError(path, f"no example to train on ({records} records, {dropped} with "
                              f"no response token within data.max_len={max_len})")
    return SFTData(examples, records, truncated, dropped)


def pad_collate(examples: list[SFTExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: ``input_ids``, ``attention_mask``, ``labels`` [B, T]."""
    t = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), t), pad_id, dtype=torch.long)  # [B, T]
    labels = torch.full((len(examples), t), IGNORE, dtype=torch.long)  # [B, T]
    mask = torch.zeros((len(examples), t), dtype=torch.long)  # [B, T]
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass
class PackedRow:
    """Several examples in one row; ``position_ids`` restart at 0 for each."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    examples: int


def pack_examples(examples: list[SFTExample], seq_len: int) -> list[PackedRow]:
    """Greedy packing in order: start a new row when the next example does not fit.

    Each example's ``position_ids`` restart at 0. Passed to a Hugging Face model
    with no ``attention_mask`` (and ``use_cache=False``), transformers reads the
    restarts as packed sequences and builds a block-diagonal causal mask (sdpa
    and eager too, not only flash-attention; transformers >= 4.56
    ``masking_utils.find_packed_sequence_indices``), so no example attends to
    another: a packed row gives the same logits as its examples one by one.
    """
    rows: list[PackedRow] = []
    cur = PackedRow([], [], [], 0)
    for e in examples:
        if len(e.input_ids) > seq_len:
            raise DataError("sft data", f"example of {len(e.input_ids)} tokens longer than "
                                        f"the row ({seq_len})")
        if len(cur.input_ids) + len(e.input_ids) > seq_len:
            rows.append(cur)
            cur = PackedRow([], [], [], 0)
        cur.input_ids += e.input_ids
        cur.labels += e.labels
        cur.position_ids += list(range(len(e.input_ids)))
        cur.examples += 1
    if cur.input_ids:
        rows.append(cur)
    return rows


def packed_collate(rows: list[PackedRow], pad_id: int, seq_len: int) -> dict[str, torch.Tensor]:
    """Stack packed rows to ``[B, seq_len]``; the padded tail is its own masked "sequence".

    Returns ``input_ids``, ``labels``, ``position_ids`` and ``num_tokens`` (real
    tokens, for throughput); there is deliberately no ``attention_mask``.
    """
    b = len(rows)
    ids = torch.full((b, seq_len), pad_id, dtype=torch.long)  # [B, L]
    labels = torch.full((b, seq_len), IGNORE, dtype=torch.long)  # [B, L]
    pos = torch.zeros((b, seq_len), dtype=torch.long)  # [B, L]
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        pos[i, :n] = torch.tensor(r.position_ids)
        pos[i, n:] = torch.arange(seq_len - n)  # restarts at 0: a separate block
    num = torch.tensor(sum(len(r.input_ids) for r in rows), dtype=torch.long)
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "num_tokens": num}


def label_tokens(batch: dict[str, torch.Tensor]) -> float:
    """Number of predicted tokens of a batch (labels shift by one): the loss's weight."""
    return float((batch["labels"][:, 1:] != IGNORE).sum())
