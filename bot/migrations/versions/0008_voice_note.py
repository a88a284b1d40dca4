"""spoken replies: the voice note of an assistant turn, and seconds spoken in the ledger (#15)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 06:40:00.000000

Nullable columns only (NULL: no voice note / nothing spoken), so SQLite adds them without a
table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('turns', sa.Column('voice_note_id', sa.String(length=128), nullable=True))
    op.add_column('turns', sa.Column('voice_seconds', sa.Float(), nullable=True))
    op.add_column('usage_ledger', sa.Column('speech_seconds', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('usage_ledger', 'speech_seconds')
    op.drop_column('turns', 'voice_seconds')
    op.drop_column('turns', 'voice_note_id')
