"""Claim provisioning: an enrollment token and a public key register the key, once."""

from __future__ import annotations

from sqlmodel import Session

from provisioning import hashing
from provisioning.errors import BadRequest
from provisioning.models import CredentialKey, Device, EnrollmentToken
from provisioning.models.devices import PublicKeyInput
from provisioning.store import audit, devices, keys


class InvalidEnrollmentToken(BadRequest):
    error, title = "invalid_enrollment_token", "Invalid enrollment token"


def enroll(
    *, session: Session, enrollment_token: str, public_key: PublicKeyInput, now: int
) -> tuple[Device, CredentialKey]:
    row = session.get(EnrollmentToken, hashing.token_hash(enrollment_token))
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidEnrollmentToken("enrollment token is unknown, used or expired")
    device = devices.get_device(session=session, device_id=row.device_id)
    if device.status != "active":
        raise InvalidEnrollmentToken(f"device is {device.status}")
    row.used_at = now
    session.add(row)
    key = keys.add_key(
        session=session,
        device=device,
        public_key=public_key,
        expires_at=None,
        now=now,
        actor="enrollment",
    )
    audit.record(
        session=session, now=now, action="device.enroll", device_id=device.device_id, kid=key.kid
    )
    return device, key
