"""The feedback web app: server-rendered pages for people, a JSON API for scripts.

    app = create_app("sqlite:///feedback.db")     # uvicorn.run(app, host="127.0.0.1")

Rules enforced here and in :class:`~tether.feedback.store.Store`:

- every route but ``/login`` (and the static CSS/JS) needs a signed-in user: a
  session cookie (signed with itsdangerous by Starlette's SessionMiddleware) or
  ``Authorization: Bearer <login token>`` for scripts;
- ``/admin`` and admin API routes need the admin role; annotators see only their
  own tasks, never another's labels, never the export;
- every POST with a session cookie carries the session's CSRF token (form field
  ``csrf_token`` or header ``X-CSRF-Token``); bearer-token requests carry no
  ambient credential and need none;
- model outputs are untrusted: templates autoescape, guidelines are Markdown with
  raw HTML disabled, and a Content-Security-Policy forbids inline scripts;
- a submission carries a client-generated ``submission_id`` (in the form when
  the page is rendered), so a double click or a retry is stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware.sessions import SessionMiddleware

from tether.errors import DataError, TetherError
from tether.feedback import tasks
from tether.feedback.db import TASK_TYPES, User
from tether.feedback.security import new_csrf, same_token
from tether.feedback.store import (
    Conflict,
    Forbidden,
    NotFound,
    Store,
    check_options,
    items_from_records,
)

HERE = Path(__file__).parent
Responder = Callable[[str | None, list[dict[str, str]]], str]
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# JSON bodies of the API (module level, so FastAPI can resolve the annotations).


class LoginBody(BaseModel):
    name: str = ""
    password: str = ""
    token: str = ""


class CampaignBody(BaseModel):
    name: str
    task_type: str
    items: list[dict[str, Any]]
    guidelines: str = ""
    overlap: int = Field(1, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    annotators: list[str] | None = None  # None: everyone whose role fits the task
    assign: bool = True
    seed: int = 0


class ItemsBody(BaseModel):
    items: list[dict[str, Any]]


class AssignBody(BaseModel):
    annotators: list[str] | None = None


class SubmitBody(BaseModel):
    submission_id: str
    answer: dict[str, Any]


class ChatBody(BaseModel):
    message: str


class UserBody(BaseModel):
    name: str
    role: str = "annotator"
    password: str | None = None


class LoginRequired(Exception):
    """No valid session or token (API: 401; pages: redirect to /login)."""


class CsrfError(Exception):
    """A cookie-authenticated POST without the session's CSRF token (403)."""


_markdown = MarkdownIt("js-default")  # html=False: raw HTML in guidelines is shown as text


def render_markdown(text: str) -> Markup:
    """Guidelines Markdown -> safe HTML (raw HTML escaped, unsafe link schemes refused)."""
    return Markup(_markdown.render(text or ""))


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["markdown"] = render_markdown
    env.globals["letter"] = lambda p: chr(ord("A") + p)
    return env


