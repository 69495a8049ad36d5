"""Console logins of organizers, revocable on the server

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cookies from before this revision name no login row: their organizers log in once more.
    op.create_table('organizer_login',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organizer_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organizer_id'], ['organizer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('organizer_login', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organizer_login_organizer_id'), ['organizer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('organizer_login', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organizer_login_organizer_id'))
    op.drop_table('organizer_login')
