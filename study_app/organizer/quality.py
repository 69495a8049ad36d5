"""Raters page: per-rater quality, the screening verdict, organizer overrides, approval CSVs."""

from __future__ import annotations

import csv
import io
from typing import Any

import pandas as pd
from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from study_app import accounts, livestats, scheduling
from study_app.db import get_db
from study_app.models import Rater, Session, Study
from study_app.organizer.common import bp, me, own_study, safe_next

DECISIONS = ("accept", "reject")


def selected_rules() -> list[str]:
    """Rules ticked in the query string; the defaults when the form was never submitted."""
    if "rules" not in request.args:
        return list(livestats.DEFAULT_ON)
    return [r for r in request.args.getlist("rule") if r in livestats.RULE_FIELDS]


def rater_rows(study: Study, rules: list[str]) -> list[dict[str, Any]]:
    """One dict per rater: identity, sessions, quality statistics and the final verdict."""
    db = get_db()
    result = livestats.screen(db, study, livestats.rules_from(rules))
    stats = result.raters.set_index("rater") if result is not None else pd.DataFrame()
    sessions = dict(db.execute(
        select(Session.rater_id, func.count(Session.id)).where(Session.study_id == study.id)
        .group_by(Session.rater_id)).all())
    rows = []
    for rater in db.scalars(select(Rater).where(Rater.study_id == study.id).order_by(Rater.id)):
        s = stats.loc[rater.panel_id].to_dict() if rater.panel_id in stats.index else {}
        rows.append(_row(rater, sessions.get(rater.id, 0), s))
    return rows


def _row(rater: Rater, n_sessions: int, s: dict[str, Any]) -> dict[str, Any]:
    if rater.screen_out_reason:
        auto, why = "reject", f"screened out: {rater.screen_out_reason}"
    elif not s:
        auto, why = "accept", "no votes yet"
    else:
        auto = "accept" if bool(s["kept"]) else "reject"
        why = "kept" if auto == "accept" else f"dropped by {s['dropped_by']}"
    return {
        "id": rater.id, "panel": rater.panel, "panel_id": rater.panel_id, "sessions": n_sessions,
        "votes": _num(s.get("n_votes")), "consistency": _num(s.get("consistency")),
        "n_repeats": _num(s.get("n_repeats")), "gold_accuracy": _num(s.get("gold_accuracy")),
        "n_gold": _num(s.get("n_gold")), "left_share": _num(s.get("left_share")),
        "position_p": _num(s.get("position_p")), "median_answer_ms": _num(s.get("median_answer_ms")),
        "median_watch_ms": _num(s.get("median_watch_ms")), "auto": auto, "why": why,
        "decision": rater.decision, "final": rater.decision or auto,
    }


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


@bp.get("/studies/<slug>/raters")
@accounts.login_required
def raters(slug: str) -> str:
    study = own_study(slug)
    rules = selected_rules()
    result = livestats.screen(get_db(), study, livestats.rules_from(rules))  # cached: rater_rows reuses it
    return render_template("organizer/raters.html", me=me(), study=study, rows=rater_rows(study, rules),
                           rules=rules, all_rules=list(livestats.RULE_FIELDS),
                           notes=result.notes if result is not None else ())


@bp.post("/studies/<slug>/raters/<int:rater_id>/decision")
@accounts.login_required
def decide(slug: str, rater_id: int) -> Response:
    study = own_study(slug)
    rater = get_db().get(Rater, rater_id)
    if rater is None or rater.study_id != study.id:
        abort(404)
    decision = request.form.get("decision", "")
    if decision not in (*DECISIONS, "auto"):
        abort(400, description=f"unknown decision '{decision}'; use accept, reject or auto")
    rater.decision = None if decision == "auto" else decision
    get_db().commit()
    flash(f"Rater {rater.panel_id}: {decision}.", "info")
    return redirect(safe_next(request.form.get("back"), url_for("organizer.raters", slug=slug)))


@bp.get("/studies/<slug>/approvals.csv")
@accounts.login_required
def approvals(slug: str) -> Response:
    """Approval decisions in the panel's bulk format, one row per completed session (= one submission).

    Prolific approves submissions (``SESSION_ID``) or participant ids: columns ``participant_id,
    submission_id, decision, reason`` — filter on ``decision`` and paste the ids into its bulk
    approve / reject boxes. MTurk's offline review takes its batch-results CSV with an ``X`` in
    ``Approve`` or a reason in ``Reject``, keyed by ``AssignmentId``; sessions without an assignment
    id cannot be approved there and are left out. Sessions still running, abandoned or screened out
    at the gate are not submissions to approve and are left out as well. Sessions that *expired*
    (idle for ``session_timeout_minutes``; their answers are kept) are listed too, with
    ``expired`` in the last column (``session_status`` / ``SessionStatus``, else ``completed``),
    so the organizer can tell them from finished ones (Prolific times such submissions out itself).
    """
    study = own_study(slug)
    panel = request.args.get("panel", study.panel if study.panel != "none" else "prolific")
    if panel not in ("prolific", "mturk"):
        abort(400, description="panel must be prolific or mturk")
    submissions = _submissions(study, rater_rows(study, selected_rules()))
    out = io.StringIO()
    writer = csv.writer(out)
    if panel == "prolific":
        writer.writerow(["participant_id", "submission_id", "decision", "reason", "session_status"])
        for r, submission, status in submissions:
            ok = r["final"] == "accept"
            writer.writerow([r["panel_id"], submission, "APPROVE" if ok else "REJECT", "" if ok else _reason(r),
                             status])
    else:
        writer.writerow(["AssignmentId", "WorkerId", "Approve", "Reject", "SessionStatus"])
        for r, assignment, status in submissions:
            if assignment:
                ok = r["final"] == "accept"
                writer.writerow([assignment, r["panel_id"], "X" if ok else "", "" if ok else _reason(r), status])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{study.slug}-{panel}-approvals.csv"'})


def _reason(row: dict[str, Any]) -> str:
    # Shown to the rater by the panel: say why in words, never leave a rejection without a reason.
    if row["decision"] == "reject":
        return "Rejected after review of the answers' quality."
    return f"Failed the study's quality checks ({row['why']})."


def _submissions(study: Study, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, str]]:
    """(rater row, panel session id, status) for every completed or expired session, in rater then session
    order (idle sessions expire first)."""
    by_id = {r["id"]: r for r in rows}
    db = get_db()
    if scheduling.expire_idle(db, study):
        db.commit()
    found = db.execute(
        select(Session.rater_id, Session.panel_session_id, Session.status)
        .where(Session.study_id == study.id, Session.rater_id.is_not(None),
               Session.status.in_(("completed", "expired")))
        .order_by(Session.rater_id, Session.index)
    ).all()
    return [(by_id[rid], sid or "", status) for rid, sid, status in found if rid in by_id]
