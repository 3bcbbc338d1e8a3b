"""fleets: proof_of_possession (README, Proof of possession on MQTT)

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fleets") as batch:
        batch.add_column(
            sa.Column(
                "proof_of_possession", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("fleets") as batch:
        batch.drop_column("proof_of_possession")
