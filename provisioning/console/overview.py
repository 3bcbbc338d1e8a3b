"""What the overview page shows: the fleet at a glance, in a few aggregate queries (each
one index scan or GROUP BY, so the page stays fast at 100,000 devices).

Live MQTT sessions are counted where each shape keeps them: the embedded broker's own
sessions (its sessions gauge, `provisioning.traffic`), standalone brokers' presence rows
whose heartbeat is live, and hook grants whose token lives (the hooks hear of no
disconnect, so that count is an upper bound).

The charts cover the last hour, per minute. Refused CONNECTs come from the audit log,
where every broker of ours writes them (embedded or standalone; the hooks write none).
Accepted CONNECTs are audited by no one (the MQTT hot path): the chart counts those of
the embedded broker only, sampled from its counter, and says so; a standalone broker's
are in its own `/metrics`. Grants are the token endpoint's audited `token.issue` and
`token.refresh` events, whatever the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, func, select

from provisioning.console.charts import Chart, Series
from provisioning.models import AuditEvent, Device
from provisioning.perminute import PerMinute
from provisioning.store import audit, sessions
from provisioning.traffic import MINUTES, Traffic

# Refusals that look like an attack rather than a device that must renew.
ATTACK_ERRORS = frozenset(
    {"bad_signature", "malformed", "bad_header", "unknown_kid", "identity_mismatch", "replay"}
)
REVOCATIONS = ("device.revoke", "token.revoke", "refresh.family_revoke", "device.disable")
GRANTS = ("token.issue", "token.refresh")
CUT = "mqtt.kick"  # a broker audits each session it cuts, with the device id
CUT_WINDOW = 60  # seconds after a revocation in which a cut is taken to be its own


@dataclass(frozen=True)
class Live:
    embedded: int | None  # None: no broker in this process
    standalone: list[tuple[str, int]]  # broker id, its live connections
    hooks: int  # hook-admitted clients whose token lives

    @property
    def total(self) -> int:
        return (self.embedded or 0) + sum(n for _, n in self.standalone) + self.hooks


@dataclass(frozen=True)
class Revocation:
    event: AuditEvent
    # Milliseconds from the revocation's second to the device's first cut; None: no
    # session was cut (none was live, or the broker that held it does not audit cuts).
    cut_ms: int | None


@dataclass(frozen=True)
class Seen:
    by_status: dict[str, int]
    by_fleet: list[tuple[str, dict[str, int]]]  # fleet, its devices by status
    live: Live
    refusals: list[AuditEvent] | None = None  # None: the key may not read the audit log
    revocations: list[Revocation] | None = None
    connects: Chart | None = None
    grants: Chart | None = None
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.by_status.values()))


def is_attack(event: AuditEvent) -> bool:
    detail = event.detail or {}
    reason = str(detail.get("reason", "")) + str(detail.get("error", ""))
    return any(word in reason for word in ATTACK_ERRORS)


def read(
    *, session: Session, now: int, audit_read: bool, traffic: Traffic, minutes: PerMinute
) -> Seen:
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
    live = Live(
        embedded=traffic.live_sessions(),
        standalone=sessions.live_on_standalone(session=session, now=now),
        hooks=sessions.live_by_hooks(session=session, now=now),
    )
    if not audit_read:
        return Seen(by_status, list(fleets.items()), live)
    first = now // 60 - MINUTES + 1
    return Seen(
        by_status,
        list(fleets.items()),
        live,
        refusals=audit.latest(session=session, outcome="refused", limit=20),
        revocations=revocations(session=session),
        connects=connects_chart(
            session=session, first_minute=first, now=now, traffic=traffic, minutes=minutes
        ),
        grants=grants_chart(session=session, first_minute=first, now=now, minutes=minutes),
    )


def revocations(*, session: Session, limit: int = 10) -> list[Revocation]:
    """The latest revocations, each with its cut latency (one bounded query each)."""
    shown = []
    for event in audit.latest(session=session, actions=REVOCATIONS, limit=limit):
        cut = None
        if event.device_id is not None:
            cut = audit.first_after(
                session=session,
                action=CUT,
                device_id=event.device_id,
                since=event.at,
                until=event.at + CUT_WINDOW,
            )
        shown.append(Revocation(event, None if cut is None else round((cut - event.at) * 1000)))
    return shown


def _series(rows: list[tuple[int, str, int]], first_minute: int) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = {}
    for minute, key, count in rows:
        if first_minute <= minute < first_minute + MINUTES:
            by_key.setdefault(key, [0] * MINUTES)[minute - first_minute] += count
    return by_key


def connects_chart(
    *, session: Session, first_minute: int, now: int, traffic: Traffic, minutes: PerMinute
) -> Chart:
    refused = minutes.counts(
        session=session,
        first_minute=first_minute,
        now=now,
        actions=("mqtt.connect",),
        outcome="refused",
        by_reason=True,
    )
    series = [
        Series(f"refused: {reason or 'unknown'}", tuple(counts))
        for reason, counts in sorted(
            _series(refused, first_minute).items(), key=lambda kv: (-sum(kv[1]), kv[0])
        )
    ]
    title = "MQTT CONNECTs per minute: refused by reason"
    if traffic.live_sessions() is not None:
        accepted = [0] * MINUTES
        for minute, count in traffic.accepted(since_minute=first_minute).items():
            if minute < first_minute + MINUTES:
                accepted[minute - first_minute] += count
        series.insert(0, Series("accepted (embedded broker)", tuple(accepted)))
        title = "MQTT CONNECTs per minute: accepted by the embedded broker, refused by reason"
    return Chart("connects", title, first_minute, tuple(series) or _empty())


def grants_chart(*, session: Session, first_minute: int, now: int, minutes: PerMinute) -> Chart:
    rows = minutes.counts(
        session=session, first_minute=first_minute, now=now, actions=GRANTS, outcome="ok"
    )
    by_action = _series(rows, first_minute)
    series = tuple(
        Series(action, tuple(by_action.get(action, [0] * MINUTES)), tone=3 + i)
        for i, action in enumerate(GRANTS)
    )
    return Chart("grants", "Token grants per minute: issued and refreshed", first_minute, series)


def _empty() -> tuple[Series, ...]:
    return (Series("refused", (0,) * MINUTES),)
