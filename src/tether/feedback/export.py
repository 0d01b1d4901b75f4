"""Export judgements as training data in DESIGN.md's formats, raw votes or aggregated.

Kinds (``raw``: one record per judgement; ``aggregated``: one per item):

- ``pairs``: ``{prompt, chosen, rejected}`` from pairwise votes (ties and "both
  bad" give no pair) and from rankings (every ordered pair of a ranking). Raw
  pairs carry ``annotator``, ``strength`` and the item's ``agreement``;
  aggregated pairs keep an item's majority winner (a strict plurality, else the
  item is left out) with ``votes`` and ``agreement`` (share of votes for it).
  Both feed ``tether rm`` and ``tether dpo`` as they are.
- ``rankings``: ``{prompt, responses, ranking}`` (indices, best first);
  aggregated by Borda count (ties broken by index).
- ``ratings``: ``{prompt, response, ratings}``; aggregated: the mean per dimension.
- ``binary`` (thumbs, audit): ``{prompt, response, label: true|false, reason}``;
  aggregated: the majority label (items whose votes tie are left out).
- ``factcheck``: ``{prompt, response, label, claims: [{text, start, end,
  correction}]}``; aggregated: sentences a majority marked wrong.
- ``redteam``: ``{prompt, messages, failures}``, each session whole.
- ``votes``: every judgement as stored (raw only).

Every record names its ``campaign``, ``item_id`` and (raw) ``annotator`` and
``judgement_id``; gold items are included and flagged ``gold_item: true``.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from typing import Any

from tether.data.io import write_jsonl
from tether.errors import TetherError
from tether.feedback import agreement as ag
from tether.feedback import tasks
from tether.feedback.db import Campaign, Item, Judgement
from tether.feedback.store import Store

KINDS = ("pairs", "rankings", "ratings", "binary", "factcheck", "redteam", "votes")
DEFAULT_KIND = {"pairwise": "pairs", "ranking": "rankings", "likert": "ratings",
                "thumbs": "binary", "audit": "binary", "factcheck": "factcheck",
                "redteam": "redteam"}
ALLOWED = {"pairs": ("pairwise", "ranking"), "rankings": ("ranking",), "ratings": ("likert",),
           "binary": ("thumbs", "audit"), "factcheck": ("factcheck",),
           "redteam": ("redteam",), "votes": tuple(DEFAULT_KIND)}


def export_records(store: Store, campaign: Campaign, kind: str | None = None,
                   aggregate: bool = False) -> list[dict[str, Any]]:
    """The records of one export of ``campaign`` (see the module docstring)."""
    kind = kind or DEFAULT_KIND[campaign.task_type]
    if kind not in KINDS:
        raise TetherError(f"export kind {kind!r}: expected one of {list(KINDS)}")
    if campaign.task_type not in ALLOWED[kind]:
        raise TetherError(f"export kind {kind!r} does not apply to a {campaign.task_type} "
                          f"campaign (use {DEFAULT_KIND[campaign.task_type]!r})")
    if kind in ("votes", "redteam") and aggregate:
        raise TetherError(f"export kind {kind!r} has no aggregated form")
    judgements = store.judgements(campaign.id)
    items = {it.id: it for it in store.items(campaign.id)}
    names = {u.id: u.name for u in store.users()}
    by_item: dict[int, list[Judgement]] = defaultdict(list)
    for j in judgements:
        by_item[j.item_id].append(j)
    ctx = _Ctx(campaign, items, names, by_item)
    if kind == "votes":
        return [ctx.vote(j) for j in judgements]
    make = {"pairs": ctx.pairs, "rankings": ctx.rankings, "ratings": ctx.ratings,
            "binary": ctx.binary, "factcheck": ctx.factcheck, "redteam": ctx.redteam}[kind]
    out: list[dict[str, Any]] = []
    for item in sorted(items.values(), key=lambda it: it.position):
        if by_item.get(item.id):
            out.extend(make(item, by_item[item.id], aggregate))
    return out


def export_file(store: Store, campaign: Campaign, path: str | os.PathLike[str],
                kind: str | None = None, aggregate: bool = False) -> int:
    """Write an export as JSONL (atomically); returns the number of records."""
    return write_jsonl(path, export_records(store, campaign, kind, aggregate))


class _Ctx:
    """What every record builder needs: the campaign, its items, user names, votes."""

    def __init__(self, campaign: Campaign, items: dict[int, Item], names: dict[int, str],
                 by_item: dict[int, list[Judgement]]) -> None:
        self.campaign, self.items, self.names, self.by_item = campaign, items, names, by_item

    def base(self, item: Item, j: Judgement | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {"campaign": self.campaign.name, "item_id": item.id}
        if item.source_id is not None:
            rec["source_id"] = item.source_id
        if item.is_gold:
            rec["gold_item"] = True
        if j is not None:
            rec.update(annotator=self.names.get(j.user_id, str(j.user_id)),
                       judgement_id=j.id, created_at=j.created_at.isoformat())
        return rec

    def item_agreement(self, item: Item) -> tuple[Any, float, int]:
        """(majority label, share of votes for it, votes) of an item's choices."""
        labels = [tasks.gold_label(self.campaign.task_type, j.answer)
                  for j in self.by_item[item.id]]
        maj = ag.majority(labels)
        share = labels.count(maj) / len(labels) if maj is not None else 0.0
        return maj, round(share, 4), len(labels)

    def vote(self, j: Judgement) -> dict[str, Any]:
        item = self.items[j.item_id]
        return {**self.base(item, j), "task_type": self.campaign.task_type,
                "submission_id": j.submission_id, "prompt": item.prompt,
                "responses": item.responses, "shown_order": j.shown_order,
                "answer": j.answer, "correct": j.correct}

    def pairs(self, item: Item, votes: list[Judgement], aggregate: bool) -> list[dict[str, Any]]:
        r = item.responses
        if self.campaign.task_type == "ranking":
            return [pair for pair in self.rankings(item, votes, aggregate)
                    for pair in _ranking_pairs(pair)]
        maj, share, n = self.item_agreement(item)
        if aggregate:
            if maj not in (0, 1):
                return []
            return [{"prompt": item.prompt, "chosen": r[maj], "rejected": r[1 - maj],
                     **self.base(item), "votes": n, "agreement": share,
                     "annotators": sorted(self.names.get(j.user_id, "?") for j in votes)}]
        out = []
        for j in votes:
            win = j.answer["label"]
            if win not in (0, 1):
                continue
            out.append({"prompt": item.prompt, "chosen": r[win], "rejected": r[1 - win],
                        **self.base(item, j), "strength": j.answer.get("strength"),
                        "shown_order": j.shown_order, "votes": n, "agreement": share})
        return out

    def rankings(self, item: Item, votes: list[Judgement], aggregate: bool
                 ) -> list[dict[str, Any]]:
        if aggregate:
            k = len(item.responses)
            borda: Counter[int] = Counter()
            for j in votes:
                for place, idx in enumerate(j.answer["ranking"]):
                    borda[idx] += k - 1 - place
            order = sorted(range(k), key=lambda i: (-borda[i], i))
            maj, share, n = self.item_agreement(item)
            return [{"prompt": item.prompt, "responses": item.responses, "ranking": order,
                     **self.base(item), "votes": n, "agreement": share,
                     "borda": [borda[i] for i in range(k)]}]
        return [{"prompt": item.prompt, "responses": item.responses,
                 "ranking": j.answer["ranking"], **self.base(item, j),
                 "shown_order": j.shown_order} for j in votes]

    def ratings(self, item: Item, votes: list[Judgement], aggregate: bool
                ) -> list[dict[str, Any]]:
        if aggregate:
            dims = list(votes[0].answer["ratings"])
            mean = {d: round(sum(j.answer["ratings"][d] for j in votes) / len(votes), 4)
                    for d in dims}
            return [{"prompt": item.prompt, "response": item.responses[0], "ratings": mean,
                     **self.base(item), "votes": len(votes)}]
        return [{"prompt": item.prompt, "response": item.responses[0],
                 "ratings": j.answer["ratings"], **self.base(item, j)} for j in votes]

    def binary(self, item: Item, votes: list[Judgement], aggregate: bool
               ) -> list[dict[str, Any]]:
        positive = tasks.BINARY_LABELS[self.campaign.task_type][0]
        meta = {"reward": item.meta["reward"]} if "reward" in item.meta else {}
        if aggregate:
            maj, share, n = self.item_agreement(item)
            if maj is None:
                return []
            return [{"prompt": item.prompt, "response": item.responses[0],
                     "label": maj == positive, **self.base(item), **meta, "votes": n,
                     "agreement": share}]
        return [{"prompt": item.prompt, "response": item.responses[0],
                 "label": j.answer["label"] == positive, "reason": j.answer.get("reason", ""),
                 **self.base(item, j), **meta} for j in votes]

    def factcheck(self, item: Item, votes: list[Judgement], aggregate: bool
                  ) -> list[dict[str, Any]]:
        if aggregate:
            marks: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for j in votes:
                for c in j.answer["claims"]:
                    marks[c["sentence"]].append(c)
            claims = [{"sentence": s, "start": cs[0]["start"], "end": cs[0]["end"],
                       "text": cs[0]["text"], "votes": len(cs),
                       "corrections": [c["correction"] for c in cs if c["correction"]]}
                      for s, cs in sorted(marks.items()) if 2 * len(cs) > len(votes)]
            return [{"prompt": item.prompt, "response": item.responses[0],
                     "label": not claims, "claims": claims, **self.base(item),
                     "votes": len(votes)}]
        return [{"prompt": item.prompt, "response": item.responses[0],
                 "label": j.answer["label"], "claims": j.answer["claims"],
                 **self.base(item, j)} for j in votes]

    def redteam(self, item: Item, votes: list[Judgement], aggregate: bool
                ) -> list[dict[str, Any]]:
        return [{"prompt": item.prompt, "messages": j.answer["messages"],
                 "failures": j.answer["failures"], **self.base(item, j)} for j in votes]


def _ranking_pairs(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ordered pair (better, worse) of one ranking record, as pairs records."""
    order, responses = rec["ranking"], rec["responses"]
    meta = {k: v for k, v in rec.items() if k not in ("prompt", "responses", "ranking", "borda")}
    return [{"prompt": rec["prompt"], "chosen": responses[a], "rejected": responses[b],
             **meta, "rank_chosen": i, "rank_rejected": k}
            for (i, a), (k, b) in itertools.combinations(enumerate(order), 2)]
