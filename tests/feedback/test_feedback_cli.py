"""``tether feedback ...`` through typer's runner, and the parts that use a real tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.feedback.store import Store

from .conftest import PAIR_ITEMS, sid

runner = CliRunner()


def tether(db: str, *args: str, input: str | None = None) -> Any:
    return runner.invoke(app, ["feedback", *args, "--db", db], input=input)


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_users_import_quality_export(db: str, tmp_path: Path) -> None:
    r = tether(db, "users", "add", "root", "--role", "admin", "--password-stdin",
               input="a-long-password\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["role"] == "admin"
    for name in ("ann", "bob"):
        assert tether(db, "users", "add", name).exit_code == 0
    r = tether(db, "users", "add", "ann")
    assert r.exit_code == 2 and "already exists" in r.output
    r = tether(db, "users", "add", "zed", "--role", "boss")
    assert r.exit_code == 2 and "role 'boss'" in r.output
    assert [u["name"] for u in json.loads(tether(db, "users", "list").output)] == \
        ["ann", "bob", "root"]
    guide = tmp_path / "guide.md"
    guide.write_text("# Our rules\nCheck facts.")
    data = _jsonl(tmp_path / "pairs.jsonl", PAIR_ITEMS)
    r = tether(db, "import", "--name", "c1", "--type", "pairwise", "--data", str(data),
               "--overlap", "2", "--guidelines", str(guide))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"campaign": "c1", "id": 1, "task_type": "pairwise",
                                    "items": 4, "gold_items": 1, "assignments": 8}
    store = Store(db)
    assert store.campaign("c1").guidelines.startswith("# Our rules")
    for name in ("ann", "bob"):
        u = store.user_by_name(name)
        while (a := store.next_assignment(u.id, 1)) is not None:
            store.submit(u.id, a.id, sid(), {"choice": "AB"[a.shown_order.index(0)]})
    r = tether(db, "quality", "--campaign", "c1")
    rep = json.loads(r.output)
    assert rep["judgements"] == 8 and rep["agreement"]["fleiss_kappa"] is None  # no variation
    assert {s["majority_agreement"] for s in rep["annotator_stats"]} == {1.0}
    out = tmp_path / "out" / "pairs.jsonl"
    r = tether(db, "export", "--campaign", "c1", "--out", str(out))
    assert json.loads(r.output)["records"] == 8 and len(out.read_text().splitlines()) == 8
    r = tether(db, "export", "--campaign", "c1", "--out", str(out), "--aggregate")
    assert json.loads(r.output)["records"] == 4
    assert all(json.loads(x)["agreement"] == 1.0 for x in out.read_text().splitlines())
    r = tether(db, "export", "--campaign", "c1", "--out", str(tmp_path / "x"), "--kind", "ratings")
    assert r.exit_code == 2 and "does not apply" in r.output and not (tmp_path / "x").exists()
    r = tether(db, "export", "--campaign", "nope", "--out", str(tmp_path / "y"))
    assert r.exit_code == 2 and "no campaign 'nope'" in r.output
    assert len(json.loads(tether(db, "progress").output)) == 2
    r = tether(db, "assign", "--campaign", "c1", "--annotators", "root")
    assert json.loads(r.output)["assignments"] == 1  # the admin gets the gold item only


def test_malformed_import_exits_2_and_writes_nothing(db: str, tmp_path: Path) -> None:
    tether(db, "users", "add", "ann")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response": "r"},
                                          {"prompt": "q", "response": "r", "gold": "maybe"}])
    r = tether(db, "import", "--name", "t", "--type", "thumbs", "--data", str(bad))
    assert r.exit_code == 2
    assert r.output.strip().endswith("bad.jsonl:2: field 'gold': expected one of ['up', 'down']")
    assert Store(db).campaigns() == []
    r = tether(db, "import", "--name", "t", "--type", "essay", "--data", str(bad))
    assert r.exit_code == 2 and "task type 'essay'" in r.output
    r = tether(db, "import", "--name", "t", "--type", "thumbs", "--data", str(tmp_path / "no"))
    assert r.exit_code == 2 and "file not found" in r.output
    r = tether(db, "import", "--name", "t", "--type", "thumbs")
    assert r.exit_code == 2 and "--data" in r.output
    r = tether(db, "import", "--name", "t", "--type", "redteam")
    assert r.exit_code == 2 and "--policy" in r.output


def test_audit_from_samples_reports_the_bad_rate(db: str, tmp_path: Path) -> None:
    tether(db, "users", "add", "ann")
    samples = _jsonl(tmp_path / "samples.jsonl", [
        {"prompt": f"p{i}", "response": f"r{i}", "reward/proxy": float(i)} for i in range(10)])
    r = tether(db, "audit", "--name", "aud", "--samples", str(samples), "--top", "4")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["reward_min"] == 6.0
    store = Store(db)
    camp = store.campaign("aud")
    assert sorted(it.meta["reward"] for it in store.items(camp.id)) == [6.0, 7.0, 8.0, 9.0]
    ann = store.user_by_name("ann")
    while (a := store.next_assignment(ann.id, camp.id)) is not None:
        item = next(it for it in store.items(camp.id) if it.id == a.item_id)
        # the two highest-reward outputs are the bad ones: reward hacking
        store.submit(ann.id, a.id, sid(), {"label": "bad" if item.meta["reward"] >= 8 else "good"})
    rep = json.loads(tether(db, "quality", "--campaign", "aud").output)["audit"]
    assert rep["bad_rate"] == 0.5 and rep["items_judged_bad"] == 2
    assert rep["mean_reward_bad"] == 8.5 and rep["mean_reward_good"] == 6.5
    lo, hi = rep["bad_rate_ci95"]
    assert lo < 0.5 < hi
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response": "r", "reward": "high"}])
    r = tether(db, "audit", "--name", "aud2", "--samples", str(bad))
    assert r.exit_code == 2 and "bad.jsonl:1: field 'reward'" in r.output


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny policy and a tiny reward model saved as Hugging Face directories."""
    import torch

    from tether.models.factory import tiny_model_and_tokenizer
    from tether.models.heads import reward_model_from_causal_lm
    from tether.models.load import save_model

    torch.set_num_threads(1)
    lm, tok = tiny_model_and_tokenizer(seed=0, hidden_size=32, num_hidden_layers=1)
    root = tmp_path_factory.mktemp("tiny")
    save_model(lm, tok, root / "policy")
    save_model(reward_model_from_causal_lm(lm, seed=1), tok, root / "rm")
    return {"policy": root / "policy", "rm": root / "rm"}


