"""Account commands: ``create-organizer`` and the API tokens (``create-token``,
``revoke-token``, ``list-tokens``), over :mod:`study_app.accounts` and :mod:`study_app.tokens`."""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext

from study_app.cli.commands import require_schema


@click.command("create-organizer")
@click.argument("email")
@click.option("--password", help="Default: prompted (or generated with --generate).")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
@click.option("--admin", is_flag=True, help="An admin sees every study.")
@with_appcontext
def create_organizer_command(email: str, password: str | None, generate: bool, admin: bool) -> None:
    """Create an organizer account."""
    from study_app import accounts, db

    require_schema()
    if generate:
        password = secrets.token_urlsafe(12)
    elif password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with db.transaction() as session:
            accounts.create_organizer(session, email, password, role="admin" if admin else "organizer")
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"organizer {email} created" + (f"; password: {password}" if generate else ""))


@click.command("create-token", short_help="Create an API token for an organizer (shown once).")
@click.argument("email")
@click.option("--label", default="", help="What the token is for (shown by list-tokens).")
@with_appcontext
def create_token_command(email: str, label: str) -> None:
    """Create an API token for the organizer EMAIL and print it (only this once)."""
    from study_app import accounts, db, tokens

    require_schema()
    with db.transaction() as session:
        organizer = accounts.find_organizer(session, email)
        if organizer is None:
            raise click.ClickException(f"no organizer with email '{email}'")
        row, token = tokens.create_token(session, organizer, label)
        token_id = row.id
    click.echo(token)
    click.echo(f"token {token_id} for {organizer.email}; it is not shown again — store it now", err=True)


@click.command("revoke-token", short_help="Revoke an API token by its id or prefix.")
@click.argument("which")
@with_appcontext
def revoke_token_command(which: str) -> None:
    """Revoke an API token, given its id or its first characters (pr_…)."""
    from study_app import db, tokens

    require_schema()
    try:
        with db.transaction() as session:
            row = tokens.revoke(session, which)[0]
            click.echo(f"revoked token {row.id} ({row.prefix}…, {row.label or 'no label'})")
    except tokens.TokenError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("list-tokens", short_help="List API tokens (of EMAIL, or all).")
@click.argument("email", required=False)
@with_appcontext
def list_tokens_command(email: str | None) -> None:
    """List API tokens (of EMAIL, or all): id, prefix, organizer, label, created, last used, revoked."""
    from study_app import db, tokens

    require_schema()
    with db.transaction() as session:
        for row, owner in tokens.list_tokens(session, email):
            cells = (row.id, f"{row.prefix}…", owner, row.label or "-", _when(row.created_at),
                     _when(row.last_used_at), "revoked " + _when(row.revoked_at) if row.revoked_at else "active")
            click.echo("\t".join(map(str, cells)))


def _when(t: object) -> str:
    return "-" if t is None else f"{t:%Y-%m-%d %H:%M}"
