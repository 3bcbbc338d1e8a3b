"""What the overview page shows: the fleet at a glance, in a few aggregate queries (each
one index scan or GROUP BY, so the page stays fast at 100,000 devices)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, func, select

from provisioning.models import AuditEvent, Device
from provisioning.store import audit

# Refusals that look like an attack rather than a device that must renew.
ATTACK_ERRORS = frozenset(
    {"bad_signature", "malformed", "bad_header", "unknown_kid", "identity_mismatch", "replay"}
)
REVOCATIONS = ("device.revoke", "token.revoke", "refresh.family_revoke", "device.disable")


@dataclass(frozen=True)
class Seen:
    by_status: dict[str, int]
    by_fleet: list[tuple[str, dict[str, int]]]  # fleet, its devices by status
    refusals: list[AuditEvent] | None = None  # None: the key may not read the audit log
    revocations: list[AuditEvent] | None = None
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.by_status.values()))


def is_attack(event: AuditEvent) -> bool:
    detail = event.detail or {}
    reason = str(detail.get("reason", "")) + str(detail.get("error", ""))
    return any(word in reason for word in ATTACK_ERRORS)


def read(*, session: Session, now: int, audit_read: bool) -> Seen:
    by_status: dict[str, int] = {}
    fleets: dict[str, dict[str, int]] = {}
    counts = session.exec(
        select(Device.fleet, Device.status, func.count())
        .group_by(col(Device.fleet), col(Device.status))
        .order_by(col(Device.fleet))
    )
    for fleet, status, count in counts:
        by_status[status] = by_status.get(status, 0) + count
        fleets.setdefault(fleet, {})[status] = count
    if not audit_read:
        return Seen(by_status, list(fleets.items()))
    return Seen(
        by_status,
        list(fleets.items()),
        refusals=audit.latest(session=session, outcome="refused", limit=20),
        revocations=audit.latest(session=session, actions=REVOCATIONS, limit=10),
    )
