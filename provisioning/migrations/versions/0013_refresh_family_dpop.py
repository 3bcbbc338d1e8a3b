"""refresh_families: the RFC 7638 thumbprint of the DPoP key a family was granted
with (RFC 9449 section 5); NULL for a family granted without a proof

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
# 0012 is another branch's; the two are chained when they are merged.
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refresh_families", sa.Column("dpop_jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("dpop_jkt")
