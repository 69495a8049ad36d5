"""Organizer accounts: creation, password hashing and checking, login state."""

from __future__ import annotations

import re
from functools import wraps
from typing import Any

from flask import g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession
from werkzeug.security import check_password_hash, generate_password_hash

from study_app.db import get_db
from study_app.models import Organizer

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


def set_password(organizer: Organizer, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    organizer.password_hash = generate_password_hash(password)


#: Checked when the email is unknown, so a wrong email takes as long as a wrong password
#: (the response time does not tell which emails have accounts).
_DUMMY_HASH = generate_password_hash("not-a-password-of-anyone")


def authenticate(db: DBSession, email: str, password: str) -> Organizer | None:
    organizer = find_organizer(db, email)
    if organizer is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(organizer.password_hash, password):
        return None
    return organizer


def current_organizer() -> Organizer | None:
    if "organizer" not in g:
        oid = session.get("organizer_id")
        g.organizer = get_db().get(Organizer, oid) if oid is not None else None
    return g.organizer


def login_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        if current_organizer() is None:
            return redirect(url_for("organizer.login", next=request.path))
        return view(**kwargs)

    return wrapped
