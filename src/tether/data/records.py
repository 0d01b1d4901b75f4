"""Human-feedback records: preference pairs, K-way rankings, Likert ratings, thumbs.

Every reader validates each record and raises a :class:`~tether.errors.DataError`
naming the file, the line and the field (``pairs.jsonl:17: field 'chosen':
empty text``) before anything is trained; nothing is skipped silently.

Formats (DESIGN.md, "Data formats"; Hugging Face conventions):

- pairs: ``{"prompt", "chosen", "rejected"}``, optional ``margin`` (number) and
  ``weight`` (> 0); other keys are kept as ``metadata``.
- rankings: ``{"prompt", "responses": [...], "ranking": [...]}`` where ``ranking``
  lists the responses best first, either as indices into ``responses`` or as the
  response texts themselves.
- ratings: ``{"prompt", "response", "ratings": {dimension: number}}``; thumbs:
  ``{"prompt", "response", "label": true|false}``.

Texts are strings or chat message lists (``[{"role": ..., "content": ...}]``).
A chat prompt stays a message list (the reward model renders it with the
tokenizer's chat template). A chat response becomes the text of its assistant
message(s), joined with a newline. When a pair has no ``prompt`` and
``chosen``/``rejected`` are whole conversations (the HF "implicit prompt"
convention), the prompt is their longest common prefix of messages and each
response is what follows it, which must be assistant messages only.

Turning other feedback into pairs (the documented rules):

- :func:`rankings_to_pairs`: all K(K-1)/2 ordered pairs of a ranking, each with
  weight 1 / (K(K-1)/2) and ``group`` set, so a prompt with many pairs carries the
  same total weight (1) as one plain pair and its pairs can share a batch
  (InstructGPT, Ouyang et al. 2022, sec. 3.5).
- :func:`ratings_to_pairs`: per prompt, each response's score is the mean of its
  rating dimensions; every two responses whose scores differ by at least
  ``threshold`` make a pair with ``margin = scale * difference``, weighted like
  a ranking (each prompt totals weight 1).
- :func:`thumbs_to_pairs`: per prompt, every thumbs-up response against every
  thumbs-down response, weighted like a ranking; no margin.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tether.data.io import iter_records
from tether.errors import DataError

Message = dict[str, str]
Prompt = str | list[Message]

PAIR_KEYS = ("prompt", "chosen", "rejected", "margin", "weight")
RANKING_KEYS = ("prompt", "responses", "ranking")
RATING_KEYS = ("prompt", "response", "ratings", "label")


@dataclass
class PreferencePair:
    """One comparison: ``chosen`` was preferred to ``rejected`` for ``prompt``."""

    prompt: Prompt  # a string or a chat message list (without the response)
    chosen: str
    rejected: str
    margin: float | None = None  # how much better chosen is (Llama 2's margin loss); None: no margin
    weight: float = 1.0  # weight of this pair in the loss
    group: str | None = None  # pairs from one ranking / one prompt share a group
    metadata: dict[str, Any] = field(default_factory=dict)  # category, rater, p_chosen, ...

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record in the pairs format (metadata keys at the top level)."""
        rec: dict[str, Any] = dict(self.metadata)
        rec.update(prompt=self.prompt, chosen=self.chosen, rejected=self.rejected)
        if self.margin is not None:
            rec["margin"] = self.margin
        if self.weight != 1.0:
            rec["weight"] = self.weight
        return rec


@dataclass
class Ranking:
    """K responses to one prompt, best first."""

    prompt: Prompt
    responses: list[str]  # best first
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RatedResponse:
    """One response with Likert ratings per dimension, or a thumbs up/down label."""

    prompt: Prompt
    response: str
    ratings: dict[str, float] | None = None  # {dimension: score}, e.g. 1..5
    label: bool | None = None  # thumbs up (True) / down (False)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<record>"  # "file:line" it was read from, to name it in later errors


# ---------------------------------------------------------------- validation helpers


class _Where:
    """The file and line of the record being validated, to name them in errors."""

    def __init__(self, path: str | os.PathLike[str], line: int | None) -> None:
        self.path, self.line = path, line

    def error(self, field_name: str | None, message: str) -> DataError:
        return DataError(self.path, message, line=self.line, field=field_name)


