"""sessions: a fleet-wide logout is one revocation-log entry naming its fleet; refresh
families keep where they came from and when they were last used; standalone brokers'
live connections; when a hook accepted a connection

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("revocations") as batch:
        batch.add_column(sa.Column("fleet", sa.String(length=64), nullable=True))
    with op.batch_alter_table("refresh_families") as batch:
        batch.add_column(sa.Column("last_used_at", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(length=200), nullable=True))
    with op.batch_alter_table("hook_grants") as batch:
        batch.add_column(sa.Column("since", sa.Integer(), nullable=True))
    op.create_table(
        "broker_heartbeats",
        sa.Column("broker_id", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("broker_id"),
    )
    op.create_table(
        "broker_connections",
        sa.Column("broker_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("since", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("broker_id", "client_id"),
    )
    op.create_index(
        op.f("ix_broker_connections_device_id"), "broker_connections", ["device_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_broker_connections_device_id"), table_name="broker_connections")
    op.drop_table("broker_connections")
    op.drop_table("broker_heartbeats")
    with op.batch_alter_table("hook_grants") as batch:
        batch.drop_column("since")
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("user_agent")
        batch.drop_column("address")
        batch.drop_column("last_used_at")
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("fleet")
