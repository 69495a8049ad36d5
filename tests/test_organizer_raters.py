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
from study_app.models import Rater
from tests.organizer_support import client_of, fill, owned_demo_study
from tests.test_organizer import _csrf


@pytest.fixture
def filled(app: Flask, demo_manifest_path: Path) -> Flask:
    owned_demo_study(app, demo_manifest_path)
    fill(app, n_raters=12, seed=3)
    return app


@pytest.fixture
def ann(filled: Flask) -> FlaskClient:
    return client_of(filled)


def test_raters_page_lists_every_rater_with_a_verdict(ann: FlaskClient) -> None:
    html = ann.get("/organizer/studies/demo/raters").get_data(as_text=True)
    assert html.count('id="decision-') == 12
    assert "kept" in html or "dropped by" in html


def test_override_and_approval_csvs(filled: Flask, ann: FlaskClient) -> None:
    with filled.app_context(), db.transaction(filled) as s:
        target = s.scalar(select(Rater).order_by(Rater.id))
        rid, pid = target.id, target.panel_id
    token = _csrf(ann, "/organizer/studies/demo/raters")
    url = f"/organizer/studies/demo/raters/{rid}/decision"
    assert ann.post(url, data={"csrf_token": token, "decision": "reject"}).status_code == 302
    assert ann.post(url, data={"csrf_token": token, "decision": "maybe"}).status_code == 400
    rows = list(csv.DictReader(io.StringIO(ann.get("/organizer/studies/demo/approvals.csv?panel=prolific")
                                           .get_data(as_text=True))))
    assert len(rows) == 12
    assert next(r for r in rows if r["participant_id"] == pid)["decision"] == "REJECT"
    mturk = list(csv.DictReader(io.StringIO(ann.get("/organizer/studies/demo/approvals.csv?panel=mturk")
                                            .get_data(as_text=True))))
    assert set(mturk[0]) == {"AssignmentId", "WorkerId", "Approve", "Reject"}
    assert ann.get("/organizer/studies/demo/approvals.csv?panel=facebook").status_code == 400
    assert ann.post(url, data={"csrf_token": token, "decision": "auto"}).status_code == 302
    with filled.app_context(), db.transaction(filled) as s:
        assert s.get(Rater, rid).decision is None


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
