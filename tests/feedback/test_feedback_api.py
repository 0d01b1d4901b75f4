"""The HTTP API and pages through httpx (Starlette's TestClient): every route, every rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from tether.feedback.app import create_app
from tether.feedback.store import Store

from .conftest import PAIR_ITEMS, csrf_of, sid, submission_of

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/api/login")}
ADMIN = {
    ("GET", "/admin"), ("POST", "/admin/users"), ("POST", "/admin/campaigns"),
    ("GET", "/admin/campaigns/{campaign_id}"), ("GET", "/admin/campaigns/{campaign_id}/export"),
    ("POST", "/api/campaigns"), ("POST", "/api/campaigns/{campaign_id}/items"),
    ("POST", "/api/campaigns/{campaign_id}/assign"), ("GET", "/api/campaigns/{campaign_id}/quality"),
    ("GET", "/api/campaigns/{campaign_id}/export"),
    ("GET", "/api/campaigns/{campaign_id}/judgements"), ("GET", "/api/users"),
    ("POST", "/api/users"),
}
SIGNED_IN = {
    ("POST", "/logout"), ("POST", "/api/logout"), ("GET", "/"), ("GET", "/progress"),
    ("GET", "/campaigns/{campaign_id}/next"), ("GET", "/tasks/{assignment_id}"),
    ("POST", "/tasks/{assignment_id}"), ("GET", "/tasks/{assignment_id}/result"),
    ("POST", "/tasks/{assignment_id}/chat"), ("GET", "/api/me"), ("GET", "/api/campaigns"),
    ("GET", "/api/campaigns/{campaign_id}"), ("GET", "/api/campaigns/{campaign_id}/next"),
    ("GET", "/api/tasks/{assignment_id}"), ("POST", "/api/tasks/{assignment_id}"),
    ("GET", "/api/tasks/{assignment_id}/judgement"), ("POST", "/api/tasks/{assignment_id}/chat"),
    ("GET", "/api/progress"),
}


def fake_policy(policy: str | None, messages: list[dict[str, str]]) -> str:
    """A stand-in red-team model: echoes the last message, so replies are checkable."""
    return f"[{policy}] you said: {messages[-1]['content']}"


class World:
    """An app with an admin, two annotators and an expert, and a pairwise campaign."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.app = create_app(store, responder=fake_policy)
        _, self.admin_token = store.add_user("root", "admin", "admin-password")
        _, self.ann_token = store.add_user("ann", "annotator", "ann-password")
        _, self.bob_token = store.add_user("bob", "annotator", "bob-password")
        _, self.eve_token = store.add_user("eve", "expert", "eve-password")
        r = self.api("root").post("/api/campaigns", json={
            "name": "pairs", "task_type": "pairwise", "items": PAIR_ITEMS, "overlap": 2,
            "annotators": ["ann", "bob"], "guidelines": "Prefer **correct** answers."})
        assert r.status_code == 200, r.text
        self.cid = r.json()["id"]

    def api(self, who: str) -> TestClient:
        """A client authenticated by bearer token (no cookie, so no CSRF)."""
        token = {"root": self.admin_token, "ann": self.ann_token, "bob": self.bob_token,
                 "eve": self.eve_token}[who]
        return TestClient(self.app, headers={"Authorization": f"Bearer {token}"})

    def browser(self, who: str) -> tuple[TestClient, str]:
        """A client logged in through the login form (cookie session); returns its CSRF."""
        c = TestClient(self.app)
        csrf = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"csrf_token": csrf, "name": who,
                                   "password": f"{'admin' if who == 'root' else who}-password"})
        assert r.status_code == 200 and r.url.path == "/", r.text
        return c, csrf_of(c.get("/").text)

    def next_task(self, who: str) -> dict[str, Any]:
        return self.api(who).get(f"/api/campaigns/{self.cid}/next").json()["task"]


@pytest.fixture
def world(sqlite_store: Store) -> World:
    return World(sqlite_store)


def _path(template: str) -> str:
    return template.replace("{campaign_id}", "1").replace("{assignment_id}", "1")


