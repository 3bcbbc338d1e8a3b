"""certificates as device credentials (RFC 8705): fleet_cas (registered or credbroker's
own, with its sealed key), device_certificates (what credbroker issued), a fleet's
auto_register and certificate_login (MQTTS with a client certificate and no password),
and the `x5t#S256` of the client certificate a refresh family was granted over, so that
its refreshes need that certificate too and their access tokens stay bound to it

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refresh_families", sa.Column("x5t", sa.String(length=64), nullable=True))
    with op.batch_alter_table("fleets") as batch:
        batch.add_column(
            sa.Column("auto_register", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column(
                "certificate_login", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "fleet_cas",
        sa.Column("id", text(length=64), nullable=False),
        sa.Column("fleet", text(length=64), nullable=False),
        sa.Column("subject", text(length=1024), nullable=False),
        sa.Column("not_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("certificate", text(length=16384), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["fleet"], ["fleets.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fleet_cas") as batch:
        batch.create_index("ix_fleet_cas_fleet", ["fleet"], unique=False)
        batch.create_index("ix_fleet_cas_subject", ["subject"], unique=False)
    op.create_table(
        "device_certificates",
        sa.Column("serial", text(length=40), nullable=False),
        sa.Column("device_id", text(length=128), nullable=False),
        sa.Column("ca_id", text(length=64), nullable=False),
        sa.Column("x5t", text(length=64), nullable=False),
        sa.Column("not_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("device_certificates") as batch:
        batch.create_index("ix_device_certificates_device_id", ["device_id"], unique=False)
        batch.create_index("ix_device_certificates_ca_id", ["ca_id"], unique=False)


def downgrade() -> None:
    op.drop_table("device_certificates")
    op.drop_table("fleet_cas")
    with op.batch_alter_table("fleets") as batch:
        batch.drop_column("certificate_login")
        batch.drop_column("auto_register")
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("x5t")
