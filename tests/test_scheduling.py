"""Assignment on demand: sessions built from what the study needs, distinct raters per item, expiry,
re-collection of screened-out votes, concurrent claims (SQLite and PostgreSQL), active selection."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from study_app import db, scheduling
from study_app.models import Rater, Response, Session, Study, StudyItem, Trial, utcnow
from tests.rater_support import SMALL_SESSION, make_study, walk_to_trials


def _raters(app: Flask, n: int, prefix: str = "r") -> list[int]:
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        raters = [Rater(study_id=study.id, panel="none", panel_id=f"{prefix}{i}") for i in range(n)]
        s.add_all(raters)
        s.flush()
        return [r.id for r in raters]


def _claim(app: Flask, rater_id: int) -> int | None:
    with app.app_context(), db.transaction(app) as s:
        claimed = scheduling.claim_session(s, s.scalar(select(Study)), s.get(Rater, rater_id))
        return None if claimed is None else claimed.id


def _answer(app: Flask, session_id: int, upto: int | None = None) -> None:
    """Answer the session's trials (gold correctly) in position order, the first ``upto`` only if given."""
    with app.app_context(), db.transaction(app) as s:
        trials = s.scalars(select(Trial).where(Trial.session_id == session_id).order_by(Trial.position)).all()
        for t in trials[:upto]:
            s.add(Response(trial_id=t.id, value=t.gold_expected if t.kind == "gold" else 1))
        if upto is None or upto >= len(trials):
            s.get(Session, session_id).status = "completed"


def _valid_votes(app: Flask) -> tuple[Counter[int], Counter[tuple[int, int]], dict[int, int]]:
    """(valid votes per item, votes per (item, rater), target per item)."""
    with app.app_context(), db.transaction(app) as s:
        rows = s.execute(
            select(Trial.item_id, Session.rater_id)
            .join(Response, Response.trial_id == Trial.id).join(Session, Trial.session_id == Session.id)
            .join(Rater, Session.rater_id == Rater.id)
            .where(Trial.kind == "main", scheduling.valid_rater())
        ).all()
        targets = dict(s.execute(select(StudyItem.id, StudyItem.target)).all())
    return Counter(i for i, _ in rows), Counter(rows), targets


def test_returning_raters_never_judge_an_item_twice(app: Flask, demo_manifest_path: Path) -> None:
    """../shared/cases/same-rater-same-item: 10 raters × 3 sessions, interleaved: 43% of votes were re-judged."""
    make_study(app, demo_manifest_path, trials_per_session=6, repeats_per_session=1, votes_per_pair=3,
               max_sessions_per_rater=3)
    raters = _raters(app, 10)
    for _ in range(3):
        for rid in raters:
            sid = _claim(app, rid)
            assert sid is not None
            _answer(app, sid)
    per_item, per_rater_item, targets = _valid_votes(app)
    assert max(per_rater_item.values()) == 1  # nobody judged an item twice
    assert per_item == Counter(targets)  # every item exactly its target (60 items × 3)
    assert _claim(app, _raters(app, 1, "late")[0]) is None  # nothing left


def test_sides_balanced_and_session_shape(app: Flask, demo_manifest_path: Path) -> None:
    make_study(app, demo_manifest_path, **{**SMALL_SESSION, "votes_per_pair": 2})
    for rid in _raters(app, 30):
        if (sid := _claim(app, rid)) is not None:
            _answer(app, sid)
    with app.app_context(), db.transaction(app) as s:
        kinds = Counter(s.scalars(select(Trial.kind).join(Session).where(Session.index == 0)))
        assert kinds == {"main": 4, "gold": 1, "repeat": 1}
        left = Counter()
        for item_id, a_left in s.execute(select(Trial.item_id, Trial.a_left).where(Trial.kind == "main")):
            left[item_id] += 1 if a_left else -1
    assert all(v == 0 for v in left.values())  # 2 votes each: once A left, once B left


def test_expired_session_returns_its_unanswered_trials(app: Flask, demo_manifest_path: Path) -> None:
    make_study(app, demo_manifest_path, **SMALL_SESSION, session_timeout_minutes=0.05)
    first, *others = _raters(app, 20)
    sid = _claim(app, first)
    assert sid is not None
    _answer(app, sid, upto=2)
    with app.app_context(), db.transaction(app) as s:
        old = utcnow() - timedelta(minutes=1)
        s.execute(update(Session).where(Session.id == sid).values(last_seen_at=old))
    for rid in others:  # the next claim expires it; later raters take its items
        if (got := _claim(app, rid)) is not None:
            _answer(app, got)
    with app.app_context(), db.transaction(app) as s:
        assert s.get(Session, sid).status == "expired"
        assert len(s.scalars(select(Response).join(Trial).where(Trial.session_id == sid)).all()) == 2  # kept
    per_item, per_rater_item, targets = _valid_votes(app)
    assert per_item == Counter(targets) and max(per_rater_item.values()) == 1


def test_votes_of_screened_out_raters_are_collected_again(app: Flask, demo_manifest_path: Path) -> None:
    make_study(app, demo_manifest_path, **SMALL_SESSION)
    bad, *others = _raters(app, 25)
    sid = _claim(app, bad)
    assert sid is not None
    _answer(app, sid)
    with app.app_context(), db.transaction(app) as s:
        s.get(Rater, bad).decision = "reject"  # an organizer rejects them on the raters page
    for rid in others:
        if (got := _claim(app, rid)) is not None:
            _answer(app, got)
    per_item, _, targets = _valid_votes(app)
    assert per_item == Counter(targets)


