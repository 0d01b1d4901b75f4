"""What the ``tether feedback ...`` commands do, as plain functions (the CLI stays thin).

    tether feedback users add ann --role annotator         # prints ann's login token
    tether feedback import --name c1 --type pairwise --data pairs.jsonl --overlap 3
    tether feedback serve --db sqlite:///feedback.db --port 8000
    tether feedback quality --campaign c1
    tether feedback export --campaign c1 --out c1-pairs.jsonl [--kind pairs] [--aggregate]
    tether feedback audit --name audit1 --samples runs/x/ppo/samples.jsonl --top 50
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether.data.io import iter_records
from tether.errors import ConfigError, DataError, TetherError
from tether.feedback import tasks
from tether.feedback.store import Store, check_options, items_from_records

DEFAULT_DB = "sqlite:///feedback.db"


def open_store(db: str | None) -> Store:
    """The store at ``db`` (URL or SQLite path; default ``$TETHER_FEEDBACK_DB`` or
    ``sqlite:///feedback.db``)."""
    return Store(db or os.environ.get("TETHER_FEEDBACK_DB") or DEFAULT_DB)


def read_guidelines(path: str | None, task_type: str) -> str:
    """Guidelines Markdown from a file, or the task type's default guidelines."""
    if path is None:
        return tasks.DEFAULT_GUIDELINES.get(task_type, "")
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: guidelines file not found")
    return p.read_text(encoding="utf-8")


def add_user(db: str | None, name: str, role: str, password: str | None) -> dict[str, Any]:
    """Create an account; the result holds its login token (shown once)."""
    user, token = open_store(db).add_user(name, role, password)
    return {"name": user.name, "role": user.role, "token": token}


def list_users(db: str | None) -> list[dict[str, Any]]:
    """Every account's name and role."""
    return [{"name": u.name, "role": u.role, "active": u.active} for u in open_store(db).users()]


def _prompts(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    out = []
    for line, rec in iter_records(path):
        p = rec.get("prompt")
        if not isinstance(p, str) or not p.strip():
            raise DataError(path, "missing or empty text", line=line, field="prompt")
        out.append((line, p))
    if not out:
        raise DataError(path, "no prompts")
    return out


def import_campaign(db: str | None, name: str, task_type: str, data: str | None = None,
                    guidelines: str | None = None, overlap: int = 1,
                    dimensions: list[str] | None = None, annotators: list[str] | None = None,
                    policy: str | None = None, prompts: str | None = None,
                    responses: int | None = None, max_new_tokens: int = 64, seed: int = 0,
                    assign: bool = True) -> dict[str, Any]:
    """Create a campaign from an items file, or by sampling a policy on a prompt set.

    With ``data``: items as JSONL/Parquet (see :func:`tether.feedback.store.parse_item`).
    With ``policy`` and ``prompts`` (not red-teaming): ``responses`` samples per
    prompt (2 for pairwise, 4 for ranking, 1 otherwise). For red-teaming,
    ``policy`` is the model annotators chat with and ``data`` (optional) holds
    scenario prompts. Validation of every item happens before anything is written.
    """
    options: dict[str, Any] = {}
    if dimensions:
        options["dimensions"] = dimensions
    if task_type == "redteam":
        if not policy:
            raise ConfigError("a redteam campaign needs --policy (the model to chat with)")
        options["policy"] = str(policy)
    options = check_options(task_type, options)
    if task_type == "redteam":
        records = list(iter_records(data)) if data else [(1, {"prompt": ""})]
        specs = items_from_records(task_type, records, options, data or "<free chat>")
    elif data and not policy:
        specs = items_from_records(task_type, iter_records(data), options, data)
    elif policy and prompts:
        from tether.feedback.serving import sample_responses

        n = responses or {"pairwise": 2, "ranking": 4}.get(task_type, 1)
        rows = _prompts(prompts)
        sampled = sample_responses(policy, [p for _, p in rows], n, max_new_tokens, seed=seed)
        records = [(line, {"prompt": p, "responses": rs, "policy": str(policy)})
                   for (line, p), rs in zip(rows, sampled, strict=True)]
        specs = items_from_records(task_type, records, options, f"{policy} samples of {prompts}")
    else:
        raise ConfigError("give --data FILE, or --policy DIR with --prompts FILE")
    store = open_store(db)
    camp = store.create_campaign(name, task_type, specs, read_guidelines(guidelines, task_type),
                                 overlap, options, seed)
    assigned = store.assign(camp.id, annotators) if assign else 0
    return {"campaign": camp.name, "id": camp.id, "task_type": task_type, "items": len(specs),
            "gold_items": sum(s.gold is not None for s in specs), "assignments": assigned}


def audit_campaign(db: str | None, name: str, top: int, samples: str | None = None,
                   reward_key: str | None = None, policy: str | None = None,
                   prompts: str | None = None, reward_model: str | None = None,
                   responses: int = 4, overlap: int = 1, guidelines: str | None = None,
                   annotators: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Create an audit campaign of the ``top`` highest-reward outputs (see :mod:`.audit`)."""
    from tether.feedback import audit

    if samples:
        records = audit.audit_items_from_samples(samples, top, reward_key)
    elif policy and prompts and reward_model:
        records = audit.audit_items_from_policy(policy, prompts, reward_model, top, responses,
                                                seed=seed)
    else:
        raise ConfigError("give --samples FILE, or --policy DIR --prompts FILE --reward-model DIR")
    specs = items_from_records("audit", enumerate(records, start=1), {}, samples or "samples")
    store = open_store(db)
    camp = store.create_campaign(name, "audit", specs, read_guidelines(guidelines, "audit"),
                                 overlap, {}, seed)
    assigned = store.assign(camp.id, annotators)
    rewards = [r["reward"] for r in records]
    return {"campaign": camp.name, "id": camp.id, "items": len(specs), "assignments": assigned,
            "reward_min": min(rewards), "reward_max": max(rewards)}


def assign(db: str | None, campaign: str, annotators: list[str] | None) -> dict[str, Any]:
    """Fill a campaign's missing assignments (after adding items or people)."""
    store = open_store(db)
    camp = store.campaign(campaign)
    return {"campaign": camp.name, "assignments": store.assign(camp.id, annotators)}


def export(db: str | None, campaign: str, out: str, kind: str | None = None,
           aggregate: bool = False) -> dict[str, Any]:
    """Write a campaign's export as JSONL (atomically)."""
    from tether.feedback.export import DEFAULT_KIND, export_file

    store = open_store(db)
    camp = store.campaign(campaign)
    n = export_file(store, camp, out, kind, aggregate)
    return {"campaign": camp.name, "kind": kind or DEFAULT_KIND[camp.task_type],
            "aggregate": aggregate, "records": n, "out": str(out)}


def quality(db: str | None, campaign: str) -> dict[str, Any]:
    """A campaign's quality report (agreement, gold accuracy, position bias, audit)."""
    from tether.feedback.quality import campaign_quality

    store = open_store(db)
    return campaign_quality(store, store.campaign(campaign))


def progress(db: str | None) -> list[dict[str, Any]]:
    """Every annotator's progress in every campaign."""
    return open_store(db).progress()


def serve(db: str | None, host: str = "127.0.0.1", port: int = 8000,
          secret: str | None = None, https_only: bool = False) -> None:
    """Run the app with uvicorn until interrupted (``https_only``: Secure cookies, for
    serving behind a TLS proxy)."""
    import uvicorn

    from tether.feedback.app import create_app

    if port < 0 or port > 65535:
        raise TetherError(f"port {port}: expected 0..65535")
    app = create_app(open_store(db), secret=secret, https_only=https_only)
    uvicorn.run(app, host=host, port=port, log_level="info")
