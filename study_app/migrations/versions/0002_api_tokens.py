"""API tokens; CHECK on rater.decision

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

DECISION_CHECK = "decision IS NULL OR decision IN ('accept', 'reject')"


def upgrade() -> None:
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organizer_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organizer_id'], ['organizer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_organizer_id'), ['organizer_id'], unique=False)

    with _foreign_keys_off():
        # The app only ever wrote accept/reject/NULL; anything else cannot be a decision, and
        # NULL ("follow the screening") is the safe reading, so the constraint can be added.
        op.execute("UPDATE rater SET decision = NULL WHERE decision NOT IN ('accept', 'reject')")
        with op.batch_alter_table('rater', schema=None) as batch_op:
            batch_op.create_check_constraint('ck_rater_decision', DECISION_CHECK)


def downgrade() -> None:
    with _foreign_keys_off(), op.batch_alter_table('rater', schema=None) as batch_op:
        batch_op.drop_constraint('ck_rater_decision', type_='check')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_organizer_id'))
    op.drop_table('api_token')


@contextmanager
def _foreign_keys_off() -> Iterator[None]:
    """On SQLite, switch foreign-key enforcement off while ``rater`` is rebuilt.

    Batch mode copies the table and drops the old one; with enforcement on, that DROP
    runs ``ON DELETE SET NULL`` on ``session.rater_id`` — every session would lose its
    rater (and active sessions then fail their CHECK). The pragma only takes effect
    outside a transaction, so if it did not, refuse rather than lose data.
    """
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        yield
        return
    bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
    enforced = bind.exec_driver_sql('PRAGMA foreign_keys').scalar()
    linked = bind.exec_driver_sql('SELECT count(*) FROM session WHERE rater_id IS NOT NULL').scalar()
    if enforced and linked:
        raise RuntimeError('cannot rebuild table rater while SQLite enforces foreign keys: '
                           'run this migration on its own (`panelrank db upgrade --revision 0002`)')
    try:
        yield
    finally:
        bind.exec_driver_sql('PRAGMA foreign_keys=ON')
