"""Live leaderboard and exports through the organizer console (Flask client)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import db, livestats, scheduling
from study_app.export import votes_frame
from study_app.models import Study
from tests.organizer_support import client_of, fill, fill_ratings, owned_demo_study


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
    assert "rater-clustered intervals" in html                                # the default, named
    split = ann.get("/organizer/studies/demo/leaderboard?ties=split").get_data(as_text=True)
    assert split.count("<tr><td class=\"num\">") == 6
    assert ann.get("/organizer/studies/demo/leaderboard?ties=coinflip").status_code == 400


def test_exports_are_the_analyze_files(study_app: Flask, ann: FlaskClient) -> None:
    n = _fill(study_app)
    ranking = pd.read_csv(io.BytesIO(ann.get("/organizer/studies/demo/export/ranking.csv").data))
    assert list(ranking.columns[:7]) == ["rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by"]
    assert len(ranking) == 6 and (ranking["ci_low"] <= ranking["score"]).all()
    scores = pd.read_csv(io.BytesIO(ann.get("/organizer/studies/demo/export/scores.csv").data))
    assert {"condition", "score", "se", "ci_low", "ci_high", "ci_method", "n_votes"} <= set(scores.columns)
    assert (scores["ci_method"] == "cluster").all()
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


# --------------------------------------------------------------------------- the command line writes the same
def _cli(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _same_as_the_command_line(app: Flask, client: FlaskClient, slug: str, tmp_path: Path) -> None:
    """The console's downloads are byte for byte what `export` and the command shown on the page write."""
    html = client.get(f"/organizer/studies/{slug}/leaderboard").get_data(as_text=True)
    command = re.search(r'<code class="command">panelrank (.*?)</code>', html).group(1).split()
    out = tmp_path / f"{slug}-report"
    _cli(app, *[str(out) if a == "report" else a for a in command])
    _cli(app, "export", slug, "--out", str(tmp_path / f"{slug}.csv"))
    base = f"/organizer/studies/{slug}/export"
    assert client.get(f"{base}/votes.csv").data == (tmp_path / f"{slug}.csv").read_bytes()
    for name in ("ranking.csv", "scores.csv", "raters.csv"):
        assert client.get(f"{base}/{name}").data == (out / name).read_bytes(), name


def test_exports_equal_the_command_line(study_app: Flask, ann: FlaskClient, tmp_path: Path) -> None:
    _fill(study_app)
    _same_as_the_command_line(study_app, ann, "demo", tmp_path)
    html = ann.get("/organizer/studies/demo/leaderboard?ties=split&rules=1").get_data(as_text=True)
    assert "--ties split --no-screening" in html
    custom = ann.get("/organizer/studies/demo/leaderboard?rules=1&rule=gold").get_data(as_text=True)
    assert 'class="command"' not in custom and "no single command-line switch" in custom


@pytest.fixture
def ratings_app(app: Flask, demo_manifest_path: Path, tmp_path: Path) -> Flask:
    """Ann owns an ACR-5 study built from the demo manifest, every planned trial answered."""
    raw = yaml.safe_load(demo_manifest_path.read_text())
    for key in ("votes_per_pair", "gold", "gold_per_session", "training", "design", "reasons"):
        raw.pop(key, None)
    raw.update(slug="ratings", name="Demo ratings", method="acr5", votes_per_stimulus=6, trials_per_session=12,
               repeats_per_session=2)
    manifest = tmp_path / "acr5.yaml"
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    owned_demo_study(app, manifest)
    with app.app_context(), db.transaction(app) as s:
        app.config["N_VOTES"] = fill_ratings(s, s.scalar(select(Study)), n_raters=12)
    return app


