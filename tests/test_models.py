"""The schema enforces its rules itself, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from study_app import db
from study_app.models import Base, Condition, Content, Rater, Response, Session, Stimulus, Study, Trial


def _study(s) -> tuple[Study, Stimulus, Stimulus, Session]:
    study = Study(slug="s1", name="S", method="pc5", seed=1, manifest={})
    s.add(study)
    s.flush()
    ca, cb = (Condition(study_id=study.id, key=k, role="submission", position=i) for i, k in enumerate("AB"))
    content = Content(study_id=study.id, key="c1", position=0)
    s.add_all([ca, cb, content])
    s.flush()
    sa, sb = (Stimulus(study_id=study.id, content_id=content.id, condition_id=c.id, path=f"/x/{c.key}.mp4",
                       width=64, height=64, fps=25, duration_s=1) for c in (ca, cb))
    session = Session(study_id=study.id, index=0)
    s.add_all([sa, sb, session])
    s.flush()
    return study, sa, sb, session


def test_migration_matches_models(db_app: Flask) -> None:
    with db.engine(db_app).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_one_response_per_trial(db_app: Flask) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        _, sa, sb, session = _study(s)
        trial = Trial(session_id=session.id, position=0, stimulus_a_id=sa.id, stimulus_b_id=sb.id)
        s.add(trial)
        s.flush()
        s.add(Response(trial_id=trial.id, value=1))
        trial_id = trial.id
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.add(Response(trial_id=trial_id, value=-1))
        s.flush()
    with db_app.app_context(), db.transaction(db_app) as s:
        assert [r.value for r in s.scalars(select(Response))] == [1]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE study SET method = 'pc9'",
        "UPDATE study SET status = 'running'",
        "UPDATE study SET panel = 'facebook'",
        "UPDATE condition SET role = 'winner'",
        "UPDATE session SET status = 'done'",
        "UPDATE session SET status = 'active'",  # active without a rater
        "UPDATE stimulus SET width = 0",
        "INSERT INTO content (study_id, key, position) VALUES (999, 'x', 0)",  # foreign key
        "INSERT INTO condition (study_id, key, role, position) SELECT study_id, key, role, 9 FROM condition",
    ],
)
def test_check_unique_and_foreign_keys(db_app: Flask, statement: str) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        _study(s)
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.execute(text(statement))


def test_trial_kind_and_repeat_link_checked(db_app: Flask) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        _, sa, sb, session = _study(s)
        ids = (sa.id, sb.id, session.id)
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.add(Trial(session_id=ids[2], position=0, kind="repeat", stimulus_a_id=ids[0], stimulus_b_id=ids[1]))
        s.flush()
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.add(Trial(session_id=ids[2], position=0, kind="bonus", stimulus_a_id=ids[0]))
        s.flush()


def test_rater_panel_id_unique_per_study(db_app: Flask) -> None:
    with db_app.app_context(), db.transaction(db_app) as s:
        study, *_ = _study(s)
        s.add(Rater(study_id=study.id, panel="prolific", panel_id="P1"))
        sid = study.id
    with pytest.raises(IntegrityError), db_app.app_context(), db.transaction(db_app) as s:
        s.add(Rater(study_id=sid, panel="prolific", panel_id="P1"))
        s.flush()


def test_sqlite_runs_in_wal_with_foreign_keys(app: Flask) -> None:
    with db.engine(app).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