def test_route_table_is_complete(world: World) -> None:
    routes = {(m, r.path) for r in world.app.routes if isinstance(r, APIRoute)
              for m in r.methods}
    # a new route must be put in one of the permission sets, and is then tested below
    assert routes == PUBLIC | ADMIN | SIGNED_IN


@pytest.mark.parametrize("method,path", sorted(ADMIN | SIGNED_IN))
def test_every_route_but_login_needs_a_session(world: World, method: str, path: str) -> None:
    c = TestClient(world.app, follow_redirects=False)
    r = c.request(method, _path(path))
    if path.startswith("/api/"):
        assert r.status_code == 401 and r.json() == {"error": "login required"}
    else:
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    bad = TestClient(world.app, headers={"Authorization": "Bearer wrong"}, follow_redirects=False)
    assert bad.request(method, _path(path)).status_code in (401, 303)


@pytest.mark.parametrize("method,path", sorted(ADMIN))
def test_admin_routes_refuse_annotators_and_experts(world: World, method: str, path: str
                                                    ) -> None:
    for who in ("ann", "eve"):
        r = world.api(who).request(method, _path(path), json={})
        assert r.status_code == 403, (who, r.text)


def test_login_forms_tokens_and_redirects(world: World) -> None:
    c = TestClient(world.app, follow_redirects=False)
    page = c.get("/login?next=/progress")
    csrf = csrf_of(page.text)
    r = c.post("/login", data={"csrf_token": csrf, "name": "ann", "password": "nope"})
    assert r.status_code == 401 and "wrong name" in r.text
    r = c.post("/login", data={"name": "ann", "password": "ann-password"})  # no CSRF token
    assert r.status_code == 403
    r = c.post("/login", data={"csrf_token": csrf, "token": world.ann_token,
                               "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    assert c.get("/api/me").json() == {"name": "ann", "role": "annotator"}
    assert csrf_of(c.get("/").text) != csrf  # a fresh CSRF token (and session) per login
    r = c.post("/logout", data={"csrf_token": csrf_of(c.get("/").text)})
    assert r.status_code == 303 and c.get("/api/me").status_code == 401
    api = TestClient(world.app)
    assert api.post("/api/login", json={"name": "ann", "password": "x"}).status_code == 401
    r = api.post("/api/login", json={"name": "ann", "password": "ann-password"})
    assert r.status_code == 200 and r.json()["role"] == "annotator"
    assert api.post("/api/logout", headers={"X-CSRF-Token": r.json()["csrf_token"]}).json() \
        == {"ok": True}
    assert api.get("/api/me").status_code == 401


def test_csrf_is_required_on_every_cookie_post(world: World) -> None:
    c, csrf = world.browser("ann")
    task = world.next_task("ann")
    posts = [(f"/tasks/{task['id']}", {"choice": "A", "submission_id": sid()}),
             (f"/tasks/{task['id']}/chat", {"message": "hi"}), ("/logout", {})]
    for path, data in posts:
        assert c.post(path, data=data).status_code == 403
        assert c.post(path, data={**data, "csrf_token": "forged"}).status_code == 403
    body = {"submission_id": sid(), "answer": {"choice": "A"}}
    assert c.post(f"/api/tasks/{task['id']}", json=body).status_code == 403
    assert c.post(f"/api/tasks/{task['id']}", json=body,
                  headers={"X-CSRF-Token": csrf}).status_code == 200
    admin, admin_csrf = world.browser("root")
    assert admin.post("/admin/users", data={"name": "x1", "role": "annotator"}).status_code == 403
    assert admin.post("/api/users", json={"name": "x2"}).status_code == 403
    assert admin.post("/api/users", json={"name": "x2"},
                      headers={"X-CSRF-Token": admin_csrf}).status_code == 200


def test_annotators_see_only_their_own_tasks_and_labels(world: World) -> None:
    ann, bob = world.api("ann"), world.api("bob")
    t = world.next_task("ann")
    assert ann.post(f"/api/tasks/{t['id']}", json={"submission_id": sid(),
                                                   "answer": {"choice": "A"}}).status_code == 200
    for path in (f"/api/tasks/{t['id']}", f"/api/tasks/{t['id']}/judgement",
                 f"/tasks/{t['id']}", f"/tasks/{t['id']}/result"):
        assert bob.get(path).status_code == 404, path  # existence is not leaked either
    assert bob.post(f"/api/tasks/{t['id']}", json={"submission_id": sid(),
                                                   "answer": {"choice": "B"}}).status_code == 404
    assert bob.post(f"/api/tasks/{t['id']}/chat", json={"message": "x"}).status_code == 404
    assert ann.get(f"/api/tasks/{t['id']}/judgement").json()["answer"]["shown_choice"] == "A"
    for path in (f"/api/campaigns/{world.cid}/export", f"/api/campaigns/{world.cid}/judgements",
                 f"/admin/campaigns/{world.cid}/export", f"/api/campaigns/{world.cid}/quality"):
        assert bob.get(path).status_code == 403
    rows = bob.get("/api/progress").json()
    assert {r["annotator"] for r in rows} == {"bob"}
    assert {r["annotator"] for r in world.api("root").get("/api/progress").json()} == \
        {"ann", "bob"}
    # the expert has no task in this campaign: it is invisible to her
    eve = world.api("eve")
    assert eve.get("/api/campaigns").json() == []
    assert eve.get(f"/api/campaigns/{world.cid}").status_code == 404
    assert eve.get(f"/api/campaigns/{world.cid}/next").status_code == 404
    assert eve.get(f"/campaigns/{world.cid}/next").status_code == 404
    # the task view never shows gold answers, rationales or metadata
    for _ in range(len(PAIR_ITEMS)):
        task = world.next_task("bob")
        assert "gold" not in json.dumps(task) and "rationale" not in json.dumps(task)
        bob.post(f"/api/tasks/{task['id']}", json={"submission_id": sid(),
                                                   "answer": {"choice": "tie"}})


def test_submission_is_idempotent_over_http(world: World) -> None:
    ann = world.api("ann")
    t = world.next_task("ann")
    body = {"submission_id": sid(), "answer": {"choice": "B", "strength": "much"}}
    first = ann.post(f"/api/tasks/{t['id']}", json=body).json()
    again = ann.post(f"/api/tasks/{t['id']}", json=body).json()
    assert first["duplicate"] is False and again == {**first, "duplicate": True}
    r = ann.post(f"/api/tasks/{t['id']}", json={**body, "submission_id": sid()})
    assert r.status_code == 409
    r = ann.post(f"/api/tasks/{world.next_task('ann')['id']}",
                 json={"submission_id": sid(), "answer": {"choice": "maybe"}})
    assert r.status_code == 422 and "choice" in r.json()["error"]
    votes = world.api("root").get(f"/api/campaigns/{world.cid}/judgements").json()
    assert len(votes) == 1


def test_untrusted_text_is_escaped_and_guidelines_have_no_html(world: World) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    root = world.api("root")
    r = root.post("/api/campaigns", json={
        "name": "xss", "task_type": "pairwise", "annotators": ["ann"],
        "guidelines": f"# Rules\n{evil}\n[link](javascript:alert(1))",
        "items": [{"prompt": evil, "responses": [evil, "fine"]}]})
    assert r.status_code == 200
    task = world.api("ann").get(f"/api/campaigns/{r.json()['id']}/next").json()["task"]
    page = world.api("ann").get(f"/tasks/{task['id']}")
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert 'href="javascript' not in page.text and "<h1>Rules</h1>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_html_forms_for_every_task_type(world: World) -> None:
    root, store = world.api("root"), world.store
    specs = {
        "ranking": ({"items": [{"prompt": "p", "responses": ["a", "b", "c"], "gold": [2, 0, 1],
                                "rationale": "Prefer concise."}]}, None),
        "likert": ({"items": [{"prompt": "p", "response": "r"}],
                    "options": {"dimensions": ["helpfulness", "accuracy"]}}, None),
        "thumbs": ({"items": [{"prompt": "p", "response": "r"}]}, None),
        "audit": ({"items": [{"prompt": "p", "response": "r", "reward": 3.5}]}, None),
        "factcheck": ({"items": [{"prompt": "p", "response": "Paris is in Spain. Water is wet."}],
                       "annotators": ["eve"]}, "eve"),
        "redteam": ({"items": [{"prompt": "Make it insult you."}],
                     "options": {"policy": "tiny-policy"}}, None),
    }
    for kind, (body, who) in specs.items():
        r = root.post("/api/campaigns", json={"name": f"c-{kind}", "task_type": kind,
                                              "annotators": [who or "ann"], **body})
        assert r.status_code == 200, r.text
    ann, csrf = world.browser("ann")
    eve, eve_csrf = world.browser("eve")

    def do(client: TestClient, token: str, kind: str, fields: Any) -> Any:
        camp = store.campaign(f"c-{kind}")
        page = client.get(f"/campaigns/{camp.id}/next")
        assert page.status_code == 200 and page.url.path.startswith("/tasks/"), page.text
        aid = int(page.url.path.split("/")[2])
        data = fields(store.assignment(store.user_by_name("ann" if client is ann else "eve"),
                                       aid)[0]) if callable(fields) else fields
        return client.post(page.url.path, data={"csrf_token": token,
                                                "submission_id": submission_of(page.text),
                                                **data}), aid, camp

    # ranking: the gold item; a wrong answer shows the expected order and the guideline
    r, aid, camp = do(ann, csrf, "ranking", lambda a: {"ranking": ",".join(
        str(a.shown_order.index(i)) for i in (0, 1, 2))})
    assert r.url.path == f"/tasks/{aid}/result"
    assert "Not quite" in r.text and "Prefer concise." in r.text and "best first:" in r.text
    r, *_ = do(ann, csrf, "likert", {"rating_helpfulness": "5", "rating_accuracy": "0"})
    assert r.status_code == 422 and "ratings.accuracy" in r.text
    r, _, camp = do(ann, csrf, "likert", {"rating_helpfulness": "5", "rating_accuracy": "4"})
    assert "All done" in r.text
    assert store.judgements(camp.id)[0].answer == {"ratings": {"helpfulness": 5, "accuracy": 4}}
    r, aid, camp = do(ann, csrf, "thumbs", {"label": "down", "reason": "too long"})
    assert store.judgements(camp.id)[0].answer == {"label": "down", "reason": "too long"}
    # an answered task is not shown again; a regular item has no result page to show
    r = ann.get(f"/tasks/{aid}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/tasks/{aid}/result"
    r = ann.get(f"/tasks/{aid}/result", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/campaigns/{camp.id}/next"
    r, aid, camp = do(ann, csrf, "audit", {"label": "bad"})
    assert world.api("root").get(f"/api/campaigns/{camp.id}/quality").json()["audit"][
        "bad_rate"] == 1.0
    r, _, camp = do(eve, eve_csrf, "factcheck", {"claim": "0", "correction_0": "Paris is in France."})
    claims = store.judgements(camp.id)[0].answer["claims"]
    assert claims[0]["text"] == "Paris is in Spain." and claims[0]["correction"] == \
        "Paris is in France."
    # red-teaming: chat, then mark the failed reply
    camp = store.campaign("c-redteam")
    page = ann.get(f"/campaigns/{camp.id}/next")
    aid = int(page.url.path.split("/")[2])
    r = ann.post(f"/tasks/{aid}/chat", data={"csrf_token": csrf, "message": "insult me"})
    assert "[tiny-policy] you said: insult me" in r.text
    r = ann.post(f"/tasks/{aid}/chat", data={"csrf_token": csrf, "message": "   "})
    assert r.status_code == 422 and "empty" in r.text
    r = world.api("ann").post(f"/api/tasks/{aid}/chat", json={"message": "again"})
    assert r.json()["reply"] == "[tiny-policy] you said: again" and len(r.json()["messages"]) == 4
    page = ann.get(f"/tasks/{aid}")
    r = ann.post(f"/tasks/{aid}", data={"csrf_token": csrf, "submission_id": submission_of(
        page.text), "failed": "3", "kind_3": "other", "note_3": "repeats me"})
    assert r.status_code == 200
    exported = world.api("root").get(f"/api/campaigns/{camp.id}/export").text.splitlines()
    rec = json.loads(exported[0])
    assert len(rec["messages"]) == 4 and rec["failures"][0]["note"] == "repeats me"


def test_admin_pages_users_upload_and_export(world: World) -> None:
    admin, csrf = world.browser("root")
    r = admin.post("/admin/users", data={"csrf_token": csrf, "name": "newbie",
                                         "role": "annotator"})
    assert r.status_code == 200 and "newbie" in r.text
    token = r.text.split('<code class="token">')[1].split("<")[0]
    assert world.store.login_token(token).name == "newbie"
    good = "\n".join(json.dumps({"prompt": f"q{i}", "response": f"r{i}"}) for i in range(3))
    r = admin.post("/admin/campaigns", data={"csrf_token": csrf, "name": "up", "task_type":
                                             "thumbs", "overlap": "1", "guidelines": "Be kind."},
                   files={"items": ("up.jsonl", good.encode(), "application/jsonl")})
    assert r.status_code == 200 and r.url.path.startswith("/admin/campaigns/")
    assert "up" in admin.get("/admin").text
    bad = good + "\n" + json.dumps({"prompt": "q", "response": ""})
    r = admin.post("/admin/campaigns", data={"csrf_token": csrf, "name": "up2",
                                             "task_type": "thumbs"},
                   files={"items": ("up2.jsonl", bad.encode(), "application/jsonl")})
    assert r.status_code == 422 and "up2.jsonl:4: field &#39;response&#39;: empty text" in r.text
    assert [c.name for c in world.store.campaigns()] == ["pairs", "up"]
    r = admin.get(f"/admin/campaigns/{world.cid}")
    assert r.status_code == 200 and "position_bias" in r.text
    r = admin.get(f"/admin/campaigns/{world.cid}/export?kind=votes")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert admin.get(f"/admin/campaigns/{world.cid}/export?kind=ratings").status_code == 400


def test_api_campaign_management(world: World) -> None:
    root = world.api("root")
    r = root.post("/api/campaigns", json={"name": "bad", "task_type": "pairwise",
                                          "items": [PAIR_ITEMS[0], {"prompt": "x"}]})
    assert r.status_code == 422 and r.json()["error"].startswith("items:2: field 'responses'")
    assert root.post("/api/campaigns", json={"name": "pairs", "task_type": "pairwise",
                                             "items": PAIR_ITEMS}).status_code == 409
    r = root.post(f"/api/campaigns/{world.cid}/items", json={"items": [
        {"prompt": "new", "responses": ["a", "b"]}]})
    assert r.json() == {"added": 1}
    assert root.post(f"/api/campaigns/{world.cid}/assign",
                     json={"annotators": ["ann", "bob"]}).json() == {"assignments": 2}
    assert root.post(f"/api/campaigns/{world.cid}/assign",
                     json={"annotators": ["ghost"]}).status_code == 404
    assert root.get("/api/campaigns/999").status_code == 404
    assert {u["name"] for u in root.get("/api/users").json()} == {"root", "ann", "bob", "eve"}
    assert root.post("/api/users", json={"name": "root"}).status_code == 409
    r = root.post("/api/users", json={"name": "zed", "role": "expert", "password": "long-enough"})
    assert r.json()["role"] == "expert" and len(r.json()["token"]) > 20
    camp = root.get(f"/api/campaigns/{world.cid}").json()
    assert camp["name"] == "pairs" and camp["guidelines"].startswith("Prefer")
    ann = world.api("ann")
    while not (n := ann.get(f"/api/campaigns/{world.cid}/next").json())["done"]:
        ann.post(f"/api/tasks/{n['task']['id']}", json={"submission_id": sid(),
                                                        "answer": {"choice": "A"}})
    page = ann.get(f"/campaigns/{world.cid}/next")
    assert "All done" in page.text
    assert "5 / 5" in ann.get("/").text and "ann" in ann.get("/progress").text
