"""Round trip: world responses -> the app -> simulated raters label through the API ->
export -> ``tether rm`` trains on the export as it is."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
import yaml
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tether.cli import app as cli
from tether.feedback.app import create_app
from tether.feedback.export import export_file
from tether.feedback.quality import campaign_quality
from tether.feedback.store import Store
from tether.world import Rater
from tether.world.corpora import pair_records

from .conftest import sid

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 64}


def test_world_to_app_to_reward_model(sqlite_store: Store, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store = sqlite_store
    # 1. world responses, unlabelled: two styled answers per prompt, in random order
    rng = random.Random(0)
    records = []
    for rec in pair_records(40, "train", seed=0):
        pair = [rec["chosen"], rec["rejected"]]
        rng.shuffle(pair)
        records.append({"prompt": rec["prompt"], "responses": pair, "category": rec["category"]})
    raters = {f"rater{i}": store.add_user(f"rater{i}", "annotator")[1] for i in range(3)}
    _, admin = store.add_user("root", "admin")
    app = create_app(store)
    root = TestClient(app, headers={"Authorization": f"Bearer {admin}"})
    r = root.post("/api/campaigns", json={"name": "world", "task_type": "pairwise",
                                          "items": records, "overlap": 3})
    assert r.status_code == 200 and r.json()["assignments"] == 120
    cid = r.json()["id"]
    # 2. simulated crowd raters label through the API, seeing the shown order A/B
    picked: dict[tuple[str, ...], list[str]] = {}  # item -> the texts the raters preferred
    for i, (name, token) in enumerate(raters.items()):
        rater = Rater("crowd", seed=i)
        client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
        while not (nxt := client.get(f"/api/campaigns/{cid}/next").json())["done"]:
            t = nxt["task"]
            a, b = (x["text"] for x in t["responses"])
            choice = "A" if rater.choose(t["prompt"], a, b) else "B"
            picked.setdefault((t["prompt"], *sorted((a, b))), []).append(
                a if choice == "A" else b)
            res = client.post(f"/api/tasks/{t['id']}", json={"submission_id": sid(),
                                                             "answer": {"choice": choice}})
            assert res.status_code == 200, (name, res.text)
    # 3. export: raw votes as pairs, and one majority pair per item
    camp = store.campaign(cid)
    raw = tmp_path / "pairs.jsonl"
    assert export_file(store, camp, raw) == 120
    agg = tmp_path / "pairs-agg.jsonl"
    n_agg = export_file(store, camp, agg, aggregate=True)
    assert n_agg == 40  # 3 decisive votes per item: always a strict majority
    majority = [json.loads(x) for x in agg.read_text().splitlines()]
    for p in majority:  # the export's winner is what most raters clicked, whatever its letter
        votes = picked[(p["prompt"], *sorted((p["chosen"], p["rejected"])))]
        assert votes.count(p["chosen"]) >= 2 and p["votes"] == 3
        assert p["agreement"] == round(votes.count(p["chosen"]) / 3, 4)
    raw_pairs = [json.loads(x) for x in raw.read_text().splitlines()]
    assert sorted(x["chosen"] for x in raw_pairs) == sorted(t for v in picked.values() for t in v)
    report = campaign_quality(store, camp)
    assert report["agreement"]["items_with_2plus_votes"] == 40
    assert report["position_bias"]["decisive_votes"] == 120
    # 4. tether rm reads the export unchanged
    out = tmp_path / "rm"
    cfg = {"run": {"out": str(out)}, "model": {"tiny": TINY},
           "train": {"max_steps": 10, "batch_size": 8, "progress": False, "tensorboard": False},
           "optim": {"lr": 3e-3, "warmup_steps": 0},
           "data": {"train": str(raw), "eval": str(agg), "max_length": 96}}
    (tmp_path / "rm.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(cli, ["rm", "--config", str(tmp_path / "rm.yaml")])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 120
    assert math.isfinite(summary["loss/final"])
    assert (out / "model" / "config.json").is_file()
