"""The table of ``panelrank`` commands, and what their modules share.

:data:`COMMANDS` names every command with the module that defines it and the one-line
help ``panelrank --help`` lists, so the group can list its commands without importing
them. :func:`register` puts them on ``app.cli`` (the app factory calls it), so
``flask``'s machinery and ``app.test_cli_runner()`` see the same commands.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, NamedTuple

import click

if TYPE_CHECKING:
    from flask import Flask


class Entry(NamedTuple):
    """Where a command lives and what the listing says of it."""

    module: str
    attr: str
    short_help: str


_PKG = "study_app.cli"

#: Command name → its module, attribute and listing line (a test checks they match the commands).
COMMANDS: dict[str, Entry] = {
    # People running a study: schema, studies, exports, the demo and the server.
    "db": Entry(f"{_PKG}.study", "db_group", "Database schema commands."),
    "create-study": Entry(f"{_PKG}.study", "create_study_command", "Validate a manifest and create its study."),
    "export": Entry(f"{_PKG}.study", "export_command", "Write the votes of STUDY (its slug) as a tidy frame."),
    "list-studies": Entry(f"{_PKG}.study", "list_studies_command", "List studies: slug, method, status, name."),
    "demo": Entry(f"{_PKG}.study", "demo_command", "Build the two demo studies and serve them."),
    "serve": Entry(f"{_PKG}.study", "serve_command", "Serve the app with gunicorn (gthread workers)."),
    # Analysts: vote files in, reports out (no app, no database).
    "analyze": Entry(f"{_PKG}.analysis", "analyze_command", "Rank the conditions of a votes file; write a report."),
    "simulate": Entry(f"{_PKG}.analysis", "simulate_command", "Write a synthetic votes file with a known truth."),
    "plan-votes": Entry(f"{_PKG}.analysis", "plan_votes_command",
                        "Votes needed to separate conditions a given BT distance apart."),
    # Objective scorers, on files or on a study in the database.
    "score": Entry(f"{_PKG}.scoring", "score_command", "Print a scorer's JSON answer for one pair of clips."),
    "challenge-score": Entry(f"{_PKG}.scoring", "challenge_score_command",
                             "Write the challenge CSVs and each S_real, S_synth, S_obj."),
    "score-study": Entry(f"{_PKG}.scoring", "score_study_command",
                         "Score every stimulus and pair of a study (cached)."),
    "fit-scorer": Entry(f"{_PKG}.scoring", "fit_scorer_command", "Train a scorer head on votes, cross-fitted."),
    "analyze-study": Entry(f"{_PKG}.scoring", "analyze_study_command",
                           "Rank the conditions of a study; write a report."),
    # Accounts: organizers and their API tokens.
    "create-organizer": Entry(f"{_PKG}.accounts", "create_organizer_command", "Create an organizer account."),
    "create-token": Entry(f"{_PKG}.accounts", "create_token_command",
                          "Create an API token for an organizer (shown once)."),
    "revoke-token": Entry(f"{_PKG}.accounts", "revoke_token_command", "Revoke an API token by its id or prefix."),
    "list-tokens": Entry(f"{_PKG}.accounts", "list_tokens_command", "List API tokens (of EMAIL, or all)."),
    # Flask's own, for operators: a shell and the route table in the app's context, the dev server.
    "shell": Entry("flask.cli", "shell_command", "Run a shell in the app context."),
    "routes": Entry("flask.cli", "routes_command", "Show the routes for the app."),
    "run": Entry("flask.cli", "run_command", "Run a development server."),
}


def load(name: str) -> click.Command:
    """The command called ``name``, importing its module now.

    Parameters
    ----------
    name : str
        A key of :data:`COMMANDS`.

    Returns
    -------
    click.Command
        The command object.
    """
    entry = COMMANDS[name]
    return getattr(import_module(entry.module), entry.attr)


def register(app: Flask) -> None:
    """Add panelrank's own commands to ``app.cli`` (Flask's own are there already).

    Parameters
    ----------
    app : Flask
        The app being built.
    """
    for name, entry in COMMANDS.items():
        if entry.module.startswith(_PKG):
            app.cli.add_command(load(name), name)


def require_schema() -> None:
    """Stop a command with a one-line error when the database schema is not current.

    Raises
    ------
    click.ClickException
        When ``panelrank db upgrade`` has not been run on this database.
    """
    from flask import current_app

    from study_app import migrate

    if not migrate.is_current(current_app.config["DATABASE_URL"]):
        raise click.ClickException("the database schema is not current: run `panelrank db upgrade` first")
