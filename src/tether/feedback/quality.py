"""A campaign's quality report: agreement, rater accuracy on gold, position bias, audit rate.

- Choices (pairwise outcome, thumbs/audit label, a ranking's best response, the set
  of sentences a fact-checker marked wrong): Fleiss' kappa over items, the mean
  Cohen's kappa over pairs of annotators who share at least ``min_shared`` items,
  and Krippendorff's alpha (nominal).
- Likert ratings: Krippendorff's alpha per dimension, ordinal and interval.
- Per annotator: judgements, accuracy on gold items, and agreement with the
  majority of the *other* annotators of the same items (items where the others
  tie are left out), which flags raters who disagree with everyone.
- Position bias (pairwise): among decisive votes, how often the response shown
  on the left (A) won, with an exact two-sided binomial test against 1/2.
- Audit campaigns: how often a high-reward output was judged bad (Wilson 95% CI).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

from tether.feedback import agreement as ag
from tether.feedback import tasks
from tether.feedback.db import Campaign, Judgement
from tether.feedback.store import Store


def campaign_quality(store: Store, campaign: Campaign, min_shared: int = 2) -> dict[str, Any]:
    """The quality report of one campaign (JSON-ready; undefined statistics are ``None``)."""
    judgements = store.judgements(campaign.id)
    names = {u.id: u.name for u in store.users()}
    items = {it.id: it for it in store.items(campaign.id)}
    t = campaign.task_type
    report: dict[str, Any] = {
        "campaign": campaign.name, "task_type": t, "items": len(items),
        "gold_items": sum(it.is_gold for it in items.values()),
        "judgements": len(judgements), "annotators": len({j.user_id for j in judgements}),
    }
    regular = [j for j in judgements if not items[j.item_id].is_gold]
    if t == "likert":
        report["agreement"] = _likert_agreement(regular, campaign)
    elif t != "redteam":
        report["agreement"] = _choice_agreement(t, regular, min_shared)
    report["annotator_stats"] = _per_annotator(t, judgements, items, names)
    if t == "pairwise":
        report["position_bias"] = position_bias(judgements)
    if t == "ranking":
        report["position_bias"] = ranking_position_bias(judgements)
    if t == "audit":
        report["audit"] = audit_summary(judgements, items)
    if t == "redteam":
        kinds = Counter(f["kind"] for j in judgements for f in j.answer["failures"])
        report["redteam"] = {"sessions": len(judgements),
                             "sessions_with_failure": sum(bool(j.answer["failures"])
                                                          for j in judgements),
                             "failures_by_kind": dict(kinds)}
    return report


def _labels_by_item(task_type: str, judgements: list[Judgement]) -> dict[int, dict[int, Any]]:
    by_item: dict[int, dict[int, Any]] = defaultdict(dict)
    for j in judgements:
        by_item[j.item_id][j.user_id] = tasks.gold_label(task_type, j.answer)
    return by_item


def _choice_agreement(task_type: str, judgements: list[Judgement], min_shared: int
                      ) -> dict[str, Any]:
    by_item = _labels_by_item(task_type, judgements)
    units = [list(v.values()) for v in by_item.values()]
    fleiss = ag.fleiss_kappa([Counter(u) for u in units])
    alpha = ag.krippendorff_alpha(units, "nominal")
    by_user: dict[int, dict[int, Any]] = defaultdict(dict)
    for item_id, votes in by_item.items():
        for uid, lab in votes.items():
            by_user[uid][item_id] = lab
    kappas = []
    for u, v in itertools.combinations(sorted(by_user), 2):
        shared = sorted(set(by_user[u]) & set(by_user[v]))
        if len(shared) >= min_shared:
            k = ag.cohen_kappa([by_user[u][i] for i in shared], [by_user[v][i] for i in shared])
            if k == k:  # not nan
                kappas.append(k)
    return {"items_with_2plus_votes": sum(len(u) >= 2 for u in units),
            "fleiss_kappa": ag.finite_or_none(fleiss),
            "krippendorff_alpha_nominal": ag.finite_or_none(alpha),
            "cohen_kappa_mean": ag.finite_or_none(sum(kappas) / len(kappas)) if kappas else None,
            "cohen_kappa_pairs": len(kappas)}


def _likert_agreement(judgements: list[Judgement], campaign: Campaign) -> dict[str, Any]:
    dims = campaign.options.get("dimensions") or tasks.DEFAULT_DIMENSIONS
    out: dict[str, Any] = {}
    for d in dims:
        by_item: dict[int, list[int]] = defaultdict(list)
        for j in judgements:
            by_item[j.item_id].append(j.answer["ratings"][d])
        units = list(by_item.values())
        out[d] = {"krippendorff_alpha_ordinal": ag.finite_or_none(
                      ag.krippendorff_alpha(units, "ordinal")),
                  "krippendorff_alpha_interval": ag.finite_or_none(
                      ag.krippendorff_alpha(units, "interval"))}
    return out


def _per_annotator(task_type: str, judgements: list[Judgement], items: dict[int, Any],
                   names: dict[int, str]) -> list[dict[str, Any]]:
    comparable = task_type not in ("likert", "redteam")
    by_item = _labels_by_item(task_type, judgements) if comparable else {}
    stats: dict[int, dict[str, Any]] = {}
    for j in judgements:
        st = stats.setdefault(j.user_id, {"annotator": names.get(j.user_id, str(j.user_id)),
                                          "judgements": 0, "gold": 0, "gold_correct": 0,
                                          "compared": 0, "agree": 0})
        st["judgements"] += 1
        if j.correct is not None:
            st["gold"] += 1
            st["gold_correct"] += int(j.correct)
        if comparable and not items[j.item_id].is_gold:
            others = [lab for uid, lab in by_item[j.item_id].items() if uid != j.user_id]
            maj = ag.majority(others)
            if maj is not None:
                st["compared"] += 1
                st["agree"] += int(by_item[j.item_id][j.user_id] == maj)
    out = []
    for st in sorted(stats.values(), key=lambda s: s["annotator"]):
        st["gold_accuracy"] = round(st["gold_correct"] / st["gold"], 4) if st["gold"] else None
        st["majority_agreement"] = (round(st["agree"] / st["compared"], 4)
                                    if st["compared"] else None)
        out.append(st)
    return out


def position_bias(judgements: list[Judgement]) -> dict[str, Any]:
    """How often the left response (shown first, "A") won among decisive pairwise votes."""
    decisive = [j.answer["shown_choice"] for j in judgements
                if j.answer.get("shown_choice") in ("A", "B")]
    n, left = len(decisive), decisive.count("A")
    return {"decisive_votes": n, "left_wins": left,
            "left_win_rate": round(left / n, 4) if n else None,
            "p_value": round(ag.binomial_two_sided(left, n), 6)}


def ranking_position_bias(judgements: list[Judgement]) -> dict[str, Any]:
    """How often the first-shown response was ranked best, against chance 1/K."""
    n = len(judgements)
    first = sum(j.answer["shown_ranking"][0] == 0 for j in judgements)
    chance = (sum(1 / len(j.shown_order) for j in judgements) / n) if n else None
    return {"rankings": n, "first_shown_ranked_best": first,
            "rate": round(first / n, 4) if n else None,
            "chance": round(chance, 4) if chance is not None else None}


def audit_summary(judgements: list[Judgement], items: dict[int, Any] | None = None
                  ) -> dict[str, Any]:
    """How often a high-reward output was judged bad, per vote and per item (majority).

    With the items (whose ``meta["reward"]`` the audit import stored), also the mean
    reward of the outputs judged bad and good: reward hacking shows as bad outputs
    scoring as high as, or higher than, good ones.
    """
    bad = sum(j.answer["label"] == "bad" for j in judgements)
    n = len(judgements)
    by_item: dict[int, list[str]] = defaultdict(list)
    for j in judgements:
        by_item[j.item_id].append(j.answer["label"])
    verdicts = {i: ag.majority(v) for i, v in by_item.items()}
    bad_items = sum(v == "bad" for v in verdicts.values())
    lo, hi = ag.wilson_interval(bad, n)
    out: dict[str, Any] = {
        "votes": n, "bad_votes": bad, "bad_rate": round(bad / n, 4) if n else None,
        "bad_rate_ci95": [round(lo, 4), round(hi, 4)], "items_judged": len(verdicts),
        "items_judged_bad": bad_items,
        "items_bad_rate": round(bad_items / len(verdicts), 4) if verdicts else None}
    if items is not None:
        for label in ("bad", "good"):
            rewards = [items[i].meta["reward"] for i, v in verdicts.items()
                       if v == label and "reward" in items[i].meta]
            out[f"mean_reward_{label}"] = (round(sum(rewards) / len(rewards), 4)
                                           if rewards else None)
    return out
