"""the admin console: its signing key, one-time sign-in links, the settings audit (#16)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:00:00.000000

``console_keys``: the key that signs sign-in links and session cookies, made on first use
and shared by every replica. ``console_links``: a sign-in link's nonce, for whom, which
chats, until when, and when it was used (once). ``settings_audit``: every change of a
chat's settings (chat command or console): who, when, through what, old → new.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'console_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_console_keys')),
    )
    op.create_table(
        'console_links',
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('chat_ids', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('nonce', name=op.f('pk_console_links')),
    )
    op.create_table(
        'settings_audit',
        sa.Column('id', BigId, nullable=False),
        sa.Column('chat_id', BigId, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=96), nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('setting', sa.String(length=32), nullable=False),
        sa.Column('old', sa.Text(), nullable=True),
        sa.Column('new', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['chat_id'], ['chats.id'], name=op.f('fk_settings_audit_chat_id_chats'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_settings_audit')),
    )
    op.create_index('ix_settings_audit_chat_at', 'settings_audit', ['chat_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_settings_audit_chat_at', table_name='settings_audit')
    op.drop_table('settings_audit')
    op.drop_table('console_links')
    op.drop_table('console_keys')
