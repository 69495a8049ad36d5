"""``panelrank …``: one click group over the commands of this package.

The commands are grouped by who runs them: :mod:`.study` (running a study: ``db``,
``create-study``, ``export``, ``list-studies``, ``demo``, ``serve``), :mod:`.analysis`
(analysts: ``analyze``, ``simulate``), :mod:`.scoring` (objective scorers: ``score``,
``challenge-score``, ``score-study``, ``fit-scorer``, ``analyze-study``) and
:mod:`.accounts` (``create-organizer`` and the API-token commands). Each is a thin
layer over library functions.

``panelrank --help`` starts fast: the group lists its commands from the table in
:mod:`.commands` and imports a command's module only when that command is run (or its
own ``--help`` asked for); the app is built only by a command that needs it.
"""

from __future__ import annotations

from typing import Any

import click

from study_app.cli.commands import COMMANDS, load
from study_app.config import InsecureConfigError


class PanelrankGroup(click.Group):
    """The ``panelrank`` group: commands from :data:`~study_app.cli.commands.COMMANDS`, loaded on first use.

    Flask is imported only when a command runs: ``invoke`` hands the commands the
    ``ScriptInfo`` that Flask's ``with_appcontext`` builds the app from, as ``FlaskGroup`` would.
    """

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load(name) if name in COMMANDS else None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command listing of ``--help``, from the table: no command module is imported."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name].short_help) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context) -> Any:
        from flask.cli import ScriptInfo

        ctx.obj = ScriptInfo(create_app=_app_for_cli, set_debug_flag=False)
        return super().invoke(ctx)


def _app_for_cli() -> Any:
    from study_app import create_app

    try:
        return create_app()
    except InsecureConfigError as exc:  # a settings mistake: one line, not a traceback
        raise click.ClickException(str(exc)) from exc


main = PanelrankGroup(
    name="panelrank",
    help="panelrank: subjective video-quality studies ranked with honest confidence intervals.",
)
main = click.version_option(package_name="panelrank", message="%(prog)s %(version)s")(main)
