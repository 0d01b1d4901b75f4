"""Database tables of the feedback app (SQLAlchemy 2 ORM) and engine set-up.

SQLite by default (one file, WAL mode so readers never wait on the writer, a busy
timeout so concurrent writers queue instead of failing), PostgreSQL by URL. Two
unique constraints carry the "no label is ever lost, none is stored twice" rule:

- ``judgements.submission_id``: a client-generated id per submission, so a double
  click or a retried request is stored once;
- ``judgements.assignment_id``: one judgement per (item, annotator) assignment.

``assignments (item_id, slot)`` is unique too, so an item never gets more than
``overlap`` regular judgements, whatever the interleaving of admins assigning.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

ROLES = ("admin", "annotator", "expert")
TASK_TYPES = ("pairwise", "ranking", "likert", "thumbs", "redteam", "factcheck", "audit")


def utcnow() -> dt.datetime:
    """The current time in UTC, timezone-aware."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every feedback table."""


class User(Base):
    """An account: admin (creates campaigns, reads everything), annotator or expert."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Campaign(Base):
    """A set of items to judge with one task type, guidelines and an overlap k."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    task_type: Mapped[str] = mapped_column(String(16))
    guidelines: Mapped[str] = mapped_column(Text, default="")  # Markdown beside every task
    overlap: Mapped[int] = mapped_column(Integer, default=1)  # judgements per regular item
    # Task options: likert dimensions, pairwise strength, red-team policy and failure kinds.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)  # seeds the shown orders
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    items: Mapped[list[Item]] = relationship(back_populates="campaign",
                                             order_by="Item.position")


class Item(Base):
    """One thing to judge: a prompt and its response(s); gold items carry the answer."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0-based order of import
    source_id: Mapped[str | None] = mapped_column(String(256), nullable=True)  # the file's id
    prompt: Mapped[str] = mapped_column(Text)
    responses: Mapped[list[str]] = mapped_column(JSON)
    gold: Mapped[Any | None] = mapped_column(JSON, nullable=True)  # known answer, original indices
    rationale: Mapped[str | None] = mapped_column(Text, nullable=True)  # guideline the gold follows
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    campaign: Mapped[Campaign] = relationship(back_populates="items")

    @property
    def is_gold(self) -> bool:
        """Whether the item has a known answer (used to score raters)."""
        return self.gold is not None


class Assignment(Base):
    """An item given to one annotator, with the order its responses are shown in."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "user_id"), UniqueConstraint("item_id", "slot"))
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 0..overlap-1; None: gold
    seq: Mapped[int] = mapped_column(Integer)  # the annotator's order of work (gold mixed in)
    shown_order: Mapped[list[int]] = mapped_column(JSON)  # shown position -> response index
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    item: Mapped[Item] = relationship()
    user: Mapped[User] = relationship()


class Judgement(Base):
    """One annotator's answer to one assignment, in original response indices."""

    __tablename__ = "judgements"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(64), unique=True)  # idempotency key
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    shown_order: Mapped[list[int]] = mapped_column(JSON)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # gold items only
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    item: Mapped[Item] = relationship()
    user: Mapped[User] = relationship()


class ChatTurn(Base):
    """A red-team conversation, one row per message, stored as it happens."""

    __tablename__ = "chat_turns"
    __table_args__ = (UniqueConstraint("assignment_id", "turn"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    turn: Mapped[int] = mapped_column(Integer)  # 0-based position in the conversation
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Setting(Base):
    """Key/value settings of one database (the session-signing secret)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def normalize_url(db: str) -> str:
    """A database URL; a plain file path means SQLite at that path."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser()}"


def make_engine(db: str) -> Engine:
    """An engine for ``db`` (URL or SQLite path), tables created if missing.

    SQLite gets WAL mode and a 30 s busy timeout; its write transactions start
    with ``BEGIN IMMEDIATE`` (see :func:`write_session`) so two writers never
    deadlock upgrading a read lock, which would fail at once instead of waiting.
    """
    url = normalize_url(db)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=40, max_overflow=10)
        _sqlite_setup(engine)
    else:
        engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL mode
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("tether_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker:
    """Sessions for reading (and writing on PostgreSQL)."""
    return sessionmaker(engine, expire_on_commit=False)


def write_session_factory(engine: Engine) -> sessionmaker:
    """Sessions whose SQLite transactions take the write lock at BEGIN."""
    return sessionmaker(engine.execution_options(tether_write=True), expire_on_commit=False)
