"""Writing and reading audit events. Secrets never go into `detail`."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, func, select

from provisioning.models import AuditEvent


def record(
    *,
    session: Session,
    now: float,
    action: str,
    outcome: str = "ok",
    device_id: str | None = None,
    actor: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            at=now,
            action=action,
            outcome=outcome,
            device_id=device_id,
            actor=actor,
            detail=detail,
        )
    )


def list_events(
    *,
    session: Session,
    device_id: str | None = None,
    action: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[AuditEvent]:
    query = select(AuditEvent).where(col(AuditEvent.id) > after)
    if device_id is not None:
        query = query.where(AuditEvent.device_id == device_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.exec(query.order_by(col(AuditEvent.id)).limit(limit)))


def latest(
    *,
    session: Session,
    device_id: str | None = None,
    outcome: str | None = None,
    actions: tuple[str, ...] = (),
    action_prefix: str | None = None,
    since: float | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = 20,
) -> list[AuditEvent]:
    """The newest events first (the console's activity and audit pages): `before` and
    `after` are event ids (paging back, tailing forward), `since` a time."""
    query = select(AuditEvent)
    if device_id is not None:
        query = query.where(AuditEvent.device_id == device_id)
    if outcome is not None:
        query = query.where(AuditEvent.outcome == outcome)
    if actions:
        query = query.where(col(AuditEvent.action).in_(actions))
    if action_prefix:
        prefix = func.substr(AuditEvent.action, 1, len(action_prefix))
        query = query.where(prefix == action_prefix)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if before is not None:
        query = query.where(col(AuditEvent.id) < before)
    if after is not None:
        query = query.where(col(AuditEvent.id) > after)
    return list(session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit)))
