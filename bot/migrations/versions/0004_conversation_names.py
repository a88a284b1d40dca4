"""conversation names (voicebot ask --conversation NAME)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 12:00:00.000000

A nullable column and a partial unique index: both are plain ALTER TABLE / CREATE INDEX
on SQLite too, so the table is not rebuilt (no batch mode) and existing rows keep
``name`` NULL, outside the index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('conversations', sa.Column('name', sa.String(length=64), nullable=True))
    op.create_index(
        'uq_conversations_name',
        'conversations',
        ['chat_id', 'name'],
        unique=True,
        sqlite_where=sa.text('name IS NOT NULL'),
        postgresql_where=sa.text('name IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('uq_conversations_name', table_name='conversations')
    # SQLite ≥ 3.35 drops a column in place (the index that used it is gone first).
    op.drop_column('conversations', 'name')
