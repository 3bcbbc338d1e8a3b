"""The audit log: filter by device, action (a prefix: `mqtt.` is every MQTT event),
outcome and time, newest first with paging back; a live tail (`audit.js`) asks for the
rows after the newest one shown."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from credbroker.claims import DEVICE_ID_PATTERN
from provisioning.api.deps import ServicesDep
from provisioning.console.overview import is_attack
from provisioning.console.web import PAGE_SIZE, SignedIn, need, render, router
from provisioning.models.audit import AuditEvent
from provisioning.models.bounds import INT32_MAX, STRICT_QUERY
from provisioning.store import audit

# The time windows offered, in minutes (0: all time).
WINDOWS = {"15": 15, "60": 60, "1440": 1440, "": 0}


class AuditQuery(BaseModel):
    model_config = STRICT_QUERY

    device_id: str = Field(default="", pattern=f"^({DEVICE_ID_PATTERN})?$")
    action: str = Field(default="", max_length=64, pattern=r"^[a-z0-9_.]*$")
    outcome: str = Field(default="", pattern="^(ok|refused)?$")
    window: str = Field(default="60", pattern="^(15|60|1440)?$")
    before: int | None = Field(default=None, ge=1, le=INT32_MAX)
    after: int | None = Field(default=None, ge=0, le=INT32_MAX)


def _events(services: ServicesDep, query: AuditQuery, limit: int) -> list[AuditEvent]:
    minutes = WINDOWS[query.window]
    with services.transaction() as session:
        return audit.latest(
            session=session,
            device_id=query.device_id or None,
            action_prefix=query.action or None,
            outcome=query.outcome or None,
            since=services.now() - minutes * 60 if minutes else None,
            before=query.before,
            after=query.after,
            limit=limit,
        )


@router.get("/audit")
def audit_page(
    request: Request,
    services: ServicesDep,
    signed: SignedIn,
    query: Annotated[AuditQuery, Query()],
) -> HTMLResponse:
    need(signed, "audit:read")
    events = _events(services, query, PAGE_SIZE)
    older = events[-1].id if len(events) == PAGE_SIZE else None
    return render(
        request,
        "audit.html",
        signed=signed,
        events=events,
        query=query,
        older=older,
        newest=events[0].id if events else query.after or 0,
        is_attack=is_attack,
    )


@router.get("/audit/rows")
def audit_rows(
    request: Request,
    services: ServicesDep,
    signed: SignedIn,
    query: Annotated[AuditQuery, Query()],
) -> HTMLResponse:
    """The rows after `after`, newest first: what the live tail adds to the table."""
    need(signed, "audit:read")
    events = _events(services, query, PAGE_SIZE)
    return render(request, "audit_rows.html", signed=signed, events=events, is_attack=is_attack)
