"""Console logins are rows on the server: logout, a password change and "log out everywhere" end
them (a copied cookie included); failed passwords and the rater entry are throttled."""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import limits.storage.memory
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select, update

from study_app import accounts, config, create_app, db, migrate
from study_app.db import make_engine
from study_app.models import OrganizerLogin, utcnow
from tests.rater_support import SMALL_SESSION, make_study
from tests.test_organizer import _csrf, login

ANN, BOB, PASSWORD = "ann@example.org", "bob@example.org", "correct-horse"


@pytest.fixture
def ann(app: Flask) -> Flask:
    with app.app_context(), db.transaction(app) as s:
        accounts.create_organizer(s, ANN, PASSWORD)
        accounts.create_organizer(s, BOB, PASSWORD)
    return app


def _logins(app: Flask, email: str = ANN) -> list[OrganizerLogin]:
    with app.app_context(), db.transaction(app) as s:
        rows = s.scalars(select(OrganizerLogin).join(OrganizerLogin.organizer)
                         .where(OrganizerLogin.organizer.has(email=email)).order_by(OrganizerLogin.id)).all()
        s.expunge_all()
        return list(rows)


def _logged_in(app: Flask, email: str = ANN, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    assert login(client, email, password).status_code == 302
    return client


def _is_logged_in(client: FlaskClient) -> bool:
    response = client.get("/organizer/")
    if response.status_code == 302:
        assert "/organizer/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def _post(client: FlaskClient, path: str, **form: str):
    return client.post(path, data={"csrf_token": _csrf(client, "/organizer/account"), **form})


# --------------------------------------------------------------------------- logins
def test_login_stores_only_a_hash_of_the_cookie_token(ann: Flask) -> None:
    client = _logged_in(ann)
    with client.session_transaction() as cookie:
        token = cookie[accounts.COOKIE_KEY]
        assert "organizer_id" not in cookie  # the cookie names a login row, not an account
    [row] = _logins(ann)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert row.revoked_at is None and row.created_at <= row.last_seen_at <= utcnow()


def test_a_copied_cookie_stops_working_after_logout(ann: Flask) -> None:
    client = _logged_in(ann)
    copy = ann.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert _is_logged_in(copy)
    assert _post(client, "/organizer/logout").status_code == 302
    assert not _is_logged_in(client)
    assert not _is_logged_in(copy)  # the same signed cookie, now pointing at a revoked login
    assert copy.get("/organizer/studies/demo").status_code == 302
    [row] = _logins(ann)
    assert row.revoked_at is not None


def test_log_out_everywhere_ends_every_login_of_the_account_only(ann: Flask) -> None:
    here, laptop, bobs = _logged_in(ann), _logged_in(ann), _logged_in(ann, BOB)
    response = _post(here, "/organizer/logout-everywhere")
    assert response.status_code == 302 and response.headers["Location"] == "/organizer/login"
    assert "Logged out everywhere: 2 login(s) ended" in here.get("/organizer/login").get_data(as_text=True)
    assert not _is_logged_in(here) and not _is_logged_in(laptop)
    assert _is_logged_in(bobs)
    assert all(row.revoked_at is not None for row in _logins(ann))
    assert [row.revoked_at for row in _logins(ann, BOB)] == [None]


def test_password_change_ends_the_other_logins_and_keeps_this_one(ann: Flask) -> None:
    here, other = _logged_in(ann), _logged_in(ann)
    wrong = _post(here, "/organizer/account/password", password="not-it", new_password="new-horse-9",
                  confirm_password="new-horse-9")
    assert wrong.status_code == 401 and "the current password is wrong" in wrong.get_data(as_text=True)
    differ = _post(here, "/organizer/account/password", password=PASSWORD, new_password="new-horse-9",
                   confirm_password="new-horse-8")
    assert differ.status_code == 400 and "repetition differ" in differ.get_data(as_text=True)
    short = _post(here, "/organizer/account/password", password=PASSWORD, new_password="short",
                  confirm_password="short")
    assert short.status_code == 400 and "at least 8 characters" in short.get_data(as_text=True)
    assert _is_logged_in(other)  # nothing changed so far
    done = _post(here, "/organizer/account/password", password=PASSWORD, new_password="new-horse-9",
                 confirm_password="new-horse-9")
    assert done.status_code == 302
    assert "other browsers logged out: 1" in here.get("/organizer/account").get_data(as_text=True)
    assert _is_logged_in(here) and not _is_logged_in(other)
    kept, ended = _logins(ann)
    assert kept.revoked_at is None and ended.revoked_at is not None
    assert login(ann.test_client(), ANN, PASSWORD).status_code == 401
    assert login(ann.test_client(), ANN, "new-horse-9").status_code == 302


def test_account_page_lists_the_active_logins(ann: Flask) -> None:
    here, other = _logged_in(ann), _logged_in(ann)
    _post(other, "/organizer/logout")
    _logged_in(ann)
    html = here.get("/organizer/account").get_data(as_text=True)
    table = html.split('id="logins-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 2  # header + the two logins that still count
    assert table.count("this browser") == 1
    assert 'action="/organizer/logout-everywhere"' in html


def _age(app: Flask, by: timedelta) -> None:
    with app.app_context(), db.transaction(app) as s:
        s.execute(update(OrganizerLogin).values(last_seen_at=utcnow() - by))


def test_an_idle_login_ends_and_a_used_one_is_seen(ann: Flask) -> None:
    client = _logged_in(ann)
    _age(ann, timedelta(minutes=10))
    assert _is_logged_in(client)
    [row] = _logins(ann)
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)  # refreshed by the visit
    _age(ann, accounts.IDLE_TIMEOUT + timedelta(minutes=1))
    assert not _is_logged_in(client)


def test_migration_0004_adds_and_removes_the_login_table(db_url: str) -> None:
    migrate.upgrade(db_url, "0003")
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert not inspect(conn).has_table("organizer_login")
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("organizer_login")}
            assert columns == {"id", "organizer_id", "token_hash", "created_at", "last_seen_at", "revoked_at"}
            assert [u["column_names"] for u in inspect(conn).get_unique_constraints("organizer_login")] == [
                ["token_hash"]]
        migrate.downgrade(db_url, "0003")
        with engine.connect() as conn:
            assert not inspect(conn).has_table("organizer_login")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- throttling
