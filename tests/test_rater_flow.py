"""The rater's pages through the Flask client: entry with panel IDs, consent, the screen check,
resuming, completion, and every friendly refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from study_app import db, scheduling
from study_app.models import Rater, Session, Study
from tests.rater_support import SMALL_SESSION, csrf, make_study, set_status, walk_to_trials


@pytest.fixture
def slug(app: Flask, demo_manifest_path: Path) -> str:
    return make_study(app, demo_manifest_path, **SMALL_SESSION)


def _sessions(app: Flask) -> list[Session]:
    with app.app_context(), db.transaction(app) as s:
        rows = s.scalars(select(Session).where(Session.status != "planned")).all()
        s.expunge_all()
        return rows


def _answer_all(client: FlaskClient, slug: str, response: int = 3) -> dict:
    body: dict = {}
    while True:
        trial = client.get(f"/s/{slug}/api/trial").json
        if trial.get("done"):
            return body
        body = client.post(f"/s/{slug}/api/vote", json={"trial": trial["trial"], "response": response}).json
        assert body["ok"], body


def test_entry_redirects_to_welcome_and_claims_nothing_until_consent(app: Flask, client: FlaskClient,
                                                                     slug: str) -> None:
    r = client.get(f"/s/{slug}")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/s/{slug}/welcome?arrived=1")
    page = client.get(f"/s/{slug}/welcome")
    assert page.status_code == 200 and b"watch both to the end" in page.data.lower()
    assert _sessions(app) == []  # a link preview or crawler holds no session


def test_instructions_read_as_paragraphs(app: Flask, client: FlaskClient, demo_manifest_path: Path) -> None:
    """The organizer's YAML line wrapping is not the browser's: wrapped lines join, blank lines
    separate paragraphs, list items keep their own line, and the text stays escaped."""
    text = "Watch both clips\nto the end.\n\nRules:\n- no zooming\n  at all\n- <b>no</b> pausing\n"
    slug = make_study(app, demo_manifest_path, slug="demo-text", instructions=text, **SMALL_SESSION)
    client.get(f"/s/{slug}")
    page = client.get(f"/s/{slug}/welcome").get_data(as_text=True)
    block = page.split('<div class="instructions">')[1].split("</div>")[0]
    assert block.strip() == ("<p>Watch both clips to the end.</p><p>Rules:<br>- no zooming at all"
                             "<br>- &lt;b&gt;no&lt;/b&gt; pausing</p>")


def test_consent_is_required(client: FlaskClient, slug: str) -> None:
    client.get(f"/s/{slug}")
    r = client.post(f"/s/{slug}/welcome", data={"csrf_token": csrf(client)})
    assert r.status_code == 400 and b"tick the box" in r.data


def test_consent_withoutcsrf_token_is_refused(client: FlaskClient, slug: str) -> None:
    client.get(f"/s/{slug}")
    assert client.post(f"/s/{slug}/welcome", data={"consent": "yes"}).status_code == 400


def test_walk_to_study_page_then_resume_from_entry(app: Flask, client: FlaskClient, slug: str) -> None:
    walk_to_trials(client, slug)
    r = client.get(f"/s/{slug}")
    assert r.headers["Location"].endswith(f"/s/{slug}/study")
    page = client.get(f"/s/{slug}/study")
    assert page.status_code == 200 and b"panelrank-config" in page.data
    # Earlier steps send the rater forward again.
    assert client.get(f"/s/{slug}/welcome").headers["Location"].endswith("/study")
    assert client.get(f"/s/{slug}/check").headers["Location"].endswith("/study")
    [sess] = _sessions(app)
    assert sess.status == "active" and sess.environment["gate"]["inner_w"] == 1920


def test_pages_before_entry_send_to_entry(client: FlaskClient, slug: str) -> None:
    for page in ("welcome", "check", "study", "done", "screened-out"):
        r = client.get(f"/s/{slug}/{page}")
        assert r.status_code == 302 and r.headers["Location"].endswith(f"/s/{slug}"), page


def test_prolific_ids_are_kept_and_resume_on_another_browser(app: Flask, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION,
                      panel={"name": "prolific", "completion_code": "C0DE1"})
    query = "?PROLIFIC_PID=pid123&STUDY_ID=st9&SESSION_ID=se7"
    first = app.test_client()
    walk_to_trials(first, slug, query)
    trial = first.get(f"/s/{slug}/api/trial").json
    first.post(f"/s/{slug}/api/vote", json={"trial": trial["trial"], "response": 2, "reasons": [1]})
    other = app.test_client()  # a second browser: no cookie, same participant ID
    r = other.get(f"/s/{slug}{query}")
    assert r.headers["Location"].endswith(f"/s/{slug}/study")
    assert other.get(f"/s/{slug}/api/trial").json["trial"] == trial["trial"] + 1
    [sess] = _sessions(app)
    assert sess.panel_session_id == "se7" and sess.environment["panel"] == {"STUDY_ID": "st9"}
    body = _answer_all(other, slug)
    assert body["done"] and body["redirect"].endswith("/done")
    done = other.get(f"/s/{slug}/done")
    assert b"C0DE1" in done.data and b"https://app.prolific.com/submissions/complete?cc=C0DE1" in done.data


def test_prolific_study_without_pid_is_refused(app: Flask, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, panel={"name": "prolific", "completion_code": "X1"})
    r = app.test_client().get(f"/s/{slug}")
    assert r.status_code == 400 and b"Prolific" in r.data


def test_malformed_panel_id_is_refused(app: Flask, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, panel={"name": "prolific", "completion_code": "X1"})
    r = app.test_client().get(f"/s/{slug}?PROLIFIC_PID=<script>")
    assert r.status_code == 400 and b"not valid" in r.data


def test_mturk_preview_and_completion_code(app: Flask, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, panel={"name": "mturk", "completion_code": "MT42"})
    preview = app.test_client().get(f"/s/{slug}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1")
    assert preview.status_code == 200 and b"Accept the HIT" in preview.data
    client = app.test_client()
    walk_to_trials(client, slug, "?workerId=W1&assignmentId=A1&hitId=H1")
    _answer_all(client, slug)
    done = client.get(f"/s/{slug}/done")
    assert b"MT42" in done.data and b"Mechanical Turk" in done.data


def test_unknown_study_paused_and_closed(app: Flask, client: FlaskClient, slug: str) -> None:
    assert client.get("/s/no-such-study").status_code == 404
    set_status(app, slug, "paused")
    r = client.get(f"/s/{slug}")
    assert r.status_code == 503 and b"paused" in r.data
    set_status(app, slug, "closed")
    r = client.get(f"/s/{slug}")
    assert r.status_code == 410 and b"closed" in r.data


def test_paused_study_stops_an_active_session(app: Flask, client: FlaskClient, slug: str) -> None:
    walk_to_trials(client, slug)
    set_status(app, slug, "paused")
    assert client.get(f"/s/{slug}/study").status_code == 503
    r = client.post(f"/s/{slug}/api/vote", json={"trial": 0, "response": 3})
    assert r.status_code == 403 and "paused" in r.json["error"]


def test_full_study_is_refused(app: Flask, demo_manifest_path: Path) -> None:
    # votes 1, all pairs of 6 conditions × 4 contents = 60 items: 15 sessions of 4 hold every one in flight.
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION)
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        raters = [Rater(study_id=study.id, panel="none", panel_id=f"hoarder{i}") for i in range(16)]
        s.add_all(raters)
        s.flush()
        claimed = [scheduling.claim_session(s, study, r) for r in raters]
        assert all(c is not None for c in claimed[:15]) and claimed[15] is None
    r = app.test_client().get(f"/s/{slug}")
    assert r.status_code == 503 and b"No places left" in r.data


# Without gold: _answer_all answers every trial alike, and a failed gold check would screen the rater out.
NO_GOLD = {"gold": None, "gold_per_session": None}


def test_max_sessions_per_rater(app: Flask, client: FlaskClient, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, **NO_GOLD, max_sessions_per_rater=1)
    walk_to_trials(client, slug)
    _answer_all(client, slug)
    done = client.get(f"/s/{slug}/done")
    assert b"Do another session" not in done.data
    assert client.get(f"/s/{slug}").headers["Location"].endswith("/done")
    r = client.get(f"/s/{slug}/welcome")
    assert r.status_code == 403 and b"maximum number of times (1)" in r.data


def test_another_session_when_allowed(app: Flask, client: FlaskClient, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, **NO_GOLD)
    walk_to_trials(client, slug)
    _answer_all(client, slug)
    done = client.get(f"/s/{slug}/done")
    assert b"Do another session" in done.data and b"DEMO-THANKS" in done.data
    walk_to_trials_again = client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    assert walk_to_trials_again.headers["Location"].endswith("/check")
    statuses = sorted(s.status for s in _sessions(app))
    assert statuses == ["active", "completed"]


@pytest.mark.parametrize(("measured", "reason"), [
    ({"inner_w": 800, "inner_h": 600, "cannot": True}, "smaller than the required 1280 × 720"),
    ({"inner_w": 1920, "inner_h": 1080, "mobile": True}, "phone or tablet"),
])
def test_environment_gate_screens_out(app: Flask, client: FlaskClient, slug: str, measured: dict,
                                      reason: str) -> None:
    """A phone, or the rater's own "I cannot" with a window that is too small, ends the session."""
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    r = client.post(f"/s/{slug}/api/environment", json={**measured, "dpr": 2, "screen_w": 3000, "screen_h": 2000})
    assert r.status_code == 200 and r.json == {"ok": False, "redirect": f"/s/{slug}/screened-out"}
    page = client.get(f"/s/{slug}/screened-out")
    assert reason.encode() in page.data
    assert client.get(f"/s/{slug}").headers["Location"].endswith("/screened-out")
    with app.app_context(), db.transaction(app) as s:
        rater = s.scalar(select(Rater))
        assert reason in rater.screen_out_reason
        sess = s.scalar(select(Session).where(Session.rater_id == rater.id))
        assert sess.status == "screened_out" and sess.environment["gate"]["dpr"] == 2
    assert client.post(f"/s/{slug}/api/vote", json={"trial": 0, "response": 3}).status_code == 403


