"""Live leaderboard and exports through the organizer console (Flask client)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import db, livestats
from study_app.export import votes_frame
from study_app.models import Study
from tests.organizer_support import client_of, fill, owned_demo_study


@pytest.fixture
def study_app(app: Flask, demo_manifest_path: Path) -> Flask:
    return owned_demo_study(app, demo_manifest_path)


@pytest.fixture
def ann(study_app: Flask) -> FlaskClient:
    return client_of(study_app)


def _fill(app: Flask) -> int:
    return fill(app, n_raters=15, seed=5)


def test_empty_study_has_no_leaderboard_yet(ann: FlaskClient) -> None:
    html = ann.get("/organizer/studies/demo/leaderboard").get_data(as_text=True)
    assert "No votes yet" in html
    assert ann.get("/organizer/studies/demo/export/ranking.csv").status_code == 409
    votes = ann.get("/organizer/studies/demo/export/votes.csv")
    assert votes.status_code == 200 and len(pd.read_csv(io.BytesIO(votes.data))) == 0


def test_leaderboard_ranks_every_condition_with_intervals(study_app: Flask, ann: FlaskClient) -> None:
    _fill(study_app)
    html = ann.get("/organizer/studies/demo/leaderboard").get_data(as_text=True)
    assert html.count("<tr><td class=\"num\">") == 6
    assert "figure-data" in html and "/organizer/plotly.min.js" in html
    split = ann.get("/organizer/studies/demo/leaderboard?ties=split").get_data(as_text=True)
    assert split.count("<tr><td class=\"num\">") == 6
    assert ann.get("/organizer/studies/demo/leaderboard?ties=coinflip").status_code == 400


def test_exports_are_the_analyze_files(study_app: Flask, ann: FlaskClient) -> None:
    n = _fill(study_app)
    ranking = pd.read_csv(io.BytesIO(ann.get("/organizer/studies/demo/export/ranking.csv").data))
    assert list(ranking.columns[:7]) == ["rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by"]
    assert len(ranking) == 6 and (ranking["ci_low"] <= ranking["score"]).all()
    scores = pd.read_csv(io.BytesIO(ann.get("/organizer/studies/demo/export/scores.csv").data))
    assert {"condition", "score", "se", "ci_low", "ci_high", "n_votes"} <= set(scores.columns)
    raters = pd.read_csv(io.BytesIO(ann.get("/organizer/studies/demo/export/raters.csv").data))
    assert len(raters) == 15
    html = ann.get("/organizer/studies/demo/export/report.html")
    assert html.status_code == 200 and b"<html" in html.data.lower()
    csv = pd.read_csv(io.BytesIO(ann.get("/organizer/studies/demo/export/votes.csv").data))
    parquet = pd.read_parquet(io.BytesIO(ann.get("/organizer/studies/demo/export/votes.parquet").data))
    assert len(csv) == len(parquet) == n
    with study_app.app_context(), db.transaction(study_app) as s:
        assert len(votes_frame(s, s.scalar(select(Study)))) == n
    assert ann.get("/organizer/studies/demo/export/secrets.txt").status_code == 404


def test_plotly_is_served_locally(ann: FlaskClient) -> None:
    response = ann.get("/organizer/plotly.min.js")
    assert response.status_code == 200 and len(response.data) > 1_000_000


def test_rejected_raters_leave_the_leaderboard(study_app: Flask) -> None:
    from study_app.models import Rater

    _fill(study_app)
    rules = livestats.rules_from([])
    with study_app.app_context(), db.transaction(study_app) as s:
        study = s.scalar(select(Study))
        before = livestats.leaderboard(s, study, rules).counts["raters"]
        s.scalar(select(Rater).order_by(Rater.id)).decision = "reject"
    with study_app.app_context(), db.transaction(study_app) as s:
        after = livestats.leaderboard(s, s.scalar(select(Study)), rules).counts["raters"]
    assert after == before - 1