def _text(value: Any, name: str, where: _Where) -> str:
    if value is None:
        raise where.error(name, "missing")
    if not isinstance(value, str):
        raise where.error(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise where.error(name, "empty text")
    return value


def _messages(value: list[Any], name: str, where: _Where) -> list[Message]:
    if not value:
        raise where.error(name, "empty message list")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise where.error(f"{name}[{i}]", f"expected a message object, got {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise where.error(f"{name}[{i}].role", "missing or not a string")
        out.append({"role": role, "content": _text(content, f"{name}[{i}].content", where)})
    return out


def _prompt(value: Any, where: _Where) -> Prompt:
    if isinstance(value, list):
        msgs = _messages(value, "prompt", where)
        if msgs[-1]["role"] == "assistant":
            raise where.error("prompt", "a chat prompt must not end with an assistant message")
        return msgs
    return _text(value, "prompt", where)


def _response(value: Any, name: str, where: _Where) -> str:
    """A response text: a string, or a list of assistant messages (joined by newlines)."""
    if isinstance(value, list):
        msgs = _messages(value, name, where)
        if any(m["role"] != "assistant" for m in msgs):
            raise where.error(name, "a chat response must hold only assistant messages")
        return "\n".join(m["content"] for m in msgs)
    return _text(value, name, where)


def _number(value: Any, name: str, where: _Where, positive: bool = False) -> float:
    # bool is an int in Python; a JSON true is never meant as a number here
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(name, f"expected a number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise where.error(name, f"not a finite number ({value})")
    if positive and x <= 0:
        raise where.error(name, f"must be > 0 (got {value})")
    return x


def _split_implicit_prompt(chosen: Any, rejected: Any, where: _Where
                           ) -> tuple[list[Message], list[Message], list[Message]]:
    """Whole conversations -> (common prefix = prompt, chosen rest, rejected rest)."""
    c = _messages(chosen, "chosen", where)
    r = _messages(rejected, "rejected", where)
    n = 0
    while n < min(len(c), len(r)) and c[n] == r[n]:
        n += 1
    # the response starts at the first assistant message of the differing part
    while n > 0 and c[n - 1]["role"] == "assistant":
        n -= 1
    if n == 0:
        raise where.error("prompt", "missing, and chosen/rejected share no prompt messages")
    return c[:n], c[n:], r[n:]


def parse_pair(rec: dict[str, Any], path: str | os.PathLike[str] = "<record>",
               line: int | None = None) -> PreferencePair:
    """Validate one pairs-format record into a :class:`PreferencePair`."""
    where = _Where(path, line)
    chosen, rejected = rec.get("chosen"), rec.get("rejected")
    if chosen is None:
        raise where.error("chosen", "missing")
    if rejected is None:
        raise where.error("rejected", "missing")
    if rec.get("prompt") is None and isinstance(chosen, list) and isinstance(rejected, list):
        prompt, c_msgs, r_msgs = _split_implicit_prompt(chosen, rejected, where)
        chosen_text = _response(c_msgs or None, "chosen", where)
        rejected_text = _response(r_msgs or None, "rejected", where)
    else:
        prompt = _prompt(rec.get("prompt"), where)
        chosen_text = _response(chosen, "chosen", where)
        rejected_text = _response(rejected, "rejected", where)
    if chosen_text == rejected_text:
        raise where.error("rejected", "identical to chosen (the pair carries no preference)")
    margin = rec.get("margin")
    weight = rec.get("weight")
    meta = {k: v for k, v in rec.items() if k not in PAIR_KEYS}
    return PreferencePair(
        prompt=prompt, chosen=chosen_text, rejected=rejected_text,
        margin=None if margin is None else _number(margin, "margin", where),
        weight=1.0 if weight is None else _number(weight, "weight", where, positive=True),
        metadata=meta)


def parse_ranking(rec: dict[str, Any], path: str | os.PathLike[str] = "<record>",
                  line: int | None = None) -> Ranking:
    """Validate one rankings-format record into a :class:`Ranking` (responses best first)."""
    where = _Where(path, line)
    prompt = _prompt(rec.get("prompt"), where)
    responses, ranking = rec.get("responses"), rec.get("ranking")
    if responses is None:
        raise where.error("responses", "missing")
    if not isinstance(responses, list):
        raise where.error("responses", f"expected a list, got {type(responses).__name__}")
    texts = [_response(r, f"responses[{i}]", where) for i, r in enumerate(responses)]
    if len(texts) < 2:
        raise where.error("responses", f"need at least 2 responses, got {len(texts)}")
    if len(set(texts)) != len(texts):
        raise where.error("responses", "two responses are identical")
    if ranking is None:
        raise where.error("ranking", "missing")
    if not isinstance(ranking, list):
        raise where.error("ranking", f"expected a list, got {type(ranking).__name__}")
    if all(isinstance(x, int) and not isinstance(x, bool) for x in ranking):
        if sorted(ranking) != list(range(len(texts))):
            raise where.error("ranking", f"expected a permutation of 0..{len(texts) - 1}, "
                                         f"got {ranking}")
        ordered = [texts[i] for i in ranking]
    elif all(isinstance(x, str | list) for x in ranking):
        ordered = [_response(x, f"ranking[{i}]", where) for i, x in enumerate(ranking)]
        if sorted(ordered) != sorted(texts):
            raise where.error("ranking", "must list each of the responses exactly once")
    else:
        raise where.error("ranking", "expected indices into responses or the response texts")
    meta = {k: v for k, v in rec.items() if k not in RANKING_KEYS}
    return Ranking(prompt=prompt, responses=ordered, metadata=meta)


def parse_rated(rec: dict[str, Any], path: str | os.PathLike[str] = "<record>",
                line: int | None = None) -> RatedResponse:
    """Validate one ratings or thumbs record into a :class:`RatedResponse`."""
    where = _Where(path, line)
    prompt = _prompt(rec.get("prompt"), where)
    response = _response(rec.get("response"), "response", where)
    ratings, label = rec.get("ratings"), rec.get("label")
    if ratings is None and label is None:
        raise where.error("ratings", "missing (a record needs 'ratings' or a thumbs 'label')")
    parsed: dict[str, float] | None = None
    if ratings is not None:
        if not isinstance(ratings, dict):
            raise where.error("ratings", f"expected a mapping of dimension to number, "
                                         f"got {type(ratings).__name__}")
        if not ratings:
            raise where.error("ratings", "empty mapping")
        parsed = {str(k): _number(v, f"ratings.{k}", where) for k, v in ratings.items()}
    if label is not None and not isinstance(label, bool):
        raise where.error("label", f"expected true or false, got {label!r}")
    meta = {k: v for k, v in rec.items() if k not in RATING_KEYS}
    source = f"{path}:{line}" if line is not None else str(path)
    return RatedResponse(prompt=prompt, response=response, ratings=parsed, label=label,
                         metadata=meta, source=source)


def _read(path: str | os.PathLike[str], parse: Any) -> list[Any]:
    out = [parse(rec, path, line) for line, rec in iter_records(path)]
    if not out:
        raise DataError(path, "no records")
    return out


def read_pairs(path: str | os.PathLike[str]) -> list[PreferencePair]:
    """Read and validate a pairs file (JSONL, Parquet or a datasets directory)."""
    return _read(path, parse_pair)


def read_rankings(path: str | os.PathLike[str]) -> list[Ranking]:
    """Read and validate a rankings file."""
    return _read(path, parse_ranking)


def read_ratings(path: str | os.PathLike[str]) -> list[RatedResponse]:
    """Read and validate a ratings or thumbs file."""
    return _read(path, parse_rated)


# ---------------------------------------------------------------- conversion to pairs


def prompt_key(prompt: Prompt) -> str:
    """A hashable key of a prompt (chat prompts by their roles and contents)."""
    if isinstance(prompt, str):
        return prompt
    return "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in prompt)


def prompt_text(prompt: Prompt) -> str:
    """The user text of a prompt: the string, or the last user message of a chat."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m["role"] == "user"]
    return users[-1] if users else prompt[-1]["content"]


def _weighted_group(pairs: list[PreferencePair], group: str) -> list[PreferencePair]:
    """Give the pairs of one prompt equal weights summing to 1 and a shared group id."""
    for p in pairs:
        p.weight = 1.0 / len(pairs)
        p.group = group
    return pairs


def rankings_to_pairs(rankings: Iterable[Ranking]) -> list[PreferencePair]:
    """All K(K-1)/2 pairs of each ranking, weighted 1/(K(K-1)/2), grouped per ranking."""
    out: list[PreferencePair] = []
    for n, rk in enumerate(rankings):
        pairs = [PreferencePair(rk.prompt, rk.responses[i], rk.responses[j],
                                metadata={**rk.metadata, "rank_chosen": i, "rank_rejected": j})
                 for i, j in itertools.combinations(range(len(rk.responses)), 2)]
        out.extend(_weighted_group(pairs, f"ranking-{n}"))
    return out


def _by_prompt(rated: Iterable[RatedResponse]) -> dict[str, list[RatedResponse]]:
    groups: dict[str, list[RatedResponse]] = {}
    for r in rated:
        groups.setdefault(prompt_key(r.prompt), []).append(r)
    return groups


def ratings_to_pairs(rated: Iterable[RatedResponse], threshold: float = 1.0,
                     dimensions: list[str] | None = None, scale: float = 1.0
                     ) -> list[PreferencePair]:
    """Likert ratings -> pairs: per prompt, mean over ``dimensions`` (default all);
    two responses whose means differ by >= ``threshold`` make a pair with
    ``margin = scale * difference``; each prompt's pairs total weight 1.

    Responses to the same prompt with the same text are averaged first (several
    raters of one response are one response).
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    out: list[PreferencePair] = []
    for n, (_, group) in enumerate(_by_prompt(r for r in rated if r.ratings).items()):
        scores: dict[str, list[float]] = {}
        for r in group:
            assert r.ratings is not None
            dims = dimensions or sorted(r.ratings)
            missing = [d for d in dims if d not in r.ratings]
            if missing:
                raise DataError(r.source, f"lacks dimension(s) {missing}", field="ratings")
            scores.setdefault(r.response, []).append(sum(r.ratings[d] for d in dims) / len(dims))
        mean = {resp: sum(v) / len(v) for resp, v in scores.items()}
        ranked = sorted(mean, key=lambda resp: -mean[resp])
        pairs = [PreferencePair(group[0].prompt, a, b, margin=scale * (mean[a] - mean[b]),
                                metadata=dict(group[0].metadata))
                 for a, b in itertools.combinations(ranked, 2)
                 if mean[a] - mean[b] >= threshold]
        if pairs:
            out.extend(_weighted_group(pairs, f"ratings-{n}"))
    return out


def thumbs_to_pairs(rated: Iterable[RatedResponse]) -> list[PreferencePair]:
    """Thumbs -> pairs: per prompt, every thumbs-up response against every thumbs-down one."""
    out: list[PreferencePair] = []
    for n, (_, group) in enumerate(_by_prompt(r for r in rated if r.label is not None).items()):
        up = list(dict.fromkeys(r.response for r in group if r.label))
        down = list(dict.fromkeys(r.response for r in group if r.label is False))
        pairs = [PreferencePair(group[0].prompt, a, b, metadata=dict(group[0].metadata))
                 for a in up for b in down if a != b]
        if pairs:
            out.extend(_weighted_group(pairs, f"thumbs-{n}"))
    return out


Kind = Literal["auto", "pairs", "rankings", "ratings", "thumbs"]


def detect_kind(rec: dict[str, Any]) -> str:
    """Which feedback format a record is in, from its keys."""
    if "chosen" in rec or "rejected" in rec:
        return "pairs"
    if "responses" in rec or "ranking" in rec:
        return "rankings"
    if "ratings" in rec:
        return "ratings"
    if "label" in rec:
        return "thumbs"
    return "unknown"


def load_pairs(path: str | os.PathLike[str], kind: Kind = "auto", threshold: float = 1.0
               ) -> list[PreferencePair]:
    """Read any feedback file as training pairs (the format detected from the first record)."""
    if kind == "auto":
        first = next(iter_records(path), None)
        if first is None:
            raise DataError(path, "no records")
        kind = detect_kind(first[1])  # type: ignore[assignment]
        if kind == "unknown":
            raise DataError(path, "cannot tell the format: expected chosen/rejected, "
                                  "responses/ranking, ratings or label", line=first[0])
    if kind == "pairs":
        pairs = read_pairs(path)
    elif kind == "rankings":
        pairs = rankings_to_pairs(read_rankings(path))
    elif kind == "ratings":
        pairs = ratings_to_pairs(read_ratings(path), threshold=threshold)
    else:
        pairs = thumbs_to_pairs(read_ratings(path))
    if not pairs:
        raise DataError(Path(path), f"no preference pairs could be made from these {kind}")
    return pairs
