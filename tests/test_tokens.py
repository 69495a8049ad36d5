"""API tokens (create once, hash only, revoke) and migration 0002 (api_token, rater.decision check)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from study_app import accounts, db, migrate, tokens
from study_app.db import make_engine
from study_app.models import ApiToken, Organizer, Rater, Study, utcnow

EMAIL = "ana@example.org"


@pytest.fixture
def organizer(app: Flask) -> int:
    with app.app_context(), db.transaction(app) as s:
        return accounts.create_organizer(s, EMAIL, "password123").id


def rows(app: Flask) -> list[ApiToken]:
    with app.app_context(), db.transaction(app) as s:
        return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))


def api_status(app: Flask, token: str) -> int:
    return app.test_client().get("/api/v1/studies", headers={"Authorization": f"Bearer {token}"}).status_code


# --------------------------------------------------------------------------- CLI
def test_create_token_prints_it_once_and_stores_only_its_hash(app: Flask, runner: FlaskCliRunner,
                                                              organizer: int) -> None:
    result = runner.invoke(args=["create-token", EMAIL.upper(), "--label", "notebook"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("pr_") and len(token) >= 40 and "\n" not in token
    assert "not shown again" in result.stderr
    [row] = rows(app)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:tokens.SHOWN] and row.label == "notebook" and row.organizer_id == organizer
    # The secret part is nowhere in the database files (SQLite keeps recent pages in the WAL).
    db_file = Path(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert token[tokens.SHOWN:].encode() not in stored
    assert api_status(app, token) == 200
    # Listing shows the prefix, never the token.
    listing = runner.invoke(args=["list-tokens"]).output
    assert row.prefix in listing and token not in listing and "active" in listing


def test_each_token_is_new(app: Flask, runner: FlaskCliRunner, organizer: int) -> None:
    made = {runner.invoke(args=["create-token", EMAIL]).stdout.strip() for _ in range(3)}
    assert len(made) == 3 and len(rows(app)) == 3


def test_create_token_for_unknown_organizer_fails(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-token", "nobody@example.org"])
    assert result.exit_code != 0 and "no organizer" in result.output
    assert rows(app) == []


@pytest.mark.parametrize("by", ["id", "prefix", "token"])
def test_revoke_token(app: Flask, runner: FlaskCliRunner, organizer: int, by: str) -> None:
    token = runner.invoke(args=["create-token", EMAIL]).stdout.strip()
    keep = runner.invoke(args=["create-token", EMAIL]).stdout.strip()
    which = {"id": str(rows(app)[0].id), "prefix": token[:tokens.SHOWN], "token": token}[by]
    result = runner.invoke(args=["revoke-token", which])
    assert result.exit_code == 0, result.output
    assert "revoked token" in result.output
    assert api_status(app, token) == 401 and api_status(app, keep) == 200
    assert rows(app)[0].revoked_at is not None and rows(app)[1].revoked_at is None
    again = runner.invoke(args=["revoke-token", which])
    assert again.exit_code != 0 and "no active token" in again.output


@pytest.mark.parametrize("which", ["pr_", "", "ana", "999", "pr_zzzzzzzz"])
def test_revoke_refuses_vague_or_unknown_names(app: Flask, runner: FlaskCliRunner, organizer: int,
                                               which: str) -> None:
    token = runner.invoke(args=["create-token", EMAIL]).stdout.strip()
    result = runner.invoke(args=["revoke-token", which])
    assert result.exit_code != 0
    assert api_status(app, token) == 200


def test_revoke_refuses_an_ambiguous_prefix(app: Flask, organizer: int) -> None:
    with app.app_context(), db.transaction(app) as s:
        owner = s.get(Organizer, organizer)
        for _ in range(2):
            row, _token = tokens.create_token(s, owner)
            row.prefix = "pr_same1234"  # force the (unlikely) shared prefix
    with pytest.raises(tokens.TokenError, match="matches 2 tokens"), app.app_context(), db.transaction(app) as s:
        tokens.revoke(s, "pr_same")


# --------------------------------------------------------------------------- use
def test_last_used_is_recorded_at_most_once_a_minute(app: Flask, organizer: int) -> None:
    with app.app_context(), db.transaction(app) as s:
        _row, token = tokens.create_token(s, s.get(Organizer, organizer))
    assert rows(app)[0].last_used_at is None
    api_status(app, token)
    first = rows(app)[0].last_used_at
    assert first is not None
    api_status(app, token)
    assert rows(app)[0].last_used_at == first  # within a minute: no write
    with app.app_context(), db.transaction(app) as s:
        s.scalar(select(ApiToken)).last_used_at = utcnow() - timedelta(minutes=5)
    api_status(app, token)
    assert rows(app)[0].last_used_at > first


def test_tokens_go_with_their_organizer(db_app: Flask) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        owner = accounts.create_organizer(s, EMAIL, "password123")
        tokens.create_token(s, owner)
    with db_app.app_context(), db.transaction(db_app) as s:
        s.execute(text("DELETE FROM organizer"))  # the database cascades, whoever deletes
    assert rows(db_app) == []


def test_token_hash_is_unique(db_app: Flask) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        oid = accounts.create_organizer(s, EMAIL, "password123").id
        s.add(ApiToken(organizer_id=oid, token_hash="0" * 64, prefix="pr_x"))
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.add(ApiToken(organizer_id=oid, token_hash="0" * 64, prefix="pr_y"))
        s.flush()


# --------------------------------------------------------------------------- migration 0002
@pytest.mark.parametrize("decision", ["maybe", "ACCEPT", ""])
def test_rater_decision_is_checked(db_app: Flask, decision: str) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        study = Study(slug="s1", name="S", method="pc5", seed=1, manifest={})
        s.add(study)
        s.flush()
        s.add_all([Rater(study_id=study.id, panel="none", panel_id=f"r-{d}", decision=d)
                   for d in ("accept", "reject", None)])
        sid = study.id
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.add(Rater(study_id=sid, panel="none", panel_id="r-bad", decision=decision))
        s.flush()


def test_upgrade_from_0001_keeps_data(db_url: str) -> None:
    """Rebuilding ``rater`` (SQLite batch mode) must not unlink sessions from their raters."""
    migrate.upgrade(db_url, "0001")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO study (id, slug, name, method, status, panel, seed, max_sessions_per_rater, "
                          "manifest, created_at) VALUES (1, 's', 'S', 'pc5', 'open', 'none', 1, 1, '{}', "
                          "CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO rater (id, study_id, panel, panel_id, created_at, decision) VALUES "
                          "(1, 1, 'none', 'p1', CURRENT_TIMESTAMP, 'reject'), "
                          "(2, 1, 'none', 'p2', CURRENT_TIMESTAMP, 'unsure')"))
        conn.execute(text('INSERT INTO session (id, study_id, "index", rater_id, status) VALUES '
                          "(1, 1, 0, 1, 'active'), (2, 1, 1, 2, 'completed')"))
    engine.dispose()
    try:
        migrate.upgrade(db_url)
        assert migrate.is_current(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, rater_id FROM session ORDER BY id")).all() == [(1, 1), (2, 2)]
            # 'unsure' could never have been written by the app: it reads as "follow the screening".
            assert conn.execute(text("SELECT id, decision FROM rater ORDER BY id")).all() == [(1, "reject"),
                                                                                                (2, None)]
            assert inspect(conn).has_table("api_token")
        migrate.downgrade(db_url, "0001")
        with engine.connect() as conn:
            assert not inspect(conn).has_table("api_token")
            assert conn.execute(text("SELECT rater_id FROM session ORDER BY id")).scalars().all() == [1, 2]
    finally:
        engine.dispose()
