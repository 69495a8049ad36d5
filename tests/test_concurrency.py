"""Concurrent requests of one rater against a real threaded server, on SQLite and PostgreSQL.

Two tabs (or a retried request) consenting at once gave one rater two sessions despite
``max_sessions_per_rater: 1`` (12 of 12 tries), the older one left active for ever. Here 8
consents of the same rater arrive together, 20 times: one session is claimed, every request
ends on the same page, none fails.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession

from study_app import db, migrate
from study_app.models import Rater, Response, Session, Study, Trial
from tests.live_server import serve
from tests.rater_support import SMALL_SESSION, make_study

TABS = 8
ROUNDS = 20


@contextmanager
def _host(app: Flask) -> Iterator[str]:
    """``host:port`` of ``app`` served for real (http.client wants the two without a scheme)."""
    with serve(app) as base:
        yield base.removeprefix("http://")


@dataclass
class Answer:
    status: int
    location: str | None
    body: bytes


@dataclass
class Tab:
    """One browser tab of a rater: its own connection, the cookie the rater's tabs share."""

    host: str
    cookies: dict[str, str] = field(default_factory=dict)

    def send(self, method: str, path: str, form: dict[str, str] | None = None,
             payload: object = None) -> Answer:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body: str | None = None
        if form is not None:
            body, headers["Content-Type"] = urlencode(form), "application/x-www-form-urlencoded"
        elif payload is not None:
            body, headers["Content-Type"] = json.dumps(payload), "application/json"
        conn = http.client.HTTPConnection(self.host, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        for cookie in resp.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name] = value
        return Answer(resp.status, resp.headers.get("Location"), data)


def _arrive(host: str, slug: str, pid: str) -> tuple[Tab, str]:
    """A rater opens the study link and the consent page; returns their tab and the form token."""
    tab = Tab(host)
    assert tab.send("GET", f"/s/{slug}?PROLIFIC_PID={pid}&SESSION_ID=s{pid}&STUDY_ID=st").status == 302
    page = tab.send("GET", f"/s/{slug}/welcome")
    assert page.status == 200, page.body[:300]
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
    assert found is not None
    return tab, found.group(1).decode()


def _at_once(tab: Tab, n: int, method: str, path: str, **kwargs: object) -> list[Answer]:
    """``n`` copies of one request from ``n`` tabs sharing ``tab``'s cookie, released together."""
    barrier = threading.Barrier(n)
    answers: list[Answer | None] = [None] * n

    def one(i: int) -> None:
        twin = Tab(tab.host, dict(tab.cookies))
        barrier.wait()
        answers[i] = twin.send(method, path, **kwargs)  # type: ignore[arg-type]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(a is not None for a in answers)
    return answers  # type: ignore[return-value]


def _consent_at_once(tab: Tab, slug: str, token: str) -> list[Answer]:
    return _at_once(tab, TABS, "POST", f"/s/{slug}/welcome", form={"consent": "yes", "csrf_token": token})


def _sessions_of(app: Flask, pid: str) -> tuple[list[tuple[int, str]], int]:
    """(index, status) of every session of rater ``pid``, and the count of sessions claimed stored on them."""
    with app.app_context(), db.transaction(app) as s:
        rater = s.scalar(select(Rater).where(Rater.panel_id == pid))
        assert rater is not None
        rows = s.execute(select(Session.index, Session.status).where(Session.rater_id == rater.id)
                         .order_by(Session.index)).all()
        return [tuple(r) for r in rows], rater.sessions_claimed


def _study(db_app: Flask, manifest: Path, cap: int, **overrides: object) -> str:
    # Prolific ids let the test name its raters; sessions of 6 trials (4 main, 1 gold, 1 repeat).
    return make_study(db_app, manifest, **{**SMALL_SESSION, "votes_per_pair": 2, **overrides},
                      max_sessions_per_rater=cap, panel={"name": "prolific", "completion_code": "DONE1"})


def _finish_session(tab: Tab, slug: str) -> None:
    """Screen check, training, every trial answered alike (so the study must have no gold: a failed gold
    check screens the rater out), as the study page does."""
    r = tab.send("POST", f"/s/{slug}/api/environment", payload={"inner_w": 4000, "inner_h": 3000, "dpr": 1})
    assert r.status == 200 and json.loads(r.body)["ok"], r.body
    assert tab.send("POST", f"/s/{slug}/api/training/done", payload={}).status == 200
    while not (trial := json.loads(tab.send("GET", f"/s/{slug}/api/trial").body)).get("done"):
        r = tab.send("POST", f"/s/{slug}/api/vote", payload={"trial": trial["trial"], "response": 1})
        assert r.status == 200, r.body


