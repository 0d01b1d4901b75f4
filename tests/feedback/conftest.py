"""Fixtures of the feedback-app tests: databases (SQLite and PostgreSQL), a live server,
a browser, and helpers to log in and submit.

PostgreSQL tests need ``TETHER_TEST_PG_URL`` and browser tests ``/usr/bin/chromium``.
Without them they skip, unless ``TETHER_REQUIRE_SERVICES=1`` (set by ``.ci/run``),
where a missing service is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tether.feedback.store import Store

PG_URL = os.environ.get("TETHER_TEST_PG_URL")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require(available: bool, reason: str) -> None:
    """Skip when a service is missing, or fail when CI said services are required."""
    if available:
        return
    if os.environ.get("TETHER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (TETHER_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def fresh_pg_store() -> Store:
    """A store on the test PostgreSQL database with every table emptied."""
    require(bool(PG_URL), "TETHER_TEST_PG_URL is not set (no PostgreSQL server)")
    from tether.feedback.db import Base, make_engine

    engine = make_engine(PG_URL)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    return Store(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    """The same tests on SQLite (a file in WAL mode) and on a real PostgreSQL server."""
    s = Store(f"sqlite:///{tmp_path / 'feedback.db'}") if request.param == "sqlite" \
        else fresh_pg_store()
    yield s
    s.engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[Store]:
    """A store on a fresh SQLite file."""
    s = Store(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield s
    s.engine.dispose()


class LiveServer:
    """The app under uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def sid() -> str:
    """A fresh submission id."""
    return uuid.uuid4().hex


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no CSRF token"
    return m.group(1)


def submission_of(html: str) -> str:
    """The submission id a rendered task page carries."""
    m = re.search(r'name="submission_id" value="([^"]+)"', html)
    assert m, "page has no submission id"
    return m.group(1)


PAIR_ITEMS = [
    {"id": "p0", "prompt": "What is 2 + 2?", "responses": ["4", "5"], "gold": 0,
     "rationale": "Check facts: 2 + 2 is 4."},
    {"id": "p1", "prompt": "Say hello.", "responses": ["Hello!", "Go away."]},
    {"id": "p2", "prompt": "Capital of France?", "responses": ["Paris.", "Lyon."]},
    {"id": "p3", "prompt": "Is the sky green?", "responses": ["No, it is blue.",
                                                             "Yes, you are right."]},
]
