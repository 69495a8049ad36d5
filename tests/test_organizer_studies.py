"""Organizer study pages: access rules, upload with all-problems-at-once, status, settings, progress."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from study_app import db
from study_app.models import Rater, Response, Session, Study
from tests.organizer_support import owned_demo_study
from tests.test_organizer import _csrf, login

ROUTES_GET = ["/organizer/", "/organizer/studies/new", "/organizer/studies/demo",
              "/organizer/studies/demo/progress.json", "/organizer/studies/demo/raters",
              "/organizer/studies/demo/approvals.csv", "/organizer/studies/demo/leaderboard",
              "/organizer/studies/demo/export/votes.csv", "/organizer/studies/demo/export/ranking.csv"]
ROUTES_POST = ["/organizer/studies/demo/status", "/organizer/studies/demo/settings",
               "/organizer/studies/demo/raters/1/decision", "/organizer/studies/new"]


@pytest.fixture
def owned(app: Flask, demo_manifest_path: Path) -> Flask:
    """Ann owns the demo study; Bob is another organizer."""
    return owned_demo_study(app, demo_manifest_path, "bob@example.org")


@pytest.mark.parametrize("path", ROUTES_GET)
def test_anonymous_get_goes_to_login(owned: Flask, path: str) -> None:
    response = owned.test_client().get(path)
    assert response.status_code == 302 and "/organizer/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ROUTES_POST)
def test_anonymous_post_is_refused(owned: Flask, path: str) -> None:
    client = owned.test_client()
    token = _csrf(client)
    response = client.post(path, data={"csrf_token": token, "status": "closed", "name": "x",
                                       "max_sessions_per_rater": "2"})
    assert response.status_code == 302 and "/organizer/login" in response.headers["Location"]
    with owned.app_context(), db.transaction(owned) as s:
        assert s.scalar(select(Study.status)) == "open"


@pytest.mark.parametrize("path", ROUTES_GET[2:])
def test_other_organizer_gets_404(owned: Flask, path: str) -> None:
    client = owned.test_client()
    login(client, "bob@example.org")
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", ROUTES_POST[:3])
def test_other_organizer_cannot_change(owned: Flask, path: str) -> None:
    client = owned.test_client()
    login(client, "bob@example.org")
    token = _csrf(client, "/organizer/")
    response = client.post(path, data={"csrf_token": token, "status": "closed", "name": "Hijacked",
                                       "max_sessions_per_rater": "9", "decision": "reject"})
    assert response.status_code == 404
    with owned.app_context(), db.transaction(owned) as s:
        study = s.scalar(select(Study))
        assert (study.status, study.name) == ("open", "panelrank demo — side-by-side preference (pc5)")


def test_status_and_settings(owned: Flask) -> None:
    client = owned.test_client()
    login(client, "ann@example.org")
    token = _csrf(client, "/organizer/studies/demo")
    status_url = "/organizer/studies/demo/status"
    assert client.post(status_url, data={"csrf_token": token, "status": "paused"}).status_code == 302
    assert client.post(status_url, data={"csrf_token": token, "status": "gone"}).status_code == 400
    response = client.post("/organizer/studies/demo/settings", data={
        "csrf_token": token, "name": "Renamed", "max_sessions_per_rater": "4",
        "completion_url": "https://example.org/done?c={code}", "instructions": "Watch closely."})
    assert response.status_code == 302
    bad = client.post("/organizer/studies/demo/settings", data={"csrf_token": token, "name": "X",
                                                                "max_sessions_per_rater": "0"})
    assert bad.status_code == 400
    with owned.app_context(), db.transaction(owned) as s:
        study = s.scalar(select(Study))
        assert study.status == "paused" and study.name == "Renamed" and study.max_sessions_per_rater == 4
        assert study.manifest["instructions"] == "Watch closely."
        assert study.manifest["panel"]["completion_url"] == "https://example.org/done?c={code}"
    page = client.get("/organizer/studies/demo").get_data(as_text=True)
    assert "Renamed" in page and "progress-data" in page


def _upload(client: FlaskClient, manifest: bytes, csv: bytes | None = None, name: str = "m.yaml"):
    data = {"csrf_token": _csrf(client, "/organizer/studies/new"), "manifest": (io.BytesIO(manifest), name)}
    if csv is not None:
        data["stimuli"] = (io.BytesIO(csv), "list.csv")
    return client.post("/organizer/studies/new", data=data, content_type="multipart/form-data")


def test_upload_bad_manifest_lists_every_problem_and_creates_nothing(
    owned: Flask, demo_manifest_path: Path
) -> None:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    raw.update(slug="second", method="pc9", trials_per_session=0, panel={"name": "facebook"})
    raw["conditions"].append({"id": "dark"})
    raw["stimuli"][0]["path"] = "/nonexistent/clip.mp4"
    client = owned.test_client()
    login(client, "ann@example.org")
    response = _upload(client, yaml.safe_dump(raw).encode())
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "5 problems" in html and html.count("<li>m.yaml: ") == 5
    with owned.app_context(), db.transaction(owned) as s:
        assert s.scalar(select(func.count()).select_from(Study)) == 1


def test_upload_with_csv_relative_to_media_root(owned: Flask, demo_manifest_path: Path, demo_clips: Path) -> None:
    owned.config["MEDIA_ROOT"] = str(demo_clips)
    raw = yaml.safe_load(demo_manifest_path.read_text())
    rows = ["content,condition,path"] + [f"{s['content']},{s['condition']},{s['content']}/{s['condition']}.mp4"
                                         for s in raw["stimuli"]]
    raw.update(slug="uploaded", stimuli="whatever.csv")
    client = owned.test_client()
    login(client, "ann@example.org")
    response = _upload(client, yaml.safe_dump(raw).encode(), "\n".join(rows).encode())
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/organizer/studies/uploaded")
    assert client.get("/organizer/studies/uploaded").status_code == 200


def test_upload_without_file(owned: Flask) -> None:
    client = owned.test_client()
    login(client, "ann@example.org")
    response = client.post("/organizer/studies/new", data={"csrf_token": _csrf(client, "/organizer/studies/new")})
    assert response.status_code == 400 and "Choose a manifest" in response.get_data(as_text=True)


def test_progress_counts_votes_against_target(owned: Flask) -> None:
    with owned.app_context(), db.transaction(owned) as s:
        study = s.scalar(select(Study))
        rater = Rater(study_id=study.id, panel="none", panel_id="anon")
        s.add(rater)
        s.flush()
        first = s.scalar(select(Session).where(Session.index == 0))
        first.rater_id, first.status = rater.id, "active"
        main = [t for t in first.trials if t.kind == "main"][:3]
        stalled = main[0]
        for t in main:
            s.add(Response(trial_id=t.id, value=1, stalls=1 if t is stalled else 0, plays=1))
    client = owned.test_client()
    login(client, "ann@example.org")
    p = client.get("/organizer/studies/demo/progress.json").get_json()
    assert p["votes"] == 3 and p["target"] == 4 * 15 * 8
    assert len(p["cells"]) == 15 and sum(c["target"] for c in p["cells"]) == p["target"]
    assert p["sessions"]["active"] == 1 and p["sessions"]["started"] == 1
    assert p["pace"]["last_hour"] == 3 and sum(p["pace"]["hourly_24h"]) == 3
    assert p["flagged"]["stalled"] == 1 and len(p["flagged"]["recent"]) == 1
