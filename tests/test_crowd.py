"""The study completes whatever a crowd does: 300 simulated raters over HTTP against ``panelrank serve``.

20% abandon mid-session (their sessions expire after ``session_timeout_minutes``: 24 s here), 10%
click at random and fail gold (the live gold check screens them out), 30% come back for a second
session; the rest answer carefully once (tests/crowd_support.py describes each kind). Run on
PostgreSQL with 4 gunicorn workers and on SQLite with 2 (the ``panelrank serve`` default; SQLite
has one writer at a time, so more processes only queue on its lock). Afterwards, from the
database: every item has exactly its target of valid votes, each from a different rater; no
unanswered trial of an abandoned session is missing from its item's count; no rater was shown an
item twice outside the planned repeats (nor a main item they had as gold before); an abandoner's
vote sent after the timeout is refused; no 5xx. The figures of each run are printed (``-s``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from study_app.demo.clipset import generate_demo
from tests import crowd_support as crowd
from tests.pg_support import PgCluster

# In the browser tests' xdist group, like the fault test: this saturates both cores, and the e2e
# tests measure playback timing.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

CLIP = dict(width=160, height=90, seconds=1, fps=10)


@pytest.fixture(scope="module")
def crowd_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo clips of the crowd study's contents, as small as the app accepts."""
    out = tmp_path_factory.mktemp("crowd-clips")
    generate_demo(out, contents=crowd.StudySpec().contents, **CLIP)
    return out


def _run(url: str, tmp_path: Path, clips: Path, workers: int, label: str) -> None:
    study, spec = crowd.StudySpec(), crowd.CrowdSpec()
    result, verdict = crowd.run_crowd(url, tmp_path, clips, study, spec, workers=workers)
    print("\n" + crowd.report(label, verdict))
    assert verdict.problems == {}
    outcomes = verdict.figures["sessions (client)"]
    assert outcomes.get("error", 0) == 0, verdict.figures["client errors"]
    # Every kind of rater really happened: each abandoned session expired, each random clicker who finished a
    # session (all have gold in it) was screened out, and every vote sent after the timeout was refused.
    assert outcomes.get("abandoned", 0) > 0 and verdict.figures["expired sessions"] >= outcomes["abandoned"]
    clickers = {log.pid for log in result.tally.sessions if log.kind == "random" and log.outcome == "completed"}
    assert clickers and verdict.figures["screened-out raters"] == len(clickers)
    assert set(verdict.figures["late votes (status)"]) == {410}
    assert sum(1 for log in result.tally.sessions if log.number == 2 and log.outcome == "completed") > 0


def test_crowd_on_sqlite(crowd_clips: Path, tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 'crowd.sqlite'}", tmp_path, crowd_clips, workers=2, label="SQLite, 2 workers")


@pytest.mark.postgres
def test_crowd_on_postgresql(pg_cluster: PgCluster, crowd_clips: Path, tmp_path: Path) -> None:
    url = pg_cluster.create_database()
    try:
        _run(url, tmp_path, crowd_clips, workers=4, label="PostgreSQL, 4 workers")
    finally:
        pg_cluster.drop_database(url)
