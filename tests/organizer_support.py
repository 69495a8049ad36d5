"""Shared set-up of the organizer tests: an organizer owning the demo study, logged-in clients."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import accounts, db, livestats
from study_app.demo import fill_with_simulated_votes
from study_app.models import Study
from tests.test_organizer import login

OWNER = "ann@example.org"
PASSWORD = "correct-horse"


def owned_demo_study(app: Flask, manifest: Path, *others: str) -> Flask:
    """Create ``OWNER`` (and ``others``) and the demo study owned by ``OWNER``."""
    with app.app_context(), db.transaction(app) as s:
        for email in (OWNER, *others):
            accounts.create_organizer(s, email, PASSWORD)
    result = app.test_cli_runner().invoke(args=["create-study", str(manifest), "--organizer", OWNER])
    assert result.exit_code == 0, result.output
    livestats.clear()  # analysis results are cached per process; each test starts afresh
    return app


def fill(app: Flask, n_raters: int, seed: int) -> int:
    """Answer every planned trial of the (only) study with simulated votes."""
    with app.app_context(), db.transaction(app) as s:
        return fill_with_simulated_votes(s, s.scalar(select(Study)), n_raters=n_raters, seed=seed)


def client_of(app: Flask, email: str = OWNER) -> FlaskClient:
    client = app.test_client()
    login(client, email, PASSWORD)
    return client
