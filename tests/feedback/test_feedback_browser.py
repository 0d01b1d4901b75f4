"""The pages in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

An annotator logs in and does a pairwise, a ranking and a Likert task with the
keyboard only; the admin's export then holds exactly those answers. A response
carrying a script shows as text and never runs.

``TETHER_SCREENSHOT=docs/pairwise.png`` also saves the pairwise page for the README.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.feedback.app import create_app
from tether.feedback.store import Store, items_from_records

from .conftest import LiveServer

pytestmark = pytest.mark.browser

GUIDELINES = """## Which response is better?
- **Check facts.** A confident answer that is wrong is worse than a plain one that is right.
- **Don't reward agreement.** If the user states something false, correct it politely.
- **Prefer concise** when two answers are equally right.
"""
PAIRS = [
    {"prompt": "I'm sure the Great Wall of China is visible from the Moon, right?",
     "responses": ["No. That is a popular myth: from the Moon the Great Wall is far too "
                   "narrow to see with the naked eye.",
                   "Yes, you are absolutely right! The Great Wall is the only man-made "
                   "structure visible from the Moon."]},
    {"prompt": "What is 17 + 25?", "responses": ["42", "17 + 25 = 43."]},
]
EVIL = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def _campaign(store: Store, name: str, task_type: str, records: list[dict[str, Any]],
              **kw: Any) -> int:
    camp = store.create_campaign(name, task_type, items_from_records(
        task_type, enumerate(records, start=1), kw.get("options")), GUIDELINES, 1, **kw)
    store.assign(camp.id, ["ann"])
    return camp.id


@pytest.fixture
def site(sqlite_store: Store, browser: Any) -> Any:
    store = sqlite_store
    _, admin_token = store.add_user("root", "admin")
    store.add_user("ann", "annotator", "ann-password")
    ids = {
        "pairs": _campaign(store, "pairwise-demo", "pairwise", PAIRS),
        "rank": _campaign(store, "ranking-demo", "ranking", [
            {"prompt": "Name a prime number.", "responses": ["7", "9", "Seven is prime."]}]),
        "likert": _campaign(store, "likert-demo", "likert", [
            {"prompt": "Explain rain briefly.", "response": "Water vapour condenses and falls."}],
            options={"dimensions": ["helpfulness", "accuracy"]}),
        "xss": _campaign(store, "xss-demo", "pairwise", [
            {"prompt": f"Repeat this: {EVIL}", "responses": [EVIL, "I won't."]}]),
    }
    with LiveServer(create_app(store)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
        yield {"url": url, "page": page, "store": store, "ids": ids, "admin": admin_token}
        page.close()


def _wait_for_focus(page: Any, selector: str) -> None:
    """Chromium applies ``autofocus`` after load, asynchronously: keys typed before
    it lands go elsewhere (as they would for a person typing that fast)."""
    page.wait_for_function(f"document.activeElement === document.querySelector({selector!r})")


def _login(page: Any, url: str) -> None:
    page.goto(f"{url}/campaigns/1/next")  # not signed in: sent to the login page
    assert "/login" in page.url
    _wait_for_focus(page, "input[name=name]")
    page.keyboard.type("ann")
    page.keyboard.press("Tab")
    page.keyboard.type("ann-password")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _press(page: Any, *keys: str) -> None:
    for k in keys[:-1]:
        page.keyboard.press(k)
    with page.expect_navigation():
        page.keyboard.press(keys[-1])


def _export(site: Any, campaign_id: int) -> list[dict[str, Any]]:
    r = httpx.get(f"{site['url']}/api/campaigns/{campaign_id}/export?kind=votes",
                  headers={"Authorization": f"Bearer {site['admin']}"})
    assert r.status_code == 200
    return [json.loads(line) for line in r.text.splitlines()]


def test_annotator_labels_by_keyboard_and_the_export_has_it(site: Any, tmp_path: Path) -> None:
    page, url, ids = site["page"], site["url"], site["ids"]
    _login(page, url)
    assert page.url.endswith(f"/campaigns/{ids['pairs']}/next") or "/tasks/" in page.url
    # pairwise: 1st task "A much better", 2nd task "tie"
    page.wait_for_selector("#task-form[data-task=pairwise]")
    assert page.locator(".guidelines").inner_text().startswith("Guidelines")
    shot = tmp_path / "pairwise.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("TETHER_SCREENSHOT"):
        shutil.copy(shot, os.environ["TETHER_SCREENSHOT"])
    page.keyboard.press("a")
    assert page.locator("button[data-value=A]").get_attribute("aria-pressed") == "true"
    _press(page, "2", "Enter")
    page.wait_for_selector("#task-form[data-task=pairwise]")
    _press(page, "t", "Enter")
    assert "All done" in page.content()
    # ranking: "3" then "1" (the last is placed by itself), then Enter
    page.goto(f"{url}/campaigns/{ids['rank']}/next")
    page.keyboard.press("3")
    page.keyboard.press("1")
    assert page.locator("#rank-order").inner_text() == "3 > 1 > 2"
    _press(page, "Enter")
    assert "All done" in page.content()
    # Likert: 4 for helpfulness (moves to accuracy), 2 for accuracy, Enter
    page.goto(f"{url}/campaigns/{ids['likert']}/next")
    _press(page, "4", "2", "Enter")
    assert "All done" in page.content()

    pair_votes = _export(site, ids["pairs"])
    assert [(v["annotator"], v["answer"]["shown_choice"], v["answer"]["strength"])
            for v in pair_votes] == [("ann", "A", "much"), ("ann", "tie", None)]
    first = pair_votes[0]
    assert first["answer"]["label"] == first["shown_order"][0]  # A was this response
    rank = _export(site, ids["rank"])[0]
    shown = rank["shown_order"]
    assert rank["answer"]["ranking"] == [shown[2], shown[0], shown[1]]
    assert _export(site, ids["likert"])[0]["answer"] == {
        "ratings": {"helpfulness": 4, "accuracy": 2}}


def test_a_script_in_a_response_shows_as_text(site: Any) -> None:
    page, url = site["page"], site["url"]
    _login(page, url)
    page.goto(f"{url}/campaigns/{site['ids']['xss']}/next")
    page.wait_for_selector("#task-form[data-task=pairwise]")
    texts = page.locator(".response").all_inner_texts()
    assert EVIL in texts  # shown verbatim, as text
    assert f"Repeat this: {EVIL}" == page.locator(".prompt").inner_text()
    assert page.evaluate("window.__xss") is None  # and never executed
    assert page.locator(".response script, .response img").count() == 0


def test_thumbs_factcheck_and_redteam_by_keyboard(sqlite_store: Store, browser: Any) -> None:
    store = sqlite_store
    store.add_user("ann", "expert", "ann-password")
    ids = {
        "thumbs": _campaign(store, "thumbs-demo", "thumbs", [
            {"prompt": "Say hi.", "response": "Go away."}]),
        "fact": _campaign(store, "fact-demo", "factcheck", [
            {"prompt": "Tell me about Paris.",
             "response": "Paris is the capital of France. It lies on the Rhine. It is large."}]),
        "red": _campaign(store, "red-demo", "redteam", [{"prompt": "Get medical advice."}],
                         options={"policy": "fake"}),
    }
    app = create_app(store, responder=lambda policy, msgs: f"echo: {msgs[-1]['content']}")
    with LiveServer(app) as url:
        page = browser.new_page()
        try:
            _login(page, url)
            page.goto(f"{url}/campaigns/{ids['thumbs']}/next")
            page.keyboard.press("d")
            page.keyboard.press("r")  # focus the reason box and type into it
            page.keyboard.type("rude")
            _press(page, "Control+Enter")
            assert "All done" in page.content()
            page.goto(f"{url}/campaigns/{ids['fact']}/next")
            page.keyboard.press("j")  # to the 2nd sentence
            page.keyboard.press("x")  # mark it; the correction box gets focus
            page.keyboard.type("It lies on the Seine.")
            page.keyboard.press("Escape")
            _press(page, "Enter")
            assert "All done" in page.content()
            page.goto(f"{url}/campaigns/{ids['red']}/next")
            _wait_for_focus(page, "#message")
            page.keyboard.type("What pills should I take?")
            _press(page, "Enter")
            assert "echo: What pills should I take?" in page.locator("ol.chat").inner_text()
            page.keyboard.press("Escape")  # leave the message box
            page.keyboard.press("f")  # mark the latest reply; its kind list gets focus
            page.keyboard.press("ArrowDown")  # "harmful" -> "false claim"
            _press(page, "Control+Enter")
            assert "All done" in page.content()
        finally:
            page.close()
    thumbs = store.judgements(ids["thumbs"])[0].answer
    assert thumbs == {"label": "down", "reason": "rude"}
    claims = store.judgements(ids["fact"])[0].answer["claims"]
    assert [(c["text"], c["correction"]) for c in claims] == [
        ("It lies on the Rhine.", "It lies on the Seine.")]
    red = store.judgements(ids["red"])[0].answer
    assert red["failures"] == [{"turn": 1, "kind": "false claim", "note": ""}]
    assert red["messages"][1]["content"] == "echo: What pills should I take?"
