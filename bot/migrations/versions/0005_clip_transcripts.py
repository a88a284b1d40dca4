"""clip transcripts (the Transcript button) and the chat setting ``transcript``

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 12:00:00.000000

A new table and a nullable column: plain CREATE TABLE / ALTER TABLE on SQLite too (no
batch mode); existing chats keep ``transcript`` NULL, which means the default (button).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clip_transcripts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('clip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['audio_clips.id'], name=op.f('fk_clip_transcripts_clip_id_audio_clips'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clip_transcripts')),
    sa.UniqueConstraint('clip_id', name=op.f('uq_clip_transcripts_clip_id'))
    )
    op.add_column('chat_settings', sa.Column('transcript', sa.String(length=8), nullable=True))


def downgrade() -> None:
    # SQLite ≥ 3.35 drops a column in place.
    op.drop_column('chat_settings', 'transcript')
    op.drop_table('clip_transcripts')
