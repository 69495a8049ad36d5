"""Organizer login and the study list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from study_app import accounts, create_app, db


def _organizer(app: Flask, email: str, password: str = "correct-horse", role: str = "organizer") -> None:
    with app.app_context(), db.transaction(app) as s:
        accounts.create_organizer(s, email, password, role=role)


def _csrf(client: FlaskClient, path: str = "/organizer/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "form without CSRF token"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = "correct-horse"):
    return client.post("/organizer/login", data={"email": email, "password": password,
                                                 "csrf_token": _csrf(client)})


def test_anonymous_is_sent_to_login(client: FlaskClient) -> None:
    response = client.get("/organizer/")
    assert response.status_code == 302 and "/organizer/login" in response.headers["Location"]
    assert client.get("/").status_code == 302


def test_login_logout(app: Flask, client: FlaskClient) -> None:
    _organizer(app, "ann@example.org")
    assert login(client, "ann@example.org", "wrong-password").status_code == 401
    response = login(client, "ann@example.org")
    assert response.status_code == 302
    page = client.get("/organizer/")
    assert page.status_code == 200 and "ann@example.org" in page.get_data(as_text=True)
    token = _csrf(client, "/organizer/")
    assert client.post("/organizer/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/organizer/").status_code == 302


def test_login_requires_csrf_token(app: Flask, client: FlaskClient) -> None:
    _organizer(app, "ann@example.org")
    response = client.post("/organizer/login", data={"email": "ann@example.org", "password": "correct-horse"})
    assert response.status_code == 400 and b"CSRF" in response.data


def test_next_never_leaves_the_site(app: Flask, client: FlaskClient) -> None:
    _organizer(app, "ann@example.org")
    token = _csrf(client)
    response = client.post("/organizer/login?next=//evil.example/x",
                           data={"email": "ann@example.org", "password": "correct-horse", "csrf_token": token})
    assert response.headers["Location"] == "/organizer/"


def test_study_list_shows_own_studies_only(app: Flask, client: FlaskClient, demo_manifest_path: Path) -> None:
    _organizer(app, "ann@example.org")
    _organizer(app, "bob@example.org")
    _organizer(app, "root@example.org", role="admin")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-study", str(demo_manifest_path), "--organizer", "ann@example.org"])
    assert result.exit_code == 0, result.output
    login(client, "ann@example.org")
    assert ">demo</code>" in client.get("/organizer/").get_data(as_text=True)
    client.post("/organizer/logout", data={"csrf_token": _csrf(client, "/organizer/")})
    login(client, "bob@example.org")
    html = client.get("/organizer/").get_data(as_text=True)
    assert ">demo</code>" not in html and "No studies yet" in html
    client.post("/organizer/logout", data={"csrf_token": _csrf(client, "/organizer/")})
    login(client, "root@example.org")
    assert ">demo</code>" in client.get("/organizer/").get_data(as_text=True)


def _production_app(tmp_path: Path, **env: str) -> Flask:
    from study_app import config, create_app, migrate

    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    settings = config.from_env({"PANELRANK_ENV": "production", "PANELRANK_DATABASE_URL": url,
                                "PANELRANK_INSTANCE": str(tmp_path), **env})
    app = create_app(settings)
    migrate.upgrade(url)
    return app


def test_production_refuses_weak_secrets(tmp_path: Path) -> None:
    for weak in ("", "short"):
        with pytest.raises(RuntimeError, match="shorter than 16"):
            _production_app(tmp_path, PANELRANK_SECRET_KEY=weak)


def test_production_session_cookie_is_secure_httponly_samesite(tmp_path: Path) -> None:
    app = _production_app(tmp_path, PANELRANK_SECRET_KEY="x" * 32)
    _organizer(app, "ann@example.org")
    client = app.test_client()
    response = login(client, "ann@example.org")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Development keeps plain-HTTP cookies usable on localhost (still HttpOnly and SameSite).
    dev = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite'}", "SECRET_KEY": "dev"})
    dev_cookie = login(dev.test_client(), "ann@example.org").headers["Set-Cookie"]
    assert "Secure" not in dev_cookie and "HttpOnly" in dev_cookie and "SameSite=Lax" in dev_cookie


def test_create_organizer_prompts_or_generates(app: Flask) -> None:
    runner = app.test_cli_runner()
    prompted = runner.invoke(args=["create-organizer", "ann@example.org"],
                             input="a-long-password\na-long-password\n")
    assert prompted.exit_code == 0 and "a-long-password" not in prompted.output  # never echoed
    mismatch = runner.invoke(args=["create-organizer", "bob@example.org"], input="a-long-password\nother-one\n"
                             "a-long-password\na-long-password\n")
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output.lower()
    generated = runner.invoke(args=["create-organizer", "cat@example.org", "--generate"])
    password = generated.output.strip().rsplit("password: ", 1)[1]
    assert generated.exit_code == 0 and len(password) >= 12
    for email, secret in (("ann@example.org", "a-long-password"), ("cat@example.org", password)):
        client = app.test_client()
        assert login(client, email, secret).status_code == 302
    with app.app_context(), db.transaction(app) as s:
        stored = accounts.find_organizer(s, "ann@example.org").password_hash
    assert "a-long-password" not in stored and stored.startswith(("scrypt:", "pbkdf2:"))
