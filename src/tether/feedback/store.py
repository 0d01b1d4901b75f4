"""The feedback store: users, campaigns, assignments and judgements, over SQLAlchemy.

Every method opens its own short transaction; the web app and the CLI share this
one API, so the rules (who may see what, one judgement per submission id, an
import is whole or absent) live here once and are tested on SQLite and PostgreSQL.

    store = Store("sqlite:///feedback.db")
    user, token = store.add_user("ann", "annotator")
    camp = store.create_campaign("cmp1", "pairwise", items_from_file("pairs.jsonl", "pairwise"))
    store.assign(camp.id)                      # every item to `overlap` annotators
    a = store.next_assignment(user.id, camp.id)
    store.submit(user.id, a.id, "6f1c...", {"choice": "A"})
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tether.data.io import iter_records
from tether.errors import DataError, TetherError
from tether.feedback import tasks
from tether.feedback.db import (
    ROLES,
    TASK_TYPES,
    Assignment,
    Campaign,
    ChatTurn,
    Item,
    Judgement,
    Setting,
    User,
    make_engine,
    session_factory,
    write_session_factory,
)
from tether.feedback.security import hash_password, hash_token, new_token, verify_password

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SUBMISSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ITEM_KEYS = ("prompt", "responses", "response", "chosen", "rejected", "gold", "rationale", "id")


class NotFound(TetherError):
    """No such object, or not one the user may see (HTTP 404: existence is not leaked)."""


class Forbidden(TetherError):
    """The user's role does not allow this (HTTP 403)."""


class Conflict(TetherError):
    """The request contradicts stored state, e.g. a second answer to one task (HTTP 409)."""


@dataclass
class ItemSpec:
    """A validated item, ready to insert."""

    prompt: str
    responses: list[str]
    gold: Any = None
    rationale: str | None = None
    source_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SubmitResult:
    """What a submission did: stored, or recognised as a duplicate; gold feedback."""

    judgement_id: int
    duplicate: bool
    correct: bool | None  # None unless the item is gold
    expected: str | None = None  # the gold answer in the annotator's terms
    rationale: str | None = None  # the guideline the gold answer follows


# ---------------------------------------------------------------- item parsing


