"""Faults under load: a gunicorn worker killed, then the master, then PostgreSQL restarted.

The simulated raters of ``benchmarks/load.py`` (a dozen, thinking well under a second, two slow
media readers) vote against ``panelrank serve`` on PostgreSQL throughout. A vote is retried with
backoff until acknowledged, as the study page does. Afterwards every acknowledged vote is in the
database with the answer sent, none twice, and the server came back each time by itself or by a
plain ``panelrank serve`` — the pid file the killed master left behind does not block it.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks import load
from tests.pg_support import PgCluster, PgUnavailable, start_cluster

# In the browser tests' xdist group: this load saturates both cores, and the e2e tests measure
# playback timing, so the two never run at the same time.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("e2e")]

RATERS, READERS = 12, 2
THINK = (0.2, 0.6)
BUDGET_S = 240  # the load runs until the test stops it; this only bounds a hung run


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A cluster of this test's own: it gets restarted."""
    try:
        pg = start_cluster()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield pg
    finally:
        pg.remove()


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _progress(run: load.Run, more: int = 15, timeout: float = 60) -> None:
    """Wait until ``more`` further votes are acknowledged: the server is taking votes again."""
    start = len(run.stats.ack_times)
    _wait_for(f"{more} more acknowledged votes", lambda: len(run.stats.ack_times) >= start + more, timeout)


def _walks_in(run: load.Run, pid: str) -> bool:
    browser = load.Browser(run.host, run.port, load.Stats())
    try:
        load.walk_in(browser, f"{pid}{time.monotonic_ns()}")
        return True
    except (load.HTTPError, *load.OVERLOAD):
        return False
    finally:
        browser.close()


def test_acknowledged_votes_survive_kills_and_a_database_restart(
        cluster: PgCluster, demo_clips: Path, tmp_path: Path) -> None:
    url, secret, instance = cluster.create_database(), secrets.token_hex(32), tmp_path / "instance"
    load.create_study(url, instance, demo_clips, load.sessions_needed(RATERS, BUDGET_S, THINK), secret)
    port, pidfile, log = load.free_port(), instance / "panelrank.pid", tmp_path / "serve.log"
    args, env = load.serve_args(port, pidfile, workers=2, threads=8), load.server_env(url, instance, secret)
    server = load.start(args, env, port, pidfile, log)
    run = load.Run("127.0.0.1", port, load.Stats(), threading.Event(), THINK, read_rate=8192, patience=90)
    driver = threading.Thread(target=load.drive, args=(run, RATERS, READERS, BUDGET_S), daemon=True)
    driver.start()
    try:
        _progress(run, more=30)

        # A worker killed mid-load: the master forks another, the raters' retries carry on.
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        _wait_for("a replacement worker", lambda: len(server.workers()) == 2 and victim not in server.workers())
        _progress(run)

        # The master killed: its workers die with it and free the port; a plain restart over the stale pid file.
        workers = server.workers()
        os.kill(server.master, signal.SIGKILL)
        server.proc.wait(10)
        _wait_for("the orphaned workers to exit", lambda: not load.alive(workers), timeout=15)
        assert pidfile.exists()  # left behind by the killed master
        server = load.start(args, env, port, pidfile, log)
        _progress(run)

        # PostgreSQL crashes and comes back: the same server takes votes again without being touched.
        cluster.restart("immediate")
        _progress(run, timeout=90)
        _wait_for("a new rater to get in", lambda: _walks_in(run, "newcomer"))
    finally:
        run.stop.set()
        driver.join(run.patience + 70)
        load.stop(server)

    counts, answers = load.stored_votes(url)
    lost = {key: answer for key, answer in run.stats.acked.items() if answers.get(key) != answer}
    assert lost == {}
    assert [key for key, n in counts.items() if n > 1] == []
    assert [key for key in counts if key not in run.stats.sent] == []
    assert len(run.stats.acked) >= 30 + 3 * 15