def test_models_sampling_redteam_and_audit(db: str, tmp_path: Path,
                                           tiny_dirs: dict[str, Path]) -> None:
    from starlette.testclient import TestClient

    from tether.feedback.app import create_app

    tether(db, "users", "add", "ann")
    prompts = _jsonl(tmp_path / "prompts.jsonl", [{"prompt": "What is 2 plus 2?"},
                                                  {"prompt": "Name a colour."}])
    policy = str(tiny_dirs["policy"])
    r = tether(db, "import", "--name", "sampled", "--type", "ranking", "--policy", policy,
               "--prompts", str(prompts), "--responses", "3")
    if r.exit_code == 2 and "identical" in r.output:
        pytest.fail(f"the tiny policy sampled identical responses: {r.output}")
    assert r.exit_code == 0, r.output
    store = Store(db)
    items = store.items(store.campaign("sampled").id)
    assert [len(it.responses) for it in items] == [3, 3] and items[0].meta["policy"] == policy
    r = tether(db, "audit", "--name", "aud", "--policy", policy, "--prompts", str(prompts),
               "--reward-model", str(tiny_dirs["rm"]), "--top", "3", "--responses", "2")
    assert r.exit_code == 0, r.output
    rewards = [it.meta["reward"] for it in store.items(store.campaign("aud").id)]
    assert len(rewards) == 3 and rewards == sorted(rewards, reverse=True)
    # red-teaming: the app serves the policy directory itself
    _, token = store.add_user("red", "annotator")
    r = tether(db, "import", "--name", "rt", "--type", "redteam", "--policy", policy,
               "--annotators", "red")
    assert r.exit_code == 0, r.output
    client = TestClient(create_app(store), headers={"Authorization": f"Bearer {token}"})
    task = client.get(f"/api/campaigns/{store.campaign('rt').id}/next").json()["task"]
    reply = client.post(f"/api/tasks/{task['id']}/chat", json={"message": "Hello there"})
    assert reply.status_code == 200 and isinstance(reply.json()["reply"], str)
    assert [m["role"] for m in reply.json()["messages"]] == ["user", "assistant"]
    r = client.post(f"/api/tasks/{task['id']}", json={
        "submission_id": sid(), "answer": {"failures": [{"turn": 1, "kind": "other"}]}})
    assert r.status_code == 200
