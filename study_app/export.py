"""Database → the tidy vote frames of DESIGN.md (validated by ``analysis.frames``)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import aliased

from analysis import frames
from study_app.models import Condition, Content, Rater, Response, Session, Stimulus, Study, Trial
from study_app.schemas import View

#: Columns beyond the schema that the export adds: quality signals an analyst may screen on.
#: ``display_scale`` is the smallest scale the clips were shown at during the trial (1 = native
#: size; less when the rater's window was too small for them and the answer controls).
#: ``display_view`` is how the clips were laid out: ``side-by-side``, ``toggle`` (one at a time in
#: the same place, switched by the rater), ``scaled`` (side by side, shrunk) or ``single``.
EXTRA_COLUMNS = ("answer_ms", "plays", "max_drift_ms", "hidden_ms", "stalled", "kind", "position",
                 "gold_tolerance", "window_w", "window_h", "display_scale", "display_view")
VIEWS: tuple[str, ...] = get_args(View)  # the values a vote may send, so the export knows each


def _query(study: Study) -> Select:
    sa, sb = aliased(Stimulus), aliased(Stimulus)
    ca, cb = aliased(Condition), aliased(Condition)
    return (
        select(
            Rater.panel_id.label("rater"), Session.index.label("session"), Trial.id.label("trial"),
            Content.key.label("content"), ca.key.label("cond_a"), cb.key.label("cond_b"),
            Response.value, Response.reason, Trial.a_left, Trial.repeat_of_id.label("repeat_of"),
            Trial.gold_expected, Response.answered_at, Response.watch_ms, Response.stalls,
            Response.answer_ms, Response.plays, Response.max_drift_ms, Response.hidden_ms,
            Trial.kind, Trial.position, Trial.gold_tolerance, Response.window_w, Response.window_h,
            Response.signals,
        )
        .select_from(Response)
        .join(Trial, Response.trial_id == Trial.id)
        .join(Session, Trial.session_id == Session.id)
        .join(Rater, Session.rater_id == Rater.id)
        .join(sa, Trial.stimulus_a_id == sa.id)
        .join(Content, sa.content_id == Content.id)
        .join(ca, sa.condition_id == ca.id)
        .outerjoin(sb, Trial.stimulus_b_id == sb.id)
        .outerjoin(cb, sb.condition_id == cb.id)
        .where(Session.study_id == study.id)
        .order_by(Response.answered_at, Trial.id)
    )


def votes_frame(db: DBSession, study: Study) -> frames.Votes:
    """Every answered trial of a study as a validated tidy frame (pairwise or ratings)."""
    method = study.test_method
    kind = method.kind
    rows = db.execute(_query(study)).mappings().all()
    if not rows:
        empty = frames.empty_frame(kind)
        for col in EXTRA_COLUMNS:
            empty[col] = pd.Series(dtype="object")
        return frames.validate(empty, kind)
    df = pd.DataFrame(rows)
    df.insert(0, "study", study.slug)
    df["session"] = df["session"].astype(str)
    df["method"] = study.method
    df["stalled"] = df["stalls"].fillna(0) > 0
    df["display_view"] = df["signals"].map(_display_view)
    df["display_scale"] = pd.to_numeric(df.pop("signals").map(_display_scale), errors="coerce")
    df[method.value_column] = df.pop("value")
    if method.pairwise:
        df["shown_left"] = df.pop("a_left").map({True: "a", False: "b"})
    else:
        df["cond"] = df.pop("cond_a")
        df = df.drop(columns=["cond_b", "reason", "a_left"])
    # The same column order as an empty export: the schema's, then EXTRA_COLUMNS.
    return frames.validate(df[[*frames.columns_for(kind), *EXTRA_COLUMNS]], kind)


#: Larger magnitudes are not a scale: rows stored before votes were validated may hold anything.
MAX_SCALE = 1e6


def _display_scale(signals: object) -> float | None:
    # Sent by the browser inside the signals. Rows stored before validation may hold a 400-digit
    # integer (float() overflows), NaN or Infinity: anything but a plain finite number is no scale.
    value = signals.get("scale") if isinstance(signals, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not -MAX_SCALE <= value <= MAX_SCALE:
        return None  # NaN fails the comparison too
    return float(value)


def _display_view(signals: object) -> str | None:
    value = signals.get("view") if isinstance(signals, dict) else None
    # A list or a dict is unhashable and compares unequal to every view: never an error, never a view.
    return value if isinstance(value, str) and value in VIEWS else None


def export_votes(db: DBSession, study: Study, out: str | Path) -> tuple[Path, int]:
    """Write the study's votes to ``.csv`` or ``.parquet``; returns (path, rows)."""
    df = votes_frame(db, study)
    return frames.write_votes(df, out), len(df)