def parse_item(task_type: str, rec: dict[str, Any], options: dict[str, Any],
               path: str | os.PathLike[str] = "<items>", line: int | None = None) -> ItemSpec:
    """Validate one imported record into an :class:`ItemSpec` (errors name file:line)."""

    def err(fld: str | None, msg: str) -> DataError:
        return DataError(path, msg, line=line, field=fld)

    def text(value: Any, name: str, allow_empty: bool = False) -> str:
        if value is None:
            raise err(name, "missing")
        if not isinstance(value, str):
            raise err(name, f"expected a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise err(name, "empty text")
        return value

    prompt = text(rec.get("prompt", "" if task_type == "redteam" else None), "prompt",
                  allow_empty=task_type == "redteam")
    if "responses" in rec:
        raw = rec["responses"]
        if not isinstance(raw, list):
            raise err("responses", f"expected a list, got {type(raw).__name__}")
        responses = [text(r, f"responses[{i}]") for i, r in enumerate(raw)]
    elif "chosen" in rec or "rejected" in rec:
        responses = [text(rec.get("chosen"), "chosen"), text(rec.get("rejected"), "rejected")]
    elif "response" in rec:
        responses = [text(rec["response"], "response")]
    else:
        responses = []
    lo, hi = tasks.n_responses(task_type)
    if len(responses) < lo or (hi is not None and len(responses) > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}"
        raise err("responses", f"a {task_type} item needs {want} response(s), got {len(responses)}")
    if len(set(responses)) != len(responses):
        raise err("responses", "two responses are identical")
    gold = rec.get("gold")
    if gold is not None:
        why = tasks.check_gold(task_type, gold, responses, options)
        if why:
            raise err("gold", why)
    rationale = rec.get("rationale")
    if rationale is not None:
        rationale = text(rationale, "rationale")
    source_id = rec.get("id")
    if source_id is not None and not isinstance(source_id, str | int):
        raise err("id", "expected a string or an integer")
    meta = {k: v for k, v in rec.items() if k not in ITEM_KEYS}
    if "chosen" in rec and "responses" not in rec:
        meta["source_preferred"] = 0  # the file's own label: chosen was response 0
    return ItemSpec(prompt=prompt, responses=responses, gold=gold, rationale=rationale,
                    source_id=None if source_id is None else str(source_id), meta=meta)


def items_from_records(task_type: str, records: Iterable[tuple[int, dict[str, Any]]],
                       options: dict[str, Any] | None = None,
                       path: str | os.PathLike[str] = "<items>") -> list[ItemSpec]:
    """Validate every ``(line, record)``; the first bad one raises, naming its line."""
    specs = [parse_item(task_type, rec, options or {}, path, line) for line, rec in records]
    if not specs:
        raise DataError(path, "no items")
    return specs


def items_from_file(path: str | os.PathLike[str], task_type: str,
                    options: dict[str, Any] | None = None) -> list[ItemSpec]:
    """Read and validate an items file (JSONL, Parquet or a datasets directory)."""
    return items_from_records(task_type, iter_records(path), options, path)


def check_options(task_type: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate the task type, and fill in and validate a campaign's task options."""
    if task_type not in TASK_TYPES:
        raise TetherError(f"task type {task_type!r}: expected one of {list(TASK_TYPES)}")
    if not isinstance(options, dict):
        raise TetherError("campaign options: expected a mapping")
    known = {"dimensions", "strength", "failure_kinds", "policy", "max_new_tokens",
             "labels", "audit"}
    extra = sorted(set(options) - known)
    if extra:
        raise TetherError(f"campaign options: unknown key(s) {extra}")
    out = dict(options)
    if task_type == "likert":
        dims = out.get("dimensions") or list(tasks.DEFAULT_DIMENSIONS)
        if (not isinstance(dims, list) or not all(isinstance(d, str) and NAME_RE.match(d)
                                                  for d in dims) or len(set(dims)) != len(dims)):
            raise TetherError("campaign options: dimensions must be distinct short names")
        out["dimensions"] = dims
    if task_type == "pairwise":
        out["strength"] = bool(out.get("strength", True))
    if task_type == "redteam":
        out["failure_kinds"] = out.get("failure_kinds") or list(tasks.DEFAULT_FAILURE_KINDS)
    return out


# ---------------------------------------------------------------- the store


class Store:
    """All reads and writes of the feedback app; one short transaction per call."""

    def __init__(self, db: str | Engine) -> None:
        self.engine = db if isinstance(db, Engine) else make_engine(db)
        self._read = session_factory(self.engine)
        self._write = write_session_factory(self.engine)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; rolled back at the end."""
        with self._read() as s:
            yield s

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session for one write transaction: committed on success, else rolled back."""
        with self._write() as s, s.begin():
            yield s

    # ------------------------------------------------------------ settings

    def secret(self) -> str:
        """The session-signing secret of this database (created on first use)."""
        with self.read() as s:
            row = s.get(Setting, "secret")
            if row is not None:
                return row.value
        try:
            with self.write() as s:
                s.add(Setting(key="secret", value=new_token() + new_token()))
        except IntegrityError:
            pass  # another process created it first
        with self.read() as s:
            return s.get(Setting, "secret").value

    # ------------------------------------------------------------ users

    def add_user(self, name: str, role: str, password: str | None = None) -> tuple[User, str]:
        """Create an account; returns it and its login token (shown once, stored hashed)."""
        if not NAME_RE.match(name or ""):
            raise TetherError(f"user name {name!r}: use 1-64 letters, digits or . _ @ -")
        if role not in ROLES:
            raise TetherError(f"role {role!r}: expected one of {list(ROLES)}")
        if password is not None and len(password) < 8:
            raise TetherError("password: at least 8 characters")
        token = new_token()
        user = User(name=name, role=role, token_hash=hash_token(token),
                    password_hash=hash_password(password) if password else None)
        try:
            with self.write() as s:
                if s.scalar(select(User.id).where(User.name == name)) is not None:
                    raise Conflict(f"user {name!r} already exists")
                s.add(user)
        except IntegrityError:
            raise Conflict(f"user {name!r} already exists") from None
        return user, token

    def login_password(self, name: str, password: str) -> User | None:
        """The active user with this name and password, else ``None``."""
        with self.read() as s:
            user = s.scalar(select(User).where(User.name == name))
        if user is None or not user.active or not verify_password(password, user.password_hash):
            return None
        return user

    def login_token(self, token: str) -> User | None:
        """The active user whose login token this is, else ``None``."""
        if not token:
            return None
        with self.read() as s:
            user = s.scalar(select(User).where(User.token_hash == hash_token(token)))
        return user if user is not None and user.active else None

    def user(self, user_id: int) -> User | None:
        """The active user with this id, else ``None``."""
        with self.read() as s:
            user = s.get(User, user_id)
        return user if user is not None and user.active else None

    def users(self) -> list[User]:
        """All accounts, by name."""
        with self.read() as s:
            return list(s.scalars(select(User).order_by(User.name)))

    def user_by_name(self, name: str) -> User:
        """The account called ``name`` (:class:`NotFound` otherwise)."""
        with self.read() as s:
            user = s.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    # ------------------------------------------------------------ campaigns

    def create_campaign(self, name: str, task_type: str, items: list[ItemSpec],
                        guidelines: str = "", overlap: int = 1,
                        options: dict[str, Any] | None = None, seed: int = 0) -> Campaign:
        """Create a campaign with all its items in one transaction (whole or absent)."""
        if not NAME_RE.match(name or ""):
            raise TetherError(f"campaign name {name!r}: use 1-64 letters, digits or . _ @ -")
        if task_type not in TASK_TYPES:
            raise TetherError(f"task type {task_type!r}: expected one of {list(TASK_TYPES)}")
        if not isinstance(overlap, int) or overlap < 1:
            raise TetherError(f"overlap: expected an integer >= 1, got {overlap!r}")
        if not items:
            raise TetherError(f"campaign {name!r}: no items")
        opts = check_options(task_type, options or {})
        camp = Campaign(name=name, task_type=task_type, guidelines=guidelines or "",
                        overlap=overlap, options=opts, seed=seed)
        try:
            with self.write() as s:
                if s.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
                    raise Conflict(f"campaign {name!r} already exists")
                s.add(camp)
                s.flush()
                self._add_items(s, camp, items, start=0)
        except IntegrityError:
            raise Conflict(f"campaign {name!r} already exists") from None
        return camp

    def add_items(self, campaign_id: int, items: list[ItemSpec]) -> int:
        """Append items to a campaign in one transaction; returns how many."""
        with self.write() as s:
            camp = s.get(Campaign, campaign_id)
            if camp is None:
                raise NotFound(f"no campaign {campaign_id}")
            start = s.scalar(select(func.coalesce(func.max(Item.position) + 1, 0))
                             .where(Item.campaign_id == camp.id))
            self._add_items(s, camp, items, start=start)
        return len(items)

    @staticmethod
    def _add_items(s: Session, camp: Campaign, items: list[ItemSpec], start: int) -> None:
        s.add_all(Item(campaign_id=camp.id, position=start + i, source_id=it.source_id,
                       prompt=it.prompt, responses=it.responses, gold=it.gold,
                       rationale=it.rationale, meta=it.meta) for i, it in enumerate(items))

    def campaign(self, ref: int | str) -> Campaign:
        """A campaign by id or name (:class:`NotFound` otherwise)."""
        with self.read() as s:
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                camp = s.get(Campaign, int(ref))
            else:
                camp = s.scalar(select(Campaign).where(Campaign.name == ref))
        if camp is None:
            raise NotFound(f"no campaign {ref!r}")
        return camp

    def campaigns(self, user: User | None = None) -> list[Campaign]:
        """All campaigns (admin, ``user=None``), or those with tasks assigned to ``user``."""
        with self.read() as s:
            q = select(Campaign).order_by(Campaign.id)
            if user is not None and user.role != "admin":
                q = q.where(Campaign.id.in_(select(Assignment.campaign_id)
                                            .where(Assignment.user_id == user.id)))
            return list(s.scalars(q))

    def items(self, campaign_id: int) -> list[Item]:
        """The items of a campaign in import order."""
        with self.read() as s:
            return list(s.scalars(select(Item).where(Item.campaign_id == campaign_id)
                                  .order_by(Item.position)))

    # ------------------------------------------------------------ assignment

    def assign(self, campaign_id: int, user_names: list[str] | None = None) -> int:
        """Give each regular item to ``overlap`` annotators and every gold item to all.

        Annotators default to every active user whose role fits the task (experts for
        fact-checks; annotators and experts otherwise). Regular items go to the least
        loaded annotators not already on the item (ties broken by a seeded shuffle),
        so the work is balanced; gold items are mixed in at random places of each
        annotator's queue. Calling it again after adding items or people fills only
        what is missing. Returns the number of new assignments.
        """
        try:
            return self._assign(campaign_id, user_names)
        except IntegrityError:
            # another assign() of the same campaign committed first; the unique
            # (item, slot) and (item, user) constraints kept either from overfilling
            raise Conflict(f"campaign {campaign_id}: assigned concurrently; run it again") \
                from None

    def _assign(self, campaign_id: int, user_names: list[str] | None) -> int:
        with self.write() as s:
            camp = s.get(Campaign, campaign_id)
            if camp is None:
                raise NotFound(f"no campaign {campaign_id}")
            if user_names is None:
                roles = ("expert",) if camp.task_type == "factcheck" else ("annotator", "expert")
                people = list(s.scalars(select(User).where(User.role.in_(roles), User.active)
                                        .order_by(User.id)))
            else:
                people = []
                for n in user_names:
                    u = s.scalar(select(User).where(User.name == n))
                    if u is None:
                        raise NotFound(f"no user {n!r}")
                    people.append(u)
            if not people:
                raise TetherError(f"campaign {camp.name!r}: nobody to assign (add annotators)")
            items = list(s.scalars(select(Item).where(Item.campaign_id == camp.id)
                                   .order_by(Item.position)))
            rows = s.execute(select(Assignment.item_id, Assignment.user_id, Assignment.slot)
                             .where(Assignment.campaign_id == camp.id)).all()
            on_item: dict[int, set[int]] = {}
            slots: dict[int, set[int]] = {}
            load: dict[int, int] = {u.id: 0 for u in people}
            for item_id, user_id, slot in rows:
                on_item.setdefault(item_id, set()).add(user_id)
                if slot is not None:
                    slots.setdefault(item_id, set()).add(slot)
                if user_id in load:
                    load[user_id] += 1
            rng = random.Random(f"assign:{camp.seed}:{camp.id}:{len(rows)}")
            new: dict[int, list[tuple[Item, int | None]]] = {u.id: [] for u in people}
            for item in items:
                have = on_item.get(item.id, set())
                if item.is_gold:
                    for u in people:
                        if u.id not in have:
                            new[u.id].append((item, None))
                    continue
                free = [k for k in range(camp.overlap) if k not in slots.get(item.id, set())]
                candidates = [u.id for u in people if u.id not in have]
                rng.shuffle(candidates)
                candidates.sort(key=lambda uid: load[uid])  # stable: shuffled among equals
                for slot, uid in zip(free, candidates, strict=False):
                    new[uid].append((item, slot))
                    load[uid] += 1
            n_new = 0
            for uid, todo in new.items():
                if not todo:
                    continue
                regular = [t for t in todo if t[1] is not None]
                gold = [t for t in todo if t[1] is None]
                for g in gold:  # spread gold items at random places among the regular ones
                    regular.insert(rng.randint(0, len(regular)), g)
                seq0 = s.scalar(select(func.coalesce(func.max(Assignment.seq) + 1, 0))
                                .where(Assignment.user_id == uid,
                                       Assignment.campaign_id == camp.id))
                for k, (item, slot) in enumerate(regular):
                    order = tasks.shown_order(len(item.responses), camp.seed, item.id, uid)
                    s.add(Assignment(campaign_id=camp.id, item_id=item.id, user_id=uid,
                                     slot=slot, seq=seq0 + k, shown_order=order))
                    n_new += 1
        return n_new

    def next_assignment(self, user_id: int, campaign_id: int) -> Assignment | None:
        """The user's first unfinished task in a campaign, or ``None`` when all are done."""
        with self.read() as s:
            return s.scalar(select(Assignment).where(
                Assignment.user_id == user_id, Assignment.campaign_id == campaign_id,
                Assignment.done.is_(False)).order_by(Assignment.seq).limit(1))

    def assignment(self, user: User, assignment_id: int) -> tuple[Assignment, Item, Campaign]:
        """An assignment with its item and campaign; only its annotator (or an admin) may see it."""
        with self.read() as s:
            a = s.get(Assignment, assignment_id)
            if a is None or (a.user_id != user.id and user.role != "admin"):
                raise NotFound(f"no task {assignment_id}")
            item = s.get(Item, a.item_id)
            camp = s.get(Campaign, a.campaign_id)
        return a, item, camp

    # ------------------------------------------------------------ judgements

    def submit(self, user_id: int, assignment_id: int, submission_id: str,
               raw: dict[str, Any]) -> SubmitResult:
        """Store one answer; a repeated ``submission_id`` returns the stored one.

        The answer arrives in shown positions and is stored in original indices
        (see :mod:`tether.feedback.tasks`). A second, different answer to the same
        task is a :class:`Conflict`. For a gold item the result carries the expected
        answer and its rationale (rater training).
        """
        if not isinstance(submission_id, str) or not SUBMISSION_RE.match(submission_id):
            raise tasks.AnswerError("submission_id: expected 8-64 letters, digits, - or _")
        try:
            with self.write() as s:
                a = s.get(Assignment, assignment_id)
                if a is None or a.user_id != user_id:
                    raise NotFound(f"no task {assignment_id}")
                prior = s.scalar(select(Judgement).where(Judgement.assignment_id == a.id))
                if prior is not None:
                    if prior.submission_id == submission_id:
                        return self._result(s, prior, duplicate=True)
                    raise Conflict(f"task {assignment_id} is already answered")
                item = s.get(Item, a.item_id)
                camp = s.get(Campaign, a.campaign_id)
                answer = tasks.canonical_answer(camp.task_type, raw, a.shown_order,
                                                item.responses, camp.options)
                if camp.task_type == "redteam":
                    answer["messages"] = self._transcript(s, a.id)
                    _check_failures(answer)
                correct = (tasks.is_correct(camp.task_type, answer, item.gold)
                           if item.is_gold else None)
                j = Judgement(submission_id=submission_id, assignment_id=a.id,
                              campaign_id=camp.id, item_id=item.id, user_id=user_id,
                              shown_order=a.shown_order, answer=answer, correct=correct)
                s.add(j)
                a.done = True
                s.flush()
                result = self._result(s, j, duplicate=False)
            return result
        except IntegrityError:
            # a concurrent request with the same submission id (or task) won the race
            with self.read() as s:
                prior = s.scalar(select(Judgement).where(
                    Judgement.submission_id == submission_id))
                if prior is not None and prior.assignment_id == assignment_id:
                    return self._result(s, prior, duplicate=True)
            raise Conflict(f"task {assignment_id} is already answered") from None

    @staticmethod
    def _result(s: Session, j: Judgement, duplicate: bool) -> SubmitResult:
        item = s.get(Item, j.item_id)
        if not item.is_gold:
            return SubmitResult(j.id, duplicate, None)
        camp = s.get(Campaign, j.campaign_id)
        expected = tasks.describe(camp.task_type, item.gold, j.shown_order, camp.options)
        return SubmitResult(j.id, duplicate, j.correct, expected, item.rationale)

    def judgements(self, campaign_id: int | None = None, user_id: int | None = None
                   ) -> list[Judgement]:
        """Stored judgements, filtered by campaign and/or annotator, oldest first."""
        with self.read() as s:
            q = select(Judgement).order_by(Judgement.id)
            if campaign_id is not None:
                q = q.where(Judgement.campaign_id == campaign_id)
            if user_id is not None:
                q = q.where(Judgement.user_id == user_id)
            return list(s.scalars(q))

    def judgement_for(self, user: User, assignment_id: int) -> Judgement | None:
        """The user's own judgement of a task (admins: anyone's), if answered."""
        a, _, _ = self.assignment(user, assignment_id)
        with self.read() as s:
            return s.scalar(select(Judgement).where(Judgement.assignment_id == a.id))

    def gold_feedback(self, user: User, assignment_id: int) -> SubmitResult | None:
        """The rater-training feedback of an answered task (``None`` if unanswered)."""
        j = self.judgement_for(user, assignment_id)
        if j is None:
            return None
        with self.read() as s:
            return self._result(s, j, duplicate=False)

    # ------------------------------------------------------------ red-teaming

    @staticmethod
    def _transcript(s: Session, assignment_id: int) -> list[dict[str, str]]:
        rows = s.scalars(select(ChatTurn).where(ChatTurn.assignment_id == assignment_id)
                         .order_by(ChatTurn.turn))
        return [{"role": r.role, "content": r.content} for r in rows]

    def transcript(self, user: User, assignment_id: int) -> list[dict[str, str]]:
        """The red-team conversation of a task so far."""
        a, _, _ = self.assignment(user, assignment_id)
        with self.read() as s:
            return self._transcript(s, a.id)

    def add_turns(self, user: User, assignment_id: int, turns: list[dict[str, str]]) -> None:
        """Append messages to a red-team conversation (only its annotator, before submit)."""
        with self.write() as s:
            a = s.get(Assignment, assignment_id)
            if a is None or a.user_id != user.id:
                raise NotFound(f"no task {assignment_id}")
            if a.done:
                raise Conflict(f"task {assignment_id} is already answered")
            n = s.scalar(select(func.count()).select_from(ChatTurn)
                         .where(ChatTurn.assignment_id == a.id))
            s.add_all(ChatTurn(assignment_id=a.id, turn=n + i, role=t["role"],
                               content=t["content"]) for i, t in enumerate(turns))

    # ------------------------------------------------------------ progress

    def progress(self, user: User | None = None) -> list[dict[str, Any]]:
        """Per annotator and campaign: tasks assigned, done, gold done and gold correct.

        ``user=None`` (admins) gives every annotator; otherwise only ``user``'s rows.
        """
        with self.read() as s:
            q = (select(Campaign.name, User.name, func.count(Assignment.id),
                        func.sum(Assignment.done.cast(Integer)),
                        Campaign.id, User.id)
                 .join(Campaign, Campaign.id == Assignment.campaign_id)
                 .join(User, User.id == Assignment.user_id)
                 .group_by(Campaign.id, Campaign.name, User.id, User.name)
                 .order_by(Campaign.id, User.name))
            if user is not None:
                q = q.where(Assignment.user_id == user.id)
            rows = s.execute(q).all()
            gold = s.execute(select(Judgement.campaign_id, Judgement.user_id,
                                    func.count(Judgement.id),
                                    func.sum(Judgement.correct.cast(Integer)))
                             .where(Judgement.correct.is_not(None))
                             .group_by(Judgement.campaign_id, Judgement.user_id)).all()
        gold_by = {(c, u): (n, int(k or 0)) for c, u, n, k in gold}
        out = []
        for camp, name, n, done, cid, uid in rows:
            g_n, g_ok = gold_by.get((cid, uid), (0, 0))
            out.append({"campaign": camp, "annotator": name, "assigned": int(n),
                        "done": int(done or 0), "gold_done": g_n, "gold_correct": g_ok,
                        "gold_accuracy": g_ok / g_n if g_n else None})
        return out


def _check_failures(answer: dict[str, Any]) -> None:
    msgs = answer["messages"]
    if not any(m["role"] == "assistant" for m in msgs):
        raise tasks.AnswerError("the conversation has no model reply yet")
    for f in answer["failures"]:
        t = f["turn"]
        if not 0 <= t < len(msgs) or msgs[t]["role"] != "assistant":
            raise tasks.AnswerError(f"failures: turn {t} is not a model reply")
