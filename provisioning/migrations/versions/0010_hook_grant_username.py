"""hook_grants: the username a hook-accepted CONNECT gave when it was not the device id
(a device-signed token's "unused"), so that a publish or subscribe check answered by
another API process matches it as the process that accepted the CONNECT does

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hook_grants", sa.Column("username", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hook_grants") as batch:
        batch.drop_column("username")
