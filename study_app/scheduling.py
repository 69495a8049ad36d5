"""Which session a rater gets: the next pre-planned one, claimed safely under concurrency.

Sessions are planned before anyone arrives (status ``planned``, no rater). A rater
claims the lowest-index planned session. Several gunicorn workers may claim at the
same instant, so a claim must never hand one session to two raters:

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` — concurrent claimers skip the row
  another transaction is taking instead of queueing behind it.
* SQLite (no row locks): a conditional ``UPDATE … WHERE status = 'planned'``; a
  rowcount of 0 means someone else won the row, so try the next one.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DBSession

from study_app.models import Rater, Session, Study, utcnow

# SQLite claim attempts before concluding the study is full (each loss means another rater won a row).
_MAX_ATTEMPTS = 50


def latest_session(db: DBSession, rater: Rater) -> Session | None:
    """The rater's most recently claimed session, whatever its status."""
    return db.scalar(
        select(Session).where(Session.rater_id == rater.id).order_by(Session.started_at.desc(), Session.id.desc())
    )


def sessions_taken(db: DBSession, rater: Rater) -> int:
    """How many sessions this rater has claimed (the cap counts every one, finished or not)."""
    return db.scalar(select(func.count()).select_from(Session).where(Session.rater_id == rater.id)) or 0


def planned_left(db: DBSession, study: Study) -> int:
    return db.scalar(
        select(func.count()).select_from(Session).where(Session.study_id == study.id, Session.status == "planned")
    ) or 0


def claim_session(db: DBSession, study: Study, rater: Rater) -> Session | None:
    """Give ``rater`` the next planned session of ``study``; None when none is left.

    The caller commits. On PostgreSQL the claimed row stays locked until then.
    """
    if db.get_bind().dialect.name == "postgresql":
        return _claim_locked(db, study, rater)
    return _claim_conditional(db, study, rater)


def _claim_locked(db: DBSession, study: Study, rater: Rater) -> Session | None:
    found = db.scalar(
        select(Session)
        .where(Session.study_id == study.id, Session.status == "planned")
        .order_by(Session.index)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if found is None:
        return None
    found.rater_id = rater.id
    found.status = "active"
    found.started_at = utcnow()
    db.flush()
    return found


def _claim_conditional(db: DBSession, study: Study, rater: Rater) -> Session | None:
    for _ in range(_MAX_ATTEMPTS):
        candidate = db.scalar(
            select(Session.id)
            .where(Session.study_id == study.id, Session.status == "planned")
            .order_by(Session.index)
            .limit(1)
        )
        if candidate is None:
            return None
        result = db.execute(
            update(Session)
            .where(Session.id == candidate, Session.status == "planned")
            .values(rater_id=rater.id, status="active", started_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed = db.get(Session, candidate)
            assert claimed is not None
            db.refresh(claimed)
            return claimed
    return None
