"""API tokens: creation (shown once), lookup by hash, revocation, and their CLI commands.

A token is ``pr_`` + 43 URL-safe random characters (256 bits). The database keeps only
its SHA-256 — a fast hash is enough because the token is random, not a password — and a
short non-secret prefix so a person can tell tokens apart and revoke one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from study_app import accounts, db
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


# --------------------------------------------------------------------------- CLI
@click.command("create-token", short_help="Create an API token for an organizer (shown once).")
@click.argument("email")
@click.option("--label", default="", help="What the token is for (shown by list-tokens).")
@with_appcontext
def create_token_command(email: str, label: str) -> None:
    """Create an API token for the organizer EMAIL and print it (only this once)."""
    _require_schema()
    with db.transaction() as session:
        organizer = accounts.find_organizer(session, email)
        if organizer is None:
            raise click.ClickException(f"no organizer with email '{email}'")
        row, token = create_token(session, organizer, label)
        token_id = row.id
    click.echo(token)
    click.echo(f"token {token_id} for {organizer.email}; it is not shown again — store it now", err=True)


@click.command("revoke-token", short_help="Revoke an API token by its id or prefix.")
@click.argument("which")
@with_appcontext
def revoke_token_command(which: str) -> None:
    """Revoke an API token, given its id or its first characters (pr_…)."""
    _require_schema()
    try:
        with db.transaction() as session:
            row = revoke(session, which)[0]
            click.echo(f"revoked token {row.id} ({row.prefix}…, {row.label or 'no label'})")
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("list-tokens", short_help="List API tokens (of EMAIL, or all).")
@click.argument("email", required=False)
@with_appcontext
def list_tokens_command(email: str | None) -> None:
    """List API tokens (of EMAIL, or all): id, prefix, organizer, label, created, last used, revoked."""
    _require_schema()
    with db.transaction() as session:
        query = select(ApiToken, Organizer.email).join(Organizer).order_by(ApiToken.id)
        if email:
            query = query.where(Organizer.email == email.strip().lower())
        for row, owner in session.execute(query):
            cells = (row.id, f"{row.prefix}…", owner, row.label or "-", _when(row.created_at),
                     _when(row.last_used_at), "revoked " + _when(row.revoked_at) if row.revoked_at else "active")
            click.echo("\t".join(map(str, cells)))


def _require_schema() -> None:
    from study_app.cli import _require_schema as require  # cli registers these commands: import late

    require()


def _when(t: object) -> str:
    return "-" if t is None else f"{t:%Y-%m-%d %H:%M}"


COMMANDS = (create_token_command, revoke_token_command, list_tokens_command)
