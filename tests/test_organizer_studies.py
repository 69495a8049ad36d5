"""Organizer study pages: access rules, upload with all-problems-at-once, status, settings, progress."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import func, select

from study_app import accounts, db, scheduling
from study_app.manifest import validate
from study_app.models import Rater, Response, Session, Study
from study_app.organizer.results import REPORT_FILES, VOTE_FILES
from study_app.studies import create_study, write_planned_sessions
from tests.organizer_support import owned_demo_study
from tests.sql_support import statements
from tests.test_organizer import _csrf, login

#: An example of every argument a console route takes. A route with an argument not listed here
#: makes the access tests below fail until it is added (and thereby tested).
ARGS = {"slug": "demo", "rater_id": 1, "name": "votes.csv"}
#: Console routes open to anonymous visitors, with why.
PUBLIC = {("organizer.login", "GET"), ("organizer.login", "POST"),  # the way in
          ("organizer.logout", "POST")}  # clears whatever session there is
EXPORT_NAMES = [*VOTE_FILES, *REPORT_FILES]


def console_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, example URL) for every route of the organizer blueprint, from ``app.url_map``."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith("organizer."):
                missing = sorted(set(rule.arguments) - set(ARGS))
                assert not missing, f"{rule.rule}: add an example for {missing} to ARGS (and check the tests)"
                url = url_for(rule.endpoint, **{k: ARGS[k] for k in rule.arguments})
                found += [(rule.endpoint, m, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def _routes(predicate) -> list[tuple[str, str, str]]:
    from study_app import create_app

    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "routes"})
    return [r for r in console_routes(app) if predicate(r)]


PROTECTED = _routes(lambda r: (r[0], r[1]) not in PUBLIC)
PER_STUDY = _routes(lambda r: "/studies/demo" in r[2])
FORMS = _routes(lambda r: r[1] == "POST")


def test_the_route_lists_cover_the_blueprint() -> None:
    assert len(PROTECTED) >= 13 and {e for e, _, _ in PROTECTED} >= {
        "organizer.studies", "organizer.new_study", "organizer.study", "organizer.progress_json",
        "organizer.set_status", "organizer.settings", "organizer.raters", "organizer.decide",
        "organizer.approvals", "organizer.leaderboard", "organizer.export", "organizer.plotly_js"}
    assert {(e, m) for e, m, _ in _routes(lambda r: True)} - {(e, m) for e, m, _ in PROTECTED} == PUBLIC


@pytest.fixture
def owned(app: Flask, demo_manifest_path: Path) -> Flask:
    """Ann owns the demo study (with one rater); Bob is another organizer, Root an admin."""
    owned_demo_study(app, demo_manifest_path, "bob@example.org")
    with app.app_context(), db.transaction(app) as s:
        accounts.create_organizer(s, "root@example.org", "correct-horse", role="admin")
        rater = Rater(study_id=s.scalar(select(Study.id)), panel="none", panel_id="r1")
        s.add(rater)
        s.flush()
        assert rater.id == ARGS["rater_id"]
    return app


FORM = {"status": "closed", "name": "Hijacked", "max_sessions_per_rater": "9", "decision": "reject"}


def _unchanged(app: Flask) -> None:
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        assert (study.status, study.name, study.max_sessions_per_rater) == (
            "open", "panelrank demo — side-by-side preference (pc5)", 3)
        assert s.scalar(select(Rater.decision)) is None
        assert s.scalar(select(func.count()).select_from(Study)) == 1


def _request(client: FlaskClient, method: str, url: str, token: str | None):
    if method == "GET":
        return client.get(url)
    data = {**FORM, **({"csrf_token": token} if token else {})}
    if url.endswith("/studies/new"):
        data["manifest"] = (io.BytesIO(b"slug: x"), "m.yaml")
    return client.post(url, data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(("endpoint", "method", "url"), PROTECTED)
def test_anonymous_is_sent_to_login(owned: Flask, endpoint: str, method: str, url: str) -> None:
    client = owned.test_client()
    response = _request(client, method, url, _csrf(client))
    assert response.status_code == 302, endpoint
    assert response.headers["Location"].startswith("/organizer/login?next=")
    _unchanged(owned)


@pytest.mark.parametrize(("endpoint", "method", "url"), PER_STUDY)
def test_other_organizers_study_is_404(owned: Flask, endpoint: str, method: str, url: str) -> None:
    client = owned.test_client()
    login(client, "bob@example.org")
    response = _request(client, method, url, _csrf(client, "/organizer/"))
    assert response.status_code == 404, endpoint
    assert ">demo</code>" not in client.get("/organizer/").get_data(as_text=True)
    _unchanged(owned)


@pytest.mark.parametrize("name", EXPORT_NAMES)
def test_every_export_is_private(owned: Flask, name: str) -> None:
    url = f"/organizer/studies/demo/export/{name}"
    assert owned.test_client().get(url).status_code == 302
    client = owned.test_client()
    login(client, "bob@example.org")
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(("endpoint", "method", "url"), [r for r in PER_STUDY if r[1] == "GET"])
def test_admin_sees_every_study(owned: Flask, endpoint: str, method: str, url: str) -> None:
    client = owned.test_client()
    login(client, "root@example.org")
    assert client.get(url).status_code in (200, 409), endpoint  # 409: an analysis file of a study without votes


@pytest.mark.parametrize(("endpoint", "method", "url"), FORMS)
def test_every_form_post_needs_the_csrf_token(owned: Flask, endpoint: str, method: str, url: str) -> None:
    client = owned.test_client()
    if endpoint != "organizer.login":
        login(client, "ann@example.org")
    response = _request(client, method, url, None)
    assert response.status_code == 400 and b"CSRF" in response.data, endpoint
    wrong = _request(client, method, url, "not-the-token")
    assert wrong.status_code == 400, endpoint
    _unchanged(owned)
    if endpoint == "organizer.logout":
        assert client.get("/organizer/").status_code == 200  # still logged in


def test_every_rendered_form_carries_the_token(owned: Flask) -> None:
    client = owned.test_client()
    login(client, "ann@example.org")
    pages = ["/organizer/", "/organizer/studies/new", "/organizer/studies/demo", "/organizer/studies/demo/raters",
             "/organizer/studies/demo/leaderboard"]
    for page in pages:
        html = client.get(page).get_data(as_text=True)
        forms = re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S)
        posts = [f for f in forms if 'method="post"' in f.split(">")[0]]
        assert posts or page.endswith("leaderboard"), page
        for form in posts:
            assert 'name="csrf_token"' in form, (page, form[:120])


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


def _problems(response) -> list[str]:
    html = response.get_data(as_text=True)
    return [re.sub(r"\s+", " ", p) for p in re.findall(r"<li>(.*?)</li>", html, flags=re.S)]


def _count(app: Flask) -> int:
    with app.app_context(), db.transaction(app) as s:
        return s.scalar(select(func.count()).select_from(Study))


def test_upload_that_is_not_utf8_says_so_and_creates_nothing(owned: Flask, demo_manifest_path: Path) -> None:
    client = owned.test_client()
    login(client, "ann@example.org")
    text = demo_manifest_path.read_text().replace("slug: demo", "slug: latin")
    response = _upload(client, ("# café\n" + text).encode("latin-1"))
    assert response.status_code == 400
    assert _problems(response) == ["m.yaml: file: not UTF-8 text (byte 0xe9 at position 5); save it with UTF-8 "
                                   "encoding and upload it again"]
    csv = "content,condition,path\nc1,source,é.mp4".encode("cp1252")
    both = _upload(client, ("# café\n" + text).encode("latin-1"), csv)
    assert [p.split(":")[0] for p in _problems(both)] == ["m.yaml", "list.csv"]  # every file's problem at once
    assert _count(owned) == 1


def test_upload_with_a_bad_csv_names_the_uploaded_file(owned: Flask, demo_manifest_path: Path) -> None:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    raw.update(slug="badcsv", stimuli="whatever.csv")
    client = owned.test_client()
    login(client, "ann@example.org")
    response = _upload(client, yaml.safe_dump(raw).encode(), b"file,cond\nx,y\n")
    problems = _problems(response)
    assert response.status_code == 400 and problems
    assert problems[0].startswith("list.csv: header: missing column(s)")
    assert not any("panelrank-upload-" in p or "/tmp" in p for p in problems)  # no server paths
    assert _count(owned) == 1


def test_oversized_upload_gets_a_friendly_413(owned: Flask) -> None:
    owned.config["MAX_CONTENT_LENGTH"] = 50_000
    client = owned.test_client()
    login(client, "ann@example.org")
    response = _upload(client, b"#" * 60_000)
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "Upload too large" in html and "larger than the server accepts" in html and "ann@example.org" in html
    assert _count(owned) == 1


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
        first = scheduling.claim_session(s, study, rater)  # sessions are built when a rater starts one
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


def test_open_pause_close_reach_the_raters(owned: Flask) -> None:
    client = owned.test_client()
    login(client, "ann@example.org")
    token = _csrf(client, "/organizer/studies/demo")
    rater = owned.test_client()
    assert rater.get("/s/demo").status_code in (200, 302)  # open: the rater gets in
    for status, code, words in (("paused", 503, "paused"), ("closed", 410, "closed"), ("open", None, None)):
        response = client.post("/organizer/studies/demo/status", data={"csrf_token": token, "status": status})
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert f"is now {status}" in page and f'badge-{status}" id="status-badge"' in page
        entry = owned.test_client().get("/s/demo")
        if code is None:
            assert entry.status_code in (200, 302)
        else:
            assert entry.status_code == code and words in entry.get_data(as_text=True).lower()


def test_progress_session_states_duration_pace_and_flags(owned: Flask) -> None:
    from datetime import timedelta

    from study_app.models import utcnow
    from study_app.progress import ABANDONED_AFTER, HIDDEN_FLAG_MS, study_progress

    now = utcnow()
    with owned.app_context(), db.transaction(owned) as s:
        rater = s.scalar(select(Rater))
        write_planned_sessions(s, s.scalar(select(Study)))  # sessions in every state, set by hand below
        # A rater has at most one active session (a partial unique index): the second is another rater's.
        other = Rater(study_id=rater.study_id, panel=rater.panel, panel_id=f"{rater.panel_id}-2")
        s.add(other)
        s.flush()
        sessions = list(s.scalars(select(Session).order_by(Session.index)))[:6]
        states = ["completed", "completed", "completed", "active", "active", "screened_out"]
        for sess, status in zip(sessions, states, strict=True):
            owner = other if sess is sessions[4] else rater
            sess.rater_id, sess.status, sess.started_at = owner.id, status, now - timedelta(hours=3)
        for sess, minutes in zip(sessions[:3], (10, 20, 60), strict=True):
            sess.completed_at = sess.started_at + timedelta(minutes=minutes)
        # Session 3 answered a minute ago (active); session 4 went quiet long ago.
        main = [t for t in sessions[3].trials if t.kind == "main"]
        s.add(Response(trial_id=main[0].id, value=1, answered_at=now - timedelta(minutes=1), stalls=0,
                       hidden_ms=HIDDEN_FLAG_MS, plays=1))
        s.add(Response(trial_id=main[1].id, value=0, answered_at=now - timedelta(minutes=30), stalls=2,
                       hidden_ms=0, plays=1))
        old = next(t for t in sessions[4].trials if t.kind == "main")
        s.add(Response(trial_id=old.id, value=-1, answered_at=now - ABANDONED_AFTER - timedelta(minutes=5),
                       stalls=0, hidden_ms=HIDDEN_FLAG_MS - 1, plays=1))
        sessions[3].last_seen_at = now - timedelta(minutes=1)
        sessions[4].last_seen_at = now - ABANDONED_AFTER - timedelta(minutes=5)
    with owned.app_context():
        s = db.get_db()  # as the console's request does: the expiry sweep commits
        p = study_progress(s, s.scalar(select(Study)), now=now)
    # Session 4, idle longer than session_timeout_minutes (60), has expired: its trials went back to the pool.
    assert p["sessions"] == {"planned": 24, "active": 1, "completed": 3, "screened_out": 1, "abandoned": 0,
                             "expired": 1, "started": 6, "median_duration_s": 1200.0}
    assert p["votes"] == 3 and p["pace"]["last_hour"] == 2 and p["pace"]["hourly_24h"][-2] == 1
    assert sum(p["pace"]["hourly_24h"]) == 3
    assert (p["flagged"]["stalled"], p["flagged"]["hidden"]) == (1, 1)
    assert [f["stalls"] for f in p["flagged"]["recent"]] == [0, 2]  # newest first


def test_study_list_queries_do_not_grow_with_the_studies(owned: Flask, demo_manifest_path: Path) -> None:
    client = owned.test_client()
    login(client, "root@example.org")  # an admin: every study is listed
    client.get("/organizer/")
    with statements(owned) as one_study:
        assert client.get("/organizer/").status_code == 200
    raw = yaml.safe_load(demo_manifest_path.read_text())
    with owned.app_context(), db.transaction(owned) as s:
        for slug in ("second", "third"):
            create_study(s, validate({**raw, "slug": slug}, demo_manifest_path))
    with statements(owned) as three_studies:
        html = client.get("/organizer/").get_data(as_text=True)
    assert "third" in html and len(three_studies) == len(one_study)


def test_the_create_page_estimates_the_votes_a_study_needs(owned: Flask) -> None:
    """The planning form on the create page prints what analysis.planning (and `panelrank plan-votes`) compute."""
    from analysis import planning

    client = owned.test_client()
    login(client, "root@example.org")
    page = client.get("/organizer/studies/new?delta=0.25&conditions=12&alpha=0.05&power=0.9&tie_rate=0.2")
    assert page.status_code == 200
    plan = planning.study_votes(0.25, 12, alpha=0.05, power=0.9, tie_rate=0.2)
    text = page.get_data(as_text=True)
    for number in (plan.per_pair, plan.per_pair_holm, *plan.adjacent_total, *plan.all_pairs_total):
        assert f"<td>{number:,}</td>" in text, number
    bad = client.get("/organizer/studies/new?delta=-1&conditions=12")
    assert bad.status_code == 400 and "delta must be a positive number" in bad.get_data(as_text=True)
    words = client.get("/organizer/studies/new?delta=big&conditions=12")
    assert words.status_code == 400 and "delta must be a number, got &#39;big&#39;" in words.get_data(as_text=True)
