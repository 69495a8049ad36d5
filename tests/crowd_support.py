"""A crowd of simulated raters against ``panelrank serve``, and what the database says afterwards.

Shared by ``tests/test_crowd.py`` and ``benchmarks/crowd.py``; no pytest here. The HTTP side reuses
the simulated browser of ``benchmarks/load.py`` (keep-alive connection, cookie jar) and its server
helpers; everything a rater does goes over loopback HTTP to gunicorn, as a browser's requests would.

The crowd, as real panels behave (Prolific/MTurk: returns, time-outs, careless clicking, repeat
participants):

``diligent``
    one session, answers by the true quality order (strongly when the true strengths are more
    than 0.5 apart, else mildly) — always right on gold, perfectly consistent on repeats;
``returning``
    a diligent rater who comes back for a second session after a short break (the done page's
    "another session" link, then consent again);
``abandon``
    answers a random number of the session's trials (possibly none), then stops; every third one
    comes back after the session timed out and sends the vote it owed (the server must refuse it);
``random``
    clicks at random, and gives the opposite of the right answer on gold items, so the gold rule
    of the live screening screens them out and their votes must be collected again.

A share of the diligent first-timers, the *closers*, is held back until every other rater has
finished and every abandoned session has outlived the timeout: they are the raters who collect
what the last abandoned sessions left. A rater arriving when nothing is left to assign is turned
away (``full``) and counted.

The answers use the clips' opaque media tokens only; the oracle that maps a token to its
(content, condition) is computed from the database and the server's secret, as an observer who
knows the truth would — the server never tells the browser.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchmarks import load

SLUG = "crowd"
#: True log-strengths of the demo conditions behind the diligent raters' answers.
TRUTH = {"enhanced": 0.6, "source": 0.45, "noisy": -0.1, "blurred": -0.35, "dark": -0.8, "compressed": -1.4}
#: Clearly separated gold items (content, condition A, condition B): A is much better.
GOLD = (("c1", "source", "compressed"), ("c3", "enhanced", "compressed"))
KINDS = ("diligent", "returning", "abandon", "random")
PC5 = load.METHODS["pc5"]
#: The title of the refusal page a rater gets when nothing is left to assign (catalog refuse.full.title).
FULL_PAGE = b"No places left"

ItemKey = tuple[str, frozenset[str]]  # (content, {condition, condition})


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CrowdSpec:
    """Who comes, and how.

    Parameters
    ----------
    raters
        Distinct people (panel ids).
    abandon, random, returning
        Shares of ``raters`` of each kind (rounded); the rest are diligent one-session raters.
    closers
        Diligent first-timers held back until the abandoned sessions have expired.
    arrive_s
        Arrivals of everyone but the closers spread uniformly over this many seconds.
    think_s
        Pause before each vote (low, high), seconds.
    comeback_s
        Break of a returning rater between their two sessions (low, high), seconds.
    seed
        Seeds the kinds, arrivals, pauses and random answers.
    """

    raters: int = 300
    abandon: float = 0.2
    random: float = 0.1
    returning: float = 0.3
    closers: int = 60
    arrive_s: float = 45.0
    think_s: tuple[float, float] = (0.1, 0.4)
    comeback_s: tuple[float, float] = (1.0, 8.0)
    seed: int = 0

    def counts(self) -> dict[str, int]:
        """Raters of each kind."""
        n = {"abandon": round(self.raters * self.abandon), "random": round(self.raters * self.random),
             "returning": round(self.raters * self.returning)}
        n["diligent"] = self.raters - sum(n.values())
        if n["diligent"] < self.closers:
            raise ValueError(f"{self.closers} closers but only {n['diligent']} diligent one-session raters")
        return n

    def kinds(self) -> list[str]:
        """Each rater's kind, in arrival order; the closers (diligent) are the last ``closers``."""
        n = self.counts()
        early = [k for k in KINDS for _ in range(n[k] - (self.closers if k == "diligent" else 0))]
        random.Random(self.seed).shuffle(early)
        return early + ["diligent"] * self.closers


