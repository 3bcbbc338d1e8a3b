"""console sign-ins: a session per signed-in admin key, stored as a hash

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("admin_key_id", sa.String(length=32), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["admin_key_id"], ["admin_keys.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index(
        "ix_console_sessions_admin_key_id", "console_sessions", ["admin_key_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_console_sessions_admin_key_id", table_name="console_sessions")
    op.drop_table("console_sessions")
