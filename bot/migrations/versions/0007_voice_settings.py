"""voice reply settings and the retired-model notice (issue #15)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:45:00.000000

Nullable columns only (NULL is the default), so SQLite adds them without a table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('chat_settings', sa.Column('voice_reply', sa.String(length=8), nullable=True))
    op.add_column('chat_settings', sa.Column('voice', sa.String(length=64), nullable=True))
    op.add_column(
        'chat_settings', sa.Column('retired_notice', sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    op.drop_column('chat_settings', 'retired_notice')
    op.drop_column('chat_settings', 'voice')
    op.drop_column('chat_settings', 'voice_reply')
