"""Claiming planned sessions: lowest index first, never one session to two raters, on SQLite
and PostgreSQL, also when many workers claim at the same moment; a returning rater gets no item again."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from study_app import db, design, scheduling
from study_app.export import votes_frame
from study_app.manifest import load
from study_app.models import Condition, Content, Rater, Response, Session, Stimulus, Study, Trial
from study_app.plan import make_plan
from tests.rater_support import SMALL_SESSION, csrf, make_study, walk_to_trials

sa, sb = aliased(Stimulus), aliased(Stimulus)
ca, cb = aliased(Condition), aliased(Condition)


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


def _claim_at_once(db_app: Flask, raters: list[int]) -> dict[int, int | None]:
    """Every rater claims a session in their own thread, released together: rater → session id."""
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
    return results


@pytest.mark.parametrize("cap", [1, 3])  # one session each is claimed without reading the plan
def test_claims_in_index_order_until_none_left(db_app: Flask, demo_manifest_path: Path, cap: int) -> None:
    make_study(db_app, demo_manifest_path, max_sessions_per_rater=cap, **SMALL_SESSION)
    with db_app.app_context(), db.transaction(db_app) as s:
        total = s.scalar(select(func.count()).select_from(Session))
    raters = _raters(db_app, total + 1)
    got = [_claim(db_app, rid) for rid in raters[:total]]
    assert got == list(range(total))
    assert _claim(db_app, raters[-1]) is None
    with db_app.app_context(), db.transaction(db_app) as s:
        assert [scheduling.sessions_taken(s, s.get(Rater, rid)) for rid in raters] == [1] * total + [0]
        assert scheduling.planned_left(s, s.scalar(select(Study))) == 0
        latest = scheduling.latest_session(s, s.get(Rater, raters[0]))
        assert latest is not None and latest.status == "active" and latest.started_at is not None


def _claim_or_why(app: Flask, rater_id: int) -> int | str | None:
    """The index claimed, or why not: ``held <index>`` / ``cap`` (whatever the claim wrote is committed)."""
    with app.app_context(), db.transaction(app) as s:
        try:
            claimed = scheduling.claim_session(s, s.scalar(select(Study)), s.get(Rater, rater_id))
        except scheduling.SessionHeld as held:
            return f"held {held.session.index}"
        except scheduling.CapReached:
            return "cap"
        return None if claimed is None else claimed.index


def _finish(app: Flask, index: int) -> None:
    with app.app_context(), db.transaction(app) as s:
        session_id = s.scalar(select(Session.id).where(Session.index == index))
    _answer_in_db(app, session_id)


def test_one_active_session_and_the_cap(db_app: Flask, demo_manifest_path: Path) -> None:
    """A rater holding an active session is handed that one back; after finishing it they take another, up to
    ``max_sessions_per_rater``; a refused claim counts nothing."""
    make_study(db_app, demo_manifest_path, max_sessions_per_rater=2, **SMALL_SESSION)
    rid = _raters(db_app, 1)[0]
    first = _claim(db_app, rid)
    assert _claim_or_why(db_app, rid) == f"held {first}"
    _finish(db_app, first)
    second = _claim(db_app, rid)
    assert second not in (None, first)
    _finish(db_app, second)
    assert _claim_or_why(db_app, rid) == "cap"
    with db_app.app_context(), db.transaction(db_app) as s:
        rows = s.execute(select(Session.index, Session.status).where(Session.rater_id == rid)).all()
        assert sorted(rows) == sorted([(first, "completed"), (second, "completed")])
        assert scheduling.sessions_taken(s, s.get(Rater, rid)) == 2


@pytest.mark.parametrize("cap", [1, 3])
def test_concurrent_claims_never_share_a_session(db_app: Flask, demo_manifest_path: Path, cap: int) -> None:
    make_study(db_app, demo_manifest_path, max_sessions_per_rater=cap, **SMALL_SESSION)
    with db_app.app_context(), db.transaction(db_app) as s:
        total = s.scalar(select(func.count()).select_from(Session))
    raters = _raters(db_app, total + 4)  # more raters than sessions: some must get None
    results = _claim_at_once(db_app, raters)
    won = [i for i in results.values() if i is not None]
    assert len(results) == len(raters)
    assert sorted(won) == list(range(total))  # every session once, none twice
    with db_app.app_context(), db.transaction(db_app) as s:
        rows = s.execute(select(Session.index, Session.rater_id, Session.status)).all()
        assert all(status == "active" and rater is not None for _, rater, status in rows)
        assert len({rater for _, rater, _ in rows}) == total


# --------------------------------------------------------------------------- returning raters
# The demo design: 60 items × 8 votes in 30 sessions of 16 main trials (+ 1 gold, 3 repeats), 3 sessions a rater.
N_RATERS, SESSIONS_EACH = 10, 3


def _plan_counts(manifest_path: Path) -> tuple[Counter, Counter]:
    """Main trials per item in the plan, and per (item, condition shown left)."""
    plan = make_plan(load(manifest_path, probe_media=False).spec)
    votes: Counter = Counter()
    sides: Counter = Counter()
    for session in plan.sessions:
        for t in session.trials:
            if t.kind == "main":
                key = design.item_key(t.content, t.cond_a, t.cond_b)
                votes[key] += 1
                sides[key, t.cond_a if t.a_left else t.cond_b] += 1
    return votes, sides


def _answer_in_db(app: Flask, session_id: int) -> None:
    with app.app_context(), db.transaction(app) as s:
        sess = s.get(Session, session_id)
        s.add_all(Response(trial_id=t.id, value=1) for t in sess.trials)
        sess.status = "completed"


def _export(app: Flask) -> pd.DataFrame:
    with app.app_context(), db.transaction(app) as s:
        return votes_frame(s, s.scalar(select(Study)))


def _assert_each_item_from_distinct_raters(votes: pd.DataFrame, manifest_path: Path, n_raters: int) -> None:
    """The case ``same-rater-same-item``: main votes on one item come from distinct raters, a rater sees an item
    again only as a planned consistency repeat of it, and every item reaches as many distinct raters as it could."""
    votes = votes.assign(item=[design.item_key(c, a, b) for c, a, b in
                               votes[["content", "cond_a", "cond_b"]].itertuples(index=False)])
    main = votes[votes["kind"] == "main"]
    twice = main[main.duplicated(["rater", "item"], keep=False)]
    assert twice.empty, f"{len(twice)} main votes on an item the rater judged in another session:\n{twice}"

    by_trial = votes.set_index("trial")
    repeats = votes[votes["kind"] == "repeat"]
    assert len(repeats) > 0
    for rep in repeats.itertuples():
        original = by_trial.loc[int(rep.repeat_of)]
        assert (original["kind"], original["rater"], original["session"], original["item"]) == (
            "main", rep.rater, rep.session, rep.item)
        assert original["shown_left"] != rep.shown_left  # repeats still come with sides swapped

    planned_votes, planned_sides = _plan_counts(manifest_path)
    assert Counter(main["item"]) == planned_votes  # swaps move votes between sessions, never add or drop one
    shown_left = [(item, a if side == "a" else b)
                  for item, a, b, side in main[["item", "cond_a", "cond_b", "shown_left"]].itertuples(index=False)]
    assert Counter(shown_left) == planned_sides  # and keep every item's left/right balance
    distinct = main.groupby("item")["rater"].nunique()
    best = {item: min(n, n_raters) for item, n in planned_votes.items()}
    assert sum(distinct[item] == most for item, most in best.items()) == len(planned_votes)  # 60 of 60, was 5


def test_returning_raters_never_get_an_item_again(db_app: Flask, demo_manifest_path: Path) -> None:
    """10 raters × 3 sessions each, interleaved (everyone's first, then everyone's second, …), by the scheduling
    functions on each backend. Plan order alone gave 206 of 480 main votes on an already judged item."""
    make_study(db_app, demo_manifest_path)
    raters = _raters(db_app, N_RATERS)
    for _ in range(SESSIONS_EACH):
        for rid in raters:
            with db_app.app_context(), db.transaction(db_app) as s:
                claimed = scheduling.claim_session(s, s.scalar(select(Study)), s.get(Rater, rid))
                assert claimed is not None
                sid = claimed.id
            _answer_in_db(db_app, sid)
    with db_app.app_context(), db.transaction(db_app) as s:
        assert scheduling.planned_left(s, s.scalar(select(Study))) == 0
        gold = s.execute(select(Session.index, func.count(Trial.id)).join(Trial.session)
                         .where(Trial.kind == "gold").group_by(Session.index)).all()
    planned_gold = {ps.index: sum(t.kind == "gold" for t in ps.trials)
                    for ps in make_plan(load(demo_manifest_path, probe_media=False).spec).sessions}
    assert dict(gold) == {i: n for i, n in planned_gold.items() if n}  # gold stays where the plan put it
    _assert_each_item_from_distinct_raters(_export(db_app), demo_manifest_path, N_RATERS)


def _start_session(client: FlaskClient, slug: str, first: bool) -> None:
    if first:
        walk_to_trials(client, slug)
        return
    r = client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/check"), r.data
    r = client.post(f"/s/{slug}/api/environment", json={"inner_w": 1920, "inner_h": 1080, "dpr": 1})
    assert r.status_code == 200 and r.json["ok"], r.json
    assert client.post(f"/s/{slug}/api/training/done", json={}).status_code == 200


def _answer_session(client: FlaskClient, slug: str) -> None:
    while not (trial := client.get(f"/s/{slug}/api/trial").json).get("done"):
        r = client.post(f"/s/{slug}/api/vote", json={"trial": trial["trial"], "response": 1})
        assert r.status_code == 200 and r.json["ok"], r.json


def test_demo_study_over_http_raters_return_for_new_items(app: Flask, demo_manifest_path: Path) -> None:
    """The case as raters live it: the demo study, 10 browsers taking 3 sessions each, interleaved."""
    slug = make_study(app, demo_manifest_path)
    clients = [app.test_client() for _ in range(N_RATERS)]
    for round_ in range(SESSIONS_EACH):
        for client in clients:
            _start_session(client, slug, first=round_ == 0)
            _answer_session(client, slug)
    assert all(b"Do another session" not in c.get(f"/s/{slug}/done").data for c in clients)  # 3 each: cap reached
    votes = _export(app)
    assert votes["rater"].nunique() == N_RATERS and votes.groupby("rater")["session"].nunique().eq(3).all()
    _assert_each_item_from_distinct_raters(votes, demo_manifest_path, N_RATERS)


def test_concurrent_returning_claims_keep_the_plan_whole(db_app: Flask, demo_manifest_path: Path) -> None:
    """Second sessions claimed all at once (swaps between planned sessions under way in several workers):
    no session goes to two raters, no session shows an item twice, and no vote is lost or added."""
    make_study(db_app, demo_manifest_path)
    raters = _raters(db_app, N_RATERS)
    for rid in raters:
        with db_app.app_context(), db.transaction(db_app) as s:
            sid = scheduling.claim_session(s, s.scalar(select(Study)), s.get(Rater, rid)).id
        _answer_in_db(db_app, sid)
    results = _claim_at_once(db_app, raters)
    won = [i for i in results.values() if i is not None]
    assert len(won) == len(raters) and len(set(won)) == len(raters)
    planned_votes, planned_sides = _plan_counts(demo_manifest_path)
    with db_app.app_context(), db.transaction(db_app) as s:
        rows = s.execute(
            select(Session.id, Trial.kind, Trial.a_left, Content.key, ca.key, cb.key)
            .select_from(Trial).join(Trial.session).join(sa, Trial.stimulus_a_id == sa.id)
            .join(Content, sa.content_id == Content.id).join(ca, sa.condition_id == ca.id)
            .join(sb, Trial.stimulus_b_id == sb.id).join(cb, sb.condition_id == cb.id)
        ).all()
    per_session: dict[int, list] = {}
    for sid, kind, _, content, a, b in rows:
        if kind != "repeat":
            per_session.setdefault(sid, []).append(design.item_key(content, a, b))
    assert all(len(items) == len(set(items)) for items in per_session.values())
    main = [(design.item_key(c, a, b), a if left else b) for _, kind, left, c, a, b in rows if kind == "main"]
    assert Counter(item for item, _ in main) == planned_votes
    assert Counter(main) == planned_sides


# --------------------------------------------------------------------------- swaps leave gold alone (pure)
X, P, Y, W, V = (1, 2), (1, 3), (2, 3), (1, 4), (2, 4)  # items as sorted stimulus-id pairs


def _snapshot(sessions: list[tuple[str, int | None, list[tuple[int, scheduling.ItemKey]], set]]) -> scheduling.Snapshot:
    snap = scheduling.Snapshot()
    for sid, (status, rater, main, gold) in enumerate(sessions, 1):
        snap.index[sid], snap.status[sid], snap.rater[sid] = sid - 1, status, rater
        snap.main[sid], snap.fixed[sid] = list(main), set(gold)
    return snap


def test_a_swap_never_brings_a_sessions_gold_in_or_a_main_item_onto_gold() -> None:
    """Rater 1 judged X before; their new session 2 shows X again, with Y as gold. Session 3 has X as gold and
    offers Y: neither may be swapped. Session 4 may take X and give V."""
    sessions = [("completed", 1, [(10, X)], set()), ("active", 1, [(20, X), (21, P)], {Y}),
                ("planned", None, [(30, Y), (31, W)], {X})]
    assert scheduling.plan_swaps(_snapshot(sessions), 2, 1, max_sessions=3)[0] == []
    sessions.append(("planned", None, [(40, Y), (41, V)], set()))
    assert scheduling.plan_swaps(_snapshot(sessions), 2, 1, max_sessions=3)[0] == [(20, 4, 41)]


def _plan_snapshot(spec: design.DesignSpec) -> scheduling.Snapshot:
    """The plan as the database would hold it: stimulus ids per (content, condition), trial ids in order."""
    stim = {(c, k): n for n, (c, k) in enumerate(((c, k) for c in spec.contents for k in spec.conditions), 1)}
    snap, trial = scheduling.Snapshot(), 0
    for ps in make_plan(spec).sessions:
        sid = ps.index + 1
        snap.index[sid], snap.status[sid], snap.rater[sid] = ps.index, "planned", None
        snap.main[sid], snap.fixed[sid] = [], set()
        for t in ps.trials:
            trial += 1
            key = scheduling.item_key(stim[t.content, t.cond_a], stim[t.content, t.cond_b])
            if t.kind == "main":
                snap.main[sid].append((trial, key))
            elif t.kind == "gold":
                snap.fixed[sid].add(key)
    return snap


def test_returning_raters_swaps_keep_every_sessions_gold_whole() -> None:
    """The demo design (both gold items are design items) claimed by 10 raters × 3 sessions with the swaps
    applied: every session keeps its gold, and none gets a gold item among its main trials."""
    conds = ("source", "enhanced", "dark", "noisy", "blurred", "compressed")
    spec = design.DesignSpec(
        method="pc5", conditions=conds, roles={"source": "reference"}, contents=("c1", "c2", "c3", "c4"),
        pairwise=True, votes_per_item=8, trials_per_session=16, repeats_per_session=3, gold_per_session=1,
        gold=(design.GoldItem("c1", "source", "compressed", 2), design.GoldItem("c3", "source", "noisy", 2)),
        seed=2025)
    snap = _plan_snapshot(spec)
    gold = {sid: set(g) for sid, g in snap.fixed.items()}
    votes = Counter(item for main in snap.main.values() for _, item in main)
    assert all(len(g) == 1 for g in gold.values())
    for _ in range(SESSIONS_EACH):
        for rater in range(1, N_RATERS + 1):
            sid = scheduling.preference(snap, rater, SESSIONS_EACH)[0]
            snap.status[sid], snap.rater[sid] = "active", rater
            for mine, other, theirs in scheduling.plan_swaps(snap, sid, rater, SESSIONS_EACH)[0]:
                a, b = dict(snap.main[sid])[mine], dict(snap.main[other])[theirs]
                snap.main[sid] = [(t, b if t == mine else item) for t, item in snap.main[sid]]
                snap.main[other] = [(t, a if t == theirs else item) for t, item in snap.main[other]]
    assert snap.fixed == gold
    for sid, main in snap.main.items():
        items = [item for _, item in main]
        assert len(set(items)) == len(items) and not set(items) & snap.fixed[sid], sid
    assert Counter(item for main in snap.main.values() for _, item in main) == votes
