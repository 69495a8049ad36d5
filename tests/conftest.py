"""Shared fixtures: ``app``/``client``/``runner`` (Flask tutorial style), ``db_url`` over
SQLite and a throwaway PostgreSQL cluster, and small generated demo clips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from study_app import create_app, migrate
from study_app.demo.builder import ACTIVE_ONLY, demo_manifest
from study_app.demo.clipset import generate_demo
from tests.pg_support import PgCluster, PgUnavailable, start_cluster

SMALL = dict(width=320, height=180, seconds=1, fps=25)


# --------------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster in a temp dir on a free loopback port (tests/pg_support.py)."""
    try:
        cluster = start_cluster()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def pg_server(pg_cluster: PgCluster) -> str:
    """The cluster's base URL."""
    return pg_cluster.url


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster, dropped afterwards."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: SQLite file, then a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'panelrank.sqlite'}"
    return request.getfixturevalue("pg_url")


# --------------------------------------------------------------------------- Flask
def make_app(url: str, instance: Path) -> Flask:
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(instance), "TESTING": True,
                      "SECRET_KEY": "test-secret"})
    migrate.upgrade(url)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """The app on a fresh SQLite database (most tests)."""
    return make_app(f"sqlite:///{tmp_path / 'panelrank.sqlite'}", tmp_path / "instance")


@pytest.fixture
def db_app(db_url: str, tmp_path: Path) -> Flask:
    """The app on each database backend in turn (schema and write-path tests)."""
    return make_app(db_url, tmp_path / "instance")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


# --------------------------------------------------------------------------- media
@pytest.fixture(scope="session")
def demo_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's 4 contents × 6 conditions as tiny clips (320×180, 1 s), made once per run."""
    out = tmp_path_factory.mktemp("clips")
    generate_demo(out, contents=("c1", "c2", "c3", "c4"), **SMALL)
    return out


@pytest.fixture
def demo_manifest_path(demo_clips: Path, tmp_path: Path) -> Path:
    """The example demo manifest pointing at the tiny clips, as a balanced study.

    The demo's live study selects pairs actively; tests that want that say so in their overrides.
    """
    path = tmp_path / "manifest.yaml"
    raw = demo_manifest(demo_clips)
    raw["design"] = {k: v for k, v in raw["design"].items() if k not in ACTIVE_ONLY}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
