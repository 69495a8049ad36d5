"""The study page's JSON API: votes (idempotent, left/right undone, every refusal a JSON
error), trials and plan with opaque media tokens, practice feedback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from analysis.methods import METHODS
from study_app import db
from study_app.export import votes_frame
from study_app.media import token_for
from study_app.models import Condition, Content, Response, Session, Stimulus, Study, Trial
from study_app.rater import flow
from tests.rater_support import SMALL_SESSION, acr_overrides, csrf, make_study, walk_to_trials
from tests.sql_support import statements


@pytest.fixture
def slug(app: Flask, demo_manifest_path: Path) -> str:
    return make_study(app, demo_manifest_path, **SMALL_SESSION)


@pytest.fixture
def rater(client: FlaskClient, slug: str) -> FlaskClient:
    walk_to_trials(client, slug)
    return client


def _trial(app: Flask, position: int) -> Trial:
    with app.app_context(), db.transaction(app) as s:
        sess = s.scalar(select(Session).where(Session.status != "planned"))
        trial = s.scalar(select(Trial).where(Trial.session_id == sess.id, Trial.position == position))
        trial.response  # noqa: B018  (load before the session closes)
        s.expunge_all()
        return trial


def _vote(client: FlaskClient, slug: str, trial: int, response: int, **extra: object):
    return client.post(f"/s/{slug}/api/vote", json={"trial": trial, "response": response, **extra})


# --------------------------------------------------------------------------- scale mapping


@pytest.mark.parametrize("method", list(METHODS))
def test_screen_answers_round_trip(method: str) -> None:
    s = METHODS[method]
    for a_left in (True, False):
        for answer in range(s.screen_low, s.screen_high + 1):
            assert s.to_screen(s.to_stored(answer, a_left), a_left) == answer


def test_pc5_pref_is_relative_to_a() -> None:
    assert METHODS["pc5"].to_stored(1, a_left=True) == 2  # strong for left, A on the left → A strongly preferred
    assert METHODS["pc5"].to_stored(1, a_left=False) == -2
    assert METHODS["pc5"].to_stored(4, a_left=True) == -1
    assert METHODS["pc5"].to_stored(3, a_left=False) == 0
    assert METHODS["2afc"].to_stored(2, a_left=False) == 1
    assert METHODS["ccr7"].to_stored(3, a_left=True) == -3  # right (B) much better
    assert METHODS["acr5"].to_stored(4, a_left=True) == 4


# --------------------------------------------------------------------------- votes


def test_vote_is_stored_with_left_right_undone(app: Flask, rater: FlaskClient, slug: str) -> None:
    trial = rater.get(f"/s/{slug}/api/trial").json
    r = _vote(rater, slug, trial["trial"], 1, reasons=[0, 2], watch_ms=1000, plays=1, stalls=2,
              max_drift_ms=3.5, hidden_ms=0, answer_ms=800, window_w=1280, window_h=720,
              signals={"watch_per_player_ms": [1000, 990], "scale": 0.423})
    assert r.status_code == 200
    assert r.json == {"ok": True, "trial": trial["trial"], "next": trial["trial"] + 1, "done": False,
                      "redirect": None}
    stored = _trial(app, trial["trial"])
    assert stored.response.value == (2 if stored.a_left else -2)
    assert stored.response.reason == "colours;skin tone"
    assert (stored.response.stalls, stored.response.max_drift_ms, stored.response.window_w) == (2, 3.5, 1280)
    assert stored.response.signals == {"watch_per_player_ms": [1000, 990], "scale": 0.423}
    with app.app_context(), db.transaction(app) as s:
        frame = votes_frame(s, s.scalar(select(Study)))
    assert len(frame) == 1 and bool(frame["stalled"].iloc[0])  # a stalled trial is flagged in the export
    # The window and the scale the clips were shown at (below 1: shrunk to fit) reach the export.
    row = frame.iloc[0]
    assert (row["window_w"], row["window_h"], row["display_scale"]) == (1280, 720, 0.423)


def test_unknown_fields_and_signal_keys_are_dropped(app: Flask, rater: FlaskClient, slug: str) -> None:
    r = _vote(rater, slug, 0, 3, colour="blue", signals={"scale": 1, "view": "toggle", "note": "x" * 3000})
    assert r.status_code == 200, r.json
    assert _trial(app, 0).response.signals == {"scale": 1.0, "view": "toggle"}


def test_identical_resubmit_is_the_same_200_and_different_is_409(app: Flask, rater: FlaskClient,
                                                                  slug: str) -> None:
    first = _vote(rater, slug, 0, 2, reasons=[1], watch_ms=900)
    again = _vote(rater, slug, 0, 2, reasons=[1], watch_ms=950)  # timings may differ on a retry
    assert first.status_code == again.status_code == 200 and first.data == again.data
    changed = _vote(rater, slug, 0, 4, reasons=[1])
    assert changed.status_code == 409 and "already answered" in changed.json["error"]
    other_reason = _vote(rater, slug, 0, 2, reasons=[0])
    assert other_reason.status_code == 409
    with app.app_context(), db.transaction(app) as s:
        assert len(s.scalars(select(Response)).all()) == 1


def test_last_vote_completes_and_resubmit_after_completion(app: Flask, rater: FlaskClient, slug: str) -> None:
    n = rater.get(f"/s/{slug}/api/trial").json["n"]
    for k in range(n):
        body = _vote(rater, slug, k, 3).json
    assert body == {"ok": True, "trial": n - 1, "next": None, "done": True, "redirect": f"/s/{slug}/done"}
    again = _vote(rater, slug, n - 1, 3)
    assert again.status_code == 200 and again.json == body
    assert rater.get(f"/s/{slug}/api/trial").json == {"done": True, "redirect": f"/s/{slug}/done"}
    with app.app_context(), db.transaction(app) as s:
        sess = s.scalar(select(Session).where(Session.status != "planned"))
        assert sess.status == "completed" and sess.completion_code == "DEMO-THANKS" and sess.completed_at


def test_plan_lists_the_clips_of_the_unanswered_trials(app: Flask, rater: FlaskClient, slug: str) -> None:
    for k in range(3):
        _vote(rater, slug, k, 3)
    with app.app_context(), db.transaction(app) as s:
        sess = s.scalar(select(Session).where(Session.status != "planned"))
        left = [t for t in sess.trials if t.response is None]
        expected = {token_for(sess.study_id, i) for t in left
                    for i in (t.stimulus_a_id, t.stimulus_b_id, t.reference_id) if i is not None}
    plan = rater.get(f"/s/{slug}/api/session").json
    assert plan["next"] == 3 and {m["media"] for m in plan["media"]} == expected
    assert all(m["bytes"] > 0 for m in plan["media"])


def test_vote_and_plan_take_a_fixed_handful_of_queries(app: Flask, rater: FlaskClient, slug: str) -> None:
    # The vote is the hot path: study, rater, latest session, (trial count, first open position),
    # the trial with its response, the insert. The plan must not load clips one by one.
    with statements(app) as vote:
        assert _vote(rater, slug, 0, 3).status_code == 200
    with statements(app) as again:
        assert _vote(rater, slug, 0, 3).status_code == 200
    with statements(app) as plan:
        assert rater.get(f"/s/{slug}/api/session").status_code == 200
    with statements(app) as trial:
        assert rater.get(f"/s/{slug}/api/trial").status_code == 200
    # Each request also looks for idle sessions to expire; a new vote marks its session alive (conditional UPDATE).
    assert (len(vote), len(again), len(plan), len(trial)) == (8, 6, 6, 6), (vote, again, plan, trial)


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"trial": 0, "response": 6}, 400, "not on this study's scale (1 to 5)"),
    ({"trial": 0, "response": 0}, 400, "not on this study's scale"),
    ({"trial": 0, "response": "1"}, 400, "'response' is missing or not valid"),
    ({"trial": 0, "response": True}, 400, "'response'"),
    ({"response": 3}, 400, "'trial' is missing"),
    ({"trial": -1, "response": 3}, 400, "'trial'"),
    ({"trial": 0, "response": 3, "reasons": [3]}, 400, "'reasons'"),
    ({"trial": 0, "response": 3, "reasons": [0, 0]}, 400, "'reasons'"),
    ({"trial": 0, "response": 3, "reasons": "colours"}, 400, "'reasons'"),
    ({"trial": 0, "response": 3, "stalls": -1}, 400, "'stalls'"),
    ({"trial": 0, "response": 3, "max_drift_ms": "big"}, 400, "'max_drift_ms'"),
    ({"trial": 0, "response": 3, "signals": [1]}, 400, "'signals' is missing or not valid: must be an object"),
    ({"trial": 0, "response": 3, "signals": {"scale": 10**400}}, 400, "'signals.scale' is missing or not valid"),
    ({"trial": 0, "response": 3, "signals": {"view": "y" * 5000}}, 400, "'signals.view'"),
    ({"trial": 0, "response": 3, "signals": {"watch_per_player_ms": [1, 2.5]}}, 400,
     "'signals.watch_per_player_ms.1' is missing or not valid: must be a whole number"),
    ({"trial": 10**400, "response": 3}, 400, "'trial' is missing or not valid: must be at most 100000"),
    ({"trial": 0, "response": -10**400}, 400, "'response' is missing or not valid: must be at least -1000"),
    ({"trial": 0, "response": 3, "watch_ms": 1.5}, 400, "'watch_ms' is missing or not valid: must be a whole number"),
    ({"trial": 999, "response": 3}, 404, "no trial 999"),
    ({"trial": 2, "response": 3}, 409, "current trial (0)"),
])
def test_vote_refusals_are_json(rater: FlaskClient, slug: str, payload: dict, status: int, message: str) -> None:
    r = rater.post(f"/s/{slug}/api/vote", json=payload)
    assert r.status_code == status and message in r.json["error"], r.json


def test_vote_must_be_json(rater: FlaskClient, slug: str) -> None:
    form = rater.post(f"/s/{slug}/api/vote", data={"trial": "0", "response": "3"})
    assert form.status_code == 415 and "JSON" in form.json["error"]
    broken = rater.post(f"/s/{slug}/api/vote", data="{not json", content_type="application/json")
    assert broken.status_code == 400 and "JSON" in broken.json["error"]
    listed = rater.post(f"/s/{slug}/api/vote", json=[1, 2])
    assert listed.status_code == 400
    huge = rater.post(f"/s/{slug}/api/vote", json={"trial": 0, "response": 3, "pad": "x" * 20000})
    assert huge.status_code == 413 and "too large" in huge.json["error"]


def test_vote_without_a_session_or_before_the_gate(app: Flask, client: FlaskClient, slug: str) -> None:
    r = client.post(f"/s/{slug}/api/vote", json={"trial": 0, "response": 3})
    assert r.status_code == 403 and "No session" in r.json["error"]
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    r = client.post(f"/s/{slug}/api/vote", json={"trial": 0, "response": 3})
    assert r.status_code == 409 and "screen check" in r.json["error"]
    assert client.get(f"/s/{slug}/api/trial").status_code == 409
    assert client.post("/s/nope/api/vote", json={"trial": 0, "response": 3}).status_code == 404


def test_another_raters_trial_cannot_be_answered(app: Flask, slug: str) -> None:
    alice, bob = app.test_client(), app.test_client()
    walk_to_trials(alice, slug)
    walk_to_trials(bob, slug)
    _vote(alice, slug, 0, 1)
    # Trial ids are positions in the rater's own session: Bob's "0" is his own trial, untouched by Alice.
    assert _vote(bob, slug, 0, 5).status_code == 200
    with app.app_context(), db.transaction(app) as s:
        sessions = s.scalars(select(Session).where(Session.status != "planned")).all()
        assert len({x.id for x in sessions}) == 2 and len({x.rater_id for x in sessions}) == 2
        assert len(s.scalars(select(Response)).all()) == 2


def test_environment_api_refusals(client: FlaskClient, slug: str) -> None:
    assert client.post(f"/s/{slug}/api/environment", json={"inner_w": 1}).status_code == 403
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    r = client.post(f"/s/{slug}/api/environment", json={"inner_h": 900})
    assert r.status_code == 400 and "'inner_w'" in r.json["error"]
    ok = client.post(f"/s/{slug}/api/environment", json={"inner_w": 1300, "inner_h": 800})
    assert ok.json == {"ok": True, "redirect": f"/s/{slug}/study"}
    again = client.post(f"/s/{slug}/api/environment", json={"inner_w": 1300, "inner_h": 800})
    assert again.status_code == 409


# --------------------------------------------------------------------------- plan, trial, training


def _names(app: Flask) -> list[str]:
    with app.app_context(), db.transaction(app) as s:
        names = [c.key for c in s.scalars(select(Condition))] + [c.label for c in s.scalars(select(Condition))]
        names += [c.key for c in s.scalars(select(Content))]
        names += [p for p in s.scalars(select(Stimulus.path))]
    return names


def test_plan_and_trial_use_opaque_tokens(app: Flask, client: FlaskClient, slug: str) -> None:
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    client.post(f"/s/{slug}/api/environment", json={"inner_w": 1920, "inner_h": 1080})
    plan = client.get(f"/s/{slug}/api/session")
    trial = client.get(f"/s/{slug}/api/trial")
    assert plan.json["n"] == 6 and plan.json["next"] == 0 and len(plan.json["training"]) == 1
    assert all(re.fullmatch(r"[0-9a-f]{32}", m["media"]) and m["url"] == f"/media/{m['media']}"
               for m in plan.json["media"])
    assert {c["role"] for c in trial.json["clips"]} == {"left", "right"}
    tokens = {m["media"] for m in plan.json["media"]}
    assert {c["media"] for c in trial.json["clips"]} <= tokens
    text = (plan.data + trial.data).decode()
    for name in _names(app):
        assert not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text, re.IGNORECASE), name


def test_training_feedback_is_not_stored(app: Flask, client: FlaskClient, slug: str) -> None:
    client.get(f"/s/{slug}")
    client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": csrf(client)})
    client.post(f"/s/{slug}/api/environment", json={"inner_w": 1920, "inner_h": 1080})
    right = client.post(f"/s/{slug}/api/training", json={"item": 0, "response": 2})  # weak left: within ±1 of +2
    assert right.json["correct"] is True and "too dark" in right.json["feedback"]
    wrong = client.post(f"/s/{slug}/api/training", json={"item": 0, "response": 5})
    assert wrong.json["correct"] is False and wrong.json["expected"] == 1
    assert wrong.json["expected_label"] == "Strong preference for left"
    assert client.post(f"/s/{slug}/api/training", json={"item": 7, "response": 1}).status_code == 404
    assert client.post(f"/s/{slug}/api/training", json={"item": 0, "response": 9}).status_code == 400
    client.post(f"/s/{slug}/api/training/done", json={})
    assert client.post(f"/s/{slug}/api/training", json={"item": 0, "response": 1}).status_code == 409
    assert client.get(f"/s/{slug}/api/session").json["training"] == []
    with app.app_context(), db.transaction(app) as s:
        assert s.scalars(select(Response)).all() == []


@pytest.mark.parametrize("method", ["acr5", "acr-hr", "dcr5", "slider100"])
def test_single_stimulus_methods(app: Flask, client: FlaskClient, demo_manifest_path: Path, method: str) -> None:
    overrides = acr_overrides(slug=f"single-{method}", method=method)
    if method == "slider100":
        overrides["gold"][0]["expected"] = 10
        overrides["training"][0]["expected"] = 90
    slug = make_study(app, demo_manifest_path, **overrides)
    walk_to_trials(client, slug)
    trial = client.get(f"/s/{slug}/api/trial").json
    roles = [c["role"] for c in trial["clips"]]
    assert roles == (["reference", "processed"] if method == "dcr5" else ["clip"])
    assert trial["layout"] == ("sequence" if method == "dcr5" else "single")
    high = METHODS[method].screen_high
    assert _vote(client, slug, trial["trial"], high + 1).status_code == 400
    assert _vote(client, slug, trial["trial"], high, reasons=[0]).status_code == 400  # no reasons here
    assert _vote(client, slug, trial["trial"], high).status_code == 200
    assert _trial(app, trial["trial"]).response.value == high


@pytest.mark.parametrize(("method", "answer", "a_left_value"), [("2afc", 1, 1), ("ccr7", -3, 3)])
def test_other_pairwise_methods(app: Flask, client: FlaskClient, demo_manifest_path: Path, method: str,
                                answer: int, a_left_value: int) -> None:
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION, slug=f"pair-{method}", method=method,
                      gold=[{"content": "c1", "cond_a": "source", "cond_b": "compressed", "expected": 1,
                             "tolerance": 0},
                            {"content": "c3", "cond_a": "source", "cond_b": "noisy", "expected": 1, "tolerance": 0}],
                      training=[])
    walk_to_trials(client, slug)
    assert _vote(client, slug, 0, answer, reasons=[0]).status_code == 200
    stored = _trial(app, 0)
    assert stored.response.value == (a_left_value if stored.a_left else -a_left_value)
    if method == "2afc":
        assert _vote(client, slug, 1, 3).status_code == 400


def test_identical_vote_committed_meanwhile_is_the_same_200(app: Flask, rater: FlaskClient, slug: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin of this vote commits after this request read the trial but before it read the plan:
    the plan has moved on, yet the answer is the stored one, so it is the idempotent 200, not a 409."""
    first = _vote(rater, slug, 0, 3, reasons=[1])
    real = flow.plan_state
    twin_stored = []

    def plan_after_twin(session: object, sess: Session) -> tuple[int, int | None]:  # flow.plan_state, delayed
        if not twin_stored:
            with app.app_context(), db.transaction(app) as s:
                trial = s.scalar(select(Trial).where(Trial.session_id == sess.id, Trial.position == 1))
                s.add(Response(trial_id=trial.id, value=0, reason="brightness"))  # answer 3 is 0 either side
            twin_stored.append(True)
        return real(session, sess)

    monkeypatch.setattr(flow, "plan_state", plan_after_twin)
    second = _vote(rater, slug, 1, 3, reasons=[1])
    assert twin_stored and second.status_code == 200, second.json
    assert second.json == {"ok": True, "trial": 1, "next": 2, "done": False, "redirect": None}
    assert first.status_code == 200
    different = _vote(rater, slug, 1, 4, reasons=[1])
    assert different.status_code == 409 and "already answered" in different.json["error"]
    with app.app_context(), db.transaction(app) as s:
        assert len(s.scalars(select(Response)).all()) == 2
