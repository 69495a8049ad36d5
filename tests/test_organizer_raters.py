"""Raters page: screening verdicts, overrides, approval CSVs — on a study of simulated votes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import db, livestats
from study_app.models import Rater, Response, Session, Trial, utcnow
from tests.organizer_support import client_of, fill, planned_demo_study
from tests.test_organizer import _csrf


@pytest.fixture
def filled(app: Flask, demo_manifest_path: Path) -> Flask:
    # Simulated votes fill planned sessions: studies get them only when created with plan_sessions=True.
    planned_demo_study(app, demo_manifest_path)
    fill(app, n_raters=12, seed=3)
    return app


@pytest.fixture
def ann(filled: Flask) -> FlaskClient:
    return client_of(filled)


def test_raters_page_lists_every_rater_with_a_verdict(ann: FlaskClient) -> None:
    html = ann.get("/organizer/studies/demo/raters").get_data(as_text=True)
    assert html.count('id="decision-') == 12
    assert "kept" in html or "dropped by" in html


def _approvals(client: FlaskClient, panel: str) -> list[dict[str, str]]:
    response = client.get(f"/organizer/studies/demo/approvals.csv?panel={panel}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_override_and_approval_csvs(filled: Flask, ann: FlaskClient) -> None:
    with filled.app_context(), db.transaction(filled) as s:
        target = s.scalar(select(Rater).order_by(Rater.id))
        rid, pid = target.id, target.panel_id
        # One completed session per submission: give them panel session ids (Prolific SESSION_ID /
        # MTurk assignmentId); one still running and one without an id.
        sessions = list(s.scalars(select(Session).where(Session.rater_id.is_not(None)).order_by(Session.index)))
        for sess in sessions:
            sess.panel_session_id = f"sub-{sess.index}"
        # Still running: the simulated answers are hours old, so it shows a sign of life now (an active
        # session idle for session_timeout_minutes expires, and expired sessions are listed).
        sessions[-1].status, sessions[-1].last_seen_at = "active", utcnow()
        sessions[-2].panel_session_id = None
        completed = len(sessions) - 1
        of_target = sum(1 for x in sessions if x.rater_id == rid and x.status == "completed")
    token = _csrf(ann, "/organizer/studies/demo/raters")
    url = f"/organizer/studies/demo/raters/{rid}/decision"
    assert ann.post(url, data={"csrf_token": token, "decision": "reject"}).status_code == 302
    assert ann.post(url, data={"csrf_token": token, "decision": "maybe"}).status_code == 400

    prolific = _approvals(ann, "prolific")
    assert list(prolific[0]) == ["participant_id", "submission_id", "decision", "reason", "session_status"]
    assert len(prolific) == completed  # the running session is no submission yet
    mine = [r for r in prolific if r["participant_id"] == pid]
    assert len(mine) == of_target and {r["decision"] for r in mine} == {"REJECT"}
    assert all(r["reason"] for r in mine)  # a rejection always says why
    assert {r["decision"] for r in prolific} <= {"APPROVE", "REJECT"}
    assert all(r["reason"] == "" for r in prolific if r["decision"] == "APPROVE")

    mturk = _approvals(ann, "mturk")
    assert list(mturk[0]) == ["AssignmentId", "WorkerId", "Approve", "Reject", "SessionStatus"]
    assert len(mturk) == completed - 1  # no assignment id: MTurk could not match the row
    for row in mturk:
        assert row["AssignmentId"].startswith("sub-")
        assert (row["Approve"], bool(row["Reject"])) in {("X", False), ("", True)}  # X to approve, or a reason
    assert {r["Approve"] for r in mturk if r["WorkerId"] == pid} == {""}

    assert ann.get("/organizer/studies/demo/approvals.csv?panel=facebook").status_code == 400
    assert ann.post(url, data={"csrf_token": token, "decision": "auto"}).status_code == 302
    with filled.app_context(), db.transaction(filled) as s:
        assert s.get(Rater, rid).decision is None


def test_decision_redirects_back_only_within_the_site(filled: Flask, ann: FlaskClient) -> None:
    with filled.app_context(), db.transaction(filled) as s:
        rid = s.scalar(select(Rater.id).order_by(Rater.id))
    token = _csrf(ann, "/organizer/studies/demo/raters")
    url = f"/organizer/studies/demo/raters/{rid}/decision"
    back = "/organizer/studies/demo/raters?rules=1"
    response = ann.post(url, data={"csrf_token": token, "decision": "accept", "back": back})
    assert response.headers["Location"] == back
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = ann.post(url, data={"csrf_token": token, "decision": "accept", "back": evil})
        assert response.headers["Location"] == "/organizer/studies/demo/raters"


def test_rules_can_be_switched_off(ann: FlaskClient) -> None:
    html = ann.get("/organizer/studies/demo/raters?rules=1").get_data(as_text=True)
    assert "dropped by" not in html and html.count(">kept<") == 12


def test_decision_for_a_rater_of_another_study_is_404(filled: Flask, ann: FlaskClient) -> None:
    token = _csrf(ann, "/organizer/studies/demo/raters")
    assert ann.post("/organizer/studies/demo/raters/99999/decision",
                    data={"csrf_token": token, "decision": "accept"}).status_code == 404


def test_rules_from_names() -> None:
    rules = livestats.rules_from(["gold"])
    assert rules.min_gold_accuracy is not None and rules.bt500_fraction is None
    assert livestats.rules_from(["consistency_rank"]).drop_least_consistent == 3


def test_approval_csv_follows_each_gold_items_tolerance(filled: Flask, ann: FlaskClient) -> None:
    """Who gets paid follows ``|answer − expected| ≤ that gold item's tolerance`` (the manifest's,
    stored per trial), not the sign of the answer: expected +2 with tolerance 0 answered +1 is a
    failure, tolerance 2 answered "no preference" a pass."""
    with filled.app_context(), db.transaction(filled) as s:
        strict, lenient = s.scalars(select(Rater).order_by(Rater.id).limit(2)).all()
        gold = s.execute(select(Trial, Response, Session.rater_id).join(Response, Response.trial_id == Trial.id)
                         .join(Session, Trial.session_id == Session.id).where(Trial.kind == "gold")).all()
        for trial, response, rater_id in gold:
            if rater_id == strict.id:
                trial.gold_tolerance, response.value = 0, 1
            elif rater_id == lenient.id:
                trial.gold_tolerance, response.value = 2, 0
            else:
                response.value = trial.gold_expected
        assert {rid for _, _, rid in gold} >= {strict.id, lenient.id}
        strict_id, lenient_id = strict.panel_id, lenient.panel_id
    response = ann.get("/organizer/studies/demo/approvals.csv?panel=prolific&rules=1&rule=gold")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    verdicts = {(r["participant_id"], r["decision"]) for r in rows}
    assert {d for pid, d in verdicts if pid == strict_id} == {"REJECT"}
    assert {d for pid, d in verdicts if pid == lenient_id} == {"APPROVE"}
    assert all("gold" in r["reason"] for r in rows if r["participant_id"] == strict_id)
    assert {d for pid, d in verdicts if pid not in (strict_id, lenient_id)} == {"APPROVE"}
    page = ann.get("/organizer/studies/demo/raters?rules=1&rule=gold").get_data(as_text=True)
    assert page.count("dropped by gold") == 1


def test_a_rule_failing_most_raters_is_shown_not_applied(filled: Flask, ann: FlaskClient) -> None:
    """Every gold answer one step off a tolerance-0 item: the gold rule would reject the whole
    panel, so it is not applied and the raters page says why."""
    with filled.app_context(), db.transaction(filled) as s:
        for trial, response in s.execute(select(Trial, Response).join(Response, Response.trial_id == Trial.id)
                                         .where(Trial.kind == "gold")).all():
            trial.gold_tolerance, response.value = 0, 1
    page = ann.get("/organizer/studies/demo/raters?rules=1&rule=gold").get_data(as_text=True)
    assert "Screening notes" in page and "rule &#39;gold&#39; would have dropped" in page
    assert "dropped by" not in page
