"""chat language (the language setting: auto | en | zh)

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-08 12:00:00.000000

One nullable column (NULL is ``auto``: each user's own language): a plain ALTER TABLE on
SQLite too, so the table is not rebuilt and existing chats stay on ``auto``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('chat_settings', sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column('chat_settings', 'language')
