"""One active session per rater; a per-rater count of claimed sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00.000000
"""

from __future__ import annotations

from itertools import groupby

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    _add_counter()
    bind = op.get_bind()
    _settle_duplicate_actives(bind)
    # Every session a rater holds counts towards the cap, finished or not (as the app counted before).
    bind.execute(sa.text('UPDATE rater SET sessions_claimed = '
                         '(SELECT count(*) FROM session WHERE session.rater_id = rater.id)'))
    op.create_index('uq_session_one_active', 'session', ['rater_id'], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)


def downgrade() -> None:
    op.drop_index('uq_session_one_active', table_name='session', sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE rater DROP COLUMN sessions_claimed')
    else:
        op.drop_constraint('ck_rater_sessions_claimed', 'rater', type_='check')
        op.drop_column('rater', 'sessions_claimed')


def _add_counter() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # ADD COLUMN with its CHECK in place: batch mode would rebuild ``rater``, and dropping the old
        # table runs ON DELETE SET NULL on session.rater_id (see 0002).
        op.execute('ALTER TABLE rater ADD COLUMN sessions_claimed INTEGER DEFAULT 0 NOT NULL '
                   'CONSTRAINT ck_rater_sessions_claimed CHECK (sessions_claimed >= 0)')
        return
    op.add_column('rater', sa.Column('sessions_claimed', sa.Integer(), server_default='0', nullable=False))
    op.create_check_constraint('ck_rater_sessions_claimed', 'rater', 'sessions_claimed >= 0')


def _settle_duplicate_actives(bind: sa.Connection) -> None:
    """Leave each rater one active session (the latest, the one the app resumes), so the index can be built.

    Concurrent consents gave some raters two; the older was never shown again. Unanswered, it goes
    back to the plan for another rater; with answers it is kept as abandoned, so none is lost.
    """
    rows = bind.execute(sa.text(
        "SELECT id, rater_id FROM session WHERE status = 'active' ORDER BY rater_id, started_at DESC, id DESC"
    )).all()
    for _, sessions in groupby(rows, key=lambda row: row.rater_id):
        for older in list(sessions)[1:]:
            answered = bind.execute(sa.text(
                'SELECT count(*) FROM response JOIN trial ON trial.id = response.trial_id '
                'WHERE trial.session_id = :sid'), {'sid': older.id}).scalar()
            if answered:
                bind.execute(sa.text("UPDATE session SET status = 'abandoned' WHERE id = :sid"), {'sid': older.id})
            else:
                bind.execute(sa.text(
                    "UPDATE session SET status = 'planned', rater_id = NULL, started_at = NULL, "
                    "panel_session_id = NULL, environment = NULL WHERE id = :sid"), {'sid': older.id})
