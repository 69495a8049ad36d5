"""Load benchmark: simulated raters against ``panelrank serve`` on PostgreSQL and SQLite, on loopback.

Each simulated rater goes the whole way a browser does — study link (a Prolific id, so the votes
can be found again) → consent → screen check → study page → session plan → training done →
trials, thinking 5–15 s before each vote — and starts over as a new rater when a session is
done. Meanwhile 20 slow media readers each read clips at a few KB/s (small receive buffer, so
the server really waits on them). Afterwards every acknowledged vote is looked up in the
database. Printed per target: acknowledged votes/s (sustained: after the first think time, when
every rater is in), p50/p99 vote latency, lost votes (acknowledged, not stored with that
value), duplicated votes (more than one stored answer to one trial, or stored answers never
sent), 5xx answers and other errors. The ceiling is the same driver against a bare Flask
endpoint (``POST /vote`` answering ``{"ok": true}``, a clip for the slow readers) under the same
gunicorn settings.

    .venv/bin/python benchmarks/load.py                           # 200 raters × 5 min per target
    .venv/bin/python benchmarks/load.py --raters 40 --minutes 1   # a quick run
    .venv/bin/python benchmarks/load.py --targets sqlite --think-scale 0.1

All clients come from 127.0.0.1, where 200 raters would come from 200 addresses: the rater-entry
throttle is raised for the run (``PANELRANK_RATER_ENTRY_RATE_LIMIT``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.pg_support, when run as a script

from analysis.methods import METHODS  # noqa: E402

# A session of the demo design: 16 main trials, 3 repeats, 1 gold; 60 items (4 contents × 15 pairs).
TRIALS_PER_SESSION = 20
MAIN_PER_SESSION = 16
ITEMS = 60
CLIP = dict(width=480, height=270, seconds=2, fps=25)
SLUG = "load"
ANSWERS = (METHODS["pc5"].screen_low, METHODS["pc5"].screen_high)  # the buttons of the pc5 scale
BARE_APP = "benchmarks.load:bare_app()"
OVERLOAD = (http.client.HTTPException, OSError)  # a connection refused, reset or cut: retried like a browser


# --------------------------------------------------------------------------- the client side


@dataclass
class Stats:
    """What the driver saw, shared by every thread (one lock)."""

    acked: dict[tuple[str, int], int] = field(default_factory=dict)  # (panel id, trial) -> answer sent
    sent: set[tuple[str, int]] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    media_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, code: int) -> None:
        with self.lock:
            self.statuses[code] += 1

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1

    def ack(self, key: tuple[str, int], answer: int, latency: float) -> None:
        with self.lock:
            self.acked[key] = answer
            self.ack_times.append(time.monotonic())
            self.latencies.append(latency)


class HTTPError(Exception):
    """An answer the simulated browser did not expect."""


class Browser:
    """One rater's browser: a keep-alive connection and a cookie jar."""

    def __init__(self, host: str, port: int, stats: Stats) -> None:
        self.host, self.port, self.stats = host, port, stats
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                payload: object = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body, headers["Content-Type"] = urlencode(form), "application/x-www-form-urlencoded"
        elif payload is not None:
            body, headers["Content-Type"] = json.dumps(payload), "application/json"
        reused = self.conn is not None
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except OVERLOAD:
            self.close()
            if reused:  # the server closed an idle keep-alive connection: a browser reconnects and sends again
                return self.request(method, path, form, payload)
            raise
        if resp.will_close:
            self.close()
        for cookie in resp.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name] = value
        self.stats.status(resp.status)
        return resp.status, dict(resp.headers), data

    def expect(self, status: int, method: str, path: str, **kwargs: Any) -> tuple[dict[str, str], bytes]:
        got, headers, body = self.request(method, path, **kwargs)
        if got != status:
            raise HTTPError(f"{method} {path.split('?')[0]}: {got}")
        return headers, body

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Run:
    """One run's settings as the threads see them."""

    host: str
    port: int
    stats: Stats
    stop: threading.Event
    think: tuple[float, float]
    read_rate: int  # bytes/s of a slow reader
    patience: float = 30.0  # seconds a vote is retried (with backoff) before giving up, as the study page does
    bare: bool = False


