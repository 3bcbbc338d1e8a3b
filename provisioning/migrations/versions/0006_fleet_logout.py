"""revocation log: a fleet-wide logout is one entry naming its fleet

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


def downgrade() -> None:
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("fleet")
