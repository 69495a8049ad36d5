"""Building the demo: generated clips, the demo studies, an organizer login. Reruns reuse what exists."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from flask import Flask
from sqlalchemy.orm import Session as DBSession

from analysis import methods, simulate
from study_app import accounts, db, migrate
from study_app.demo.clipset import generate_demo
from study_app.manifest import validate
from study_app.models import Rater, Response, Study, Trial, utcnow
from study_app.studies import create_study, get_study, write_planned_sessions

#: Package data (in the wheel too): the demo is a command of the installed tool, not of a source checkout.
DEMO_MANIFEST = Path(__file__).with_name("manifest.yaml")
DEMO_EMAIL = "demo@panelrank.local"
SIMULATED_SLUG = "demo-simulated"
#: Manifest design fields of active selection, left out of the simulated (balanced) study.
ACTIVE_ONLY = ("selection", "vote_budget", "alpha")
#: One session each (a rater without a session would be listed on the raters page with no votes).
SIMULATED_RATERS = 40
#: Main trials per session of the simulated study: the demo's 480 main trials make exactly one
#: session for each of the 40 simulated raters.
SIMULATED_TRIALS_PER_SESSION = 12
SIMULATED_NAME = f"panelrank demo — PRE-FILLED WITH SIMULATED VOTES ({SIMULATED_RATERS} raters, not real people)"
#: True log-strengths behind the simulated votes, following :data:`study_app.demo.conditions.EXPECTED_ORDER`.
SIMULATED_TRUTH = {"enhanced": 0.6, "source": 0.45, "noisy": -0.1, "blurred": -0.35, "dark": -0.8,
                   "compressed": -1.4}


@dataclass(frozen=True)
class DemoInfo:
    slug: str
    email: str
    password: str


def demo_manifest(clips_dir: Path) -> dict[str, Any]:
    """The example manifest with its stimulus paths pointing into ``clips_dir``."""
    raw = yaml.safe_load(DEMO_MANIFEST.read_text(encoding="utf-8"))
    for s in raw["stimuli"]:
        s["path"] = str(clips_dir / s["content"] / f"{s['condition']}.mp4")
    return raw


def build(app: Flask, small: bool = False, echo: Callable[[str], Any] = print) -> DemoInfo:
    """Generate clips, migrate, create the demo organizer and study (each only if missing)."""
    inst = Path(app.config["INSTANCE_DIR"])
    inst.mkdir(parents=True, exist_ok=True)
    clips_dir = inst / ("demo-clips-small" if small else "demo-clips")
    raw = demo_manifest(clips_dir)
    size = dict(width=320, height=180, seconds=1) if small else dict(width=1280, height=720, seconds=5)
    echo(f"clips: {clips_dir}")
    # Full-size clips take minutes on a small machine: show progress (tests use the quiet tiny ones).
    generate_demo(clips_dir, contents=tuple(raw["contents"]), fps=25, verbose=not small, **size)
    migrate.upgrade(app.config["DATABASE_URL"])
    password = _password(inst)
    with app.app_context(), db.transaction(app) as session:
        organizer = accounts.find_organizer(session, DEMO_EMAIL)
        if organizer is None:
            organizer = accounts.create_organizer(session, DEMO_EMAIL, password, role="admin")
        elif accounts.authenticate(session, DEMO_EMAIL, password) is None:
            # The saved password was lost or edited: make the printed login true again.
            accounts.set_password(organizer, password)
        if get_study(session, raw["slug"]) is None:
            vm = validate(raw, DEMO_MANIFEST)
            create_study(session, vm, organizer_id=organizer.id)
            echo(f"created study '{raw['slug']}'")
        else:
            echo(f"study '{raw['slug']}' exists; reusing it")
        if get_study(session, SIMULATED_SLUG) is None:
            # Balanced: every item gets its votes_per_pair simulated votes, which the fill below answers.
            sim_raw = {**raw, "slug": SIMULATED_SLUG, "name": SIMULATED_NAME, "max_sessions_per_rater": 3,
                       "trials_per_session": SIMULATED_TRIALS_PER_SESSION,
                       "design": {k: v for k, v in raw["design"].items() if k not in ACTIVE_ONLY}}
            study = create_study(session, validate(sim_raw, DEMO_MANIFEST), organizer_id=organizer.id,
                                 plan_sessions=True)
            n = fill_with_simulated_votes(session, study, n_raters=SIMULATED_RATERS)
            study.status = "closed"  # nobody should vote in a study of simulated raters
            echo(f"created study '{SIMULATED_SLUG}' with {n} simulated votes")
    return DemoInfo(slug=raw["slug"], email=DEMO_EMAIL, password=password)


def fill_with_simulated_votes(db: DBSession, study: Study, n_raters: int = 40, seed: int = 7,
                              now: datetime | None = None) -> int:
    """Answer every planned trial of ``study`` with votes drawn by :mod:`analysis.simulate`.

    A study without sessions (they are built when raters arrive) first gets its seed's plan
    (:func:`study_app.studies.write_planned_sessions`).

    Sessions go round-robin to ``n_raters`` simulated raters (only those who get a session are
    stored, so no rater is listed without votes); each trial takes the next
    simulated vote of that rater for the same condition pair (oriented to the trial's A/B),
    so rater traits (noise, spamming) carry over. Answers are spread over the last 20 hours.
    """
    if not study.sessions:  # sessions are built when raters arrive: answer the plan they would have had
        write_planned_sessions(db, study)
    names = [c.key for c in study.conditions]
    sim_names = simulate.condition_names(len(names))
    to_sim = dict(zip(names, sim_names, strict=True))
    truth = [SIMULATED_TRUTH.get(n, 0.0) for n in names]
    planned = sum(len(s.trials) for s in study.sessions)
    sim = simulate.simulate_pairwise(
        simulate.PairwiseTruth(n_conditions=len(names), true_scores=truth, tie_rate=0.2),
        simulate.PairwisePanel(n_raters=n_raters, rater_noise=0.25, spammer_fraction=0.05),
        simulate.PairwiseDesign(n_contents=len(study.contents), n_votes=3 * planned, method=study.method), seed=seed,
    )
    pools = _vote_pools(sim.votes)
    used = sim.raters["rater"].iloc[:min(n_raters, len(study.sessions))]
    raters = [Rater(study_id=study.id, panel="none", panel_id=f"sim-{r}") for r in used]
    db.add_all(raters)
    db.flush()
    rng = random.Random(seed)
    now = now or utcnow()
    count = 0
    for i, sess in enumerate(study.sessions):
        k = i % n_raters
        start = now - timedelta(hours=20) + timedelta(seconds=rng.uniform(0, 19 * 3600))
        t = start
        sim_rater = sim.raters["rater"].iloc[k]
        honest = not bool(sim.raters["spammer"].iloc[k])
        given: dict[int, int] = {}  # trial id -> pref, so a repeat can echo its original
        for trial in sess.trials:
            a, b = to_sim[trial.stimulus_a.condition.key], to_sim[trial.stimulus_b.condition.key]
            pref, reason, watch = _next_vote(pools, sim_rater, a, b, rng)
            if honest:
                pref = _attentive(trial, pref, given, rng, methods.METHODS[study.method].high)
            given[trial.id] = pref
            t += timedelta(milliseconds=watch + rng.randint(1500, 6000))
            db.add(Response(trial_id=trial.id, value=pref, reason=reason, answered_at=t, watch_ms=watch,
                            plays=1, stalls=0, answer_ms=rng.randint(900, 5000)))
            count += 1
        sess.rater_id, sess.status = raters[k].id, "completed"
        sess.started_at, sess.completed_at = start, t
        sess.completion_code = study.manifest["panel"]["completion_code"]
    return count


def _attentive(trial: Trial, pref: int, given: dict[int, int], rng: random.Random, top: int) -> int:
    """An honest rater gets gold right and mostly repeats their earlier answer (spammers don't)."""
    if trial.gold_expected is not None:
        return trial.gold_expected if rng.random() > 0.05 else int(trial.gold_expected * 0.5)
    if trial.repeat_of_id is not None and trial.repeat_of_id in given:
        first = given[trial.repeat_of_id]
        return first if rng.random() < 0.8 else max(-top, min(top, first + rng.choice((-1, 1))))
    return pref


def _vote_pools(votes: pd.DataFrame) -> dict[tuple[str, str, str], list[tuple[int, str | None, int]]]:
    main = votes[votes["repeat_of"].isna() & votes["gold_expected"].isna()]
    pools: dict[tuple[str, str, str], list[tuple[int, str | None, int]]] = {}
    for r, a, b, pref, reason, watch in main[["rater", "cond_a", "cond_b", "pref", "reason", "watch_ms"]].itertuples(
        index=False
    ):
        pools.setdefault((r, a, b), []).append((int(pref), None if pd.isna(reason) else reason, int(watch)))
    return pools


def _next_vote(pools: dict, rater: str, a: str, b: str, rng: random.Random) -> tuple[int, str | None, int]:
    for key, sign in (((rater, a, b), 1), ((rater, b, a), -1)):
        if pools.get(key):
            pref, reason, watch = pools[key].pop()
            return sign * pref, reason, watch
    # This rater ran out of votes on the pair: borrow one from another rater.
    for (_, x, y), pool in pools.items():
        if pool and {x, y} == {a, b}:
            pref, reason, watch = pool.pop()
            return (pref if x == a else -pref), reason, watch
    return 0, None, rng.randint(2000, 6000)


def _password(inst: Path) -> str:
    # Kept in the instance folder so a rerun prints the same login.
    path = inst / "demo-organizer-password.txt"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(9)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password