def walk_in(b: Browser, pid: str) -> list[str]:
    """Study link → consent → screen check → study page → plan → training done; the session's clip URLs."""
    b.expect(302, "GET", f"/s/{SLUG}?" + urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "load", "SESSION_ID": pid}))
    _, page = b.expect(200, "GET", f"/s/{SLUG}/welcome")
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    if found is None:
        raise HTTPError("no form token on the consent page")
    b.expect(302, "POST", f"/s/{SLUG}/welcome", form={"consent": "yes", "csrf_token": found.group(1).decode()})
    b.expect(200, "GET", f"/s/{SLUG}/check")
    b.expect(200, "POST", f"/s/{SLUG}/api/environment", payload={"inner_w": 4000, "inner_h": 3000, "dpr": 1})
    b.expect(200, "GET", f"/s/{SLUG}/study")
    _, plan = b.expect(200, "GET", f"/s/{SLUG}/api/session")
    b.expect(200, "POST", f"/s/{SLUG}/api/training/done", payload={})
    media = sorted(json.loads(plan)["media"], key=lambda m: -(m["bytes"] or 0))
    return [m["url"] for m in media]


def vote(run: Run, b: Browser, path: str, key: tuple[str, int], answer: int) -> bool:
    """Send one vote until it is acknowledged (retrying like the study page); False when it never is.

    Its latency runs from the first try to the acknowledgement, as the rater waits it.
    """
    body = {"trial": key[1], "response": answer, "watch_ms": 6000, "answer_ms": 1200, "plays": 2}
    start, wait = time.monotonic(), 0.2
    with run.stats.lock:
        run.stats.sent.add(key)
    while True:
        try:
            status, _, data = b.request("POST", path, payload=body)
        except OVERLOAD as exc:
            run.stats.error(f"vote: {type(exc).__name__}")
            status, data = 0, b""
        if status == 200 and json.loads(data).get("ok"):
            run.stats.ack(key, answer, time.monotonic() - start)
            return True
        if 400 <= status < 500 or time.monotonic() > start + run.patience or run.stop.is_set():
            return False
        time.sleep(wait)
        wait = min(wait * 2, 5.0)


def rater(run: Run, index: int, rng: random.Random) -> None:
    """One simulated rater, a new panel id for each session, until the run stops."""
    if run.stop.wait(rng.uniform(0, run.think[1])):  # arrivals spread over the first think time
        return
    for k in range(1_000_000):
        if run.stop.is_set():
            return
        pid = f"r{index}s{k}"
        b = Browser(run.host, run.port, run.stats)
        try:
            session(run, b, pid, rng)
        except (HTTPError, *OVERLOAD) as exc:
            run.stats.error(f"{type(exc).__name__}: {exc}"[:80])
            run.stop.wait(1.0)  # then come back as someone new
        finally:
            b.close()


def session(run: Run, b: Browser, pid: str, rng: random.Random) -> None:
    if run.bare:
        for position in range(TRIALS_PER_SESSION):
            if run.stop.wait(rng.uniform(*run.think)):
                return
            vote(run, b, "/vote", (pid, position), rng.randint(*ANSWERS))
        return
    walk_in(b, pid)
    while True:
        _, data = b.expect(200, "GET", f"/s/{SLUG}/api/trial")
        trial = json.loads(data)
        if trial.get("done"):
            b.expect(200, "GET", f"/s/{SLUG}/done")
            return
        if run.stop.wait(rng.uniform(*run.think)):
            return
        if not vote(run, b, f"/s/{SLUG}/api/vote", (pid, trial["trial"]), rng.randint(*ANSWERS)):
            raise HTTPError("vote not acknowledged")


