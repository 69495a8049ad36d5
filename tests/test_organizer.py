"""Organizer login and the study list."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from study_app import accounts, db


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
    assert "<code>demo</code>" in client.get("/organizer/").get_data(as_text=True)
    client.post("/organizer/logout", data={"csrf_token": _csrf(client, "/organizer/")})
    login(client, "bob@example.org")
    html = client.get("/organizer/").get_data(as_text=True)
    assert "<code>demo</code>" not in html and "No studies yet" in html
    client.post("/organizer/logout", data={"csrf_token": _csrf(client, "/organizer/")})
    login(client, "root@example.org")
    assert "<code>demo</code>" in client.get("/organizer/").get_data(as_text=True)