def test_screen_out_code_and_url(app: Flask, client: FlaskClient, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, panel={
        "name": "none", "completion_code": "OK1", "screen_out_code": "NOPE7",
        "screen_out_url": "https://panel.example/out?code={code}"})
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    client.post(f"/s/{slug}/api/environment", json={"inner_w": 10, "inner_h": 10, "cannot": True})
    page = client.get(f"/s/{slug}/screened-out").data
    assert b"NOPE7" in page and b"https://panel.example/out?code=NOPE7" in page


def test_a_small_window_is_refused_until_resized_never_screened_out(app: Flask, client: FlaskClient,
                                                                    slug: str) -> None:
    """Too small without "I cannot": 422 naming the size needed; the session stays where it was,
    and the same rater passes once the window is larger."""
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    r = client.post(f"/s/{slug}/api/environment", json={"inner_w": 1366, "inner_h": 657, "dpr": 1})
    assert r.status_code == 422 and "1366 × 657" in r.json["error"] and "1280 × 720" in r.json["error"]
    with app.app_context(), db.transaction(app) as s:
        sess = s.scalar(select(Session).where(Session.rater_id.is_not(None)))
        assert sess.status == "active" and "gate" not in sess.environment
    assert client.get(f"/s/{slug}").headers["Location"].endswith("/check")
    ok = client.post(f"/s/{slug}/api/environment", json={"inner_w": 1366, "inner_h": 768, "dpr": 1})
    assert ok.status_code == 200 and ok.json["ok"] is True


