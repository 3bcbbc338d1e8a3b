"""token formats: a fleet's token_format, audience and iot_core_client_ids; reference tokens

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fleets") as batch:
        batch.add_column(
            sa.Column(
                "token_format",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="jwt",
            )
        )
        batch.add_column(
            sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "iot_core_client_ids", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.create_table(
        "reference_tokens",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("jti", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("reference_tokens") as batch:
        batch.create_index("ix_reference_tokens_device_id", ["device_id"], unique=False)
        batch.create_index("ix_reference_tokens_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("reference_tokens")
    with op.batch_alter_table("fleets") as batch:
        batch.drop_column("iot_core_client_ids")
        batch.drop_column("audience")
        batch.drop_column("token_format")
