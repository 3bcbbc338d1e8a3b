"""Writing and reading audit events. Secrets never go into `detail`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
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


class minute_of(FunctionElement[int]):
    """The minute (Unix time // 60) of an event's `at`, the same on every database: a
    cast truncates on SQLite (and `at` is positive) but rounds on PostgreSQL."""

    type = Integer()
    inherit_cache = True


@compiles(minute_of)
def _truncated(element: minute_of, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} / 60 AS INTEGER)"


@compiles(minute_of, "postgresql")
def _floored(element: minute_of, compiler: Any, **kw: Any) -> str:
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)} / 60) AS INTEGER)"


def per_minute(
    *,
    session: Session,
    since: float,
    actions: tuple[str, ...],
    outcome: str,
    by_reason: bool = False,
) -> list[tuple[int, str, int]]:
    """(minute, key, count) of the events of `actions` at or after `since`, one GROUP BY
    over the index on `at`; the key is the action, or with `by_reason` the detail's
    `reason` ("" when it has none)."""
    minute = minute_of(AuditEvent.at).label("minute")
    key = (
        func.coalesce(col(AuditEvent.detail)["reason"].as_string(), "")
        if by_reason
        else col(AuditEvent.action)
    ).label("key")
    rows = session.exec(
        select(minute, key, func.count())
        .where(AuditEvent.at >= since)
        .where(col(AuditEvent.action).in_(actions))
        .where(AuditEvent.outcome == outcome)
        .group_by(minute, key)
    )
    return [(int(m), str(k), int(n)) for m, k, n in rows]


def first_after(
    *, session: Session, action: str, device_id: str, since: float, until: float
) -> float | None:
    """When the device's first `action` event in [since, until) happened, if any."""
    query = (
        select(func.min(AuditEvent.at))
        .where(AuditEvent.device_id == device_id)
        .where(AuditEvent.action == action)
        .where(AuditEvent.at >= since)
        .where(AuditEvent.at < until)
    )
    at = session.exec(query).one()
    return None if at is None else float(at)