@dataclass(frozen=True)
class StudySpec:
    """The pairwise study the crowd fills.

    ``fill`` is the share of the crowd's expected valid votes the target asks for: the votes of
    every diligent session (returning raters twice) plus half an abandoned session each (they stop
    after a uniform share of their trials). The rest is slack for the end of the study, when raters
    arrive but the items left are held by sessions still running.
    """

    conditions: tuple[str, ...] = ("source", "enhanced", "noisy", "compressed")
    contents: tuple[str, ...] = ("c1", "c2", "c3")
    trials_per_session: int = 6
    repeats_per_session: int = 1
    timeout_minutes: float | None = 0.4
    fill: float = 0.85

    def items(self) -> list[ItemKey]:
        return [(c, frozenset(p)) for c in self.contents for p in combinations(self.conditions, 2)]

    def votes_per_pair(self, crowd: CrowdSpec) -> int:
        """The target of every item, from the valid votes the crowd is expected to give."""
        n = crowd.counts()
        sessions = n["diligent"] + 2 * n["returning"] + 0.5 * n["abandon"]
        target = math.floor(self.fill * sessions * self.trials_per_session / len(self.items()))
        distinct = n["diligent"] + n["returning"]  # an item takes each rater once
        return min(target, distinct)

    def manifest(self, clip_dir: Path, crowd: CrowdSpec) -> dict[str, Any]:
        """The manifest (as parsed YAML) over the demo clips in ``clip_dir``."""
        raw: dict[str, Any] = {
            "name": "crowd simulation", "slug": SLUG, "method": "pc5", "seed": crowd.seed,
            "conditions": list(self.conditions), "contents": list(self.contents),
            "stimuli": [{"content": c, "condition": k, "path": str(clip_dir / c / f"{k}.mp4")}
                        for c in self.contents for k in self.conditions],
            "design": {"pairs": "all_pairs"}, "votes_per_pair": self.votes_per_pair(crowd),
            "trials_per_session": self.trials_per_session, "repeats_per_session": self.repeats_per_session,
            "gold_per_session": 1,
            "gold": [{"content": c, "cond_a": a, "cond_b": b, "expected": 2, "tolerance": 1} for c, a, b in GOLD],
            "reasons": [], "max_sessions_per_rater": 2,
            "panel": {"name": "prolific", "completion_code": "CROWD1"},
        }
        if self.timeout_minutes is not None:
            raw["session_timeout_minutes"] = self.timeout_minutes
        return raw

    @property
    def timeout_s(self) -> float:
        return 60.0 * (self.timeout_minutes if self.timeout_minutes is not None else 60.0)


# --------------------------------------------------------------------------- the study and the server


def create_study(url: str, instance: Path, clip_dir: Path, study: StudySpec, crowd: CrowdSpec,
                 secret: str) -> dict[str, tuple[str, str]]:
    """Migrate, create the study; returns the oracle: media token -> (content, condition)."""
    from sqlalchemy import select

    from study_app import create_app, db, migrate
    from study_app.manifest import validate
    from study_app.media import token_for
    from study_app.models import Condition, Content, Stimulus
    from study_app.studies import create_study as write_study

    migrate.upgrade(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(instance), "SECRET_KEY": secret})
    try:
        with app.app_context(), db.transaction(app) as s:
            made = write_study(s, validate(study.manifest(clip_dir, crowd), clip_dir / "manifest.yaml"))
            rows = s.execute(
                select(Stimulus.id, Content.key, Condition.key).join(Content, Stimulus.content_id == Content.id)
                .join(Condition, Stimulus.condition_id == Condition.id).where(Stimulus.study_id == made.id)
            ).all()
            return {token_for(made.id, sid, secret): (content, cond) for sid, content, cond in rows}
    finally:
        db.engine(app).dispose()


@contextmanager
def serving(url: str, instance: Path, secret: str, workers: int, threads: int, log: Path) -> Iterator[load.Server]:
    """``panelrank serve`` (gunicorn, gthread workers) on a free loopback port until the block ends."""
    port = load.free_port()
    pidfile = instance / "panelrank.pid"
    server = load.start(load.serve_args(port, pidfile, workers, threads), load.server_env(url, instance, secret),
                        port, pidfile, log)
    try:
        yield server
    finally:
        load.stop(server)


