"""Shared fixtures: ``app``/``client``/``runner`` (Flask tutorial style), ``db_url`` over
SQLite and a throwaway PostgreSQL cluster, and small generated demo clips."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from study_app import clips, create_app, migrate
from study_app.demo import demo_manifest

SMALL = dict(width=320, height=180, seconds=1, fps=25)


# --------------------------------------------------------------------------- PostgreSQL
def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_pg_user() -> list[str]:
    # initdb refuses to run as root; Debian's package provides the 'postgres' user.
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("PostgreSQL tests skipped: running as root and there is no 'postgres' user to run initdb")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL cluster in a temp dir on a free loopback port; yields its base URL."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests skipped: psycopg is not installed")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL tests skipped: PostgreSQL is not installed and could not be installed "
                    "(make test installs it with apt-get)")
    prefix = _as_pg_user()
    root = Path(tempfile.mkdtemp(prefix="panelrank-pg-"))
    data = root / "data"
    if prefix:
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    opts = f"-p {port} -h 127.0.0.1 -k {root} -F"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's cluster, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = pg_server.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_server}/{name}"
    finally:
        with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    clips.generate_demo(out, contents=("c1", "c2", "c3", "c4"), **SMALL)
    return out


@pytest.fixture
def demo_manifest_path(demo_clips: Path, tmp_path: Path) -> Path:
    """The example demo manifest pointing at the tiny clips."""
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(demo_manifest(demo_clips), sort_keys=False))
    return path
