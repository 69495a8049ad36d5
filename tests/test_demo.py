"""`panelrank demo` builds everything once and reuses it on the next run."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import select

from study_app import create_app, db, scheduling
from study_app.models import Rater, Session, Study


def test_demo_builds_and_reuses(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}", "INSTANCE_DIR": str(tmp_path),
                      "TESTING": True})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "--no-serve", "--small"])
    assert first.exit_code == 0, first.output
    assert "created study 'demo'" in first.output
    assert "/s/demo" in first.output and "/organizer/" in first.output
    login = next(line for line in first.output.splitlines() if "organizer login" in line)
    clips = sorted((tmp_path / "demo-clips-small").rglob("*.mp4"))
    assert len(clips) == 24
    stamps = [c.stat().st_mtime_ns for c in clips]
    second = runner.invoke(args=["demo", "--no-serve", "--small"])
    assert second.exit_code == 0, second.output
    assert "exists; reusing it" in second.output
    assert login in second.output  # same credentials
    assert [c.stat().st_mtime_ns for c in clips] == stamps
    listed = runner.invoke(args=["list-studies"])
    assert listed.output.count("demo\tpc5") == 1
    assert "demo-simulated\tpc5\tclosed" in listed.output
    assert "simulated votes" in first.output and "simulated votes" not in second.output


def _built_demo(tmp_path: Path) -> Flask:
    """An app on a fresh SQLite file with the small demo studies built by `panelrank demo`."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}", "INSTANCE_DIR": str(tmp_path),
                      "TESTING": True})
    assert app.test_cli_runner().invoke(args=["demo", "--no-serve", "--small"]).exit_code == 0
    return app


def test_simulated_demo_study_is_fully_answered(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from analysis import bradley_terry
    from study_app import db
    from study_app.demo.builder import SIMULATED_RATERS, SIMULATED_SLUG
    from study_app.export import votes_frame
    from study_app.models import Rater, Session, Study, Trial
    from study_app.studies import get_study

    app = _built_demo(tmp_path)
    with app.app_context(), db.transaction(app) as s:
        study = get_study(s, SIMULATED_SLUG)
        assert study is not None and "SIMULATED" in study.name
        raters = s.scalar(select(func.count(Rater.id)).where(Rater.study_id == study.id))
        assert raters == SIMULATED_RATERS  # every stored rater has a session (no empty rows)
        assert len(study.sessions) == SIMULATED_RATERS and f"{SIMULATED_RATERS} raters" in study.name
        statuses = set(s.scalars(select(Session.status).where(Session.study_id == study.id)))
        assert statuses == {"completed"}
        votes = votes_frame(s, study)
        trials = s.scalar(select(func.count(Trial.id)).join(Session).where(Session.study_id == study.id))
        assert len(votes) == trials
        live = s.scalar(select(Study).where(Study.slug == "demo"))
        assert len(votes_frame(s, live)) == 0  # the live demo study stays empty for real voting
    scores = bradley_terry.fit(votes, ci="none").to_frame().set_index("condition")["score"]
    assert scores["enhanced"] > scores["dark"] > scores["compressed"]


def test_live_leaderboard_of_the_simulated_demo_has_sensible_per_factor_intervals(tmp_path: Path) -> None:
    # The per-factor fits rest on a few dozen votes each: their rater-clustered intervals must
    # still be finite and of the size the votes allow (a kept separated bootstrap once gave ±30).
    import numpy as np

    from study_app import db, livestats
    from study_app.demo.builder import SIMULATED_SLUG
    from study_app.studies import get_study

    app = _built_demo(tmp_path)
    with app.app_context(), db.transaction(app) as s:
        study = get_study(s, SIMULATED_SLUG)
        result = livestats.leaderboard(s, study, livestats.rules_from(list(livestats.DEFAULT_ON)))
    assert result is not None and result.params["rank_by"] == "cluster"
    assert set(result.by_reason) == {"brightness", "colours", "skin tone"}
    for frame in [result.scores, *result.by_reason.values()]:
        bounds = frame[["ci_low", "ci_high"]].to_numpy()
        width = bounds[:, 1] - bounds[:, 0]
        assert np.isfinite(bounds).all() and (np.abs(bounds) < 5).all()
        assert ((width > 0.2) & (width < 4)).all()
        assert (frame["ci_method"] == "cluster").all()


def test_every_session_of_the_built_demo_study_has_its_gold_trial(tmp_path: Path) -> None:
    """Sessions are built when raters start them: every one gets its gold trial until the study is full."""
    app = _built_demo(tmp_path)
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study).where(Study.slug == "demo"))
        assert not s.scalars(select(Session).where(Session.study_id == study.id)).all()  # nothing planned ahead
        sessions = []
        for i in range(40):
            rater = Rater(study_id=study.id, panel="none", panel_id=f"g{i}")
            s.add(rater)
            s.flush()
            if (sess := scheduling.claim_session(s, study, rater)) is not None:
                sessions.append(sess)
        gold = [sum(t.kind == "gold" for t in sess.trials) for sess in sessions]
        assert len(sessions) >= 30 and gold == [1] * len(sessions)


def test_the_live_demo_study_uses_active_selection_and_stops_itself(tmp_path: Path) -> None:
    """Raters who judge by Bradley–Terry from the demo's known quality order (adjacent conditions one unit
    apart, so a vote for the worse clip is common): the live study picks pairs actively, closes itself once
    every adjacent pair is separated, inside its budget, and the console says so."""
    import math
    import random

    from analysis.methods import METHODS
    from study_app import accounts
    from study_app.demo.conditions import EXPECTED_ORDER
    from study_app.models import Response
    from tests.test_organizer import login

    app = _built_demo(tmp_path)
    truth = {c: 2.5 - k for k, c in enumerate(EXPECTED_ORDER)}
    rng = random.Random(3)

    def vote(a: str, b: str) -> int:
        a_wins = rng.random() < 1 / (1 + math.exp(truth[b] - truth[a]))
        strength = 2 if abs(truth[a] - truth[b]) > 1.5 else 1
        return strength if a_wins else -strength

    with app.app_context(), db.transaction(app) as s:
        accounts.create_organizer(s, "boss@example.org", "correct-horse", role="admin")
        study = s.scalar(select(Study).where(Study.slug == "demo"))
        assert study.manifest["selection"] == "active" and METHODS[study.method].pairwise
        for i in range(200):
            rater = Rater(study_id=study.id, panel="none", panel_id=f"a{i}")
            s.add(rater)
            s.flush()
            sess = scheduling.claim_session(s, study, rater)
            if sess is None:
                break
            for trial in sess.trials:
                a, b = trial.stimulus_a.condition.key, trial.stimulus_b.condition.key
                value = trial.gold_expected if trial.kind == "gold" else vote(a, b)
                s.add(Response(trial_id=trial.id, value=value))
            sess.status = "completed"
            s.flush()
            if scheduling.maybe_stop(s, study, force=True):
                break
        state = scheduling.stopping_state(s, study)
        assert study.status == "closed" and state.done and state.reason == "separated", state
        assert 0 < state.votes_used < 480 and state.votes_saved == 480 - state.votes_used
    client = app.test_client()
    login(client, "boss@example.org")
    page = client.get("/organizer/studies/demo").get_data(as_text=True)
    assert "Active selection: when the study stops" in page
    assert f"<strong>{state.votes_saved} votes saved</strong>" in page
