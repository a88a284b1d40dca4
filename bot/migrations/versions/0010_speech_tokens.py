"""speech tokens in the usage ledger; the model DashScope said it cannot serve a chat (#15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:10:00.000000

``usage_ledger.speech_tokens``: the audio output tokens of a Qwen-Omni reply (NULL: the
model did not speak). ``chat_settings.model_unavailable`` / ``_at``: the chat's model that
DashScope last answered "does not exist or is not available to this key" for, shown to
admins in /settings until a turn on it succeeds. Nullable columns only, so SQLite adds them
without a table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('usage_ledger', sa.Column('speech_tokens', sa.Integer(), nullable=True))
    op.add_column(
        'chat_settings', sa.Column('model_unavailable', sa.String(length=64), nullable=True)
    )
    op.add_column(
        'chat_settings',
        sa.Column('model_unavailable_at', sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column('chat_settings', 'model_unavailable_at')
    op.drop_column('chat_settings', 'model_unavailable')
    op.drop_column('usage_ledger', 'speech_tokens')
