"""Audit events from the broker, into the API's audit table (plain SQLAlchemy Core)."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import JSON, Column, Engine, Float, Integer, MetaData, String, Table, insert
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("credbroker.broker")

_audit = Table(
    "audit_events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", Float),
    Column("action", String(64)),
    Column("outcome", String(16)),
    Column("device_id", String(128)),
    Column("actor", String(64)),
    Column("detail", JSON),
)


class SqlAudit:
    """Callable: `audit(action=..., outcome=..., device_id=..., **detail)`. Never raises:
    an audit failure is logged, it does not break the broker."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, *, action: str, outcome: str, device_id: str | None, **detail: Any) -> None:
        row = {
            "at": time.time(),
            "action": action,
            "outcome": outcome,
            "device_id": (device_id or "")[:128] or None,
            "actor": "broker",
            "detail": detail,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(_audit), row)
        except SQLAlchemyError:
            log.warning("audit event %s could not be written", action, exc_info=True)