class SlowConnection(http.client.HTTPConnection):
    """A client with a 4 KB receive buffer: the server's send blocks until it reads."""

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def slow_reader(run: Run, index: int) -> None:
    """Read clips at ``run.read_rate`` bytes/s, one after another, until the run stops."""
    b = Browser(run.host, run.port, run.stats)
    try:
        urls = ["/clip"] if run.bare else walk_in(b, f"slow{index}")
    except (HTTPError, *OVERLOAD) as exc:
        run.stats.error(f"slow reader: {exc}"[:80])
        return
    chunk = 1024
    for n in range(1_000_000):
        if run.stop.is_set():
            return
        conn = SlowConnection(run.host, run.port, timeout=60)
        try:
            # The largest clips: those outlast the socket buffers, so the server really waits on this reader.
            url = urls[n % min(len(urls), 3)]
            conn.request("GET", url, headers={"Cookie": f"session={b.cookies.get('session', '')}"})
            resp = conn.getresponse()
            run.stats.status(resp.status)
            while not run.stop.is_set() and (data := resp.read(chunk)):
                with run.stats.lock:
                    run.stats.media_bytes += len(data)
                time.sleep(len(data) / run.read_rate)
        except OVERLOAD as exc:
            run.stats.error(f"slow reader: {type(exc).__name__}")
            run.stop.wait(1.0)
        finally:
            conn.close()


