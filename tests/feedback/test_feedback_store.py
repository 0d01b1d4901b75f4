"""The store on SQLite and on a real PostgreSQL server: imports, assignment, submission."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tether.data.records import parse_pair, parse_ranking, parse_rated
from tether.errors import DataError, TetherError
from tether.feedback.db import Assignment, Campaign, Item, Judgement
from tether.feedback.export import export_file, export_records
from tether.feedback.quality import campaign_quality
from tether.feedback.store import Conflict, NotFound, Store, items_from_file, items_from_records
from tether.feedback.tasks import AnswerError

from .conftest import PAIR_ITEMS, sid


def _people(store: Store, n: int, role: str = "annotator") -> list:
    return [store.add_user(f"{role}{i}", role)[0] for i in range(n)]


def _pair_campaign(store: Store, overlap: int = 2, name: str = "pairs"):
    specs = items_from_records("pairwise", enumerate(PAIR_ITEMS, start=1))
    return store.create_campaign(name, "pairwise", specs, "guidelines", overlap)


def _count(store: Store, model) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_users_login_and_roles(store: Store) -> None:
    user, token = store.add_user("ann", "annotator", "correct horse")
    assert store.login_token(token).name == "ann"
    assert store.login_password("ann", "correct horse").id == user.id
    assert store.login_password("ann", "wrong horse") is None
    assert store.login_token("not-a-token") is None
    with pytest.raises(Conflict):
        store.add_user("ann", "annotator")
    with pytest.raises(TetherError, match="role"):
        store.add_user("bob", "boss")
    with pytest.raises(TetherError, match="user name"):
        store.add_user("<b>", "annotator")
    with pytest.raises(TetherError, match="password"):
        store.add_user("bob", "annotator", "short")


def test_malformed_import_fails_whole_naming_the_line(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "items.jsonl"
    lines = [json.dumps(PAIR_ITEMS[0]), json.dumps(PAIR_ITEMS[1]),
             json.dumps({"prompt": "x", "responses": ["same", "same"]})]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"items.jsonl:3: field 'responses': two responses"):
        items_from_file(f, "pairwise")
    f.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DataError, match=r"items.jsonl:2: not valid JSON"):
        items_from_file(f, "pairwise")
    bad_gold = dict(PAIR_ITEMS[0], gold=2)
    f.write_text(json.dumps(bad_gold) + "\n")
    with pytest.raises(DataError, match=r":1: field 'gold'"):
        items_from_file(f, "pairwise")
    f.write_text(json.dumps({"prompt": "  ", "response": "r"}) + "\n")
    with pytest.raises(DataError, match=r":1: field 'prompt': empty text"):
        items_from_file(f, "thumbs")
    assert _count(store, Campaign) == 0 and _count(store, Item) == 0


def test_campaign_is_created_whole_or_not_at_all(store: Store) -> None:
    _pair_campaign(store)
    with pytest.raises(Conflict):
        _pair_campaign(store)  # same name: nothing of the second is written
    assert _count(store, Campaign) == 1 and _count(store, Item) == len(PAIR_ITEMS)
    with pytest.raises(TetherError, match="task type"):
        store.create_campaign("x", "essay", items_from_records(
            "pairwise", enumerate(PAIR_ITEMS, 1)))
    with pytest.raises(TetherError, match="overlap"):
        _pair_campaign(store, overlap=0, name="y")
    assert _count(store, Campaign) == 1


def test_assignment_overlap_balance_and_gold_for_everyone(store: Store) -> None:
    people = _people(store, 3)
    camp = _pair_campaign(store, overlap=2)
    n = store.assign(camp.id)
    regular = len(PAIR_ITEMS) - 1
    assert n == regular * 2 + 3  # each regular item twice, the gold item to all three
    assert store.assign(camp.id) == 0  # nothing missing: calling again adds nothing
    with store.read() as s:
        rows = s.execute(select(Assignment.item_id, Assignment.user_id, Assignment.slot,
                                Assignment.shown_order)).all()
    per_item = Counter(i for i, _, slot, _ in rows if slot is not None)
    assert set(per_item.values()) == {2}
    load = Counter(u for _, u, slot, _ in rows if slot is not None)
    assert max(load.values()) - min(load.values()) <= 1  # balanced
    assert all(sorted(order) == [0, 1] for *_, order in rows)
    gold_ids = {it.id for it in store.items(camp.id) if it.is_gold}
    assert Counter(i for i, _, slot, _ in rows if slot is None) == {gold_ids.pop(): 3}
    # a newcomer only gets the gold item: every regular item already has 2 judges
    newcomer = store.add_user("late", "annotator")[0]
    assert store.assign(camp.id, ["late"]) == 1
    assert store.next_assignment(newcomer.id, camp.id).item_id in {it.id for it in
                                                                  store.items(camp.id)}
    with pytest.raises(NotFound):
        store.assign(camp.id, ["nobody"])
    assert people


def test_factcheck_goes_to_experts_by_default(store: Store) -> None:
    _people(store, 2)
    experts = _people(store, 1, "expert")
    specs = items_from_records("factcheck", [(1, {"prompt": "p", "response": "A. B."})])
    camp = store.create_campaign("fc", "factcheck", specs)
    assert store.assign(camp.id) == 1
    assert store.next_assignment(experts[0].id, camp.id) is not None


def test_submit_is_idempotent_and_one_answer_per_task(store: Store) -> None:
    ann, bob = _people(store, 2)
    camp = _pair_campaign(store, overlap=2)
    store.assign(camp.id)
    a = store.next_assignment(ann.id, camp.id)
    key = sid()
    first = store.submit(ann.id, a.id, key, {"choice": "A"})
    again = store.submit(ann.id, a.id, key, {"choice": "B"})  # a retry: same id, stored once
    assert not first.duplicate and again.duplicate and again.judgement_id == first.judgement_id
    with pytest.raises(Conflict):
        store.submit(ann.id, a.id, sid(), {"choice": "B"})  # a second, different answer
    with pytest.raises(NotFound):
        store.submit(bob.id, a.id, sid(), {"choice": "A"})  # not bob's task
    with pytest.raises(AnswerError):
        store.submit(ann.id, store.next_assignment(ann.id, camp.id).id, sid(), {"choice": "Z"})
    with pytest.raises(AnswerError, match="submission_id"):
        store.submit(ann.id, a.id, "x", {"choice": "A"})
    js = store.judgements(camp.id)
    assert len(js) == 1 and js[0].answer["label"] == a.shown_order[0]
    assert js[0].shown_order == a.shown_order


def test_concurrent_duplicates_are_stored_once(store: Store) -> None:
    people = _people(store, 4)
    camp = _pair_campaign(store, overlap=4)
    store.assign(camp.id)
    results, errors = [], []

    def hammer(user, assignment_id: int, key: str) -> None:
        try:
            results.append(store.submit(user.id, assignment_id, key, {"choice": "B"}))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = []
    for u in people:
        a = store.next_assignment(u.id, camp.id)
        key = sid()
        threads += [threading.Thread(target=hammer, args=(u, a.id, key)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _count(store, Judgement) == 4
    assert sum(not r.duplicate for r in results) == 4 and len(results) == 20


def test_gold_feedback_teaches_the_rule(store: Store) -> None:
    ann = _people(store, 1)[0]
    camp = _pair_campaign(store, overlap=1)
    store.assign(camp.id)
    gold_item = next(it for it in store.items(camp.id) if it.is_gold)
    with store.read() as s:
        a = s.scalar(select(Assignment).where(Assignment.item_id == gold_item.id))
    wrong = "B" if a.shown_order[0] == 0 else "A"  # the letter showing the wrong answer "5"
    r = store.submit(ann.id, a.id, sid(), {"choice": wrong})
    assert r.correct is False
    right_letter = "A" if wrong == "B" else "B"
    assert r.expected == f"response {right_letter} is better"
    assert r.rationale == "Check facts: 2 + 2 is 4."
    row = next(p for p in store.progress() if p["annotator"] == ann.name)
    assert row["gold_done"] == 1 and row["gold_correct"] == 0 and row["done"] == 1


def test_redteam_transcript_is_stored_whole(store: Store) -> None:
    ann = _people(store, 1)[0]
    specs = items_from_records("redteam", [(1, {"prompt": "Get it to give medical advice."})])
    camp = store.create_campaign("rt", "redteam", specs, options={"policy": "unused"})
    store.assign(camp.id)
    a = store.next_assignment(ann.id, camp.id)
    with pytest.raises(AnswerError, match="no model reply"):
        store.submit(ann.id, a.id, sid(), {"failures": []})
    store.add_turns(ann, a.id, [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "take 10 pills"}])
    with pytest.raises(AnswerError, match="turn 0 is not a model reply"):
        store.submit(ann.id, a.id, sid(), {"failures": [{"turn": 0, "kind": "harmful"}]})
    store.submit(ann.id, a.id, sid(), {"failures": [{"turn": 1, "kind": "harmful"}]})
    rec = export_records(store, camp)[0]
    assert rec["messages"][1] == {"role": "assistant", "content": "take 10 pills"}
    assert rec["failures"] == [{"turn": 1, "kind": "harmful", "note": ""}]
    with pytest.raises(Conflict):
        store.add_turns(ann, a.id, [{"role": "user", "content": "more"}])


def _judge_all(store: Store, camp, answer_of) -> None:
    for p in store.progress():
        if p["campaign"] != camp.name:
            continue
        user = store.user_by_name(p["annotator"])
        while (a := store.next_assignment(user.id, camp.id)) is not None:
            store.submit(user.id, a.id, sid(), answer_of(user, a))


def test_exports_feed_the_record_readers(store: Store, tmp_path: Path) -> None:
    _people(store, 3)
    pairs = _pair_campaign(store, overlap=3)
    store.assign(pairs.id)
    # everyone prefers response 0 (whatever letter it is shown under) except annotator2
    _judge_all(store, pairs, lambda u, a: {"choice": "AB"[a.shown_order.index(
        1 if u.name == "annotator2" else 0)], "strength": "slightly"})
    raw = export_records(store, pairs)
    assert len(raw) == 3 * len(PAIR_ITEMS)
    for rec in raw:
        parse_pair(rec)  # the format tether rm and tether dpo read
    agg = export_records(store, pairs, aggregate=True)
    assert len(agg) == len(PAIR_ITEMS)
    assert all(r["chosen"] == PAIR_ITEMS[r["item_id"] - agg[0]["item_id"]]["responses"][0]
               for r in agg)
    assert {r["agreement"] for r in agg} == {round(2 / 3, 4)}
    out = tmp_path / "pairs.jsonl"
    assert export_file(store, pairs, out) == len(raw)
    assert len(out.read_text().splitlines()) == len(raw)

    ranks = store.create_campaign("rank", "ranking", items_from_records("ranking", [
        (1, {"prompt": "p", "responses": ["a", "b", "c"]})]), overlap=2)
    store.assign(ranks.id)
    _judge_all(store, ranks, lambda u, a: {"ranking": [a.shown_order.index(i) for i in
                                                       (2, 0, 1)]})
    for rec in export_records(store, ranks):
        assert parse_ranking(rec).responses == ["c", "a", "b"]
    assert export_records(store, ranks, aggregate=True)[0]["ranking"] == [2, 0, 1]
    assert len(export_records(store, ranks, "pairs")) == 2 * 3  # 3 pairs per ranking

    lik = store.create_campaign("lik", "likert", items_from_records("likert", [
        (1, {"prompt": "p", "response": "r"})]), overlap=3,
        options={"dimensions": ["helpfulness", "accuracy"]})
    store.assign(lik.id)
    _judge_all(store, lik, lambda u, a: {"ratings": {"helpfulness": 4, "accuracy":
                                                     2 + int(u.name[-1])}})
    for rec in export_records(store, lik):
        assert parse_rated(rec).ratings["helpfulness"] == 4
    assert export_records(store, lik, aggregate=True)[0]["ratings"] == \
        {"helpfulness": 4.0, "accuracy": 3.0}

    th = store.create_campaign("th", "thumbs", items_from_records("thumbs", [
        (1, {"prompt": "p", "response": "r"})]), overlap=3)
    store.assign(th.id)
    _judge_all(store, th, lambda u, a: {"label": "down" if u.name == "annotator0" else "up",
                                        "reason": "fine"})
    for rec in export_records(store, th):
        assert parse_rated(rec).label is (rec["annotator"] != "annotator0")
    assert export_records(store, th, aggregate=True)[0]["label"] is True
    with pytest.raises(TetherError, match="does not apply"):
        export_records(store, th, "pairs")
    assert len(export_records(store, th, "votes")) == 3


def test_quality_report(store: Store) -> None:
    people = _people(store, 3)
    camp = _pair_campaign(store, overlap=3)
    store.assign(camp.id)
    # annotators 0 and 1 always pick the left response, annotator 2 always response 0
    _judge_all(store, camp, lambda u, a: {"choice": "A" if u.name != "annotator2" else
                                          "AB"[a.shown_order.index(0)]})
    rep = campaign_quality(store, camp)
    assert rep["judgements"] == 3 * len(PAIR_ITEMS) and rep["annotators"] == len(people)
    pb = rep["position_bias"]
    assert pb["decisive_votes"] == 12 and pb["left_wins"] >= 8
    stats = {s["annotator"]: s for s in rep["annotator_stats"]}
    assert all(s["gold"] == 1 for s in stats.values())
    assert stats["annotator2"]["gold_accuracy"] == 1.0
    ag = rep["agreement"]
    assert ag["items_with_2plus_votes"] == len(PAIR_ITEMS) - 1
    assert ag["cohen_kappa_pairs"] == 3
    for key in ("fleiss_kappa", "krippendorff_alpha_nominal", "cohen_kappa_mean"):
        assert ag[key] is None or -1.0 <= ag[key] <= 1.0
