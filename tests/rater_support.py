"""Helpers shared by the rater tests: studies from the demo manifest, a rater walked to the trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import db
from study_app.manifest import validate
from study_app.models import Study
from study_app.studies import create_study

# A short session: 4 main trials + 1 gold + 1 repeat.
SMALL_SESSION = {"trials_per_session": 4, "repeats_per_session": 1, "votes_per_pair": 1}


def make_study(app: Flask, manifest_path: Path, *, plan_sessions: bool = False, **overrides: Any) -> str:
    """Create a study from the demo manifest with ``overrides`` applied (None deletes); returns its slug.

    ``plan_sessions`` also writes the legacy plan's sessions (status ``planned``; raters are never given them).
    """
    raw = yaml.safe_load(manifest_path.read_text())
    for key, value in overrides.items():
        if value is None:
            raw.pop(key, None)  # None removes a field (e.g. votes_per_pair for a rating method)
        else:
            raw[key] = value
    with app.app_context(), db.transaction(app) as s:
        study = create_study(s, validate(raw, manifest_path), plan_sessions=plan_sessions)
        return study.slug


def acr_overrides(slug: str = "demo-acr", method: str = "acr5") -> dict[str, Any]:
    """The demo manifest turned into a single-stimulus study."""
    return {
        "slug": slug, "name": f"demo {method}", "method": method, "votes_per_stimulus": 1,
        "trials_per_session": 4, "repeats_per_session": 1, "reasons": [],
        # Two gold items: a session holding one as a main trial gets the other as its gold.
        "gold": [{"content": "c1", "condition": "compressed", "expected": 1, "tolerance": 1},
                 {"content": "c2", "condition": "compressed", "expected": 1, "tolerance": 1}],
        "training": [{"content": "c2", "condition": "source", "expected": 5, "tolerance": 1}],
        "votes_per_pair": None,
    }


def set_status(app: Flask, slug: str, status: str) -> None:
    with app.app_context(), db.transaction(app) as s:
        s.scalar(select(Study).where(Study.slug == slug)).status = status


def walk_to_trials(client: FlaskClient, slug: str, query: str = "", size: tuple[int, int] = (1920, 1080)) -> None:
    """Entry → consent → environment gate, as a browser would; training is marked done."""
    r = client.get(f"/s/{slug}{query}")
    assert r.status_code == 302, r.data
    r = client.get(f"/s/{slug}/welcome")
    assert r.status_code == 200
    token = csrf(client)
    r = client.post(f"/s/{slug}/welcome", data={"consent": "yes", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/check"), r.data
    r = client.post(f"/s/{slug}/api/environment", json={"inner_w": size[0], "inner_h": size[1], "dpr": 1})
    assert r.status_code == 200 and r.json["ok"], r.json
    r = client.post(f"/s/{slug}/api/training/done", json={})
    assert r.status_code == 200, r.json


def csrf(client: FlaskClient) -> str:
    """The form token of this client's session (planted if no page has made one yet)."""
    with client.session_transaction() as sess:
        return sess.setdefault("csrf_token", "test-form-token")
