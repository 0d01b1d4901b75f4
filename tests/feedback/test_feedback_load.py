"""No label is ever lost: many annotators submit at once against one live uvicorn server.

Every annotator is a thread with its own HTTP client: fetch the next task, submit,
and resend every 7th submission with the same submission id (a double click or a
client retry). Afterwards the database and the export hold exactly one judgement
per submission, and every submission a client sent is there.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tether.feedback.app import create_app
from tether.feedback.export import export_records
from tether.feedback.store import Store, items_from_records

from .conftest import LiveServer, fresh_pg_store, sid


def run_load(store: Store, annotators: int, per_annotator: int, overlap: int = 3
             ) -> dict[str, float]:
    n_items = annotators * per_annotator // overlap
    assert n_items * overlap == annotators * per_annotator
    tokens = [store.add_user(f"a{i:02d}", "annotator")[1] for i in range(annotators)]
    items = [(i + 1, {"prompt": f"prompt {i}", "responses": [f"left {i}", f"right {i}"]})
             for i in range(n_items)]
    camp = store.create_campaign("load", "pairwise", items_from_records("pairwise", items),
                                 overlap=overlap)
    assert store.assign(camp.id) == n_items * overlap
    sent: dict[str, list[str]] = {}
    duplicates: list[bool] = []
    errors: list[str] = []
    start = threading.Barrier(annotators)

    def annotate(url: str, token: str) -> None:
        mine = sent.setdefault(token, [])
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as c:
            start.wait()
            k = 0
            while True:
                nxt = c.get(f"/api/campaigns/{camp.id}/next").json()
                if nxt["done"]:
                    return
                body = {"submission_id": sid(), "answer": {"choice": "AB"[k % 2]}}
                r = c.post(f"/api/tasks/{nxt['task']['id']}", json=body)
                if r.status_code != 200:
                    errors.append(r.text)
                    return
                mine.append(body["submission_id"])
                if k % 7 == 0:  # the retry of a request whose answer got lost
                    again = c.post(f"/api/tasks/{nxt['task']['id']}", json=body)
                    duplicates.append(again.status_code == 200 and again.json()["duplicate"])
                k += 1

    app = create_app(store)
    with LiveServer(app) as url:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=annotate, args=(url, t)) for t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        seconds = time.perf_counter() - t0
    assert not errors, errors[:3]
    total = annotators * per_annotator
    all_sent = [s for ids in sent.values() for s in ids]
    assert len(all_sent) == total and len(set(all_sent)) == total
    assert all(len(ids) == per_annotator for ids in sent.values())
    assert duplicates and all(duplicates)
    stored = store.judgements(camp.id)
    assert len(stored) == total
    assert {j.submission_id for j in stored} == set(all_sent)
    votes = export_records(store, camp, "votes")
    assert len(votes) == total and {v["submission_id"] for v in votes} == set(all_sent)
    assert len(export_records(store, camp)) == total  # every vote is decisive: one pair each
    return {"judgements": total, "seconds": seconds, "per_s": total / seconds}


def test_load_30_annotators_600_judgements(sqlite_store: Store) -> None:
    # the default variant: the same 30 concurrent annotators, fewer tasks each
    stats = run_load(sqlite_store, annotators=30, per_annotator=20)
    assert stats["judgements"] == 600


@pytest.mark.slow
def test_load_30_annotators_3000_judgements_sqlite(sqlite_store: Store) -> None:
    stats = run_load(sqlite_store, annotators=30, per_annotator=100)
    print(f"sqlite: {stats}")


@pytest.mark.slow
@pytest.mark.postgres
def test_load_30_annotators_3000_judgements_postgres() -> None:
    store = fresh_pg_store()
    try:
        stats = run_load(store, annotators=30, per_annotator=100)
        print(f"postgres: {stats}")
    finally:
        store.engine.dispose()