def test_ratings_study_progress_leaderboard_and_exports(ratings_app: Flask, tmp_path: Path) -> None:
    client = client_of(ratings_app)
    progress = client.get("/organizer/studies/ratings/progress.json").get_json()
    assert progress["pairwise"] is False and len(progress["cells"]) == 4 * 6
    assert {c["target"] for c in progress["cells"]} == {6} and progress["votes"] == progress["target"] == 144
    html = client.get("/organizer/studies/ratings/leaderboard").get_data(as_text=True)
    assert html.count('<tr><td class="num">') == 6 and "figure-data" in html
    assert 'id="ties"' not in html  # tie models are a pairwise matter
    assert '"MOS"' in html  # the plot's axis
    ranking = pd.read_csv(io.BytesIO(client.get("/organizer/studies/ratings/export/ranking.csv").data))
    assert len(ranking) == 6 and ranking["condition"].iloc[-1] == "compressed"
    assert ((ranking["ci_low"] <= ranking["score"]) & (ranking["score"] <= ranking["ci_high"])).all()
    assert (ranking["ci_high"] - ranking["ci_low"] > 0).all() and ranking["score"].between(1, 5).all()
    votes = pd.read_parquet(io.BytesIO(client.get("/organizer/studies/ratings/export/votes.parquet").data))
    assert len(votes) == ratings_app.config["N_VOTES"] and "score" in votes
    report_html = client.get("/organizer/studies/ratings/export/report.html")
    assert report_html.status_code == 200 and b"MOS" in report_html.data
    _same_as_the_command_line(ratings_app, client, "ratings", tmp_path)


def test_leaderboard_page_is_cached_until_a_vote_arrives(study_app: Flask, ann: FlaskClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from analysis import report
    from study_app.models import Response

    _fill(study_app)
    with study_app.app_context(), db.transaction(study_app) as s:
        last = s.scalar(select(Response).order_by(Response.id.desc()).limit(1))
        kept = {k: getattr(last, k) for k in ("trial_id", "value", "reason", "watch_ms", "plays", "stalls")}
        s.delete(last)
    calls: list[int] = []
    real = report.analyze
    monkeypatch.setattr(report, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = ann.get("/organizer/studies/demo/leaderboard").get_data(as_text=True)
    assert ann.get("/organizer/studies/demo/leaderboard").get_data(as_text=True) == first
    assert ann.get("/organizer/studies/demo/export/ranking.csv").status_code == 200
    assert len(calls) == 1  # the page twice and an export: one analysis
    ann.get("/organizer/studies/demo/leaderboard?rules=1")  # other screening rules: their own analysis
    assert len(calls) == 2
    with study_app.app_context(), db.transaction(study_app) as s:
        s.add(Response(**kept))
    ann.get("/organizer/studies/demo/leaderboard")
    assert len(calls) == 3


def test_too_few_votes_give_a_409_not_a_500(study_app: Flask, ann: FlaskClient) -> None:
    from study_app.models import Rater, Response

    with study_app.app_context(), db.transaction(study_app) as s:
        study = s.scalar(select(Study))
        rater = Rater(study_id=study.id, panel="none", panel_id="early")
        s.add(rater)
        s.flush()
        first = scheduling.claim_session(s, study, rater)  # sessions are built when a rater starts one
        s.add(Response(trial_id=next(t.id for t in first.trials if t.kind == "main"), value=1, plays=1, stalls=0))
    page = ann.get("/organizer/studies/demo/leaderboard")
    assert page.status_code == 200 and "cannot be analysed yet" in page.get_data(as_text=True)
    for name in ("ranking.csv", "report.html"):
        response = ann.get(f"/organizer/studies/demo/export/{name}")
        assert response.status_code == 409 and b"cannot be analysed yet" in response.data
    assert ann.get("/organizer/studies/demo/export/votes.csv").status_code == 200
    # raters.csv needs no ranking (the leaderboard's "screening dropped every rater" points to it).
    raters = ann.get("/organizer/studies/demo/export/raters.csv")
    assert raters.status_code == 200
    assert pd.read_csv(io.BytesIO(raters.data))["rater"].astype(str).tolist() == ["early"]
