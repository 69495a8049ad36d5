"""The ``panelrank`` commands: create-study, export, db upgrade, organizers — on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from flask import Flask
from sqlalchemy import func, select

from analysis import frames
from study_app import db, scheduling
from study_app.export import EXTRA_COLUMNS
from study_app.models import Session, Stimulus, Study, Trial
from study_app.studies import write_planned_sessions


def _count(app: Flask, model: type) -> int:
    with app.app_context(), db.transaction(app) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_create_study_prints_slug_and_writes_its_items(db_app: Flask, demo_manifest_path: Path) -> None:
    """create-study writes the items with their vote targets; sessions are built when raters arrive,
    and the plan rebuilt from the stored study keeps the repeat rules."""
    result = db_app.test_cli_runner().invoke(args=["create-study", str(demo_manifest_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "demo"
    with db_app.app_context(), db.transaction(db_app) as s:
        study = s.scalar(select(Study))
        assert study.slug == "demo" and study.seed == 2025 and study.method == "pc5"
        assert s.scalar(select(func.count()).select_from(Stimulus)) == 24
        stim = s.scalar(select(Stimulus).limit(1))
        assert (stim.width, stim.height) == (320, 180) and stim.fps == pytest.approx(25)
        assert len(study.items) == 4 * 15 and {i.target for i in study.items} == {8}  # contents × pairs, 8 votes
        assert s.scalar(select(func.count()).select_from(Session)) == 0  # nothing planned ahead
        write_planned_sessions(s, study)
        n_main = s.scalar(select(func.count()).select_from(Trial).where(Trial.kind == "main"))
        assert n_main == 4 * 15 * 8  # contents × pairs × votes per pair
        repeats = s.scalars(select(Trial).where(Trial.kind == "repeat")).all()
        assert repeats and all(r.repeat_of_id is not None for r in repeats)
        for r in repeats:
            orig = s.get(Trial, r.repeat_of_id)
            assert orig.session_id == r.session_id and r.position - orig.position >= 3
            assert r.a_left != orig.a_left


def test_broken_manifest_lists_every_problem_and_creates_nothing(
    db_app: Flask, demo_manifest_path: Path, tmp_path: Path
) -> None:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    raw["method"] = "pc9"
    raw["conditions"].append({"id": "dark"})
    raw["stimuli"][0]["path"] = "/nonexistent/clip.mp4"
    raw["panel"] = {"name": "facebook"}
    raw["trials_per_session"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = db_app.test_cli_runner().invoke(args=["create-study", str(bad)])
    assert result.exit_code == 1
    assert "5 problem(s)" in result.output and "nothing was created" in result.output
    assert result.output.count("\n  - ") == 5
    assert _count(db_app, Study) == 0 and _count(db_app, Stimulus) == 0


def test_duplicate_slug_is_refused(db_app: Flask, demo_manifest_path: Path) -> None:
    runner = db_app.test_cli_runner()
    assert runner.invoke(args=["create-study", str(demo_manifest_path)]).exit_code == 0
    trials = _count(db_app, Trial)
    again = runner.invoke(args=["create-study", str(demo_manifest_path)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert _count(db_app, Study) == 1 and _count(db_app, Trial) == trials


def test_export_of_empty_study_is_a_valid_empty_frame(
    db_app: Flask, demo_manifest_path: Path, tmp_path: Path
) -> None:
    runner = db_app.test_cli_runner()
    runner.invoke(args=["create-study", str(demo_manifest_path)])
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"votes{suffix}"
        result = runner.invoke(args=["export", "demo", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "wrote 0 vote(s)" in result.output
        df = frames.read_votes(out)
        assert len(df) == 0 and list(df.columns[: len(frames.PAIRWISE_COLUMNS)]) == list(frames.PAIRWISE_COLUMNS)
        assert list(df.columns[len(frames.PAIRWISE_COLUMNS):]) == list(EXTRA_COLUMNS)


def test_export_refuses_unknown_study_and_bad_suffix(runner, tmp_path: Path) -> None:
    result = runner.invoke(args=["export", "nope", "--out", str(tmp_path / "v.csv")])
    assert result.exit_code != 0 and "no study with slug 'nope'" in result.output
    result = runner.invoke(args=["export", "nope", "--out", str(tmp_path / "v.xlsx")])
    assert result.exit_code != 0 and ".csv or .parquet" in result.output


def test_export_to_an_unwritable_place_is_a_clear_error(runner, demo_manifest_path: Path, tmp_path: Path) -> None:
    runner.invoke(args=["create-study", str(demo_manifest_path)])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(args=["export", "demo", "--out", str(blocker / "v.csv")])
    assert result.exit_code == 1 and "cannot be written" in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "not a folder"


def test_commands_require_a_current_schema(tmp_path: Path) -> None:
    from study_app import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite'}", "INSTANCE_DIR": str(tmp_path),
                      "TESTING": True})
    result = app.test_cli_runner().invoke(args=["list-studies"])
    assert result.exit_code != 0 and "panelrank db upgrade" in result.output
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0 and "head" in result.output
    assert app.test_cli_runner().invoke(args=["list-studies"]).exit_code == 0


def test_create_organizer(runner) -> None:
    result = runner.invoke(args=["create-organizer", "Ann@Example.org", "--generate"])
    assert result.exit_code == 0 and "password: " in result.output
    again = runner.invoke(args=["create-organizer", "ann@example.org", "--password", "long-enough-pw"])
    assert again.exit_code != 0 and "exists already" in again.output
    short = runner.invoke(args=["create-organizer", "bob@example.org", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output
    bad = runner.invoke(args=["create-organizer", "not-an-email", "--password", "long-enough-pw"])
    assert bad.exit_code != 0 and "not an email" in bad.output


def test_create_study_for_unknown_organizer_writes_nothing(runner, app: Flask, demo_manifest_path: Path) -> None:
    result = runner.invoke(args=["create-study", str(demo_manifest_path), "--organizer", "x@y.org"])
    assert result.exit_code != 0 and "no organizer" in result.output
    assert _count(app, Study) == 0


def test_plan_is_reproducible_from_the_stored_seed(db_app: Flask, demo_manifest_path: Path) -> None:
    from study_app.manifest import load
    from study_app.plan import make_plan

    db_app.test_cli_runner().invoke(args=["create-study", str(demo_manifest_path)])
    plan = make_plan(load(demo_manifest_path, probe_media=False).spec)
    with db_app.app_context(), db.transaction(db_app) as s:
        write_planned_sessions(s, s.scalar(select(Study)))  # the plan rebuilt from what the study stored
        rows = s.execute(select(Session.index, Trial.position, Trial.kind, Trial.a_left)
                         .join(Trial.session).order_by(Session.index, Trial.position)).all()
    planned = [(ps.index, t.position, t.kind, t.a_left) for ps in plan.sessions for t in ps.trials]
    assert [tuple(r) for r in rows] == planned


def test_export_roundtrip_after_votes(app: Flask, demo_manifest_path: Path, tmp_path: Path) -> None:
    """Votes written straight to the DB come out with pref relative to (cond_a, cond_b)."""
    from study_app.models import Rater, Response

    runner = app.test_cli_runner()
    runner.invoke(args=["create-study", str(demo_manifest_path)])
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study))
        rater = Rater(study_id=study.id, panel="none", panel_id="anon-1")
        s.add(rater)
        s.flush()
        session = scheduling.claim_session(s, study, rater)  # sessions are built when a rater starts one
        for t in session.trials[:4]:
            s.add(Response(trial_id=t.id, value=1, reason="colours", watch_ms=2000, stalls=0, plays=1))
    out = tmp_path / "v.csv"
    assert runner.invoke(args=["export", "demo", "--out", str(out)]).exit_code == 0
    df = frames.read_votes(out)
    assert len(df) == 4 and set(df["pref"]) == {1} and set(df["rater"]) == {"anon-1"}
    assert set(df["shown_left"]) <= {"a", "b"} and not df["stalled"].any()
    assert isinstance(pd.read_csv(out), pd.DataFrame)
    # The tidy frame of DESIGN.md first, in order, then the same extra columns an empty export has.
    assert list(df.columns) == [*frames.PAIRWISE_COLUMNS, *EXTRA_COLUMNS]
    assert df["display_scale"].isna().all()  # no browser sent one


def test_help_lists_whole_summaries_and_version_is_panelrank(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from study_app.cli import main

    monkeypatch.setenv("PANELRANK_INSTANCE", str(tmp_path))
    monkeypatch.setenv("PANELRANK_DATABASE_URL", f"sqlite:///{tmp_path / 'help.sqlite'}")
    runner = CliRunner()
    listing = runner.invoke(main, ["--help"], terminal_width=80)
    assert listing.exit_code == 0, listing.output
    commands = listing.output.split("Commands:", 1)[1]
    assert "analyze-study" in commands and "..." not in commands  # no summary cut off at 80 columns
    version = runner.invoke(main, ["--version"], prog_name="panelrank")
    assert version.exit_code == 0 and version.output.startswith("panelrank ") and "Flask" not in version.output


def test_the_command_table_matches_the_commands() -> None:
    from click.testing import CliRunner

    from study_app.cli import main
    from study_app.cli.commands import COMMANDS, load

    for name, entry in COMMANDS.items():
        command = load(name)
        assert command.name == name and command.get_short_help_str(limit=200) == entry.short_help, name
    import click

    assert set(COMMANDS) <= set(main.list_commands(click.Context(main)))
    assert CliRunner().invoke(main, ["simulate", "--help"]).exit_code == 0  # loaded on demand


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom study_app.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ('pandas', 'numpy', 'scipy', 'plotly', 'sqlalchemy', 'av', 'torch', 'study_app.models',\n"
            "         'flask', 'werkzeug', 'jinja2')\n"
            "print(sorted(m for m in sys.modules if m.startswith('study_app.cli.') and m != 'study_app.cli.commands'"
            " or m.split('.')[0] in heavy or m in heavy), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "analyze-study" in out.stdout
    assert out.stderr.strip() == "[]"


def test_insecure_production_settings_are_one_line_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from study_app.cli import main

    env = {"PANELRANK_ENV": "production", "PANELRANK_INSTANCE": str(tmp_path), "PANELRANK_SECRET_KEY": "short"}
    result = CliRunner().invoke(main, ["list-studies"], env=env)
    assert result.exit_code == 1
    assert "secret key shorter than 16" in result.output and "Traceback" not in result.output
