"""Shared set-up of the organizer tests: an organizer owning the demo study, logged-in clients."""

from __future__ import annotations

from pathlib import Path

import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import accounts, db, livestats
from study_app.demo.builder import ACTIVE_ONLY, fill_with_simulated_votes
from study_app.manifest import validate
from study_app.models import Study
from study_app.studies import create_study, write_planned_sessions
from tests.test_organizer import login

OWNER = "ann@example.org"
PASSWORD = "correct-horse"


def owned_demo_study(app: Flask, manifest: Path, *others: str) -> Flask:
    """Create ``OWNER`` (and ``others``) and the demo study owned by ``OWNER``."""
    with app.app_context(), db.transaction(app) as s:
        for email in (OWNER, *others):
            accounts.create_organizer(s, email, PASSWORD)
    result = app.test_cli_runner().invoke(args=["create-study", str(manifest), "--organizer", OWNER])
    assert result.exit_code == 0, result.output
    livestats.clear()  # analysis results are cached per process; each test starts afresh
    return app


def planned_demo_study(app: Flask, manifest: Path) -> Flask:
    """``OWNER`` and the demo study (balanced) with its sessions planned ahead, for :func:`fill`.

    Studies no longer plan sessions (they are built when a rater starts one); filling a study
    with simulated votes needs the legacy plan, written as the demo's simulated study writes it
    (``plan_sessions=True``, the active-selection fields left out).
    """
    raw = yaml.safe_load(manifest.read_text())
    raw["design"] = {k: v for k, v in raw["design"].items() if k not in ACTIVE_ONLY}
    with app.app_context(), db.transaction(app) as s:
        owner = accounts.create_organizer(s, OWNER, PASSWORD)
        create_study(s, validate(raw, manifest), organizer_id=owner.id, plan_sessions=True)
    livestats.clear()  # analysis results are cached per process; each test starts afresh
    return app


def fill(app: Flask, n_raters: int, seed: int) -> int:
    """Answer every planned trial of the (only) study with simulated votes."""
    with app.app_context(), db.transaction(app) as s:
        return fill_with_simulated_votes(s, s.scalar(select(Study)), n_raters=n_raters, seed=seed)


def client_of(app: Flask, email: str = OWNER) -> FlaskClient:
    client = app.test_client()
    login(client, email, PASSWORD)
    return client


def fill_ratings(db_session, study, n_raters: int = 12, seed: int = 11) -> int:
    """Answer every planned trial of a ratings (acr5) study with votes from ``analysis.simulate``.

    Sessions go round-robin to the simulated raters; each main trial takes that rater's next
    simulated score for the trial's condition, gold answers its expected score, a repeat echoes
    the first showing. Returns the number of responses written.
    """
    import random
    from datetime import timedelta

    from analysis import simulate
    from study_app.demo.builder import SIMULATED_TRUTH
    from study_app.models import Rater, Response, utcnow

    if not study.sessions:  # sessions are built when raters arrive: answer the plan they would have had
        write_planned_sessions(db_session, study)
    names = [c.key for c in study.conditions]
    truth = simulate.RatingsTruth(len(names), true_scores=[2 * SIMULATED_TRUTH.get(n, 0.0) for n in names])
    sim = simulate.simulate_ratings(truth, simulate.RatingsPanel(n_raters),
                                    simulate.RatingsDesign(len(study.contents), method=study.method), seed=seed)
    to_sim = dict(zip(names, simulate.condition_names(len(names)), strict=True))
    pools: dict[tuple[str, str], list[int]] = {}
    for r, c, score in sim.votes[["rater", "cond", "score"]].itertuples(index=False):
        pools.setdefault((r, c), []).append(int(score))
    raters = [Rater(study_id=study.id, panel="prolific", panel_id=f"sim-{r}") for r in sim.raters["rater"]]
    db_session.add_all(raters)
    db_session.flush()
    rng, now, count = random.Random(seed), utcnow(), 0
    for i, sess in enumerate(study.sessions):
        k = i % n_raters
        sim_rater = sim.raters["rater"].iloc[k]
        t = start = now - timedelta(hours=10) + timedelta(seconds=rng.uniform(0, 9 * 3600))
        given: dict[int, int] = {}
        for trial in sess.trials:
            if trial.gold_expected is not None:
                score = trial.gold_expected
            elif trial.repeat_of_id in given:
                score = given[trial.repeat_of_id]
            else:
                pool = pools.get((sim_rater, to_sim[trial.stimulus_a.condition.key])) or [3]
                score = pool.pop() if len(pool) > 1 else pool[0]
            given[trial.id] = score
            t += timedelta(seconds=rng.uniform(6, 14))
            db_session.add(Response(trial_id=trial.id, value=score, answered_at=t, watch_ms=5000, plays=1,
                                    stalls=0, answer_ms=rng.randint(900, 4000)))
            count += 1
        sess.rater_id, sess.status, sess.panel_session_id = raters[k].id, "completed", f"sess-{i}"
        sess.started_at, sess.completed_at = start, t
    return count