@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The rate-limit counters' clock (in-memory storage), moved forward by hand."""
    import time

    fake = SimpleNamespace(offset=0.0)
    fake.time = lambda: time.time() + fake.offset
    monkeypatch.setattr(limits.storage.memory, "time", fake)
    return fake


def _attempt(client: FlaskClient, password: str, email: str = ANN, addr: str = "203.0.113.7"):
    token = _csrf(client)
    return client.post("/organizer/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr})


def test_eleven_wrong_passwords_then_the_right_one_is_refused_until_the_window_ends(
        ann: Flask, clock: SimpleNamespace) -> None:
    client = ann.test_client()
    statuses = [_attempt(client, f"guess-{i}").status_code for i in range(11)]
    assert statuses == [401] * 10 + [429]
    refused = _attempt(client, PASSWORD)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert "Too many attempts" in page and "Too many failed log-in attempts" in page
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert _logins(ann) == []  # the right password did not log in while refused
    clock.offset += 61
    assert _attempt(client, PASSWORD).status_code == 302
    assert len(_logins(ann)) == 1


def test_guesses_count_per_email_across_addresses_and_per_address_across_emails(ann: Flask) -> None:
    client = ann.test_client()
    for i in range(10):
        assert _attempt(client, "wrong", addr=f"198.51.100.{i}").status_code == 401
    assert _attempt(client, PASSWORD, addr="198.51.100.99").status_code == 429  # ann's email is throttled
    assert _attempt(client, PASSWORD, email=BOB, addr="198.51.100.99").status_code == 302  # bob's is not
    for i in range(10):
        assert _attempt(client, "wrong", email=f"x{i}@example.org", addr="192.0.2.1").status_code == 401
    assert _attempt(client, PASSWORD, email=BOB, addr="192.0.2.1").status_code == 429  # that address is


def test_behind_the_local_proxy_each_client_counts_apart(ann: Flask) -> None:
    """nginx on this machine appends the client's address to X-Forwarded-For; anyone else's header is ignored."""
    client, emails = ann.test_client(), itertools.count()

    def attempt(remote: str, forwarded: str) -> int:
        token = _csrf(client)  # a new email each time: only the address counts here
        return client.post("/organizer/login", data={"email": f"u{next(emails)}@x.org", "password": "wrong",
                                                     "csrf_token": token},
                           environ_base={"REMOTE_ADDR": remote}, headers={"X-Forwarded-For": forwarded}).status_code

    assert [attempt("127.0.0.1", f"10.9.9.9, 203.0.113.{i % 2}") for i in range(20)] == [401] * 20
    assert attempt("127.0.0.1", "10.9.9.9, 203.0.113.0") == 429  # the 11th from that client
    # Not from a trusted proxy: the header is the client's own claim and changes nothing.
    assert [attempt("198.51.100.7", f"203.0.113.{i}") for i in range(11)] == [401] * 10 + [429]


def test_successful_logins_cost_nothing(ann: Flask) -> None:
    client = ann.test_client()
    assert [_attempt(client, PASSWORD).status_code for _ in range(15)] == [302] * 15


def test_wrong_current_passwords_on_the_account_page_are_throttled(ann: Flask) -> None:
    client = _logged_in(ann)
    statuses = [_post(client, "/organizer/account/password", password="guess", new_password="new-horse-9",
                      confirm_password="new-horse-9").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]


def _app(tmp_path: Path, **settings: object) -> Flask:
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "test-secret", **settings})
    migrate.upgrade(url)
    return app