# --------------------------------------------------------------------------- the crowd


@dataclass
class SessionLog:
    """One session as its rater saw it."""

    pid: str
    kind: str
    number: int  # 1 or 2
    outcome: str = "error"  # completed | abandoned | screened_out | expired | turned_away | error
    detail: str = ""
    shown: list[ItemKey] = field(default_factory=list)  # items of the trials shown, in order
    answered: int = 0
    late_vote: int | None = None  # status of an abandoner's vote sent after the timeout


@dataclass
class Tally:
    """What the crowd saw, shared by every thread (one lock)."""

    sessions: list[SessionLog] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    by_endpoint: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: list[str] = field(default_factory=list)  # 5xx other than the "no places left" page
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, log: SessionLog) -> None:
        with self.lock:
            self.sessions.append(log)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what[:100]] += 1


class Browser(load.Browser):
    """The load benchmark's simulated browser, timing every request."""

    def __init__(self, port: int, tally: Tally) -> None:
        super().__init__("127.0.0.1", port, load.Stats())
        self.tally = tally

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                payload: object = None) -> tuple[int, dict[str, str], bytes]:
        start = time.monotonic()
        status, headers, body = super().request(method, path, form, payload)
        with self.tally.lock:
            self.tally.statuses[status] += 1
            self.tally.latencies.append(time.monotonic() - start)
            self.tally.by_endpoint[f"{method} {path.split('?')[0].removeprefix(f'/s/{SLUG}')}"].append(
                time.monotonic() - start)
            # The study-full refusal is a 503 by design (nothing left to assign, try later): not a failure.
            if status >= 500 and not (status == 503 and FULL_PAGE in body):
                self.tally.server_errors.append(f"{status} {method} {path.split('?')[0]}: {body[:120]!r}")
        return status, headers, body