def drive(run: Run, raters: int, readers: int, seconds: float, seed: int = 0) -> float:
    """Run the raters and readers for ``seconds``; returns when the measured window started."""
    threads = [threading.Thread(target=rater, args=(run, i, random.Random(seed * 100_003 + i)), daemon=True)
               for i in range(raters)]
    threads += [threading.Thread(target=slow_reader, args=(run, i), daemon=True) for i in range(readers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    run.stop.wait(seconds)
    run.stop.set()
    for t in threads:
        t.join(run.patience + 65)
    return started


# --------------------------------------------------------------------------- the server side


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    pidfile: Path
    args: list[str]
    env: dict[str, str]
    log: Path

    @property
    def master(self) -> int:
        return int(self.pidfile.read_text().strip())

    def workers(self) -> list[int]:
        """Pids of the master's live children (gunicorn workers)."""
        return [pid for pid, (state, ppid) in _processes().items() if ppid == self.master and state not in "ZX"]


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (state, parent pid) of every process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            out[int(stat.parent.name)] = (state, int(ppid))
    return out


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie nobody reaped is not)."""
    now = _processes()
    return [pid for pid in pids if pid in now and now[pid][0] not in "ZX"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(url: str, instance: Path, secret: str) -> dict[str, str]:
    return {**os.environ, "PANELRANK_DATABASE_URL": url, "PANELRANK_INSTANCE": str(instance),
            "PANELRANK_SECRET_KEY": secret, "PANELRANK_RATER_ENTRY_RATE_LIMIT": "100000 per minute",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def serve_args(port: int, pidfile: Path, workers: int | None, threads: int | None) -> list[str]:
    """``panelrank serve`` as an operator starts it; worker and thread counts passed through when given."""
    args = [str(Path(sys.executable).with_name("panelrank")), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--pid", str(pidfile)]
    if workers is not None:
        args += ["--workers", str(workers)]
    if threads is not None:
        args += ["--threads", str(threads)]
    return args


def start(args: list[str], env: dict[str, str], port: int, pidfile: Path, log: Path, timeout: float = 60) -> Server:
    """Start a server and wait until it answers on ``port`` and has written its own pid file."""
    stale = pidfile.read_text() if pidfile.exists() else None  # a crashed server's, left behind
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(proc, port, pidfile, args, env, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
        with suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            if pidfile.exists() and pidfile.read_text() != stale:
                return server
        time.sleep(0.2)
    stop(server)
    raise RuntimeError(f"server did not answer within {timeout} s; see {log}")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def bare_app() -> Any:
    """The ceiling: a Flask app doing nothing but parse a vote and answer, and serve one clip."""
    from flask import Flask, jsonify, request, send_file

    app = Flask("bare")
    clip = Path(os.environ["PANELRANK_BARE_CLIP"])

    @app.post("/vote")
    def bare_vote() -> Any:
        request.get_json()
        return jsonify({"ok": True})

    @app.get("/clip")
    def bare_clip() -> Any:
        return send_file(clip, mimetype="video/mp4")

    @app.get("/healthz")
    def bare_health() -> Any:
        return jsonify({"ok": True})

    return app


# --------------------------------------------------------------------------- the study


def make_clips(folder: Path) -> Path:
    from study_app.demo.clipset import generate_demo

    generate_demo(folder, contents=("c1", "c2", "c3", "c4"), **CLIP)
    return folder


def sessions_needed(raters: int, seconds: float, think: tuple[float, float]) -> int:
    """Sessions the raters could take at most: one in progress each, plus every one they can finish."""
    votes = seconds / max(sum(think) / 2, 0.05)
    return raters * (math.ceil(votes / TRIALS_PER_SESSION * 1.3) + 2)


def create_study(url: str, instance: Path, clip_dir: Path, sessions: int, secret: str) -> None:
    """Migrate the database and create the load study (pc5, the demo design, Prolific ids)."""
    from study_app import create_app, db, migrate
    from study_app.demo.builder import demo_manifest
    from study_app.manifest import validate
    from study_app.studies import create_study as write_study

    raw = demo_manifest(clip_dir)
    raw.update(slug=SLUG, name="load benchmark", votes_per_pair=math.ceil(sessions * MAIN_PER_SESSION / ITEMS),
               max_sessions_per_rater=1, panel={"name": "prolific", "completion_code": "LOAD1"})
    migrate.upgrade(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(instance), "SECRET_KEY": secret})
    with app.app_context(), db.transaction(app) as s:
        write_study(s, validate(raw, clip_dir / "manifest.yaml"))
    db.engine(app).dispose()


def stored_votes(url: str) -> tuple[Counter[tuple[str, int]], dict[tuple[str, int], int]]:
    """Every stored answer of the load study: count per (panel id, trial position), and its answer as sent."""
    from sqlalchemy import select

    from study_app.db import make_engine
    from study_app.models import Rater, Response, Session, Study, Trial

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Rater.panel_id, Trial.position, Response.value, Trial.a_left, Study.method)
                .select_from(Response).join(Trial, Response.trial_id == Trial.id)
                .join(Session, Trial.session_id == Session.id).join(Rater, Session.rater_id == Rater.id)
                .join(Study, Session.study_id == Study.id).where(Study.slug == SLUG)
            ).all()
    finally:
        engine.dispose()
    counts = Counter((pid, pos) for pid, pos, *_ in rows)
    answers = {(pid, pos): METHODS[method].to_screen(value, a_left) for pid, pos, value, a_left, method in rows}
    return counts, answers


# --------------------------------------------------------------------------- report


@dataclass
class Figures:
    target: str
    acked: int
    per_s: float
    p50_ms: float
    p99_ms: float
    lost: int | None
    duplicated: int | None
    five_xx: int
    errors: int
    media_kb_s: float

    def row(self) -> str:
        na = "n/a"
        return (f"{self.target:<12} {self.acked:>7} {self.per_s:>9.1f} {self.p50_ms:>8.1f} {self.p99_ms:>8.1f} "
                f"{na if self.lost is None else self.lost:>5} {na if self.duplicated is None else self.duplicated:>5} "
                f"{self.five_xx:>5} {self.errors:>6} {self.media_kb_s:>9.1f}")


HEADER = (f"{'target':<12} {'acked':>7} {'votes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'dup':>5} "
          f"{'5xx':>5} {'errors':>6} {'media KB/s':>9}")


def figures(target: str, stats: Stats, started: float, seconds: float, ramp: float,
            stored: tuple[Counter[tuple[str, int]], dict[tuple[str, int], int]] | None) -> Figures:
    window = [t for t in stats.ack_times if started + ramp <= t <= started + seconds]
    lat = sorted(stats.latencies) or [0.0]
    lost = duplicated = None
    if stored is not None:
        counts, answers = stored
        lost = sum(answers.get(key) != answer for key, answer in stats.acked.items())
        duplicated = sum(n - 1 for n in counts.values()) + sum(key not in stats.sent for key in counts)
    return Figures(target, len(stats.acked), len(window) / max(seconds - ramp, 1e-9),
                   1000 * statistics.median(lat), 1000 * lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)],
                   lost, duplicated, sum(n for code, n in stats.statuses.items() if code >= 500),
                   sum(stats.errors.values()), stats.media_bytes / 1024 / seconds)


# --------------------------------------------------------------------------- main


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'load.sqlite'}"
        return
    from tests.pg_support import start_cluster

    cluster = start_cluster()
    try:
        yield cluster.create_database()
    finally:
        cluster.remove()


def bench(kind: str, opts: argparse.Namespace, clip_dir: Path, tmp: Path) -> Figures:
    seconds, think = opts.minutes * 60, (5 * opts.think_scale, 15 * opts.think_scale)
    secret, port, log = secrets.token_hex(32), free_port(), tmp / f"{kind}.log"
    pidfile = tmp / f"{kind}.pid"
    with database(kind, tmp) if kind != "bare" else nullcontext("") as url:
        if kind == "bare":
            biggest = max(clip_dir.rglob("*.mp4"), key=lambda f: f.stat().st_size)
            env = {**server_env("sqlite://", tmp, secret), "PANELRANK_BARE_CLIP": str(biggest)}
            from study_app.cli.study import gunicorn_args

            args = [*gunicorn_args("127.0.0.1", port, opts.workers or 2, opts.threads or 16, pidfile)[:-1], BARE_APP]
        else:
            create_study(url, tmp / kind, clip_dir, sessions_needed(opts.raters, seconds, think), secret)
            env = server_env(url, tmp / kind, secret)
            args = serve_args(port, pidfile, opts.workers, opts.threads)
        server = start(args, env, port, pidfile, log)
        stats = Stats()
        run = Run("127.0.0.1", port, stats, threading.Event(), think, opts.read_rate, bare=kind == "bare")
        try:
            started = drive(run, opts.raters, opts.readers, seconds, opts.seed)
        finally:
            stop(server)
        stored = None if kind == "bare" else stored_votes(url)
    if stats.errors:
        print(f"  {kind} errors: {dict(stats.errors.most_common(5))}", file=sys.stderr)
    if any(code >= 500 for code in stats.statuses):  # the server's own words, before the temp dir goes
        causes = Counter(line for line in log.read_text(errors="replace").splitlines() if "Error: " in line)
        print(f"  {kind} server errors: {dict(causes.most_common(3))}", file=sys.stderr)
    return figures(kind, stats, started, seconds, think[1], stored)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raters", type=int, default=200)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--readers", type=int, default=20, help="slow media readers")
    p.add_argument("--read-rate", type=int, default=4096, help="bytes/s of each slow reader")
    p.add_argument("--think-scale", type=float, default=1.0, help="scales the 5–15 s think time")
    p.add_argument("--workers", type=int, help="passed to panelrank serve (default: its own)")
    p.add_argument("--threads", type=int, help="passed to panelrank serve (default: its own)")
    p.add_argument("--targets", default="postgresql,sqlite,bare")
    p.add_argument("--seed", type=int, default=0)
    opts = p.parse_args(argv)
    print(f"{opts.raters} raters × {opts.minutes:g} min, think {5 * opts.think_scale:g}–{15 * opts.think_scale:g} s, "
          f"{opts.readers} slow readers at {opts.read_rate / 1024:g} KB/s, serve workers={opts.workers or 'default'} "
          f"threads={opts.threads or 'default'}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="panelrank-load-") as name:
        tmp = Path(name)
        clip_dir = make_clips(tmp / "clips")
        print(HEADER, flush=True)
        for kind in opts.targets.split(","):
            print(bench(kind, opts, clip_dir, tmp).row(), flush=True)


if __name__ == "__main__":
    main()
