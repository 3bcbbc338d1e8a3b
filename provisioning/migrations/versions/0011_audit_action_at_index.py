"""audit_events: one index on (action, at) in place of the one on action, so the
console's per-minute charts read only the last hour's events of their actions (not
every event of the hour), and an audit write updates as many indexes as before

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Action leads, so what the index on action served (audit filters by action) it
    # serves too.
    op.create_index("ix_audit_events_action_at", "audit_events", ["action", "at"], unique=False)
    op.drop_index("ix_audit_events_action", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_action", "audit_events", ["action"], unique=False)
    op.drop_index("ix_audit_events_action_at", table_name="audit_events")
