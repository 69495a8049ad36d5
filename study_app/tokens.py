"""API tokens: creation (shown once), lookup by hash, revocation (commands: :mod:`study_app.cli.accounts`).

A token is ``pr_`` + 43 URL-safe random characters (256 bits). The database keeps only
its SHA-256 — a fast hash is enough because the token is random, not a password — and a
short non-secret prefix so a person can tell tokens apart and revoke one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from study_app.models import ApiToken, Organizer, utcnow

PREFIX = "pr_"
#: Characters of the token kept in clear (``pr_`` + 8 random ones: ~48 of its 256 bits).
SHOWN = len(PREFIX) + 8
#: ``last_used_at`` is refreshed at most this often, so reading the API is not a write per request.
TOUCH_EVERY = timedelta(minutes=1)


class TokenError(ValueError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db: DBSession, organizer: Organizer, label: str = "") -> tuple[ApiToken, str]:
    """Store a new token for ``organizer``; returns the row and the token (never stored)."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(organizer_id=organizer.id, token_hash=hash_token(token), prefix=token[:SHOWN],
                   label=label.strip()[:200])
    db.add(row)
    db.flush()
    return row, token


def find_active(db: DBSession, token: str) -> ApiToken | None:
    """The unrevoked token row matching ``token``, or None."""
    if not token.startswith(PREFIX):
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def touch(row: ApiToken) -> bool:
    """Record a use; True when ``last_used_at`` changed (the caller commits)."""
    now = utcnow()
    last = row.last_used_at
    if last is not None and now - last < TOUCH_EVERY:
        return False
    row.last_used_at = now
    return True


def revoke(db: DBSession, which: str) -> list[ApiToken]:
    """Revoke the token with id ``which``, or every active token starting with ``which``.

    A prefix must reach past ``pr_`` and match exactly one active token, so a typo
    cannot revoke a whole account's tokens.
    """
    which = which.strip()
    if which.isdigit():
        row = db.get(ApiToken, int(which))
        found = [row] if row is not None else []
    elif which.startswith(PREFIX) and len(which) > SHOWN:  # longer than any stored prefix: a whole token
        found = list(db.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(which))))
    elif which.startswith(PREFIX) and len(which) > len(PREFIX):
        found = list(db.scalars(select(ApiToken).where(ApiToken.prefix.startswith(which, autoescape=True))))
    else:
        raise TokenError(f"'{which}' is neither a token id nor a token prefix ({PREFIX}…)")
    active = [r for r in found if r.revoked_at is None]
    if not active:
        raise TokenError(f"no active token matches '{which}'")
    if len(active) > 1:
        raise TokenError(f"'{which}' matches {len(active)} tokens; give more characters or the id")
    active[0].revoked_at = utcnow()
    return active


def list_tokens(db: DBSession, email: str | None = None) -> list[tuple[ApiToken, str]]:
    """Every token (of the organizer ``email``, or of all) with its owner's email, oldest first.

    Parameters
    ----------
    db : Session
        An open database session.
    email : str, optional
        Only this organizer's tokens (compared lower-cased).

    Returns
    -------
    list of (ApiToken, str)
        Each token row and its organizer's email.
    """
    query = select(ApiToken, Organizer.email).join(Organizer).order_by(ApiToken.id)
    if email:
        query = query.where(Organizer.email == email.strip().lower())
    return [(row, owner) for row, owner in db.execute(query)]
