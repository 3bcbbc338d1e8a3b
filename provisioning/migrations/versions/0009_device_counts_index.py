"""devices: one index on (fleet, status, device_id) in place of the one on fleet, so the
console's overview counts devices by fleet and status from the index alone, and a list
filtered by fleet and status reads its page in device_id order without a sort

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # It replaces ix_devices_fleet rather than joining it: fleet leads, so what that
    # index served (the foreign key, fleet filters) it serves, and a device write
    # updates as many indexes as before.
    op.create_index(
        "ix_devices_fleet_status", "devices", ["fleet", "status", "device_id"], unique=False
    )
    op.drop_index("ix_devices_fleet", table_name="devices")


def downgrade() -> None:
    op.create_index("ix_devices_fleet", "devices", ["fleet"], unique=False)
    op.drop_index("ix_devices_fleet_status", table_name="devices")