def test_concurrent_consents_claim_one_session(db_app: Flask, demo_manifest_path: Path) -> None:
    slug = _study(db_app, demo_manifest_path, cap=1)
    with _host(db_app) as host:
        for k in range(ROUNDS):
            tab, token = _arrive(host, slug, f"r{k}")
            answers = _consent_at_once(tab, slug, token)
            assert [a.status for a in answers] == [302] * TABS, [a.body[:200] for a in answers]
            assert {a.location for a in answers} == {f"/s/{slug}/check"}
            sessions, claimed = _sessions_of(db_app, f"r{k}")
            assert [status for _, status in sessions] == ["active"] and claimed == 1, (k, sessions, claimed)
            # Every tab goes on with that one session; a consent sent afterwards (a retry) changes nothing.
            again = tab.send("POST", f"/s/{slug}/welcome", form={"consent": "yes", "csrf_token": token})
            assert (again.status, again.location) == (302, f"/s/{slug}/check")
            assert _sessions_of(db_app, f"r{k}") == (sessions, 1)
    with db_app.app_context(), db.transaction(db_app) as s:
        taken = s.scalars(select(Session.rater_id).where(Session.status != "planned")).all()
        assert len(taken) == len(set(taken)) == ROUNDS  # one session per rater, no session lost to the plan


def test_second_session_after_the_first_then_the_cap(db_app: Flask, demo_manifest_path: Path) -> None:
    """With ``max_sessions_per_rater: 2`` a rater takes a second session once the first is done (also
    when that consent arrives from 8 tabs at once), and no third."""
    # Without gold: _finish_session answers every trial alike, and a failed gold check would screen the rater
    # out (403 on the next consent whatever the cap).
    slug = _study(db_app, demo_manifest_path, cap=2, gold=None, gold_per_session=None)
    with _host(db_app) as host:
        for k in range(3):
            pid = f"back{k}"
            tab, token = _arrive(host, slug, pid)
            first = _consent_at_once(tab, slug, token)
            assert {(a.status, a.location) for a in first} == {(302, f"/s/{slug}/check")}
            _finish_session(tab, slug)
            second = _consent_at_once(tab, slug, token)
            assert {(a.status, a.location) for a in second} == {(302, f"/s/{slug}/check")}
            sessions, claimed = _sessions_of(db_app, pid)
            assert sorted(status for _, status in sessions) == ["active", "completed"] and claimed == 2
            _finish_session(tab, slug)
            third = _consent_at_once(tab, slug, token)
            assert {a.status for a in third} == {403}
            assert b"max" in third[0].body.lower() or b"session" in third[0].body.lower()
            sessions, claimed = _sessions_of(db_app, pid)
            assert [status for _, status in sessions] == ["completed", "completed"] and claimed == 2


def test_identical_votes_at_once_get_the_same_200(db_app: Flask, demo_manifest_path: Path) -> None:
    """The documented idempotency seen from outside: 8 copies of one vote, sent together, all get the same
    200 body and one response is stored."""
    slug = _study(db_app, demo_manifest_path, cap=1)
    with _host(db_app) as host:
        for k in range(5):
            tab, token = _arrive(host, slug, f"v{k}")
            assert tab.send("POST", f"/s/{slug}/welcome", form={"consent": "yes", "csrf_token": token}).status == 302
            r = tab.send("POST", f"/s/{slug}/api/environment", payload={"inner_w": 4000, "inner_h": 3000, "dpr": 1})
            assert r.status == 200
            assert tab.send("POST", f"/s/{slug}/api/training/done", payload={}).status == 200
            trial = json.loads(tab.send("GET", f"/s/{slug}/api/trial").body)["trial"]
            answers = _at_once(tab, TABS, "POST", f"/s/{slug}/api/vote", payload={"trial": trial, "response": 2})
            assert {(a.status, a.body) for a in answers} == {(200, answers[0].body)}
            follow = json.loads(tab.send("GET", f"/s/{slug}/api/trial").body)
            assert follow["trial"] == trial + 1


