"""Claiming planned sessions: lowest index first, never one session to two raters, on SQLite
and PostgreSQL, also when many workers claim at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from study_app import db, scheduling
from study_app.models import Rater, Session, Study
from tests.rater_support import SMALL_SESSION, make_study


def _raters(app: Flask, n: int) -> list[int]:
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        raters = [Rater(study_id=study.id, panel="none", panel_id=f"r{i}") for i in range(n)]
        s.add_all(raters)
        s.flush()
        return [r.id for r in raters]


def _claim(app: Flask, rater_id: int) -> int | None:
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        claimed = scheduling.claim_session(s, study, s.get(Rater, rater_id))
        return None if claimed is None else claimed.index


def test_claims_in_index_order_until_none_left(db_app: Flask, demo_manifest_path: Path) -> None:
    make_study(db_app, demo_manifest_path, **SMALL_SESSION)
    with db_app.app_context(), db.transaction(db_app) as s:
        total = s.scalar(select(func.count()).select_from(Session))
    rater = _raters(db_app, 1)[0]
    got = [_claim(db_app, rater) for _ in range(total)]
    assert got == list(range(total))
    assert _claim(db_app, rater) is None
    with db_app.app_context(), db.transaction(db_app) as s:
        r = s.get(Rater, rater)
        assert scheduling.sessions_taken(s, r) == total
        assert scheduling.planned_left(s, s.scalar(select(Study))) == 0
        latest = scheduling.latest_session(s, r)
        assert latest is not None and latest.status == "active" and latest.started_at is not None


def test_concurrent_claims_never_share_a_session(db_app: Flask, demo_manifest_path: Path) -> None:
    make_study(db_app, demo_manifest_path, **SMALL_SESSION)
    with db_app.app_context(), db.transaction(db_app) as s:
        total = s.scalar(select(func.count()).select_from(Session))
    raters = _raters(db_app, total + 4)  # more raters than sessions: some must get None
    results: dict[int, int | None] = {}
    barrier = threading.Barrier(len(raters))

    def worker(rid: int) -> None:
        barrier.wait()
        results[rid] = _claim(db_app, rid)

    threads = [threading.Thread(target=worker, args=(rid,)) for rid in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [i for i in results.values() if i is not None]
    assert len(results) == len(raters)
    assert sorted(won) == list(range(total))  # every session once, none twice
    with db_app.app_context(), db.transaction(db_app) as s:
        rows = s.execute(select(Session.index, Session.rater_id, Session.status)).all()
        assert all(status == "active" and rater is not None for _, rater, status in rows)
        assert len({rater for _, rater, _ in rows}) == total
