"""Crowd benchmark: the crowd simulation of ``tests/test_crowd.py`` with its knobs, figures printed.

A crowd of simulated raters (abandoning, random-clicking, returning, careful: see
``tests/crowd_support.py``) fills a pairwise study over HTTP against ``panelrank serve``. Printed
per target: raters by kind, sessions by outcome (as the raters saw them and as stored), expired
sessions, votes, votes collected again, screened-out raters, request latencies (p50/p99 per
request), 5xx, duration — and every check of the test that does not hold.

    .venv/bin/python benchmarks/crowd.py                              # 300 raters, PostgreSQL ×4 and SQLite ×2
    .venv/bin/python benchmarks/crowd.py --targets sqlite --workers 1 --raters 150 --closers 30
    .venv/bin/python benchmarks/crowd.py --timeout-minutes 0.05       # 3 s: careful raters expire under load
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.crowd_support, when run as a script

from tests import crowd_support as crowd  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults, study = crowd.CrowdSpec(), crowd.StudySpec()
    p.add_argument("--raters", type=int, default=defaults.raters)
    p.add_argument("--closers", type=int, default=defaults.closers,
                   help="careful first-timers held back until the abandoned sessions expired")
    p.add_argument("--arrive-s", type=float, default=defaults.arrive_s, help="arrivals spread over this many s")
    p.add_argument("--timeout-minutes", type=float, default=study.timeout_minutes,
                   help="the study's session_timeout_minutes")
    p.add_argument("--fill", type=float, default=study.fill, help="target as a share of the expected valid votes")
    p.add_argument("--targets", default="postgresql,sqlite")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: 4 on PostgreSQL, 2 on SQLite)")
    p.add_argument("--seed", type=int, default=0)
    opts = p.parse_args(argv)
    spec = crowd.CrowdSpec(raters=opts.raters, closers=opts.closers, arrive_s=opts.arrive_s, seed=opts.seed)
    study = crowd.StudySpec(timeout_minutes=opts.timeout_minutes, fill=opts.fill)
    failed = False
    with tempfile.TemporaryDirectory(prefix="panelrank-crowd-") as name:
        tmp = Path(name)
        from study_app.demo.clipset import generate_demo

        clips = tmp / "clips"
        generate_demo(clips, contents=study.contents, width=160, height=90, seconds=1, fps=10)
        for kind in opts.targets.split(","):
            workers = opts.workers or (4 if kind == "postgresql" else 2)
            run_dir = tmp / kind
            run_dir.mkdir()
            with load_database(kind, run_dir) as url:
                _, verdict = crowd.run_crowd(url, run_dir, clips, study, spec, workers=workers)
            print(crowd.report(f"{kind}, {workers} workers", verdict), flush=True)
            failed |= bool(verdict.problems)
    return 1 if failed else 0


def load_database(kind: str, tmp: Path) -> AbstractContextManager[str]:
    """The load benchmark's database for ``kind`` (a throwaway PostgreSQL cluster, or a SQLite file)."""
    from benchmarks.load import database

    if kind not in ("postgresql", "sqlite"):
        raise SystemExit(f"unknown target {kind!r}: postgresql or sqlite")
    return database(kind, tmp)


if __name__ == "__main__":
    sys.exit(main())