def test_failed_gold_screens_the_rater_out(app: Flask, demo_manifest_path: Path) -> None:
    make_study(app, demo_manifest_path, **SMALL_SESSION, max_sessions_per_rater=2)
    rid = _raters(app, 1)[0]
    sid = _claim(app, rid)
    with app.app_context(), db.transaction(app) as s:
        study, rater = s.scalar(select(Study)), s.get(Rater, rid)
        gold = s.scalar(select(Trial).where(Trial.session_id == sid, Trial.kind == "gold"))
        s.add(Response(trial_id=gold.id, value=-gold.gold_expected))
        s.flush()
        assert scheduling.check_gold(s, study, rater) and scheduling.is_out(rater)
        assert "0 of 1 correct" in rater.screen_out_reason
        # Its trials in flight no longer count: every item is short again.
        assert all(st.counted == 0 for st in scheduling.item_states(s, study).values())


def test_concurrent_claims_never_exceed_the_target(db_app: Flask, demo_manifest_path: Path) -> None:
    make_study(db_app, demo_manifest_path, **SMALL_SESSION, max_sessions_per_rater=2)
    raters = _raters(db_app, 24)  # 60 items × 1 vote: 15 sessions of 4; 24 × 2 claims ask for far more
    results: list[int | None] = []
    barrier = threading.Barrier(len(raters))

    def worker(rid: int) -> None:
        barrier.wait()
        for _ in range(2):
            try:
                results.append(_claim(db_app, rid))
            except scheduling.SessionHeld:
                results.append(None)

    threads = [threading.Thread(target=worker, args=(rid,)) for rid in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with db_app.app_context(), db.transaction(db_app) as s:
        per_item = Counter(s.scalars(select(Trial.item_id).where(Trial.kind == "main")))
        assert len(per_item) == 60 and set(per_item.values()) == {1}
        # 15 sessions of 4, or one more when a session's gold kept an item out of its main trials.
        claimed = {i for i in results if i is not None}
        assert len(claimed) in (15, 16)
        assert sorted(s.scalars(select(Session.index))) == list(range(len(claimed)))


def test_expired_session_page_and_api(app: Flask, client: FlaskClient, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, max_sessions_per_rater=2)
    walk_to_trials(client, slug)
    trial = client.get(f"/s/{slug}/api/trial").json
    assert client.post(f"/s/{slug}/api/vote", json={"trial": trial["trial"], "response": 4}).status_code == 200
    with app.app_context(), db.transaction(app) as s:
        s.execute(update(Session).values(last_seen_at=utcnow() - timedelta(hours=2)))
    r = client.get(f"/s/{slug}/api/trial")
    assert r.status_code == 410 and "expired" in r.json["error"]
    r = client.get(f"/s/{slug}")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/s/{slug}/expired")
    page = client.get(f"/s/{slug}/expired")
    assert b"Your session has expired" in page.data and b"1 answer(s)" in page.data
    assert b"Start a new session" in page.data  # the cap (2) allows another
    walk_to_trials(client, slug)  # … and it works
    with app.app_context(), db.transaction(app) as s:
        assert sorted(s.scalars(select(Session.status))) == ["active", "expired"]


class _StandIn:
    """A stand-in for analysis.active: always the pair (0, 1); done after ``stop_after`` votes."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after, self.pending_seen = stop_after, []

    def next_pairs(self, wins: np.ndarray, ties: np.ndarray, k: int, *, pending: np.ndarray | None = None,
                   seed: int | None = None) -> list[tuple[int, int]]:
        self.pending_seen.append(None if pending is None else pending.copy())
        return [(0, 1)] * k

    def stopping_state(self, wins: np.ndarray, ties: np.ndarray, *, alpha: float = 0.05, votes_used: int,
                       budget: int | None) -> SimpleNamespace:
        done = votes_used >= self.stop_after
        return SimpleNamespace(done=done, reason="separated" if done else None, unresolved=(),
                               votes_used=votes_used, budget=budget,
                               votes_saved=(budget - votes_used) if done and budget else None)


def test_active_selection_assigns_the_asked_pairs_and_stops(app: Flask, demo_manifest_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = _StandIn(stop_after=8)
    monkeypatch.setattr(scheduling, "_active_module", lambda: stand_in)
    make_study(app, demo_manifest_path, **SMALL_SESSION, design={"pairs": "all_pairs", "selection": "active"})
    raters = _raters(app, 3)
    sid = _claim(app, raters[0])
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        assert study.manifest["selection"] == "active" and study.manifest["vote_budget"] == 60
        states = scheduling.item_states(s, study)
        mains = [states[i] for i in s.scalars(select(Trial.item_id).where(Trial.session_id == sid,
                                                                          Trial.kind == "main"))]
        assert {(m.cond_a, m.cond_b) for m in mains} == {(0, 1)}
        assert len({m.content for m in mains}) == 4  # contents balanced within the pair
    sid2 = _claim(app, raters[1])
    assert stand_in.pending_seen[-1][0, 1] == 4  # the first session's trials in flight
    _answer(app, sid)
    _answer(app, sid2)
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        assert scheduling.maybe_stop(s, study, force=True)
    with app.app_context(), db.transaction(app) as s:
        assert s.scalar(select(Study)).status == "closed"
    assert _claim(app, raters[2]) is None
