"""A device's keys: its credential public keys (added and removed by operators, or by
enrollment) and its server-made signing keys (rotated)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from provisioning import credentials, standing
from provisioning.errors import BadRequest, Conflict, NotFound
from provisioning.models import CredentialKey, Device, SigningKey
from provisioning.models.bounds import storable
from provisioning.models.devices import PublicKeyInput
from provisioning.signing import Keyring
from provisioning.store import audit


def add_key(
    *,
    session: Session,
    device: Device,
    public_key: PublicKeyInput,
    expires_at: int | None,
    now: int,
    actor: str,
) -> CredentialKey:
    parsed = credentials.parse_public_key(public_key)
    existing = credentials.all_keys(session=session, device_id=device.device_id)
    if any(k.kid == parsed.kid for k in existing):
        raise Conflict("this key is already registered for the device")
    if len(existing) >= credentials.MAX_KEYS_PER_DEVICE:
        raise Conflict(f"a device holds at most {credentials.MAX_KEYS_PER_DEVICE} keys")
    if expires_at is not None and expires_at <= now:
        raise BadRequest("expires_at is in the past")
    if parsed.not_after is not None:
        if parsed.not_after <= now:
            raise BadRequest("the certificate has expired")
        expires_at = min(expires_at or parsed.not_after, parsed.not_after)
    row = CredentialKey(
        device_id=device.device_id,
        kid=parsed.kid,
        alg=parsed.alg,
        jwk=parsed.jwk,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(row)
    audit.record(
        session=session,
        now=now,
        action="key.add",
        device_id=device.device_id,
        actor=actor,
        kid=parsed.kid,
        alg=parsed.alg,
    )
    return row


def remove_key(*, session: Session, device: Device, kid: str, now: int, actor: str) -> None:
    row = None
    if storable(kid):
        row = session.exec(
            select(CredentialKey)
            .where(CredentialKey.device_id == device.device_id)
            .where(CredentialKey.kid == kid)
        ).first()
    if row is None:
        raise NotFound(f"device {device.device_id!r} has no key {kid!r}")
    session.delete(row)
    # Brokers cache the credential keys that proofs of possession are checked with
    # (credbroker.trust): a removed key must stop proving at once. Its tokens stand.
    standing.device_changed(session=session, device_id=device.device_id, now=now, cuts=False)
    audit.record(
        session=session,
        now=now,
        action="key.remove",
        device_id=device.device_id,
        actor=actor,
        kid=kid,
    )


def rotate_signing_key(
    *,
    session: Session,
    keyring: Keyring,
    device: Device,
    now: int,
    leeway: int,
    immediate: bool,
    actor: str,
) -> SigningKey:
    device_id = device.device_id
    row = keyring.rotate(
        session=session, device=device, now=now, leeway=leeway, immediate=immediate
    )
    audit.record(
        session=session,
        now=now,
        action="signing_key.rotate",
        device_id=device_id,
        actor=actor,
        kid=row.kid,
        immediate=immediate,
    )
    standing.device_changed(session=session, device_id=device_id, now=now, cuts=immediate)
    return row


@dataclass(frozen=True)
class SigningVersion:
    """What an operator may see of a signing key: never its private half."""

    kid: str
    version: int
    created_at: int
    verify_until: int | None  # set on rotation


def signing_versions(*, session: Session, device_id: str) -> list[SigningVersion]:
    rows = session.exec(
        select(SigningKey)
        .where(SigningKey.device_id == device_id)
        .order_by(col(SigningKey.version).desc())
    )
    return [SigningVersion(r.kid, r.version, r.created_at, r.verify_until) for r in rows]
