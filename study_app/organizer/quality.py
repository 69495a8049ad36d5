"""Raters page: per-rater quality, the screening verdict, organizer overrides, approval CSVs."""

from __future__ import annotations

import csv
import io
from typing import Any

import pandas as pd
from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from study_app import accounts, livestats
from study_app.db import get_db
from study_app.models import Rater, Session, Study
from study_app.organizer import bp, me, own_study

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
        auto, why = "reject", f"screened out at the gate: {rater.screen_out_reason}"
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
    return render_template("organizer/raters.html", me=me(), study=study, rows=rater_rows(study, rules),
                           rules=rules, all_rules=list(livestats.RULE_FIELDS))


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
    return redirect(request.form.get("back") or url_for("organizer.raters", slug=slug))


@bp.get("/studies/<slug>/approvals.csv")
@accounts.login_required
def approvals(slug: str) -> Response:
    """Approval decisions in the panel's bulk format (Prolific: participant ids; MTurk: assignments)."""
    study = own_study(slug)
    rows = rater_rows(study, selected_rules())
    panel = request.args.get("panel", study.panel if study.panel != "none" else "prolific")
    if panel not in ("prolific", "mturk"):
        abort(400, description="panel must be prolific or mturk")
    out = io.StringIO()
    writer = csv.writer(out)
    if panel == "prolific":
        writer.writerow(["participant_id", "decision", "reason"])
        for r in rows:
            writer.writerow([r["panel_id"], "APPROVE" if r["final"] == "accept" else "REJECT", r["why"]])
    else:
        writer.writerow(["AssignmentId", "WorkerId", "Approve", "Reject"])
        for r, assignment in _assignments(study, rows):
            ok = r["final"] == "accept"
            writer.writerow([assignment, r["panel_id"], "x" if ok else "", "" if ok else r["why"]])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{study.slug}-{panel}-approvals.csv"'})


def _assignments(study: Study, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    # MTurk approves assignments, one per session (its assignmentId is kept on the session).
    by_id = {r["id"]: r for r in rows}
    found = get_db().execute(
        select(Session.rater_id, Session.panel_session_id)
        .where(Session.study_id == study.id, Session.rater_id.is_not(None))
        .order_by(Session.rater_id, Session.index)
    ).all()
    return [(by_id[rid], aid or "") for rid, aid in found if rid in by_id]