def test_schema_refuses_a_second_active_session(db_app: Flask, demo_manifest_path: Path) -> None:
    """Whatever writes, the database keeps one active session per rater (completed ones are not limited)."""
    make_study(db_app, demo_manifest_path, **SMALL_SESSION, plan_sessions=True)  # sessions to hand out by hand
    with DBSession(db.engine(db_app)) as s:
        rater = Rater(study_id=s.scalar(select(Study.id)), panel="none", panel_id="x")
        s.add(rater)
        s.flush()
        one, two, three = s.scalars(select(Session).order_by(Session.index).limit(3)).all()
        one.rater_id, one.status = rater.id, "completed"
        two.rater_id, two.status = rater.id, "active"
        s.flush()
        three.rater_id, three.status = rater.id, "active"
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        s.add(Rater(study_id=s.scalar(select(Study.id)), panel="none", panel_id="y", sessions_claimed=-1))
        with pytest.raises(IntegrityError):
            s.flush()


def test_upgrade_settles_sessions_left_active(db_url: str, db_app: Flask, demo_manifest_path: Path) -> None:
    """Databases from before 0003 may hold raters with two active sessions: the upgrade keeps the latest one
    (the one the app resumes), sends an unanswered older one back to the plan, keeps an answered one as
    abandoned, and counts the sessions each rater holds. Upgraded on to head (0005: no planned sessions any
    more), the plan's unclaimed sessions go and nothing answered is lost."""
    # Databases of those days held a study's whole plan: written here as the legacy plan, then taken back to 0002.
    make_study(db_app, demo_manifest_path, **SMALL_SESSION, plan_sessions=True)
    migrate.downgrade(db_url, "0002")
    engine = db.engine(db_app)
    engine.dispose()  # connections opened on the old schema
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO rater (study_id, panel, panel_id, created_at) "
                          "SELECT id, 'none', p, CURRENT_TIMESTAMP FROM study, (SELECT 'a' AS p UNION SELECT 'b') x"))
        raters = dict(conn.execute(text("SELECT panel_id, id FROM rater")).all())
        sessions = conn.execute(text('SELECT id FROM session ORDER BY "index"')).scalars().all()
        for sid, pid, started in zip(sessions, "aabb", ("2026-01-01", "2026-01-02") * 2, strict=False):
            conn.execute(text("UPDATE session SET rater_id = :r, status = 'active', started_at = :t WHERE id = :s"),
                         {"r": raters[pid], "t": f"{started} 10:00:00", "s": sid})
        first_trial = conn.execute(text("SELECT min(id) FROM trial WHERE session_id = :s"),
                                   {"s": sessions[0]}).scalar()
        conn.execute(text("INSERT INTO response (trial_id, value, answered_at, plays, stalls) "
                          "VALUES (:t, 1, CURRENT_TIMESTAMP, 0, 0)"), {"t": first_trial})
        claimed_trials = set(conn.execute(text("SELECT id FROM trial WHERE session_id IN (:a, :b, :c)"),
                                          dict(zip("abc", (sessions[0], sessions[1], sessions[3]), strict=True)))
                             .scalars())
    migrate.upgrade(db_url, "0003")
    with DBSession(engine) as s:
        got = s.execute(select(Session.index, Session.status, Rater.panel_id)
                        .outerjoin(Rater, Session.rater_id == Rater.id).where(Session.index < 4)
                        .order_by(Session.index)).all()
        assert [tuple(r) for r in got] == [(0, "abandoned", "a"), (1, "active", "a"), (2, "planned", None),
                                           (3, "active", "b")]
        assert dict(s.execute(select(Rater.panel_id, Rater.sessions_claimed)).all()) == {"a": 2, "b": 1}
    migrate.upgrade(db_url)
    engine.dispose()
    with DBSession(engine) as s:
        got = s.execute(select(Session.index, Session.status, Rater.panel_id)
                        .outerjoin(Rater, Session.rater_id == Rater.id).order_by(Session.index)).all()
        assert [tuple(r) for r in got] == [(0, "abandoned", "a"), (1, "active", "a"), (3, "active", "b")]
        assert dict(s.execute(select(Rater.panel_id, Rater.sessions_claimed)).all()) == {"a": 2, "b": 1}
        # Every trial of a claimed session is kept, with its answer, and asks about one of the study's items.
        trials = s.execute(select(Trial.id, Trial.item_id)).all()
        assert {t for t, _ in trials} == claimed_trials and all(item is not None for _, item in trials)
        assert s.execute(select(Response.trial_id, Response.value)).all() == [(first_trial, 1)]
