"""Revocation: device-wide cut-offs, single access tokens (jti) and refresh families.

Every revocation is an entry of the revocation log and an audit event, recorded
through `provisioning.standing` (which tells every cache once the transaction commits).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from provisioning import standing
from provisioning.models import Device, DeviceCertificate, RefreshFamily, RefreshToken, Revocation
from provisioning.store import audit


def revoke_device(*, session: Session, device: Device, now: int, actor: str) -> None:
    """Status `revoked`; every token issued up to now dies; refresh families die."""
    device.status = "revoked"
    device.tokens_valid_after = now + 1  # iat has second precision: cover this second
    device.updated_at = now
    session.add(device)
    cut_tokens(session=session, device_id=device.device_id, now=now)
    revoke_certificates(session=session, device_id=device.device_id, now=now)
    audit.record(
        session=session,
        now=now,
        action="device.revoke",
        device_id=device.device_id,
        actor=actor,
    )


def revoke_certificates(*, session: Session, device_id: str, now: int) -> None:
    """Every live certificate credbroker issued to the device (a device revoked or
    deleted): refused from now on, and on its CA's CRL until it expires."""
    for row in session.exec(
        select(DeviceCertificate)
        .where(DeviceCertificate.device_id == device_id)
        .where(col(DeviceCertificate.revoked_at).is_(None))
        .where(DeviceCertificate.not_after > now)
    ):
        row.revoked_at = now
        session.add(row)


def cut_tokens(*, session: Session, device_id: str, now: int) -> None:
    for family in session.exec(
        select(RefreshFamily)
        .where(RefreshFamily.device_id == device_id)
        .where(col(RefreshFamily.revoked_at).is_(None))
    ):
        family.revoked_at = now
        session.add(family)
    standing.device_changed(session=session, device_id=device_id, now=now, cuts=True)


def revoke_jti(*, session: Session, device_id: str, jti: str, exp: int, now: int) -> None:
    if not is_jti_revoked(session=session, jti=jti):
        standing.token_revoked(session=session, device_id=device_id, jti=jti, exp=exp, now=now)


def revoke_family(
    *, session: Session, family: RefreshFamily, now: int, reason: str, actor: str | None = None
) -> None:
    """Kill a refresh family and deny-list the access tokens it issued that still live."""
    family.revoked_at = now
    session.add(family)
    for token in session.exec(
        select(RefreshToken)
        .where(RefreshToken.family_id == family.id)
        .where(RefreshToken.access_exp > now)
    ):
        revoke_jti(
            session=session,
            device_id=family.device_id,
            jti=token.access_jti,
            exp=token.access_exp,
            now=now,
        )
    audit.record(
        session=session,
        now=now,
        action="refresh.family_revoke",
        device_id=family.device_id,
        actor=actor,
        reason=reason,
        family=family.id,
    )


def is_jti_revoked(*, session: Session, jti: str) -> bool:
    query = select(Revocation.id).where(Revocation.jti == jti).limit(1)
    return session.exec(query).first() is not None


def feed(*, session: Session, after: int, limit: int, now: int) -> tuple[list[Revocation], int]:
    """Log entries after `after` (at most `limit` scanned) and the cursor to ask from
    next. Token entries whose token has expired deny nothing any more: skipped, but the
    cursor moves past them."""
    rows = list(
        session.exec(
            select(Revocation)
            .where(col(Revocation.id) > after)
            .order_by(col(Revocation.id))
            .limit(limit)
        )
    )
    live = [r for r in rows if r.kind != "token" or r.expires_at is None or r.expires_at > now]
    return live, (rows[-1].id or after) if rows else after
