"""``tether world label``: simulated raters label responses, from a file or sampled from a policy.

Input records hold a prompt and responses: ``{"prompt", "responses": [...]}``
(``{"prompt", "chosen", "rejected"}`` is read as two responses, and
``{"prompt", "response"}`` as one, for ratings and thumbs). Output, in the
data formats of DESIGN.md:

- ``pairs``: every two responses of a record (i < j, i shown first) ->
  ``{"prompt", "chosen", "rejected", "rater", "p_chosen", "chosen_position",
  "gold_chosen", "gold_rejected"}``;
- ``rankings``: ``{"prompt", "responses", "ranking", "rater"}`` where ``ranking``
  lists indices into ``responses``, best first;
- ``ratings``: one ``{"prompt", "response", "ratings", "rater"}`` per response,
  ratings 1..5 on helpfulness, accuracy, harmlessness and concision;
- ``thumbs``: one ``{"prompt", "response", "label", "rater"}`` per response.

A malformed record stops the run with a :class:`~tether.errors.DataError`
naming the file, line and field, before the output file is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether.data.io import iter_records, write_jsonl
from tether.errors import DataError
from tether.world.raters import Rater

KINDS = ("pairs", "rankings", "ratings", "thumbs")


def _prompt_text(prompt: Any, path: Any, line: int) -> str:
    """A string prompt, or the last user message of a chat prompt."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict)
                 and m.get("role") == "user"]
        prompt = users[-1] if users else None
    if prompt is None:
        raise DataError(path, "missing", line=line, field="prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(path, "expected a non-empty string", line=line, field="prompt")
    return prompt


def _text(value: Any, path: Any, line: int, field: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        got = "nothing" if value is None else type(value).__name__
        raise DataError(path, f"expected a string, got {got}", line=line, field=field)
    if not allow_empty and not value.strip():
        raise DataError(path, "empty text", line=line, field=field)
    return value


def record_responses(rec: dict[str, Any], path: Any, line: int, minimum: int,
                     allow_empty: bool = False) -> list[str]:
    """The responses of one input record, checked (at least ``minimum``; empty text is an
    error unless ``allow_empty``: a policy may well answer with nothing)."""
    if "responses" in rec:
        raw = rec["responses"]
        if not isinstance(raw, list):
            raise DataError(path, "expected a list of strings", line=line, field="responses")
        texts = [_text(x, path, line, f"responses[{i}]", allow_empty) for i, x in enumerate(raw)]
        field = "responses"
    elif "chosen" in rec or "rejected" in rec:
        texts = [_text(rec.get(k), path, line, k, allow_empty) for k in ("chosen", "rejected")]
        field = "chosen"
    elif "response" in rec:
        texts = [_text(rec["response"], path, line, "response", allow_empty)]
        field = "response"
    else:
        raise DataError(path, "missing (expected 'responses' or 'response')", line=line,
                        field="responses")
    if len(texts) < minimum:
        raise DataError(path, f"needs at least {minimum} responses, got {len(texts)}",
                        line=line, field=field)
    return texts


def label_records(records: list[tuple[int, dict[str, Any]]], rater: Rater, kind: str,
                  source: Any = "records", allow_empty: bool = False) -> list[dict[str, Any]]:
    """Label ``(line, record)`` items with ``rater``; every record is checked first."""
    if kind not in KINDS:
        raise DataError(source, f"unknown label kind {kind!r} (choose from {', '.join(KINDS)})")
    minimum = 2 if kind in ("pairs", "rankings") else 1
    checked = [(_prompt_text(rec.get("prompt"), source, line),
                record_responses(rec, source, line, minimum, allow_empty))
               for line, rec in records]
    if not checked:
        raise DataError(source, "no records to label")
    name = rater.profile.name
    out: list[dict[str, Any]] = []
    for prompt, texts in checked:
        if kind == "pairs":
            for i in range(len(texts)):
                for j in range(i + 1, len(texts)):
                    out.append(rater.label_pair(prompt, texts[i], texts[j]))
        elif kind == "rankings":
            out.append({"prompt": prompt, "responses": texts,
                        "ranking": rater.rank(prompt, texts), "rater": name})
        elif kind == "ratings":
            out += [{"prompt": prompt, "response": t, "ratings": rater.likert(prompt, t),
                     "rater": name} for t in texts]
        else:
            out += [{"prompt": prompt, "response": t, "label": rater.thumbs(prompt, t),
                     "rater": name} for t in texts]
    return out


def label_file(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
               rater: str = "crowd", kind: str = "pairs", seed: int = 0) -> dict[str, Any]:
    """Label every record of ``in_path`` and write ``out_path`` (atomically); returns counts."""
    records = list(iter_records(in_path))
    labelled = label_records(records, Rater(rater, seed), kind, in_path)
    n = write_jsonl(out_path, labelled)
    return {"in": str(in_path), "out": str(out_path), "rater": rater, "kind": kind,
            "records": len(records), "labels": n}


def policy_responses(policy: str | os.PathLike[str], prompts_path: str | os.PathLike[str],
                     n: int = 4, seed: int = 0, max_new_tokens: int = 48,
                     temperature: float = 1.0) -> list[tuple[int, dict[str, Any]]]:
    """Sample ``n`` responses per prompt of ``prompts_path`` from the model in ``policy``.

    Returns ``(line, {"prompt", "responses"})`` items ready for :func:`label_records`
    (with ``allow_empty=True``). Imports torch and the model code only here.
    """
    from tether.models.generation import sample
    from tether.models.load import load_causal_lm, load_tokenizer

    if n < 1:
        raise DataError(prompts_path, f"--n must be at least 1, got {n}")
    prompts = [(line, _prompt_text(rec.get("prompt"), prompts_path, line))
               for line, rec in iter_records(prompts_path)]
    if not prompts:
        raise DataError(prompts_path, "no prompts")
    model = load_causal_lm(Path(policy))
    tokenizer = load_tokenizer(Path(policy))
    batch = [p for _, p in prompts for _ in range(n)]
    gen = sample(model, tokenizer, batch, max_new_tokens=max_new_tokens,
                 temperature=temperature, generator_seed=seed, batch_size=64)
    out = []
    for k, (line, prompt) in enumerate(prompts):
        out.append((line, {"prompt": prompt, "responses": gen.responses[k * n:(k + 1) * n]}))
    return out
