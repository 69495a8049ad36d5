"""Organizer accounts: creation, password hashing and checking, login state.

A console login is a row of ``organizer_login``; the (signed) session cookie carries only a
random token whose SHA-256 names that row. The server decides whether the login still
counts, so logging out, changing the password or "log out everywhere" ends it for good,
even for a copy of the cookie.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import cache, wraps
from typing import Any

from flask import g, redirect, request, session, url_for
from sqlalchemy import select, update
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import object_session
from werkzeug.security import check_password_hash, generate_password_hash

from study_app.db import get_db
from study_app.models import Organizer, OrganizerLogin, utcnow

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


class AccountError(ValueError):
    pass


def find_organizer(db: DBSession, email: str | None) -> Organizer | None:
    if not email:
        return None
    return db.scalar(select(Organizer).where(Organizer.email == email.strip().lower()))


def create_organizer(db: DBSession, email: str, password: str, role: str = "organizer") -> Organizer:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise AccountError(f"'{email}' is not an email address")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if find_organizer(db, email) is not None:
        raise AccountError(f"an organizer with email '{email}' exists already")
    organizer = Organizer(email=email, password_hash=generate_password_hash(password), role=role)
    db.add(organizer)
    db.flush()
    return organizer


def set_password(organizer: Organizer, password: str, keep: OrganizerLogin | None = None) -> int:
    """Set a new password and end every console login of the organizer except ``keep``.

    Parameters
    ----------
    organizer : Organizer
    password : str
        At least ``MIN_PASSWORD`` characters.
    keep : OrganizerLogin, optional
        The login that changed the password (it stays logged in).

    Returns
    -------
    int
        How many logins were ended (the caller commits).
    """
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    organizer.password_hash = generate_password_hash(password)
    db = object_session(organizer)
    if db is None or organizer.id is None:
        return 0  # not stored yet: no logins to end
    return end_logins(db, organizer, keep=keep)


@cache
def _dummy_hash() -> str:
    """A hash checked when the email is unknown, so a wrong email takes as long as a wrong password.

    The response time then does not tell which emails have accounts. Computed on the first unknown
    email, not at import (hashing takes half a second; every ``panelrank`` command imports this
    module). Two threads racing on the first call each compute one, which is harmless.
    """
    return generate_password_hash("not-a-password-of-anyone")


def authenticate(db: DBSession, email: str, password: str) -> Organizer | None:
    organizer = find_organizer(db, email)
    if organizer is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return organizer if password_matches(organizer, password) else None


def password_matches(organizer: Organizer, password: str) -> bool:
    return check_password_hash(organizer.password_hash, password)


# --------------------------------------------------------------------------- console logins
#: Key of the login token in Flask's session cookie.
COOKIE_KEY = "login"
#: A login unused for this long no longer counts (a forgotten browser does not stay logged in).
IDLE_TIMEOUT = timedelta(days=14)
#: ``last_seen_at`` is refreshed at most this often, so browsing the console is not a write per page.
TOUCH_EVERY = timedelta(minutes=5)


def _hash(token: str) -> str:
    # A fast hash suffices: the token is 256 random bits, not a password.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def log_in(db: DBSession, organizer: Organizer) -> OrganizerLogin:
    """Start a console login for ``organizer`` in this browser (the caller commits)."""
    token = secrets.token_urlsafe(32)
    login = OrganizerLogin(organizer_id=organizer.id, token_hash=_hash(token))
    db.add(login)
    db.flush()
    session.clear()  # nothing from before the login (a fixed session, an old CSRF token) carries over
    session[COOKIE_KEY] = token
    g.organizer_login = login
    return login


def log_out() -> None:
    """End this browser's login on the server and forget the cookie (the caller commits)."""
    login = current_login()
    if login is not None:
        login.revoked_at = utcnow()
    session.clear()


def end_logins(db: DBSession, organizer: Organizer, keep: OrganizerLogin | None = None) -> int:
    """End every active login of ``organizer`` except ``keep``; returns how many (the caller commits)."""
    query = (update(OrganizerLogin)
             .where(OrganizerLogin.organizer_id == organizer.id, OrganizerLogin.revoked_at.is_(None))
             .values(revoked_at=utcnow()))
    if keep is not None:
        query = query.where(OrganizerLogin.id != keep.id)
    return db.execute(query).rowcount


def active_logins(db: DBSession, organizer: Organizer) -> list[OrganizerLogin]:
    """The organizer's logins that still count, most recently used first."""
    return list(db.scalars(
        select(OrganizerLogin)
        .where(OrganizerLogin.organizer_id == organizer.id, OrganizerLogin.revoked_at.is_(None),
               OrganizerLogin.last_seen_at > utcnow() - IDLE_TIMEOUT)
        .order_by(OrganizerLogin.last_seen_at.desc(), OrganizerLogin.id.desc())
    ))


def current_login() -> OrganizerLogin | None:
    """This browser's login if it still counts: not revoked, not idle too long."""
    if "organizer_login" not in g:
        token = session.get(COOKIE_KEY)
        login = None
        if isinstance(token, str):
            login = get_db().scalar(select(OrganizerLogin).where(OrganizerLogin.token_hash == _hash(token)))
        if login is not None and (login.revoked_at is not None or utcnow() - login.last_seen_at > IDLE_TIMEOUT):
            login = None
        g.organizer_login = login
    return g.organizer_login


def current_organizer() -> Organizer | None:
    login = current_login()
    return login.organizer if login is not None else None


def _touch(login: OrganizerLogin) -> bool:
    now = utcnow()
    if now - login.last_seen_at < TOUCH_EVERY:
        return False
    login.last_seen_at = now
    return True


def login_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        login = current_login()
        if login is None:
            return redirect(url_for("organizer.login", next=request.path))
        if _touch(login):
            get_db().commit()  # before the view: nothing else of this request is pending yet
        return view(**kwargs)

    return wrapped