def test_throttling_can_be_switched_off(tmp_path: Path) -> None:
    app = _app(tmp_path, RATELIMIT_ENABLED=False)
    with app.app_context(), db.transaction(app) as s:
        accounts.create_organizer(s, ANN, PASSWORD)
    client = app.test_client()
    assert {_attempt(client, "wrong").status_code for _ in range(15)} == {401}


def test_rater_entry_has_its_own_per_address_limit(tmp_path: Path, demo_manifest_path: Path) -> None:
    app = _app(tmp_path, RATER_ENTRY_RATE_LIMIT="3 per minute")
    slug = make_study(app, demo_manifest_path, **SMALL_SESSION)
    lab = app.test_client()
    entries = [lab.get(f"/s/{slug}?PROLIFIC_PID=p{i}", environ_base={"REMOTE_ADDR": "203.0.113.5"})
               for i in range(4)]
    assert [r.status_code for r in entries] == [302, 302, 302, 429]
    refused = entries[-1]
    assert "Too many requests from your network address" in refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    home = app.test_client().get(f"/s/{slug}?PROLIFIC_PID=q", environ_base={"REMOTE_ADDR": "198.51.100.5"})
    assert home.status_code == 302
    # Only the entry is throttled: the rest of the rater's path is not.
    assert lab.get(f"/s/{slug}/welcome", environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code == 200


def test_default_limits_are_those_documented() -> None:
    settings = config.from_env({})
    assert settings["LOGIN_RATE_LIMIT"] == "10 per minute; 50 per hour"
    assert settings["RATER_ENTRY_RATE_LIMIT"] == "120 per minute"
    assert settings["RATELIMIT_STORAGE_URI"] == "memory://"
    assert settings["TRUSTED_PROXIES"] == ("127.0.0.1", "::1")
    assert config.from_env({"PANELRANK_TRUSTED_PROXIES": "10.0.0.2, 10.0.0.3"})["TRUSTED_PROXIES"] == (
        "10.0.0.2", "10.0.0.3")
    assert config.from_env({"PANELRANK_RATELIMIT_STORAGE": "redis://cache:6379"})["RATELIMIT_STORAGE_URI"] == (
        "redis://cache:6379")


def test_login_starts_a_fresh_cookie_session(ann: Flask) -> None:
    # Logging in starts a new cookie session: a CSRF token from before the login is not carried over.
    client = ann.test_client()
    before = _csrf(client)
    login(client, ANN)
    after = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/organizer/").get_data(as_text=True))
    assert after and after.group(1) != before
