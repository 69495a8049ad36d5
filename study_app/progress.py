"""How far a study has come: votes against target, sessions, pace, flagged trials.

Plain aggregate queries (portable between SQLite and PostgreSQL) turned into a
JSON-ready dict — the progress page, its auto-refresh and the API all read this.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session as DBSession

from study_app import livestats, scheduling
from study_app.models import Response, Session, Study, Trial, utcnow

#: An active session with no answer for this long is counted as abandoned.
ABANDONED_AFTER = timedelta(minutes=60)
#: A trial whose tab was hidden this long (ms) is flagged, like one whose playback stalled.
HIDDEN_FLAG_MS = 2000


def study_progress(db: DBSession, study: Study, now: datetime | None = None) -> dict[str, Any]:
    """Everything the progress page shows, as plain JSON-ready data (idle sessions expire first)."""
    now = now or utcnow()
    if scheduling.expire_idle(db, study, now):
        db.commit()
    cells = _pair_cells(db, study) if study.pairwise else _stimulus_cells(db, study)
    votes = sum(c["votes"] for c in cells)
    target = sum(c["target"] for c in cells)
    return {
        "study": study.slug,
        "status": study.status,
        "method": study.method,
        "pairwise": study.pairwise,
        "conditions": [c.key for c in study.conditions],
        "cells": cells,
        "votes": votes,
        "target": target,
        "percent": round(100 * votes / target, 1) if target else 0.0,
        "sessions": _sessions(db, study, now),
        "pace": _pace(db, study, now),
        "flagged": _flagged(db, study),
        "generated_at": now.isoformat(),
    }


def stopping(db: DBSession, study: Study) -> dict[str, Any] | None:
    """The stopping state of an active-selection study for the console; None for balanced studies.

    ``done``, ``reason`` (``separated`` / ``budget`` / None), ``unresolved`` (adjacent pairs of the
    current ranking not yet separated at the study's α, as condition keys), ``votes_used``, ``budget``,
    ``votes_saved`` (budget − used when stopped by separation) and ``alpha``, as
    :func:`analysis.active.stopping_state` gives them (valid votes only). Cached until the next vote.
    """
    if not scheduling.active_selection(study):
        return None
    fp = livestats.fingerprint(db, study)
    rejected = livestats.rejected_raters(db, study)
    state = livestats.cached(("stopping", study.id, *fp, rejected), lambda: scheduling.stopping_state(db, study))
    keys = [c.key for c in study.conditions]
    return {"done": bool(state.done), "reason": state.reason,
            "unresolved": [[keys[i], keys[j]] for i, j in state.unresolved],
            "votes_used": int(state.votes_used), "budget": state.budget, "votes_saved": state.votes_saved,
            "alpha": float(study.manifest.get("alpha") or 0.05), "status": study.status}


def _main_trials(study: Study) -> Select[tuple[()]]:
    return (
        select()
        .select_from(Trial)
        .join(Session, Trial.session_id == Session.id)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Session.study_id == study.id, Trial.kind == "main")
    )


def _pair_cells(db: DBSession, study: Study) -> list[dict[str, Any]]:
    """Valid main votes per condition pair (summed over contents) against the items' targets.

    Under active selection items have no target: a pair's target is then its votes plus those in flight.
    """
    keys = [c.key for c in study.conditions]
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for s in scheduling.item_states(db, study).values():
        if s.cond_b is None:
            continue
        cell = cells.setdefault((keys[s.cond_a], keys[s.cond_b]),
                                {"cond_a": keys[s.cond_a], "cond_b": keys[s.cond_b], "target": 0, "votes": 0})
        cell["target"] += s.target if s.target is not None else s.counted
        cell["votes"] += s.votes
    return list(cells.values())


def _stimulus_cells(db: DBSession, study: Study) -> list[dict[str, Any]]:
    """Valid main votes per stimulus (content × condition) against its target."""
    keys = [c.key for c in study.conditions]
    contents = {c.id: c.key for c in study.contents}
    return [{"content": contents[s.content], "cond": keys[s.cond_a], "votes": s.votes,
             "target": s.target if s.target is not None else s.counted}
            for s in scheduling.item_states(db, study).values()]


def _sessions(db: DBSession, study: Study, now: datetime) -> dict[str, Any]:
    last_answer = (
        select(Trial.session_id, func.max(Response.answered_at).label("last"))
        .join(Response, Response.trial_id == Trial.id)
        .group_by(Trial.session_id)
        .subquery()
    )
    rows = db.execute(
        select(Session.status, Session.started_at, Session.completed_at, last_answer.c.last)
        .outerjoin(last_answer, last_answer.c.session_id == Session.id)
        .where(Session.study_id == study.id)
    ).all()
    counts = {"planned": 0, "active": 0, "completed": 0, "screened_out": 0, "abandoned": 0, "expired": 0}
    durations = []
    for status, started, completed, last in rows:
        if status == "active" and (last or started or now) < now - ABANDONED_AFTER:
            status = "abandoned"  # shown as such; the rater may still come back and finish
        counts[status] += 1
        if status == "completed" and started and completed:
            durations.append((completed - started).total_seconds())
    started_total = sum(v for k, v in counts.items() if k != "planned")
    return {**counts, "started": started_total,
            "median_duration_s": round(statistics.median(durations), 1) if durations else None}


def _responses(study: Study) -> Select[tuple[()]]:
    return (
        select()
        .select_from(Response)
        .join(Trial, Response.trial_id == Trial.id)
        .join(Session, Trial.session_id == Session.id)
        .where(Session.study_id == study.id)
    )


def _pace(db: DBSession, study: Study, now: datetime) -> dict[str, Any]:
    """Votes in each of the last 24 hours (oldest first) and in the last hour."""
    since = now - timedelta(hours=24)
    times = db.scalars(_responses(study).add_columns(Response.answered_at).where(Response.answered_at >= since))
    hourly = [0] * 24
    for t in times:
        age_h = int((now - t).total_seconds() // 3600)
        if 0 <= age_h < 24:
            hourly[23 - age_h] += 1
    return {"last_hour": hourly[-1], "hourly_24h": hourly}


def _flagged(db: DBSession, study: Study, limit: int = 20) -> dict[str, Any]:
    flag = or_(Response.stalls > 0, Response.hidden_ms >= HIDDEN_FLAG_MS)
    counts = db.execute(
        _responses(study).add_columns(
            func.count(case((Response.stalls > 0, 1))),
            func.count(case((Response.hidden_ms >= HIDDEN_FLAG_MS, 1))),
        )
    ).one()
    recent = db.execute(
        _responses(study)
        .add_columns(Session.index, Trial.position, Response.stalls, Response.hidden_ms, Response.answered_at)
        .where(flag)
        .order_by(Response.answered_at.desc())
        .limit(limit)
    ).all()
    return {
        "stalled": counts[0],
        "hidden": counts[1],
        "recent": [{"session": s, "position": p, "stalls": st, "hidden_ms": h, "answered_at": a.isoformat()}
                   for s, p, st, h, a in recent],
    }
