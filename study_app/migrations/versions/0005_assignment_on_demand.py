"""Assignment on demand: study items with vote targets, trial → item, session expiry

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00.000000

Sessions used to be planned when a study was created; now they are built when a rater starts
one, from the items (``study_item``) still short of their target. The upgrade derives every
study's items and targets from its plan (one item per distinct main-trial question, its target
the number of main trials the plan gave it), links the existing trials to them, and deletes the
planned sessions nobody claimed (they hold no answer): their votes are assigned on demand from
now on. Sessions gain ``last_seen_at`` (idle expiry) and the status ``expired``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('planned', 'active', 'completed', 'screened_out', 'abandoned')"
NEW_STATUSES = "status IN ('planned', 'active', 'completed', 'screened_out', 'abandoned', 'expired')"
ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_table('study_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('stimulus_a_id', sa.Integer(), nullable=False),
    sa.Column('stimulus_b_id', sa.Integer(), nullable=True),
    sa.Column('reference_id', sa.Integer(), nullable=True),
    sa.Column('target', sa.Integer(), nullable=True),
    sa.CheckConstraint('target IS NULL OR target >= 1', name='ck_study_item_target'),
    sa.CheckConstraint('stimulus_b_id IS NULL OR stimulus_b_id <> stimulus_a_id', name='ck_study_item_pair'),
    sa.ForeignKeyConstraint(['reference_id'], ['stimulus.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stimulus_a_id'], ['stimulus.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stimulus_b_id'], ['stimulus.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('study_id', 'position', name='uq_study_item_position')
    )
    op.create_index('ix_study_item_study_id', 'study_item', ['study_id'], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        # ADD COLUMN in place: a batch rebuild of ``trial`` would drop the table its responses cascade from.
        op.execute('ALTER TABLE trial ADD COLUMN item_id INTEGER REFERENCES study_item (id)')
        op.execute('ALTER TABLE session ADD COLUMN last_seen_at DATETIME')
    else:
        op.add_column('trial', sa.Column('item_id', sa.Integer(), nullable=True))
        op.create_foreign_key('trial_item_id_fkey', 'trial', 'study_item', ['item_id'], ['id'])
        op.add_column('session', sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_trial_item_id', 'trial', ['item_id'], unique=False)
    _set_status_check(NEW_STATUSES)
    _items_from_plans(bind)
    bind.execute(sa.text(
        'UPDATE session SET last_seen_at = COALESCE((SELECT max(response.answered_at) FROM response '
        'JOIN trial ON trial.id = response.trial_id WHERE trial.session_id = session.id), started_at)'))


def downgrade() -> None:
    # Expired sessions were idle ones: before this revision they stayed active and were shown as abandoned.
    # Only when there are any: on SQLite an UPDATE opens the transaction, after which the rebuild below
    # cannot switch foreign keys off and refuses (a SELECT does not).
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM session WHERE status = 'expired'")).scalar():
        op.execute("UPDATE session SET status = 'abandoned' WHERE status = 'expired'")
    _set_status_check(OLD_STATUSES)
    op.drop_index('ix_trial_item_id', table_name='trial')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE trial DROP COLUMN item_id')
        op.execute('ALTER TABLE session DROP COLUMN last_seen_at')
    else:
        op.drop_constraint('trial_item_id_fkey', 'trial', type_='foreignkey')
        op.drop_column('trial', 'item_id')
        op.drop_column('session', 'last_seen_at')
    op.drop_index('ix_study_item_study_id', table_name='study_item')
    op.drop_table('study_item')


def _set_status_check(check: str) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('ck_session_status', 'session', type_='check')
        op.create_check_constraint('ck_session_status', 'session', check)
        return
    # SQLite rebuilds the table; its partial unique index is dropped first and made again after.
    op.drop_index('uq_session_one_active', table_name='session', sqlite_where=ACTIVE)
    with _foreign_keys_off(), op.batch_alter_table('session', recreate='always') as batch_op:
        batch_op.drop_constraint('ck_session_status', type_='check')
        batch_op.create_check_constraint('ck_session_status', check)
    op.create_index('uq_session_one_active', 'session', ['rater_id'], unique=True, sqlite_where=ACTIVE)


def _items_from_plans(bind: sa.Connection) -> None:
    """One item per distinct main-trial question of each study, its target the plan's count; link the trials;
    drop the unclaimed planned sessions."""
    rows = bind.execute(sa.text(
        "SELECT session.study_id, trial.stimulus_a_id, trial.stimulus_b_id, trial.reference_id, count(*) "
        "FROM trial JOIN session ON session.id = trial.session_id WHERE trial.kind = 'main' "
        "GROUP BY session.study_id, trial.stimulus_a_id, trial.stimulus_b_id, trial.reference_id "
        "ORDER BY session.study_id, trial.stimulus_a_id, trial.stimulus_b_id")).all()
    positions: dict[int, int] = {}
    for study_id, a, b, ref, n in rows:
        position = positions.get(study_id, 0)
        positions[study_id] = position + 1
        bind.execute(sa.text(
            'INSERT INTO study_item (study_id, position, stimulus_a_id, stimulus_b_id, reference_id, target) '
            'VALUES (:study, :pos, :a, :b, :ref, :n)'),
            {'study': study_id, 'pos': position, 'a': a, 'b': b, 'ref': ref, 'n': n})
    # Every trial showing an item's stimuli (either way round) asks about it: main, repeats, and gold that is one.
    bind.execute(sa.text(
        'UPDATE trial SET item_id = (SELECT study_item.id FROM study_item JOIN session '
        'ON session.study_id = study_item.study_id WHERE session.id = trial.session_id AND ('
        '(study_item.stimulus_a_id = trial.stimulus_a_id AND '
        '(study_item.stimulus_b_id = trial.stimulus_b_id OR '
        '(study_item.stimulus_b_id IS NULL AND trial.stimulus_b_id IS NULL))) OR '
        '(study_item.stimulus_a_id = trial.stimulus_b_id AND study_item.stimulus_b_id = trial.stimulus_a_id)))'))
    planned = "SELECT id FROM session WHERE status = 'planned'"
    # Repeats first: they point at originals of the same session.
    bind.execute(sa.text(f"DELETE FROM trial WHERE kind = 'repeat' AND session_id IN ({planned})"))
    bind.execute(sa.text(f"DELETE FROM trial WHERE session_id IN ({planned})"))
    bind.execute(sa.text("DELETE FROM session WHERE status = 'planned'"))


@contextmanager
def _foreign_keys_off() -> Iterator[None]:
    """On SQLite, switch foreign-key enforcement off while ``session`` is rebuilt (as 0002 does for ``rater``).

    Dropping the old table with enforcement on would cascade to every trial and response.
    The pragma only takes effect outside a transaction; if it did not, refuse rather than lose data.
    """
    bind = op.get_bind()
    bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
    enforced = bind.exec_driver_sql('PRAGMA foreign_keys').scalar()
    linked = bind.exec_driver_sql('SELECT count(*) FROM trial').scalar()
    if enforced and linked:
        raise RuntimeError('cannot rebuild table session while SQLite enforces foreign keys: '
                           'run this migration on its own (`panelrank db upgrade --revision 0005`)')
    try:
        yield
    finally:
        bind.exec_driver_sql('PRAGMA foreign_keys=ON')
