"""The organizer's path in a real Chromium: log in, watch progress update live, read the
leaderboard, download the votes — on a study filled with simulated votes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from sqlalchemy import func, select

from study_app import accounts, db
from study_app.demo.builder import fill_with_simulated_votes
from study_app.manifest import load
from study_app.models import Rater, Response, Session, Study, Trial
from study_app.studies import create_study
from tests.e2e.conftest import demo_app
from tests.live_server import serve

pytestmark = pytest.mark.e2e
PASSWORD = "organizer-pass"


@dataclass
class Console:
    url: str
    app: Flask


@pytest.fixture(scope="module")
def console(demo_clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    app, manifest = demo_app(tmp_path_factory.mktemp("console"), demo_clips)
    with app.app_context(), db.transaction(app) as s:
        owner = accounts.create_organizer(s, "org@example.org", PASSWORD)
        study = create_study(s, load(manifest), organizer_id=owner.id)
        fill_with_simulated_votes(s, study, n_raters=40)
    with serve(app) as base:
        yield Console(base, app)


def _responses(app: Flask) -> int:
    with app.app_context(), db.transaction(app) as s:
        return s.scalar(select(func.count(Response.id)))


def _main_votes(app: Flask) -> int:
    """What the progress page counts: answers to main trials (not repeats or gold)."""
    with app.app_context(), db.transaction(app) as s:
        return s.scalar(select(func.count(Response.id)).join(Trial).where(Trial.kind == "main"))


def _take_back_one_vote(app: Flask) -> tuple[int, dict]:
    with app.app_context(), db.transaction(app) as s:
        response = s.scalar(select(Response).join(Trial).where(Trial.kind == "main")
                            .order_by(Response.id.desc()).limit(1))
        kept = {k: getattr(response, k) for k in ("trial_id", "value", "reason", "watch_ms", "plays", "stalls")}
        s.delete(response)
    return _main_votes(app), kept


def test_organizer_watches_progress_and_downloads_votes(console: Console, browser, tmp_path: Path) -> None:
    before, vote = _take_back_one_vote(console.app)
    context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{console.url}/organizer/login")
    page.fill("#email", "org@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/organizer/")
    page.click("text=panelrank demo")
    page.wait_for_selector("table.heatmap")
    assert page.get_attribute("#progress", "data-votes") == str(before)
    page.screenshot(path=str(tmp_path / "progress.png"), full_page=True)

    # A vote arrives while the organizer watches: the page updates without a reload.
    with console.app.app_context(), db.transaction(console.app) as s:
        s.add(Response(**vote))
    page.wait_for_function(f"document.getElementById('progress').dataset.votes === '{before + 1}'",
                           timeout=15_000)
    assert "votes in the last 24 hours" in page.inner_text("#pace-summary")
    # Paused from elsewhere (another tab, another admin): the badge follows without a reload.
    _set_status(console.app, "paused")
    page.wait_for_function("document.getElementById('status-badge').textContent === 'paused'", timeout=15_000)
    _set_status(console.app, "open")

    page.click("text=Raters")
    page.wait_for_selector("#raters-table tbody tr")
    with console.app.app_context(), db.transaction(console.app) as s:
        raters = s.scalar(select(func.count(Rater.id)))
    assert raters > 0 and page.locator("#raters-table tbody tr").count() == raters
    page.screenshot(path=str(tmp_path / "raters.png"), full_page=True)

    page.click("text=Leaderboard")
    page.wait_for_selector("#ranking-table tbody tr")
    assert page.locator("#ranking-table tbody tr").count() == 6
    page.wait_for_selector("#interval-plot .main-svg")
    first = page.locator("#ranking-table tbody tr").first.locator("td").nth(1).inner_text()
    assert first.split()[0] in {"enhanced", "source"}
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)

    with page.expect_download() as info:
        page.click("a:text-is('votes.csv')")
    path = tmp_path / "votes.csv"
    info.value.save_as(path)
    assert len(pd.read_csv(path)) == _responses(console.app)
    with page.expect_download() as info:
        page.click("a:text-is('ranking.csv')")
    info.value.save_as(tmp_path / "ranking.csv")
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert list(ranking.columns[:7]) == ["rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by"]

    # The wide screen: the same pages, nothing broken.
    page.set_viewport_size({"width": 1920, "height": 1080})
    for name in ("progress", "raters", "leaderboard"):
        link = {"progress": "Progress & settings", "raters": "Raters", "leaderboard": "Leaderboard & exports"}[name]
        page.click(f"nav.subnav >> text={link}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(tmp_path / f"{name}-1920.png"), full_page=True)
    assert errors == []
    context.close()


def _set_status(app: Flask, status: str) -> None:
    with app.app_context(), db.transaction(app) as s:
        s.scalar(select(Study)).status = status


def test_every_planned_trial_was_answered_by_the_simulation(console: Console) -> None:
    with console.app.app_context(), db.transaction(console.app) as s:
        study = s.scalar(select(Study))
        trials = s.scalar(select(func.count(Trial.id)).join(Session).where(Session.study_id == study.id))
    assert _responses(console.app) == trials
