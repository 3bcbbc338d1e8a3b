"""Audit events: every issuance, refusal, revocation and key change."""

from typing import Any

import pydantic
from pydantic import BaseModel
from sqlmodel import JSON, Field, Index, SQLModel

from credbroker.claims import DEVICE_ID_PATTERN
from provisioning.models.bounds import INT32_MAX, STRICT_QUERY

ACTION_PATTERN = r"^[a-z][a-z0-9_.:-]{0,63}$"  # "device.create", "refresh.family_revoke"


class AuditEventBase(SQLModel):
    at: float = Field(index=True)
    action: str = Field(max_length=64)  # indexed with `at` (AuditEvent)
    outcome: str = Field(max_length=16)  # "ok" or "refused"
    device_id: str | None = Field(index=True, max_length=128)
    actor: str | None = Field(max_length=160)  # "client:" + a device id
    detail: dict[str, Any] = Field(sa_type=JSON)


class AuditEventPublic(AuditEventBase):
    id: int


class AuditFilter(BaseModel):
    """The query of `GET /v1/audit`."""

    model_config = STRICT_QUERY

    device_id: str | None = pydantic.Field(default=None, pattern=f"^{DEVICE_ID_PATTERN}$")
    action: str | None = pydantic.Field(default=None, pattern=ACTION_PATTERN)
    cursor: int = pydantic.Field(default=0, ge=0, le=INT32_MAX)  # ids are INTEGER columns
    limit: int = pydantic.Field(default=100, ge=1, le=1000)


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_cursor: str | None


class AuditEvent(AuditEventBase, table=True):
    __tablename__ = "audit_events"
    # Action first: filters by action, and per-minute counts of some actions over a time.
    __table_args__ = (Index("ix_audit_events_action_at", "action", "at"),)

    id: int | None = Field(default=None, primary_key=True)

    def public(self) -> AuditEventPublic:
        return AuditEventPublic.model_validate(self)
