"""hook grants keep the signing kid and iat of their token, to check standing again

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Grants are a cache of verified CONNECTs: old rows lack the new columns, so they go
    # (their connections' next checks miss and are refused; the devices reconnect).
    op.execute("DELETE FROM hook_grants")
    with op.batch_alter_table("hook_grants") as batch:
        batch.add_column(sa.Column("kid", sa.String(length=160), nullable=False))
        batch.add_column(sa.Column("iat", sa.Float(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("hook_grants") as batch:
        batch.drop_column("iat")
        batch.drop_column("kid")
