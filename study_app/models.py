"""Database models (SQLAlchemy 2.0, typed ``Mapped[...]``).

The schema carries the rules that must never be broken, so they hold whichever
process writes: one Response per Trial (the unique key that makes a resubmitted
vote harmless), foreign keys everywhere, and CHECK constraints on every enum.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from analysis.methods import METHODS, TestMethod

ROLES = ("reference", "baseline", "submission")
STUDY_STATUSES = ("open", "paused", "closed")
PANELS = ("prolific", "mturk", "none")
# ``planned``: sessions of a plan written ahead (studies from before on-demand assignment, simulated demo
# studies); ``expired``: idle for the study's ``session_timeout_minutes``, its unanswered trials back in the pool.
SESSION_STATUSES = ("planned", "active", "completed", "screened_out", "abandoned", "expired")
TRIAL_KINDS = ("main", "repeat", "gold")
ORGANIZER_ROLES = ("organizer", "admin")
RATER_DECISIONS = ("accept", "reject")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend.

    PostgreSQL keeps the zone; SQLite hands back naive values. Everything stored is UTC, so
    naive values are marked UTC here, once, instead of in every place that reads a time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}  # noqa: RUF012


class Organizer(Base):
    __tablename__ = "organizer"
    __table_args__ = (CheckConstraint(_in("role", ORGANIZER_ROLES), name="ck_organizer_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="organizer")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    studies: Mapped[list[Study]] = relationship(back_populates="organizer")
    api_tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="organizer", cascade="all, delete-orphan", passive_deletes=True
    )
    logins: Mapped[list[OrganizerLogin]] = relationship(
        back_populates="organizer", cascade="all, delete-orphan", passive_deletes=True
    )


class OrganizerLogin(Base):
    """One console login of an organizer in one browser, which the session cookie refers to.

    The cookie alone is not trusted: a login counts only while its row is not revoked, so
    logout, a password change and "log out everywhere" end it on the server, and a copied
    cookie stops working. Only the SHA-256 of the cookie's random token is stored.
    """

    __tablename__ = "organizer_login"

    id: Mapped[int] = mapped_column(primary_key=True)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("organizer.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()

    organizer: Mapped[Organizer] = relationship(back_populates="logins")


class ApiToken(Base):
    """A bearer token for the read-only JSON API. Only its SHA-256 is stored: a leaked
    database does not leak usable tokens. ``prefix`` (the token's first characters) lets
    a person tell tokens apart and revoke one without the secret."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("organizer.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    organizer: Mapped[Organizer] = relationship(back_populates="api_tokens")


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (
        CheckConstraint(_in("method", tuple(METHODS)), name="ck_study_method"),
        CheckConstraint(_in("status", STUDY_STATUSES), name="ck_study_status"),
        CheckConstraint(_in("panel", PANELS), name="ck_study_panel"),
        CheckConstraint("max_sessions_per_rater >= 1", name="ck_study_max_sessions"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    panel: Mapped[str] = mapped_column(String(16), default="none")
    seed: Mapped[int] = mapped_column(Integer)
    max_sessions_per_rater: Mapped[int] = mapped_column(Integer, default=1)
    # The validated manifest (after defaults), so every setting the study ran with is on record.
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    organizer_id: Mapped[int | None] = mapped_column(ForeignKey("organizer.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organizer: Mapped[Organizer | None] = relationship(back_populates="studies")
    conditions: Mapped[list[Condition]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Condition.position"
    )
    contents: Mapped[list[Content]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Content.position"
    )
    sessions: Mapped[list[Session]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Session.index"
    )
    items: Mapped[list[StudyItem]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyItem.position"
    )

    @property
    def test_method(self) -> TestMethod:
        """The registry entry of the study's test method."""
        return METHODS[self.method]

    @property
    def pairwise(self) -> bool:
        return self.test_method.pairwise


class Condition(Base):
    __tablename__ = "condition"
    __table_args__ = (
        UniqueConstraint("study_id", "key", name="uq_condition_key"),
        CheckConstraint(_in("role", ROLES), name="ck_condition_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="submission")
    position: Mapped[int] = mapped_column(Integer)

    study: Mapped[Study] = relationship(back_populates="conditions")


class Content(Base):
    __tablename__ = "content"
    __table_args__ = (UniqueConstraint("study_id", "key", name="uq_content_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)

    study: Mapped[Study] = relationship(back_populates="contents")


class Stimulus(Base):
    """One video file: a content processed by a condition."""

    __tablename__ = "stimulus"
    __table_args__ = (
        UniqueConstraint("content_id", "condition_id", name="uq_stimulus_cell"),
        CheckConstraint("width > 0 AND height > 0", name="ck_stimulus_size"),
        CheckConstraint("fps > 0 AND duration_s > 0", name="ck_stimulus_timing"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    condition_id: Mapped[int] = mapped_column(ForeignKey("condition.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # absolute file path or URL
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    n_frames: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(32))
    size_bytes: Mapped[int | None] = mapped_column(Integer)

    content: Mapped[Content] = relationship()
    condition: Mapped[Condition] = relationship()


class StudyItem(Base):
    """One thing the study collects votes on: a (content, condition pair) or a stimulus.

    ``target`` is the number of valid votes from distinct raters it needs (the design's
    ``votes_per_pair`` / ``votes_per_stimulus``); sessions are built from the items that are
    short of it when a rater arrives (:mod:`study_app.scheduling`). None for studies with
    active selection, where the vote budget and the stopping rule decide instead.
    ``stimulus_a`` is the first condition of the pair in design order; trials show it on either side.
    """

    __tablename__ = "study_item"
    __table_args__ = (
        UniqueConstraint("study_id", "position", name="uq_study_item_position"),
        CheckConstraint("target IS NULL OR target >= 1", name="ck_study_item_target"),
        CheckConstraint("stimulus_b_id IS NULL OR stimulus_b_id <> stimulus_a_id", name="ck_study_item_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    stimulus_a_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    stimulus_b_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    target: Mapped[int | None] = mapped_column(Integer)

    study: Mapped[Study] = relationship(back_populates="items")


class Rater(Base):
    __tablename__ = "rater"
    __table_args__ = (
        UniqueConstraint("study_id", "panel", "panel_id", name="uq_rater_panel_id"),
        CheckConstraint(_in("panel", PANELS), name="ck_rater_panel"),
        CheckConstraint(f"decision IS NULL OR {_in('decision', RATER_DECISIONS)}", name="ck_rater_decision"),
        CheckConstraint("sessions_claimed >= 0", name="ck_rater_sessions_claimed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    panel: Mapped[str] = mapped_column(String(16))
    panel_id: Mapped[str] = mapped_column(String(200))  # Prolific PID / MTurk workerId / anonymous id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    screen_out_reason: Mapped[str | None] = mapped_column(Text)
    # Organizer's verdict overriding the automatic screening: None = follow screening.
    decision: Mapped[str | None] = mapped_column(String(16))
    # Sessions this rater has claimed, finished or not. A claim raises it with one conditional UPDATE
    # (scheduling.claim_session), so max_sessions_per_rater holds however many requests claim at once,
    # and that UPDATE's row lock makes concurrent claims of one rater wait for each other.
    sessions_claimed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    sessions: Mapped[list[Session]] = relationship(back_populates="rater")


class Session(Base):
    """One sitting of one rater, built when the rater starts it (:func:`study_app.scheduling.claim_session`)."""

    __tablename__ = "session"
    __table_args__ = (
        UniqueConstraint("study_id", "index", name="uq_session_index"),
        CheckConstraint(_in("status", SESSION_STATUSES), name="ck_session_status"),
        CheckConstraint("status = 'planned' OR rater_id IS NOT NULL", name="ck_session_assigned"),
        Index("ix_session_study_status", "study_id", "status"),
        # At most one active session per rater, whichever process claims: a second one would be
        # left active for ever, its trials never answered.
        Index("uq_session_one_active", "rater_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    rater_id: Mapped[int | None] = mapped_column(ForeignKey("rater.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    completion_code: Mapped[str | None] = mapped_column(String(64))
    # The last sign of life (claim, screen check, practice, vote): the session expires after
    # ``session_timeout_minutes`` without one. Written by the same conditional UPDATE that lets a vote in.
    last_seen_at: Mapped[datetime | None] = mapped_column()
    panel_session_id: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    study: Mapped[Study] = relationship(back_populates="sessions")
    rater: Mapped[Rater | None] = relationship(back_populates="sessions")
    trials: Mapped[list[Trial]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Trial.position"
    )


class Trial(Base):
    """One planned question. Pairwise trials show ``stimulus_a`` and ``stimulus_b``;
    ``a_left`` records which one is on the left. DCR trials show ``reference`` first."""

    __tablename__ = "trial"
    __table_args__ = (
        UniqueConstraint("session_id", "position", name="uq_trial_position"),
        CheckConstraint(_in("kind", TRIAL_KINDS), name="ck_trial_kind"),
        CheckConstraint("position >= 0", name="ck_trial_position"),
        CheckConstraint("(kind = 'repeat') = (repeat_of_id IS NOT NULL)", name="ck_trial_repeat"),
        CheckConstraint("stimulus_b_id IS NULL OR stimulus_b_id <> stimulus_a_id", name="ck_trial_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), default="main")
    stimulus_a_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    stimulus_b_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    a_left: Mapped[bool] = mapped_column(Boolean, default=True)
    repeat_of_id: Mapped[int | None] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    # The design item a main trial (and its repeats) asks about; a gold trial's when it is one, else None.
    # (No ON DELETE: SQLite cannot add a column with one that reflects; a study's deletion removes both anyway.)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("study_item.id"), index=True)
    gold_expected: Mapped[int | None] = mapped_column(Integer)
    gold_tolerance: Mapped[int | None] = mapped_column(Integer)

    session: Mapped[Session] = relationship(back_populates="trials")
    stimulus_a: Mapped[Stimulus] = relationship(foreign_keys=[stimulus_a_id])
    stimulus_b: Mapped[Stimulus | None] = relationship(foreign_keys=[stimulus_b_id])
    reference: Mapped[Stimulus | None] = relationship(foreign_keys=[reference_id])
    repeat_of: Mapped[Trial | None] = relationship(remote_side=[id])
    response: Mapped[Response | None] = relationship(back_populates="trial", uselist=False)


class Response(Base):
    """The answer to one trial. ``value`` is ``pref`` relative to (A, B) for pairwise
    methods — left/right already undone — or the score for single-stimulus methods."""

    __tablename__ = "response"
    __table_args__ = (
        UniqueConstraint("trial_id", name="uq_response_trial"),
        CheckConstraint("value BETWEEN -100 AND 100", name="ck_response_value"),
        CheckConstraint(
            "watch_ms IS NULL OR watch_ms >= 0", name="ck_response_watch"
        ),
        CheckConstraint("stalls >= 0 AND plays >= 0", name="ck_response_counts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer_ms: Mapped[int | None] = mapped_column(Integer)
    watch_ms: Mapped[int | None] = mapped_column(Integer)
    plays: Mapped[int] = mapped_column(Integer, default=0)
    stalls: Mapped[int] = mapped_column(Integer, default=0)
    max_drift_ms: Mapped[float | None] = mapped_column(Float)
    hidden_ms: Mapped[int | None] = mapped_column(Integer)
    window_w: Mapped[int | None] = mapped_column(Integer)
    window_h: Mapped[int | None] = mapped_column(Integer)
    signals: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # per-player watch time etc.

    trial: Mapped[Trial] = relationship(back_populates="response")

