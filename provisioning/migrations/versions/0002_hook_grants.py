"""hook grants: grants of connections accepted through broker hooks, shared by processes

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hook_grants",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("exp", sa.Float(), nullable=False),
        sa.Column("pub", sa.JSON(), nullable=False),
        sa.Column("sub", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_index("ix_hook_grants_device_id", "hook_grants", ["device_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_hook_grants_device_id", table_name="hook_grants")
    op.drop_table("hook_grants")
