"""Issue 6's "Done when", for real: build the demo as ``panelrank demo --no-serve --small`` does,
log in with the printed credentials, watch the live demo study's progress in one tab while
voting in another (same browser), then download the simulated study's ranking with its CIs.

No vote is written behind the browser's back: the one that moves the progress page is the
rater's keyboard answer to their first real trial.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from flask import Flask
from sqlalchemy import func, select

from study_app import create_app, db
from study_app.demo.builder import SIMULATED_SLUG
from study_app.models import Response, Session, Study, Trial
from tests.e2e.rater_steps import UNLOCK_PROBE, answer, enter, practice, preload_and_start, trial_shown
from tests.live_server import serve

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

# The demo study's environment gate asks for at least 1280×720; its tiny clips fit in it.
VIEWPORT = {"width": 1280, "height": 720}
TIMEOUT_MS = 20_000
REFRESH_WAIT_MS = 15_000  # the progress page polls every 5 s


@dataclass
class Demo:
    base: str
    app: Flask
    rater_path: str
    email: str
    password: str


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``panelrank demo --no-serve --small`` on a fresh instance folder, then served on a free port."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'panelrank.sqlite'}",
                      "INSTANCE_DIR": str(tmp_path / "instance"), "SECRET_KEY": "e2e-secret"})
    result = app.test_cli_runner().invoke(args=["demo", "--no-serve", "--small"])
    assert result.exit_code == 0, result.output
    login = re.search(r"organizer login:\s*(\S+) / (\S+)", result.output)
    rater = re.search(r"rater URL:\s*(\S+)", result.output)
    assert login and rater, result.output
    with serve(app) as base:
        # The printed URLs name the port gunicorn would use; the test server has its own.
        yield Demo(base, app, urlsplit(rater.group(1)).path, login.group(1), login.group(2))


def _main_votes(app: Flask, slug: str) -> int:
    with app.app_context(), db.transaction(app) as s:
        return s.scalar(select(func.count(Response.id)).join(Trial).join(Session).join(Study)
                        .where(Study.slug == slug, Trial.kind == "main"))


def _first_trial_kind(app: Flask, slug: str) -> str:
    """The kind of the first trial of the (only) session a rater has started in ``slug``."""
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study).where(Study.slug == slug))
        sess = s.scalar(select(Session).where(Session.study_id == study.id, Session.rater_id.is_not(None)))
        return min(sess.trials, key=lambda t: t.position).kind


def test_watch_progress_while_voting_then_download_ranking(demo: Demo, browser: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []

    # Tab 1: the organizer logs in with the printed credentials and opens the live study's progress.
    organizer = context.new_page()
    organizer.on("pageerror", lambda exc: errors.append(f"organizer: {exc}"))
    organizer.goto(f"{demo.base}/organizer/login")
    organizer.fill("#email", demo.email)
    organizer.fill("#password", demo.password)
    organizer.click("button[type=submit]")
    organizer.wait_for_url(f"{demo.base}/organizer/")
    organizer.click("a[href$='/organizer/studies/demo']")
    organizer.wait_for_selector("table.heatmap")
    assert organizer.get_attribute("#progress", "data-votes") == "0"
    organizer.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

    # Tab 2, same browser: a rater opens the printed URL and answers the first real trial by keyboard.
    rater = context.new_page()
    rater.on("pageerror", lambda exc: errors.append(f"rater: {exc}"))
    rater.add_init_script(UNLOCK_PROBE)
    slug = demo.rater_path.rsplit("/", 1)[-1]
    enter(rater, demo.base, slug)
    preload_and_start(rater)
    practice(rater, "2", reason=True)
    n = trial_shown(rater, "1")
    assert n == 16 + 3 + 1  # the demo's sessions: 16 main trials, 3 repeats, 1 gold
    assert _first_trial_kind(demo.app, slug) == "main", "the first trial is gold: the count would not move"
    answer(rater, "1", "4", reason=True)
    trial_shown(rater, "2")  # the answer was accepted: the next trial is up
    assert _main_votes(demo.app, slug) == 1
    rater.screenshot(path=str(tmp_path / "tab2-rater.png"))

    # Tab 1 follows without a reload.
    organizer.wait_for_function("document.getElementById('progress').dataset.votes === '1'",
                                timeout=REFRESH_WAIT_MS)
    assert organizer.evaluate("window.__sameDocument === true")
    organizer.screenshot(path=str(tmp_path / "tab1-progress.png"), full_page=True)

    # Then the simulated study's leaderboard, and its ranking with confidence intervals.
    organizer.goto(f"{demo.base}/organizer/studies/{SIMULATED_SLUG}")
    organizer.click("nav.subnav >> text=Leaderboard")
    organizer.wait_for_selector("#ranking-table tbody tr")
    organizer.wait_for_selector("#interval-plot .main-svg")
    organizer.screenshot(path=str(tmp_path / "tab1-leaderboard.png"), full_page=True)
    with organizer.expect_download() as info:
        organizer.click("a:text-is('ranking.csv')")
    info.value.save_as(tmp_path / "ranking.csv")
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    conditions = {"source", "enhanced", "dark", "noisy", "blurred", "compressed"}
    assert len(ranking) == len(conditions) and set(ranking["condition"]) == conditions
    assert ranking[["score", "ci_low", "ci_high"]].notna().all().all(), ranking
    assert ((ranking["ci_low"] <= ranking["score"]) & (ranking["score"] <= ranking["ci_high"])).all(), ranking
    assert (ranking["ci_low"] < ranking["ci_high"]).all(), ranking  # real intervals, not points

    assert errors == []
    context.close()
    print(f"\nbrowser part took {time.monotonic() - started:.1f} s")
