"""Commands for running a study: ``db upgrade``, ``create-study``, ``export``, ``list-studies``,
``demo`` and ``serve``.

Each needs the app (``with_appcontext``) and imports what it uses when it runs, so
``panelrank <command> --help`` loads neither SQLAlchemy's models nor pandas.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from study_app.cli.commands import require_schema

#: Threads per gunicorn worker: a slow clip download ties up one thread, never a whole worker.
DEFAULT_THREADS = 16
PID_FILE = "panelrank.pid"


@click.group("db", help="Database schema commands.")
def db_group() -> None:
    pass


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to migrate to.")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema."""
    from study_app import migrate

    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at revision {revision}")


@click.command("create-study", short_help="Validate a manifest and create its study.")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--organizer", "organizer_email", help="Email of the organizer who owns the study.")
@with_appcontext
def create_study_command(manifest: Path, organizer_email: str | None) -> None:
    """Validate MANIFEST and create its study (all or nothing); print the slug."""
    from study_app import accounts, db
    from study_app.manifest import ManifestError, load
    from study_app.studies import create_study

    require_schema()
    try:
        vm = load(manifest)
        with db.transaction() as session:
            owner = accounts.find_organizer(session, organizer_email) if organizer_email else None
            if organizer_email and owner is None:
                raise click.ClickException(f"no organizer with email '{organizer_email}'")
            study = create_study(session, vm, organizer_id=owner.id if owner else None)
            slug = study.slug
    except ManifestError as exc:
        click.echo(f"{len(exc.problems)} problem(s) in {manifest}; nothing was created:", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        raise SystemExit(1) from exc
    click.echo(slug)


@click.command("export")
@click.argument("study")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file: .csv or .parquet")
@with_appcontext
def export_command(study: str, out: Path) -> None:
    """Write the votes of STUDY (its slug) as a tidy frame."""
    from study_app import db
    from study_app.export import export_votes
    from study_app.studies import get_study

    require_schema()
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise click.ClickException(f"{out}: the output must end in .csv or .parquet")
    with db.transaction() as session:
        found = get_study(session, study)
        if found is None:
            raise click.ClickException(f"no study with slug '{study}'")
        try:
            path, n = export_votes(session, found, out)
        except OSError as exc:
            # Nothing is half-written (the frame goes to a temporary file first); say why briefly.
            raise click.ClickException(f"{out}: cannot be written ({exc.strerror or exc})") from exc
    click.echo(f"wrote {n} vote(s) to {path}")


@click.command("list-studies")
@with_appcontext
def list_studies_command() -> None:
    """List studies: slug, method, status, name."""
    from sqlalchemy import select

    from study_app import db
    from study_app.models import Study

    require_schema()
    with db.transaction() as session:
        for s in session.scalars(select(Study).order_by(Study.created_at)):
            click.echo(f"{s.slug}\t{s.method}\t{s.status}\t{s.name}")


@click.command("demo", short_help="Build the two demo studies and serve them.")
@click.option("--serve/--no-serve", default=True, help="Start gunicorn after building the demo.")
@click.option("--small", is_flag=True, help="Tiny clips (320×180, 1 s) for quick trials and tests.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (and to print).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to serve on (and to print).")
@with_appcontext
def demo_command(serve: bool, small: bool, host: str, port: int) -> None:
    """Build the demo studies `demo` and `demo-simulated` (clips, database, organizer) and serve them;
    reruns reuse what exists."""
    from study_app.demo import builder as demo

    info = demo.build(current_app, small=small, echo=click.echo)
    base = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"  rater URL:      {base}/s/{info.slug}")
    click.echo(f"  organizer URL:  {base}/organizer/")
    click.echo(f"  organizer login: {info.email} / {info.password}")
    click.echo("")
    if serve:
        _exec_gunicorn(host, port)


@click.command("serve", short_help="Serve the app with gunicorn (gthread workers).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="gunicorn worker processes.")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True, type=click.IntRange(1),
              help="Threads per worker (gunicorn's gthread worker).")
@click.option("--pid", "pidfile", type=click.Path(dir_okay=False, path_type=Path),
              help=f"PID file of the gunicorn master  [default: <instance>/{PID_FILE}]")
@with_appcontext
def serve_command(host: str, port: int, workers: int, threads: int, pidfile: Path | None) -> None:
    """Serve the app with gunicorn (gthread workers); refuse to start over a running server."""
    _exec_gunicorn(host, port, workers, threads, pidfile)


def gunicorn_args(host: str, port: int, workers: int, threads: int, pidfile: Path) -> list[str]:
    """The gunicorn command line of ``panelrank serve`` (tests start the same server).

    Parameters
    ----------
    host, port : str, int
        Where to listen.
    workers, threads : int
        Worker processes and threads in each (gthread worker class).
    pidfile : Path
        Where the master writes its pid.

    Returns
    -------
    list of str
        The program and its arguments.
    """
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "--config", "python:study_app.gunicorn_conf", "--bind", f"{host}:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--pid", str(pidfile), "--access-logfile", "-",
            # gunicorn's default control socket is one per user (~/.gunicorn): two servers would share it.
            "--control-socket", str(pidfile.with_suffix(".ctl")), "study_app.wsgi:app"]


def _exec_gunicorn(host: str, port: int, workers: int = 2, threads: int = DEFAULT_THREADS,
                   pidfile: Path | None = None) -> None:
    pidfile = (pidfile or Path(current_app.config["INSTANCE_DIR"]) / PID_FILE).resolve()
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_pidfile(pidfile)
    _warn_unshared_limits(workers)
    args = gunicorn_args(host, port, workers, threads, pidfile)
    os.execv(args[0], args)


def _warn_unshared_limits(workers: int) -> None:
    # Flask-Limiter's memory:// counters live in each worker: N workers allow N times the limit.
    storage = str(current_app.config.get("RATELIMIT_STORAGE_URI", ""))
    if workers > 1 and storage.startswith("memory://"):
        click.echo(f"warning: login throttling counts per worker ({workers} workers, {storage}): up to {workers}× "
                   "the configured limit; set PANELRANK_RATELIMIT_STORAGE to a shared store (redis://…) "
                   "to count together", err=True)


def _clear_stale_pidfile(pidfile: Path) -> None:
    """Refuse to start over a live server; remove the pid file of a dead one."""
    try:
        pid = int(pidfile.read_text().strip())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        pid = None  # unreadable or garbage: nobody's
    if pid is not None and _is_server(pid):
        raise click.ClickException(f"panelrank is already running with pid {pid} (pid file {pidfile}); "
                                   f"stop it first (kill {pid})")
    pidfile.unlink(missing_ok=True)


def _is_server(pid: int) -> bool:
    """Whether ``pid`` is a running gunicorn (a dead, zombie or recycled pid is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's: let the message name it
    try:
        # A zombie has an empty command line; a recycled pid another program's.
        return b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc (not Linux): trust kill(0)
    except OSError:
        return True