def create_app(db: str | Store, secret: str | None = None,
               responder: Responder | None = None, https_only: bool = False) -> FastAPI:
    """The app over a database URL (or a :class:`Store`).

    ``secret`` signs session cookies (default: a random secret kept in the
    database, so sessions survive restarts). ``responder(policy, messages)``
    answers red-team chats (default: the campaign's policy directory, loaded
    lazily with :mod:`tether.models`).
    """
    store = db if isinstance(db, Store) else Store(db)
    if responder is None:
        from tether.feedback.serving import Responders

        responder = Responders()
    app = FastAPI(title="Tether feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.responder = responder
    env = _templates()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_middleware(SessionMiddleware, secret_key=secret or store.secret(),
                       session_cookie="tether_session", max_age=12 * 3600,
                       same_site="strict", https_only=https_only)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # ------------------------------------------------------------ errors

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error_page(request: Request, status: int, message: str) -> Response:
        if is_api(request):
            return JSONResponse({"error": message}, status_code=status)
        return page(request, "error.html", {"message": message, "status": status},
                    status=status, user=None)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if is_api(request):
            return JSONResponse({"error": "login required"}, status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError) -> Response:
        return error_page(request, 403, "missing or wrong CSRF token; reload the page")

    status_of = [(NotFound, 404), (Forbidden, 403), (Conflict, 409), (tasks.AnswerError, 422),
                 (DataError, 422), (TetherError, 400)]

    @app.exception_handler(TetherError)
    async def _tether(request: Request, exc: TetherError) -> Response:
        status = next(code for cls, code in status_of if isinstance(exc, cls))
        return error_page(request, status, str(exc))

    # ------------------------------------------------------------ auth

    def session_csrf(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = new_csrf()
        return request.session["csrf"]

    async def identify(request: Request) -> tuple[User | None, str]:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return await run_in_threadpool(store.login_token, auth[7:].strip()), "token"
        uid = request.session.get("uid")
        if isinstance(uid, int):
            return await run_in_threadpool(store.user, uid), "cookie"
        return None, "none"

    async def check_csrf(request: Request) -> None:
        sent = request.headers.get("x-csrf-token")
        ctype = request.headers.get("content-type", "")
        if sent is None and ("form" in ctype):
            sent = (await request.form()).get("csrf_token")
        if not same_token(sent if isinstance(sent, str) else None, request.session.get("csrf")):
            raise CsrfError()

    async def current_user(request: Request) -> User:
        user, via = await identify(request)
        if user is None:
            raise LoginRequired()
        if via == "cookie" and request.method not in ("GET", "HEAD", "OPTIONS"):
            await check_csrf(request)
        return user

    async def admin_user(user: User = Depends(current_user)) -> User:
        if user.role != "admin":
            raise Forbidden("admins only")
        return user

    def page(request: Request, name: str, ctx: dict[str, Any], status: int = 200,
             user: User | None = None) -> HTMLResponse:
        html = env.get_template(name).render(request=request, user=user,
                                             csrf=session_csrf(request), **ctx)
        return HTMLResponse(html, status_code=status)

    # ------------------------------------------------------------ login

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        return page(request, "login.html", {"next": _safe_next(next), "error": None})

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if not same_token(_field(form, "csrf_token"), request.session.get("csrf")):
            raise CsrfError()
        name, password, token = (_field(form, "name"), _field(form, "password"),
                                 _field(form, "token"))
        user = await run_in_threadpool(_login, store, name, password, token)
        nxt = _safe_next(_field(form, "next") or "/")
        if user is None:
            return page(request, "login.html", {"next": nxt, "error": "wrong name, password "
                                                "or token"}, status=401)
        _start_session(request, user)
        return RedirectResponse(nxt, status_code=303)

    @app.post("/logout")
    async def logout(request: Request, user: User = Depends(current_user)) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)


    @app.post("/api/login")
    async def api_login(request: Request, body: LoginBody) -> Response:
        user = await run_in_threadpool(_login, store, body.name, body.password, body.token)
        if user is None:
            return JSONResponse({"error": "wrong name, password or token"}, status_code=401)
        _start_session(request, user)
        return JSONResponse({"name": user.name, "role": user.role,
                             "csrf_token": request.session["csrf"]})

    @app.post("/api/logout")
    async def api_logout(request: Request, user: User = Depends(current_user)) -> Response:
        request.session.clear()
        return JSONResponse({"ok": True})

    # ------------------------------------------------------------ pages

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, user: User = Depends(current_user)) -> Response:
        mine = {(r["campaign"]): r for r in store.progress(user)}
        camps = [(c, mine.get(c.name)) for c in store.campaigns(user)]
        return page(request, "home.html", {"campaigns": camps}, user=user)

    @app.get("/progress", response_class=HTMLResponse)
    def progress_page(request: Request, user: User = Depends(current_user)) -> Response:
        rows = store.progress(None if user.role == "admin" else user)
        return page(request, "progress.html", {"rows": rows}, user=user)

    @app.get("/campaigns/{campaign_id}/next")
    def next_task(request: Request, campaign_id: int, user: User = Depends(current_user)
                  ) -> Response:
        camp = _visible_campaign(store, user, campaign_id)
        a = store.next_assignment(user.id, camp.id)
        if a is None:
            return page(request, "done.html", {"campaign": camp}, user=user)
        return RedirectResponse(f"/tasks/{a.id}", status_code=303)

    @app.get("/tasks/{assignment_id}", response_class=HTMLResponse)
    def task_page(request: Request, assignment_id: int, user: User = Depends(current_user)
                  ) -> Response:
        a, _, _ = store.assignment(user, assignment_id)
        if a.done and a.user_id == user.id:
            return RedirectResponse(f"/tasks/{a.id}/result", status_code=303)
        return render_task(request, user, assignment_id)

    def render_task(request: Request, user: User, assignment_id: int, error: str | None = None,
                    status: int = 200) -> HTMLResponse:
        task = task_view(store, user, assignment_id)
        task["submission_id"] = uuid.uuid4().hex
        return page(request, f"task_{_template_of(task['task_type'])}.html",
                    {"task": task, "error": error}, status=status, user=user)

    @app.post("/tasks/{assignment_id}")
    async def submit_form(request: Request, assignment_id: int,
                          user: User = Depends(current_user)) -> Response:
        form = await request.form()
        a, _, camp = await run_in_threadpool(store.assignment, user, assignment_id)
        try:
            raw = form_answer(camp.task_type, form, camp.options)
            result = await run_in_threadpool(store.submit, user.id, assignment_id,
                                             _field(form, "submission_id"), raw)
        except tasks.AnswerError as e:
            return await run_in_threadpool(render_task, request, user, assignment_id, str(e), 422)
        if result.correct is not None:
            return RedirectResponse(f"/tasks/{assignment_id}/result", status_code=303)
        return RedirectResponse(f"/campaigns/{camp.id}/next", status_code=303)

    @app.get("/tasks/{assignment_id}/result", response_class=HTMLResponse)
    def result_page(request: Request, assignment_id: int, user: User = Depends(current_user)
                    ) -> Response:
        a, item, camp = store.assignment(user, assignment_id)
        fb = store.gold_feedback(user, assignment_id)
        if fb is None:
            return RedirectResponse(f"/tasks/{assignment_id}", status_code=303)
        if fb.correct is None:  # not a gold item: nothing to teach, go on
            return RedirectResponse(f"/campaigns/{camp.id}/next", status_code=303)
        return page(request, "result.html", {"campaign": camp, "feedback": fb,
                                             "assignment": a}, user=user)

    @app.post("/tasks/{assignment_id}/chat")
    async def chat_form(request: Request, assignment_id: int,
                        user: User = Depends(current_user)) -> Response:
        form = await request.form()
        try:
            await run_in_threadpool(chat_turn, store, app.state.responder, user, assignment_id,
                                    _field(form, "message"))
        except tasks.AnswerError as e:
            return await run_in_threadpool(render_task, request, user, assignment_id, str(e), 422)
        return RedirectResponse(f"/tasks/{assignment_id}#bottom", status_code=303)

    # ------------------------------------------------------------ admin pages

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, user: User = Depends(admin_user)) -> Response:
        return page(request, "admin.html", {"campaigns": store.campaigns(), "users":
                                            store.users(), "task_types": TASK_TYPES,
                                            "created": None}, user=user)

    @app.post("/admin/users", response_class=HTMLResponse)
    async def admin_add_user(request: Request, user: User = Depends(admin_user)) -> Response:
        form = await request.form()
        new, token = await run_in_threadpool(store.add_user, _field(form, "name"),
                                             _field(form, "role"),
                                             _field(form, "password") or None)
        return page(request, "admin.html", {"campaigns": store.campaigns(), "users":
                                            store.users(), "task_types": TASK_TYPES,
                                            "created": {"name": new.name, "token": token}},
                    user=user)

    @app.post("/admin/campaigns")
    async def admin_add_campaign(request: Request, user: User = Depends(admin_user)
                                 ) -> Response:
        form = await request.form()
        upload = form.get("items")
        if upload is None or isinstance(upload, str):
            raise TetherError("items: choose a JSONL file to import")
        data = await upload.read()
        name, task_type = _field(form, "name"), _field(form, "task_type")
        options: dict[str, Any] = {}
        if _field(form, "dimensions").strip():
            options["dimensions"] = [d.strip() for d in _field(form, "dimensions").split(",")
                                     if d.strip()]
        if _field(form, "policy").strip():
            options["policy"] = _field(form, "policy").strip()
        overlap = _int(_field(form, "overlap") or "1", "overlap")

        def create() -> int:
            opts = check_options(task_type, options)
            specs = items_from_records(task_type, _jsonl_lines(data, upload.filename), opts,
                                       upload.filename or "upload")
            camp = store.create_campaign(name, task_type, specs, _field(form, "guidelines"),
                                         overlap, options)
            store.assign(camp.id)
            return camp.id

        cid = await run_in_threadpool(create)
        return RedirectResponse(f"/admin/campaigns/{cid}", status_code=303)

    @app.get("/admin/campaigns/{campaign_id}", response_class=HTMLResponse)
    def admin_campaign(request: Request, campaign_id: int, user: User = Depends(admin_user)
                       ) -> Response:
        from tether.feedback.export import ALLOWED
        from tether.feedback.quality import campaign_quality

        camp = store.campaign(campaign_id)
        report = campaign_quality(store, camp)
        kinds = [k for k, types in ALLOWED.items() if camp.task_type in types]
        rows = [r for r in store.progress() if r["campaign"] == camp.name]
        return page(request, "campaign.html", {"campaign": camp, "report": report,
                                               "kinds": kinds, "rows": rows}, user=user)

    @app.get("/admin/campaigns/{campaign_id}/export")
    def admin_export(campaign_id: int, kind: str | None = None, aggregate: bool = False,
                     user: User = Depends(admin_user)) -> Response:
        return export_response(store, campaign_id, kind, aggregate)

    # ------------------------------------------------------------ JSON API

    @app.get("/api/me")
    def api_me(user: User = Depends(current_user)) -> dict[str, Any]:
        return {"name": user.name, "role": user.role}

    @app.get("/api/campaigns")
    def api_campaigns(user: User = Depends(current_user)) -> list[dict[str, Any]]:
        return [campaign_view(c) for c in store.campaigns(user)]


    @app.post("/api/campaigns")
    def api_create_campaign(body: CampaignBody, user: User = Depends(admin_user)
                            ) -> dict[str, Any]:
        opts = check_options(body.task_type, body.options)
        specs = items_from_records(body.task_type, enumerate(body.items, start=1), opts,
                                   "items")
        camp = store.create_campaign(body.name, body.task_type, specs, body.guidelines,
                                     body.overlap, body.options, body.seed)
        assigned = store.assign(camp.id, body.annotators) if body.assign else 0
        return {**campaign_view(camp), "items": len(specs), "assignments": assigned}

    @app.get("/api/campaigns/{campaign_id}")
    def api_campaign(campaign_id: int, user: User = Depends(current_user)) -> dict[str, Any]:
        return campaign_view(_visible_campaign(store, user, campaign_id))


    @app.post("/api/campaigns/{campaign_id}/items")
    def api_add_items(campaign_id: int, body: ItemsBody, user: User = Depends(admin_user)
                      ) -> dict[str, Any]:
        camp = store.campaign(campaign_id)
        specs = items_from_records(camp.task_type, enumerate(body.items, start=1),
                                   camp.options, "items")
        return {"added": store.add_items(camp.id, specs)}


    @app.post("/api/campaigns/{campaign_id}/assign")
    def api_assign(campaign_id: int, body: AssignBody, user: User = Depends(admin_user)
                   ) -> dict[str, Any]:
        return {"assignments": store.assign(store.campaign(campaign_id).id, body.annotators)}

    @app.get("/api/campaigns/{campaign_id}/next")
    def api_next(campaign_id: int, user: User = Depends(current_user)) -> dict[str, Any]:
        camp = _visible_campaign(store, user, campaign_id)
        a = store.next_assignment(user.id, camp.id)
        if a is None:
            return {"done": True}
        return {"done": False, "task": task_view(store, user, a.id)}

    @app.get("/api/campaigns/{campaign_id}/quality")
    def api_quality(campaign_id: int, user: User = Depends(admin_user)) -> dict[str, Any]:
        from tether.feedback.quality import campaign_quality

        return campaign_quality(store, store.campaign(campaign_id))

    @app.get("/api/campaigns/{campaign_id}/export")
    def api_export(campaign_id: int, kind: str | None = None, aggregate: bool = False,
                   user: User = Depends(admin_user)) -> Response:
        return export_response(store, campaign_id, kind, aggregate)

    @app.get("/api/campaigns/{campaign_id}/judgements")
    def api_judgements(campaign_id: int, user: User = Depends(admin_user)
                       ) -> list[dict[str, Any]]:
        from tether.feedback.export import export_records

        return export_records(store, store.campaign(campaign_id), "votes")

    @app.get("/api/tasks/{assignment_id}")
    def api_task(assignment_id: int, user: User = Depends(current_user)) -> dict[str, Any]:
        return task_view(store, user, assignment_id)


    @app.post("/api/tasks/{assignment_id}")
    def api_submit(assignment_id: int, body: SubmitBody, user: User = Depends(current_user)
                   ) -> dict[str, Any]:
        r = store.submit(user.id, assignment_id, body.submission_id, body.answer)
        out: dict[str, Any] = {"judgement_id": r.judgement_id, "duplicate": r.duplicate}
        if r.correct is not None:
            out["gold"] = {"correct": r.correct, "expected": r.expected,
                           "rationale": r.rationale}
        return out

    @app.get("/api/tasks/{assignment_id}/judgement")
    def api_my_judgement(assignment_id: int, user: User = Depends(current_user)
                         ) -> dict[str, Any]:
        j = store.judgement_for(user, assignment_id)
        if j is None:
            raise NotFound(f"task {assignment_id} is not answered yet")
        return {"judgement_id": j.id, "answer": j.answer, "shown_order": j.shown_order,
                "correct": j.correct}


    @app.post("/api/tasks/{assignment_id}/chat")
    def api_chat(assignment_id: int, body: ChatBody, user: User = Depends(current_user)
                 ) -> dict[str, Any]:
        reply = chat_turn(store, app.state.responder, user, assignment_id, body.message)
        return {"reply": reply, "messages": store.transcript(user, assignment_id)}

    @app.get("/api/progress")
    def api_progress(user: User = Depends(current_user)) -> list[dict[str, Any]]:
        return store.progress(None if user.role == "admin" else user)

    @app.get("/api/users")
    def api_users(user: User = Depends(admin_user)) -> list[dict[str, Any]]:
        return [{"name": u.name, "role": u.role, "active": u.active} for u in store.users()]


    @app.post("/api/users")
    def api_add_user(body: UserBody, user: User = Depends(admin_user)) -> dict[str, Any]:
        new, token = store.add_user(body.name, body.role, body.password)
        return {"name": new.name, "role": new.role, "token": token}

    return app


