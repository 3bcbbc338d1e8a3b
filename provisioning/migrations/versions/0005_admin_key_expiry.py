"""admin keys: an optional expiry, and when each was last used

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admin_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
