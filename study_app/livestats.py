"""Analysis on live studies, computed on demand and cached until new votes arrive.

The cache key includes a fingerprint of the responses (count and newest id), so any
new vote — from any gunicorn worker — invalidates it; the rules used are part of the key.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from typing import Any, NamedTuple, TypeVar

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DBSession

from analysis import bradley_terry as bt
from analysis import frames, report, screening
from study_app.export import votes_frame
from study_app.models import Rater, Response, Session, Study, Trial

T = TypeVar("T")
_MAX_ENTRIES = 64
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_lock = threading.Lock()

#: Which ScreeningRules fields each rule name switches off.
RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "consistency_rank": ("drop_least_consistent",),
    "consistency": ("min_consistency",),
    "gold": ("min_gold_accuracy",),
    "bt500": ("bt500_fraction",),
    "loo_corr": ("loo_alpha",),
    "bt_agreement": ("bt_alpha",),
    "position_bias": ("max_position_p",),
    "too_fast": ("min_median_watch_ms", "min_median_answer_ms"),
}
DEFAULT_RULES = screening.ScreeningRules()
#: Rules that are on by default (the others need a threshold chosen from a pilot).
DEFAULT_ON = tuple(name for name, fs in RULE_FIELDS.items() if getattr(DEFAULT_RULES, fs[0]) is not None)


class Fingerprint(NamedTuple):
    database: str
    votes: int
    newest: int


def fingerprint(db: DBSession, study: Study) -> Fingerprint:
    """(database, number of responses, newest response id): changes whenever a vote arrives.

    The database URL keeps two apps in one process (tests, several instances) apart.
    """
    n, newest = db.execute(
        select(func.count(Response.id), func.max(Response.id))
        .join(Trial, Response.trial_id == Trial.id)
        .join(Session, Trial.session_id == Session.id)
        .where(Session.study_id == study.id)
    ).one()
    return Fingerprint(str(db.get_bind().url), int(n), int(newest or 0))


def cached(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()  # outside the lock: a slow fit must not block other studies
    with _lock:
        _cache[key] = value
        while len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
    return value


def clear() -> None:
    with _lock:
        _cache.clear()


def rules_from(enabled: Iterable[str]) -> screening.ScreeningRules:
    """Default thresholds with only the named rules switched on (unknown names ignored)."""
    on = set(enabled)
    off = {f: None for name, fs in RULE_FIELDS.items() if name not in on for f in fs}
    rules = replace(DEFAULT_RULES, **off)
    # Rules that are off by default get a sensible threshold when asked for explicitly.
    if "consistency_rank" in on and rules.drop_least_consistent is None:
        rules = replace(rules, drop_least_consistent=3)
    if "consistency" in on and rules.min_consistency is None:
        rules = replace(rules, min_consistency=0.5)
    return rules


def rules_key(rules: screening.ScreeningRules) -> tuple[Any, ...]:
    return tuple(getattr(rules, f.name) for f in fields(rules))


#: Download formats of the votes and their media types.
VOTE_FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def vote_file(frame: pd.DataFrame, fmt: str) -> bytes:
    """The bytes ``panelrank export`` writes (:func:`analysis.frames.write_votes`): validated, no index."""
    checked = frames.validate(frame)
    if fmt == "csv":
        return checked.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buffer = io.BytesIO()
        checked.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ValueError(f"unknown vote file format '{fmt}'; known: {', '.join(VOTE_FORMATS)}")


def votes(db: DBSession, study: Study, fp: Fingerprint | None = None) -> frames.Votes:
    """The study's vote frame, cached under ``fp`` (taken now when not given).

    A caller that caches more under the same fingerprint passes the one it took *before* the
    votes are read: a vote landing in between then makes the next call recompute instead of
    leaving stale results cached under a newer key.
    """
    fp = fp or fingerprint(db, study)
    return cached(("votes", study.id, *fp), lambda: votes_frame(db, study))


def screen(db: DBSession, study: Study, rules: screening.ScreeningRules) -> screening.ScreeningResult | None:
    """Screening of the study's raters, or None when nobody has voted yet."""
    fp = fingerprint(db, study)
    frame = votes(db, study, fp)
    if frame.empty:
        return None
    return cached(("screen", study.id, *fp, rules_key(rules)), lambda: screening.screen(frame, rules))


def leaderboard(db: DBSession, study: Study, rules: screening.ScreeningRules, ties: bt.TieModel = "davidson",
                ci: str = "cluster", bootstrap: int = 200) -> report.AnalysisResult | None:
    """The study's ranking with 95% intervals (Bradley–Terry or MOS), or None before the first vote.

    Intervals are rater-clustered unless ``ci`` says otherwise (``bootstrap`` rounds are
    used with ``ci="bootstrap"``). Seeded with the study's seed, so the same votes always
    give the same intervals.
    Errors of :func:`analysis.report.analyze` (screening left nobody, comparisons that
    do not determine the scores yet) propagate and are not cached: the next vote may fix them.
    """
    fp = fingerprint(db, study)
    rejected = rejected_raters(db, study)
    frame = accepted_votes(db, study, fp, rejected)
    if frame.empty:
        return None
    key = ("leaderboard", study.id, *fp, rules_key(rules), ties, ci, bootstrap, rejected)
    opts = report.AnalysisOptions(ties=ties, ci=ci, bootstrap=bootstrap, seed=study.seed, screening_rules=rules)
    return cached(key, lambda: report.analyze(frame, opts))


def accepted_votes(db: DBSession, study: Study, fp: Fingerprint | None = None,
                   rejected: tuple[str, ...] | None = None) -> frames.Votes:
    """The study's votes without those of raters an organizer rejected by hand.

    An organizer's "reject" removes the rater's votes from the ranking as well as from payment.
    The result is still validated: the analysis takes it as it is.
    """
    frame = votes(db, study, fp)
    rejected = rejected_raters(db, study) if rejected is None else rejected
    return frame.rows(~frame["rater"].isin(rejected)) if rejected else frame


def rejected_raters(db: DBSession, study: Study) -> tuple[str, ...]:
    """Panel ids of the raters an organizer rejected by hand (sorted, hashable for cache keys)."""
    return tuple(sorted(db.scalars(
        select(Rater.panel_id).where(Rater.study_id == study.id, Rater.decision == "reject"))))
