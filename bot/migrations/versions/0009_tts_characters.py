"""text to speech: characters read aloud in the usage ledger (#15)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:30:00.000000

A nullable column only (NULL: not a TTS line), so SQLite adds it without a table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('usage_ledger', sa.Column('tts_characters', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('usage_ledger', 'tts_characters')