# ---------------------------------------------------------------- helpers (no app state)


def _template_of(task_type: str) -> str:
    return "thumbs" if task_type == "audit" else task_type


def _field(form: FormData, name: str) -> str:
    v = form.get(name)
    return v if isinstance(v, str) else ""


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise TetherError(f"{name}: expected an integer, got {value!r}") from None


def _safe_next(target: str) -> str:
    """Only same-site relative paths (no open redirect to another host)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login(store: Store, name: str, password: str, token: str) -> User | None:
    if token:
        return store.login_token(token)
    if name and password:
        return store.login_password(name, password)
    return None


def _start_session(request: Request, user: User) -> None:
    request.session.clear()  # a fresh session and CSRF token at every login (no fixation)
    request.session["uid"] = user.id
    request.session["csrf"] = new_csrf()


def _visible_campaign(store: Store, user: User, campaign_id: int) -> Any:
    for c in store.campaigns(user):
        if c.id == campaign_id:
            return c
    raise NotFound(f"no campaign {campaign_id}")


def _jsonl_lines(data: bytes, name: str | None) -> list[tuple[int, dict[str, Any]]]:
    import json

    out = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(name or "upload", "not UTF-8 text") from None
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(name or "upload", f"not valid JSON ({e.msg})", line=i) from None
        if not isinstance(rec, dict):
            raise DataError(name or "upload", "expected a JSON object", line=i)
        out.append((i, rec))
    return out


def campaign_view(c: Any) -> dict[str, Any]:
    """A campaign as JSON (no items, no gold)."""
    return {"id": c.id, "name": c.name, "task_type": c.task_type, "overlap": c.overlap,
            "guidelines": c.guidelines, "options": _public_options(c.options)}


def _public_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in ("dimensions", "strength", "failure_kinds")}


def task_view(store: Store, user: User, assignment_id: int) -> dict[str, Any]:
    """What an annotator sees of a task: responses in their shown order.

    Never the gold answer, whether the item is gold, or the item's metadata (an
    audit item's reward would bias the judgement).
    """
    a, item, camp = store.assignment(user, assignment_id)
    view: dict[str, Any] = {
        "id": a.id, "campaign_id": camp.id, "campaign": camp.name, "task_type": camp.task_type,
        "guidelines": camp.guidelines, "options": _public_options(camp.options),
        "prompt": item.prompt, "done": a.done,
        "responses": [{"label": chr(ord("A") + p), "position": p, "text": item.responses[i]}
                      for p, i in enumerate(a.shown_order)],
    }
    if camp.task_type == "factcheck":
        text = item.responses[0]
        view["sentences"] = [{"index": k, "text": text[s:e]}
                             for k, (s, e) in enumerate(tasks.split_sentences(text))]
    if camp.task_type == "redteam":
        view["messages"] = store.transcript(user, assignment_id)
    if camp.task_type == "likert":
        view["dimensions"] = camp.options.get("dimensions") or tasks.DEFAULT_DIMENSIONS
    if camp.task_type in tasks.BINARY_LABELS:
        view["labels"] = list(tasks.BINARY_LABELS[camp.task_type])
    return view


def chat_turn(store: Store, responder: Responder, user: User, assignment_id: int,
              message: str) -> str:
    """Add the annotator's message and the policy's reply to a red-team conversation."""
    a, _, camp = store.assignment(user, assignment_id)
    if camp.task_type != "redteam":
        raise tasks.AnswerError("this task has no chat")
    if a.user_id != user.id:
        raise NotFound(f"no task {assignment_id}")
    text = (message or "").strip()
    if not text:
        raise tasks.AnswerError("message: empty text")
    if len(text) > tasks.MAX_TEXT:
        raise tasks.AnswerError(f"message: longer than {tasks.MAX_TEXT} characters")
    history = store.transcript(user, assignment_id) + [{"role": "user", "content": text}]
    reply = responder(camp.options.get("policy"), history)
    store.add_turns(user, assignment_id, [{"role": "user", "content": text},
                                          {"role": "assistant", "content": reply}])
    return reply


def form_answer(task_type: str, form: FormData, options: dict[str, Any]) -> dict[str, Any]:
    """A submitted HTML form -> the raw answer :func:`tasks.canonical_answer` validates."""
    if task_type == "pairwise":
        return {"choice": _field(form, "choice"), "strength": _field(form, "strength") or None}
    if task_type == "ranking":
        raw = _field(form, "ranking")
        try:
            return {"ranking": [int(x) for x in raw.split(",") if x.strip()]}
        except ValueError:
            raise tasks.AnswerError(f"ranking: expected shown positions, got {raw!r}") from None
    if task_type == "likert":
        dims = options.get("dimensions") or tasks.DEFAULT_DIMENSIONS
        return {"ratings": {d: _field(form, f"rating_{d}") for d in dims}}
    if task_type in tasks.BINARY_LABELS:
        return {"label": _field(form, "label"), "reason": _field(form, "reason")}
    if task_type == "factcheck":
        claims = []
        for v in form.getlist("claim"):
            if not isinstance(v, str) or not v.isdigit():
                raise tasks.AnswerError(f"claim: expected a sentence number, got {v!r}")
            claims.append({"sentence": int(v), "correction": _field(form, f"correction_{v}")})
        return {"claims": claims}
    if task_type == "redteam":
        failures = []
        for v in form.getlist("failed"):
            if not isinstance(v, str) or not v.isdigit():
                raise tasks.AnswerError(f"failed: expected a turn number, got {v!r}")
            failures.append({"turn": int(v), "kind": _field(form, f"kind_{v}"),
                             "note": _field(form, f"note_{v}")})
        return {"failures": failures}
    raise tasks.AnswerError(f"unknown task type {task_type!r}")


def export_response(store: Store, campaign_id: int, kind: str | None, aggregate: bool
                    ) -> Response:
    """An export as a JSONL download."""
    import json

    from tether.feedback.export import DEFAULT_KIND, export_records

    camp = store.campaign(campaign_id)
    records = export_records(store, camp, kind, aggregate)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    kind = kind or DEFAULT_KIND[camp.task_type]
    fname = f"{camp.name}-{kind}{'-aggregated' if aggregate else ''}.jsonl"
    return Response(body, media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{fname}"'})