def test_rater_pages_and_answers_are_never_stored_by_the_browser(client: FlaskClient, slug: str) -> None:
    entry = client.get(f"/s/{slug}")
    assert entry.headers["Cache-Control"] == "no-store"
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    for path in ("check", "api/trial"):
        assert client.get(f"/s/{slug}/{path}").headers["Cache-Control"] == "no-store", path


def test_check_page_shows_minimum(client: FlaskClient, slug: str) -> None:
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    page = client.get(f"/s/{slug}/check")
    assert page.status_code == 200 and "at least 1280 × 720".encode() in page.data


def test_one_rater_row_per_panel_id(app: Flask, demo_manifest_path: Path) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, panel={"name": "prolific", "completion_code": "X1"})
    for _ in range(2):
        walk_to_trials(app.test_client(), slug, "?PROLIFIC_PID=same") if _ == 0 else \
            app.test_client().get(f"/s/{slug}?PROLIFIC_PID=same")
    with app.app_context(), db.transaction(app) as s:
        assert s.scalar(select(func.count()).select_from(Rater)) == 1


def test_browser_without_cookies_gets_an_explanation_not_a_loop(app, demo_manifest_path) -> None:
    from tests.rater_support import make_study

    make_study(app, demo_manifest_path)
    client = app.test_client(use_cookies=False)
    first = client.get("/s/demo")
    assert first.status_code == 302 and "arrived=1" in first.headers["Location"]
    second = client.get(first.headers["Location"])
    assert second.status_code == 400 and "allow cookies" in second.get_data(as_text=True).lower()


@pytest.mark.parametrize("dpr", [5e-324, 1e-300, 0.05, 25])
def test_a_device_pixel_ratio_that_is_no_measurement_is_refused(client: FlaskClient, slug: str, dpr: float) -> None:
    """The screen check divides by it: a subnormal one overflowed into a 500 (found by the ops tryout)."""
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    r = client.post(f"/s/{slug}/api/environment", json={"inner_w": 1920, "inner_h": 1080, "dpr": dpr})
    assert r.status_code == 400 and "'dpr'" in r.json["error"]