class Stop(Exception):
    """The session ends here; ``outcome`` says how."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(outcome)
        self.outcome, self.detail = outcome, detail


def _error_key(body: bytes) -> str:
    with suppress(ValueError, AttributeError):
        return str(json.loads(body).get("code") or json.loads(body).get("error"))
    return body[:80].decode(errors="replace")


def _ended(status: int, body: bytes, where: str) -> Stop:
    """The outcome an unexpected answer means."""
    if status == 410:
        return Stop("expired", f"{where}: {_error_key(body)}")
    if status == 403 and b"screened" in body:
        return Stop("screened_out", where)
    if status in (403, 503) and where in ("entry", "welcome", "consent"):
        return Stop("turned_away", f"{where}: {status}")
    return Stop("error", f"{where}: {status} {_error_key(body)}")


@dataclass
class Crowd:
    """One run: the server's port, the study, the oracle and what happened."""

    port: int
    study: StudySpec
    spec: CrowdSpec
    oracle: dict[str, tuple[str, str]]
    tally: Tally = field(default_factory=Tally)
    started: float = 0.0
    finished: float = 0.0

    # ------------------------------------------------------------------ one session

    def session(self, pid: str, kind: str, number: int, rng: random.Random) -> SessionLog:
        log = SessionLog(pid, kind, number)
        b = Browser(self.port, self.tally)
        try:
            self._walk_in(b, pid, number)
            self._trials(b, log, kind, rng)
        except Stop as stop:
            log.outcome, log.detail = stop.outcome, stop.detail
        except (load.HTTPError, *load.OVERLOAD) as exc:
            log.outcome, log.detail = "error", f"{type(exc).__name__}: {exc}"
        finally:
            b.close()
        if log.outcome == "error":
            self.tally.error(log.detail)
        self.tally.add(log)
        return log

    def _walk_in(self, b: Browser, pid: str, number: int) -> None:
        """Study link → consent (a returning rater: the done page's link) → screen check → study page."""
        query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": SLUG, "SESSION_ID": f"{pid}-{number}"})
        status, _, body = b.request("GET", f"/s/{SLUG}?{query}")
        if status != 302:
            raise _ended(status, body, "entry")
        status, _, page = b.request("GET", f"/s/{SLUG}/welcome")
        if status != 200:
            raise _ended(status, page, "welcome")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        if token is None:
            raise Stop("error", "no form token on the consent page")
        status, headers, body = b.request("POST", f"/s/{SLUG}/welcome",
                                          form={"consent": "yes", "csrf_token": token.group(1).decode()})
        if status != 302 or not headers.get("Location", "").endswith("/check"):
            raise _ended(status, body, "consent")
        for method, path, payload in (("GET", "check", None),
                                      ("POST", "api/environment", {"inner_w": 4000, "inner_h": 3000, "dpr": 1}),
                                      ("GET", "study", None), ("GET", "api/session", None),
                                      ("POST", "api/training/done", {})):
            status, _, body = b.request(method, f"/s/{SLUG}/{path}", payload=payload)
            if status != 200:
                raise _ended(status, body, path)

    def _trials(self, b: Browser, log: SessionLog, kind: str, rng: random.Random) -> None:
        stop_after: int | None = None
        while True:
            status, _, body = b.request("GET", f"/s/{SLUG}/api/trial")
            if status != 200:
                raise _ended(status, body, "trial")
            trial = json.loads(body)
            if trial.get("done"):
                status, _, body = b.request("GET", f"/s/{SLUG}/done")
                if status != 200:
                    raise _ended(status, body, "done")
                log.outcome = "completed"
                return
            left, right = (self.oracle[c["media"]] for c in trial["clips"])
            log.shown.append((left[0], frozenset((left[1], right[1]))))
            if kind == "abandon" and stop_after is None:
                stop_after = rng.randint(0, max(trial["n"] - 1, 0))  # trials answered before leaving
            if stop_after is not None and log.answered >= stop_after:
                log.outcome = "abandoned"
                if int(log.pid.removeprefix("crowd")) % 3 == 0:  # back after the timeout with the vote they owed
                    time.sleep(self.study.timeout_s + 2.0)
                    status, _, _ = self._send(b, trial["trial"], self.answer(kind, left, right, rng))
                    log.late_vote = status
                return
            time.sleep(rng.uniform(*self.spec.think_s))
            status, _, body = self._send(b, trial["trial"], self.answer(kind, left, right, rng))
            if status != 200:
                raise _ended(status, body, "vote")
            log.answered += 1
            reply = json.loads(body)
            if reply.get("ok") is False or "screened" in str(reply.get("redirect")):
                raise Stop("screened_out", "vote")

    def _send(self, b: Browser, position: int, answer: int) -> tuple[int, dict[str, str], bytes]:
        """POST a vote, sent again after a dropped connection (the study page does; votes are idempotent)."""
        body = {"trial": position, "response": answer, "watch_ms": 6000, "answer_ms": 1200, "plays": 2}
        for attempt in range(5):
            try:
                return b.request("POST", f"/s/{SLUG}/api/vote", payload=body)
            except load.OVERLOAD as exc:
                self.tally.error(f"vote, attempt {attempt + 1}: {type(exc).__name__}")
                time.sleep(0.2 * 2 ** attempt)
        raise load.HTTPError("vote not acknowledged after 5 attempts")

    @staticmethod
    def answer(kind: str, left: tuple[str, str], right: tuple[str, str], rng: random.Random) -> int:
        """The screen answer (pc5: −2 left much better … 2 right much better) a rater of ``kind`` gives."""
        gap = TRUTH[right[1]] - TRUTH[left[1]]
        toward_right = int(math.copysign(2 if abs(gap) > 0.5 else 1, gap))
        if kind == "random":
            gold = any(left[0] == c and {left[1], right[1]} == {a, b} for c, a, b in GOLD)
            toward_right = -toward_right if gold else rng.randint(-2, 2)
        return PC5.to_screen(toward_right, False)  # B on the left: the stored value is the right clip's preference

    # ------------------------------------------------------------------ the crowd

    def life(self, index: int, kind: str, rng: random.Random, release: threading.Event | None) -> None:
        """One rater: arrive, one session (two when returning)."""
        if release is not None:  # a closer
            release.wait()
            time.sleep(rng.uniform(0, 3.0))
        else:
            time.sleep(rng.uniform(0, self.spec.arrive_s))
        pid = f"crowd{index}"
        first = self.session(pid, kind, 1, rng)
        if kind == "returning" and first.outcome == "completed":
            time.sleep(rng.uniform(*self.spec.comeback_s))
            self.session(pid, kind, 2, rng)

    def run(self) -> None:
        """Every rater at once (a thread each); the closers once the rest are done and their sessions expired."""
        kinds = self.spec.kinds()
        release = threading.Event()
        closers = len(kinds) - self.spec.closers
        threads = [threading.Thread(target=self._guarded, daemon=True,
                                    args=(i, kind, random.Random(self.spec.seed * 100_003 + i),
                                          release if i >= closers else None))
                   for i, kind in enumerate(kinds)]
        self.started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads[:closers]:
            t.join()
        time.sleep(self.study.timeout_s + 1.5)  # the last abandoned session has expired
        release.set()
        for t in threads[closers:]:
            t.join()
        self.finished = time.monotonic()

    def _guarded(self, index: int, kind: str, rng: random.Random, release: threading.Event | None) -> None:
        try:
            self.life(index, kind, rng, release)
        except Exception as exc:  # a harness bug must show up in the figures, not hang the run
            self.tally.error(f"rater {index}: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- what the database says


@dataclass
class TrialRow:
    session: int
    rater: str
    status: str  # the session's
    kind: str
    position: int
    item: ItemKey
    repeat_of: int | None
    trial: int
    answered_at: Any | None
    valid_rater: bool


@dataclass
class Stored:
    """The study as stored: every trial with its session and rater, the sessions' statuses."""

    study_status: str
    trials: list[TrialRow]
    sessions: dict[int, tuple[str, str, Any, Any]]  # id -> (rater panel id, status, started, completed)
    screened_raters: set[str]


def read_back(url: str) -> Stored:
    """Everything the checks need, read from the database after the run."""
    from sqlalchemy import select
    from sqlalchemy.orm import aliased

    from study_app.db import make_engine
    from study_app.models import Condition, Content, Rater, Response, Session, Stimulus, Study, Trial

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            study = conn.execute(select(Study.id, Study.status).where(Study.slug == SLUG)).one()
            sa, sb = aliased(Stimulus), aliased(Stimulus)
            ca, cb = aliased(Condition), aliased(Condition)
            rows = conn.execute(
                select(Trial.id, Trial.session_id, Rater.panel_id, Session.status, Trial.kind, Trial.position,
                       Content.key, ca.key, cb.key, Trial.repeat_of_id, Response.answered_at,
                       Rater.screen_out_reason, Rater.decision)
                .join(Session, Trial.session_id == Session.id).join(Rater, Session.rater_id == Rater.id)
                .join(sa, Trial.stimulus_a_id == sa.id).join(sb, Trial.stimulus_b_id == sb.id)
                .join(Content, sa.content_id == Content.id)
                .join(ca, sa.condition_id == ca.id).join(cb, sb.condition_id == cb.id)
                .outerjoin(Response, Response.trial_id == Trial.id)
                .where(Session.study_id == study.id)
            ).all()
            sessions = {sid: (pid, status, started, done) for sid, pid, status, started, done in conn.execute(
                select(Session.id, Rater.panel_id, Session.status, Session.started_at, Session.completed_at)
                .join(Rater, Session.rater_id == Rater.id).where(Session.study_id == study.id))}
    finally:
        engine.dispose()
    # A valid rater (scheduling.valid_rater): accepted by the organizer, or neither rejected nor screened out.
    screened = {pid for _, _, pid, *_, reason, decision in rows
                if decision == "reject" or (decision is None and reason is not None)}
    trials = [TrialRow(sid, pid, status, kind, pos, (content, frozenset((a, b))), rep, tid, answered,
                       pid not in screened)
              for tid, sid, pid, status, kind, pos, content, a, b, rep, answered, *_ in rows]
    return Stored(study.status, trials, sessions, screened)


@dataclass
class Verdict:
    """The checks of the done-when, each a list of what is wrong (empty: holds), and the figures."""

    short_or_over: dict[str, tuple[int, int]]  # item -> (valid votes, distinct valid raters) where not both = target
    seen_twice: list[str]
    # Reported, not a failure: a gold item is a planned check every session needs, and the manifest's few gold
    # items are also design items; a returning rater can meet one as gold once and as a vote once.
    gold_then_main: list[str]
    lost: list[str]
    late_stored: list[str]
    five_xx: list[str]
    figures: dict[str, Any]

    @property
    def problems(self) -> dict[str, Any]:
        return {k: v for k, v in (("items off target", self.short_or_over), ("seen twice", self.seen_twice),
                                  ("abandoned trials lost", self.lost),
                                  ("votes stored after expiry", self.late_stored), ("5xx", self.five_xx)) if v}


def _name(item: ItemKey) -> str:
    return f"{item[0]}:{'/'.join(sorted(item[1]))}"


def judge(crowd: Crowd, stored: Stored) -> Verdict:
    """The done-when's checks on the stored study and on what the raters saw."""
    items, target = crowd.study.items(), crowd.study.votes_per_pair(crowd.spec)
    valid: dict[ItemKey, list[str]] = defaultdict(list)
    for t in stored.trials:
        if t.kind == "main" and t.answered_at is not None and t.valid_rater:
            valid[t.item].append(t.rater)
    off = {_name(i): (len(valid[i]), len(set(valid[i]))) for i in items
           if (len(valid[i]), len(set(valid[i]))) != (target, target)}

    # No rater sees an item twice outside planned repeats: in the database (main and gold, across
    # all their sessions) and in what the browsers were shown.
    twice: list[str] = []
    gold_main: list[str] = []
    by_rater: dict[str, list[TrialRow]] = defaultdict(list)
    for t in stored.trials:
        by_rater[t.rater].append(t)
    trial_session = {t.trial: t.session for t in stored.trials}
    for rater, rows in by_rater.items():
        counts = Counter(t.item for t in rows if t.kind == "main")
        twice += [f"{rater} main {_name(i)} ×{n}" for i, n in counts.items() if n > 1]
        # A gold item may come back as gold (a known-answer check), never as a main trial of another session.
        gold_in = {(t.session, t.item) for t in rows if t.kind == "gold"}
        gold_main += [f"{rater} main {_name(t.item)} (session {t.session}) was gold in session {sid}"
                      for t in rows if t.kind == "main" for sid, item in gold_in if item == t.item and sid != t.session]
        for sid in {t.session for t in rows}:
            here = Counter(t.item for t in rows if t.session == sid and t.kind != "repeat")
            twice += [f"{rater} session {sid} {_name(i)} ×{n}" for i, n in here.items() if n > 1]
        twice += [f"{rater} repeat of another session's trial" for t in rows
                  if t.kind == "repeat" and trial_session.get(t.repeat_of) != t.session]
    gold = {(c, frozenset((a, b))) for c, a, b in GOLD}
    shown: dict[str, list[SessionLog]] = defaultdict(list)
    for log in crowd.tally.sessions:
        shown[log.pid].append(log)
    for pid, logs in shown.items():
        for log in logs:
            extra = sum(n - 1 for n in Counter(log.shown).values() if n > 1)
            if extra > crowd.study.repeats_per_session:
                twice.append(f"{pid} session {log.number} shown {extra} items again (repeats planned: "
                             f"{crowd.study.repeats_per_session})")
        if len(logs) == 2:
            again = (set(logs[0].shown) & set(logs[1].shown)) - gold
            twice += [f"{pid} shown {_name(i)} in both sessions" for i in again]

    # No abandoned trial is lost: each unanswered trial of an expired (or still active) session has
    # its item collected in full elsewhere.
    lost = [f"session {t.session} ({t.rater}, {t.status}) trial {t.position} {_name(t.item)}"
            for t in stored.trials if t.kind == "main" and t.answered_at is None
            and len(set(valid[t.item])) < target]
    # An abandoner's vote sent after the timeout must not be stored.
    late = [f"{log.pid}: {log.late_vote}" for log in crowd.tally.sessions
            if log.late_vote is not None and not 400 <= log.late_vote < 500]
    five = crowd.tally.server_errors
    found = figures(crowd, stored, valid, target)
    found["raters who met an item as gold and as a vote"] = len(gold_main)
    return Verdict(off, twice, gold_main, lost, late, five, found)


def figures(crowd: Crowd, stored: Stored, valid: dict[ItemKey, list[str]], target: int) -> dict[str, Any]:
    logs = crowd.tally.sessions
    outcomes = Counter(log.outcome for log in logs)
    statuses = Counter(status for _, status, *_ in stored.sessions.values())
    answered_main = [t for t in stored.trials if t.kind == "main" and t.answered_at is not None]
    # Votes collected again: main trials an expired session left unanswered, and main votes of screened-out raters.
    expired_open = sum(1 for t in stored.trials if t.kind == "main" and t.answered_at is None
                       and t.status not in ("active", "planned", "completed"))
    screened_votes = sum(1 for t in answered_main if not t.valid_rater)
    return {
        "raters": len({log.pid for log in logs}),
        "kinds": dict(Counter(crowd.spec.kinds())),
        "sessions (client)": dict(outcomes),
        "sessions (db)": dict(statuses),
        "expired sessions": statuses.get("expired", 0),
        "responses": sum(1 for t in stored.trials if t.answered_at is not None),
        "main votes": len(answered_main),
        "valid main votes": sum(len(v) for v in valid.values()),
        "target": f"{len(crowd.study.items())} items × {target} = {len(crowd.study.items()) * target}",
        "re-collected votes": f"{expired_open} (expired, unanswered) + {screened_votes} (screened-out raters' votes)",
        "screened-out raters": len(stored.screened_raters),
        "late votes (status)": dict(Counter(log.late_vote for log in logs if log.late_vote is not None)),
        "requests": sum(crowd.tally.statuses.values()),
        "statuses": dict(sorted(crowd.tally.statuses.items())),
        "p50/p99 ms": (round(1000 * statistics.median(crowd.tally.latencies or [0.0])),
                       round(1000 * _p99(crowd.tally.latencies))),
        "p50/p99 ms by request": {k: (round(1000 * statistics.median(v)), round(1000 * _p99(v)))
                                  for k, v in sorted(crowd.tally.by_endpoint.items())},
        "client errors": dict(crowd.tally.errors.most_common(5)),
        "study status": stored.study_status,
        "duration s": round(crowd.finished - crowd.started, 1),
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def report(label: str, verdict: Verdict) -> str:
    lines = [f"crowd on {label}:"] + [f"  {k}: {v}" for k, v in verdict.figures.items()]
    for what, found in verdict.problems.items():
        shown = list(found.items())[:8] if isinstance(found, dict) else found[:8] if isinstance(found, list) else found
        n = len(found) if isinstance(found, dict | list) else found
        lines.append(f"  PROBLEM {what} ({n}): {shown}")
    return "\n".join(lines)


def run_crowd(url: str, tmp: Path, clip_dir: Path, study: StudySpec, spec: CrowdSpec, workers: int,
              threads: int = 16) -> tuple[Crowd, Verdict]:
    """Create the study on ``url``, serve it, run the crowd, judge what is stored."""
    import secrets

    secret = secrets.token_hex(32)
    instance = tmp / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    oracle = create_study(url, instance, clip_dir, study, spec, secret)
    log = tmp / "serve.log"
    with serving(url, instance, secret, workers, threads, log) as server:
        crowd = Crowd(server.port, study, spec, oracle)
        crowd.run()
    verdict = judge(crowd, read_back(url))
    if verdict.five_xx:  # the server's own words, before the temp dir goes
        causes = Counter(line for line in log.read_text(errors="replace").splitlines() if "Error" in line
                         or "error" in line)
        verdict.figures["server errors"] = dict(causes.most_common(3))
    return crowd, verdict


