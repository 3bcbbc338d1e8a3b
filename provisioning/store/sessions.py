"""Sessions a person can see and end: a device's refresh families and live connections,
the end of one family, and logouts of a device or of a whole fleet.

A logout kills what was issued before it and nothing after: the device's cut-off
(`tokens_valid_after`) moves to the next second, and the token endpoint dates a token
granted within that second at the cut-off (`provisioning.tokens`).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from credbroker.presence import STALE, Connection
from provisioning import standing
from provisioning.errors import NotFound
from provisioning.models import (
    BrokerConnection,
    BrokerHeartbeat,
    Device,
    Fleet,
    HookGrant,
    RefreshFamily,
    RefreshToken,
)
from provisioning.models.tokens import ConnectionPublic, FamilyPublic, SessionsPublic
from provisioning.store import audit, revocations


def list_sessions(
    *, session: Session, device: Device, connections: list[Connection], now: int
) -> SessionsPublic:
    """Live refresh families (not ended, not expired) and live connections, each
    connection with the family whose access token it presented, if any."""
    families = list(
        session.exec(
            select(RefreshFamily)
            .where(RefreshFamily.device_id == device.device_id)
            .where(col(RefreshFamily.revoked_at).is_(None))
            .where(RefreshFamily.expires_at > now)
            .order_by(col(RefreshFamily.created_at), col(RefreshFamily.id))
        )
    )
    ids = [f.id for f in families]
    outstanding: dict[str, int] = {}
    if ids:
        for family_id, count in session.exec(
            select(RefreshToken.family_id, func.count())
            .where(col(RefreshToken.family_id).in_(ids))
            .where(RefreshToken.access_exp > now)
            .group_by(col(RefreshToken.family_id))
        ):
            outstanding[family_id] = count
    connections = [
        *connections,
        *standalone(session=session, device_id=device.device_id, now=now),
        *admitted_by_hooks(session=session, device_id=device.device_id, now=now),
    ]
    by_jti = _families_of(session=session, jtis=[c.jti for c in connections])
    return SessionsPublic(
        families=[
            FamilyPublic(
                id=f.id,
                created_at=f.created_at,
                last_used_at=f.last_used_at or f.created_at,
                address=f.address,
                user_agent=f.user_agent,
                expires_at=f.expires_at,
                access_tokens_outstanding=outstanding.get(f.id, 0),
                dpop_jkt=f.dpop_jkt,
            )
            for f in families
        ],
        connections=[
            ConnectionPublic(
                broker=c.broker,
                client_id=c.client_id,
                address=c.address,
                since=int(c.since),
                protocol=c.protocol,
                family=by_jti.get(c.jti),
                expires_at=int(c.expires_at),
            )
            for c in connections
        ],
    )


def standalone(*, session: Session, device_id: str, now: int) -> list[Connection]:
    """The device's connections on standalone brokers that are alive (`broker.presence`)."""
    rows = session.exec(
        select(BrokerConnection)
        .join(BrokerHeartbeat, col(BrokerHeartbeat.broker_id) == col(BrokerConnection.broker_id))
        .where(BrokerConnection.device_id == device_id)
        .where(BrokerHeartbeat.seen_at >= now - STALE)
        .order_by(col(BrokerConnection.since))
    )
    return [
        Connection(
            broker=c.broker_id,
            client_id=c.client_id,
            address=c.address,
            since=c.since,
            protocol=c.protocol,
            jti=c.jti,
            expires_at=c.expires_at,
        )
        for c in rows
    ]


def admitted_by_hooks(*, session: Session, device_id: str, now: int) -> list[Connection]:
    """Connections a broker admitted through the hooks, as far as the hooks know: the
    latest accepted CONNECT per client id whose token lives (the hooks hear of no
    disconnect, so a grant may outlive its connection)."""
    rows = session.exec(
        select(HookGrant)
        .where(HookGrant.device_id == device_id)
        .where(HookGrant.exp > now)
        .order_by(col(HookGrant.client_id))
    )
    return [
        Connection(
            broker="hooks",
            client_id=g.client_id,
            address="",
            since=g.since or g.iat,
            protocol="",
            jti=g.jti,
            expires_at=g.exp,
        )
        for g in rows
    ]


def live_on_standalone(*, session: Session, now: int) -> list[tuple[str, int]]:
    """Live connections per standalone broker whose heartbeat is live, one GROUP BY."""
    rows = session.exec(
        select(BrokerConnection.broker_id, func.count())
        .join(BrokerHeartbeat, col(BrokerHeartbeat.broker_id) == col(BrokerConnection.broker_id))
        .where(BrokerHeartbeat.seen_at >= now - STALE)
        .group_by(col(BrokerConnection.broker_id))
        .order_by(col(BrokerConnection.broker_id))
    )
    return [(broker, int(count)) for broker, count in rows]


def live_by_hooks(*, session: Session, now: int) -> int:
    """Client ids whose latest CONNECT a hook accepted and whose token lives (an upper
    bound, as `admitted_by_hooks` says: the hooks hear of no disconnect). One row per
    client id, so a count over the table, which holds no more rows than clients."""
    query = select(func.count()).select_from(HookGrant).where(HookGrant.exp > now)
    return int(session.exec(query).one())


def _families_of(*, session: Session, jtis: list[str]) -> dict[str, str]:
    if not jtis:
        return {}
    rows = session.exec(
        select(RefreshToken.access_jti, RefreshToken.family_id).where(
            col(RefreshToken.access_jti).in_(jtis)
        )
    )
    return dict(rows.all())


def end_family(*, session: Session, device: Device, family_id: str, now: int, actor: str) -> None:
    """One family's refresh tokens and live access tokens die; its connections are cut
    (the deny-listed jtis, through `standing`). The device stays as it is."""
    family = session.get(RefreshFamily, family_id)
    if family is None or family.device_id != device.device_id or family.revoked_at is not None:
        raise NotFound(f"no live session {family_id!r} of device {device.device_id!r}")
    revocations.revoke_family(
        session=session, family=family, now=now, reason="session_end", actor=actor
    )


def logout_device(*, session: Session, device: Device, now: int, actor: str) -> None:
    """Every token and family of the device dies, live sessions are cut; its status
    stays (unlike `revoke_device`), so it may be granted new tokens at once."""
    device.tokens_valid_after = now + 1  # iat has second precision: cover this second
    device.updated_at = now
    session.add(device)
    revocations.cut_tokens(session=session, device_id=device.device_id, now=now)
    audit.record(
        session=session, now=now, action="device.logout", device_id=device.device_id, actor=actor
    )


def logout_fleet(*, session: Session, fleet: Fleet, now: int, actor: str) -> int:
    """An incident: every token and family of every device of the fleet dies at once,
    live sessions are cut; the devices stay as they are. One statement per table, one
    revocation-log entry, one audit event. The number of devices it covered."""
    of_fleet = select(Device.device_id).where(Device.fleet == fleet.name)
    device_ids = list(session.exec(of_fleet))
    session.execute(
        update(Device)
        .where(col(Device.fleet) == fleet.name)
        .values(tokens_valid_after=now + 1, updated_at=now)  # as `logout_device`
    )
    session.execute(
        update(RefreshFamily)
        .where(col(RefreshFamily.device_id).in_(of_fleet))
        .where(col(RefreshFamily.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    standing.fleet_changed(session=session, fleet=fleet.name, device_ids=device_ids, now=now)
    audit.record(
        session=session,
        now=now,
        action="fleet.logout",
        actor=actor,
        fleet=fleet.name,
        devices=len(device_ids),
    )
    return len(device_ids)
