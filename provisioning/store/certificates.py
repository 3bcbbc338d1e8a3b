"""Device certificates signed by credbroker as the fleet's CA (`POST
/v1/devices/{id}/certificates`), their revocation and the CRL."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session, col, select

from credbroker import certificates
from credbroker.claims import CERTIFICATE_CONFIRMATION
from provisioning import cas, credentials, hashing, standing
from provisioning.certauthority import Authority
from provisioning.errors import Conflict, NotFound, Unauthorized
from provisioning.masterkey import Sealer
from provisioning.models import Device, DeviceCertificate, EnrollmentToken, FleetCa
from provisioning.store import audit
from provisioning.store.enrollment import InvalidEnrollmentToken
from provisioning.store.fleets import get_fleet


@dataclass(frozen=True)
class Issued:
    certificate: str  # PEM
    ca_certificate: str  # PEM of the fleet's CA
    serial_number: str  # hex
    not_after: int
    x5t: str


def _aad(ca_id: str) -> str:
    return f"fleet-ca:{ca_id}"


def managed_authority(
    *, session: Session, fleet_name: str, sealer: Sealer, now: int, actor: str
) -> tuple[FleetCa, Authority]:
    """The fleet's own CA, made the first time the fleet needs it."""
    query = select(FleetCa).where(FleetCa.fleet == fleet_name, col(FleetCa.managed).is_(True))
    row = session.exec(query).first()
    if row is not None and row.sealed_key is not None:
        key = sealer.open(row.sealed_key, aad=_aad(row.id))
        return row, Authority.load(row.certificate, key)
    authority = Authority.new(fleet_name, now)
    pem = authority.certificate.public_bytes(serialization.Encoding.PEM).decode()
    ca_id = cas.ca_id(authority.certificate)
    row = FleetCa(
        id=ca_id,
        fleet=fleet_name,
        subject=authority.certificate.subject.rfc4514_string(),
        not_after=int(authority.certificate.not_valid_after_utc.timestamp()),
        created_at=now,
        certificate=pem,
        managed=True,
        sealed_key=sealer.seal(authority.key_der(), aad=_aad(ca_id)),
    )
    session.add(row)
    audit.record(
        session=session, now=now, action="fleet.ca_create", actor=actor, fleet=fleet_name, ca=ca_id
    )
    return row, authority


def consume_enrollment_token(*, session: Session, token: str, device_id: str, now: int) -> None:
    """An enrollment token of this device, spent (single use, as `/v1/enroll`)."""
    row = session.get(EnrollmentToken, hashing.token_hash(token))
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidEnrollmentToken("enrollment token is unknown, used or expired")
    if row.device_id != device_id:
        raise InvalidEnrollmentToken("enrollment token is another device's")
    row.used_at = now
    session.add(row)


def check_holder(
    *, session: Session, device_id: str, certificate: x509.Certificate, now: int
) -> None:
    """The certificate of a renewal is the device's: one credbroker issued it (on
    record, not revoked), or registered as one of its credential keys; both unexpired."""
    x5t = certificates.x5t(certificate)
    issued = session.exec(
        select(DeviceCertificate).where(
            DeviceCertificate.x5t == x5t,
            DeviceCertificate.device_id == device_id,
            col(DeviceCertificate.revoked_at).is_(None),
            DeviceCertificate.not_after > now,
        )
    ).first()
    if issued is not None:
        return
    for key in credentials.all_keys(session=session, device_id=device_id):
        live = key.expires_at is None or key.expires_at > now
        if live and key.jwk.get(CERTIFICATE_CONFIRMATION) == x5t:
            return
    raise Unauthorized("the client certificate is not one of this device's")


def issue(
    *,
    session: Session,
    device: Device,
    csr_pem: str,
    sealer: Sealer,
    now: int,
    lifetime: int,
    actor: str,
) -> Issued:
    if device.status != "active":
        raise Conflict(f"device {device.device_id!r} is {device.status}: no certificate")
    row, authority = managed_authority(
        session=session, fleet_name=device.fleet, sealer=sealer, now=now, actor=actor
    )
    certificate = authority.sign(csr_pem, device_id=device.device_id, now=now, lifetime=lifetime)
    serial = format(certificate.serial_number, "x")
    not_after = int(certificate.not_valid_after_utc.timestamp())
    x5t = certificates.x5t(certificate)
    session.add(
        DeviceCertificate(
            serial=serial,
            device_id=device.device_id,
            ca_id=row.id,
            x5t=x5t,
            not_after=not_after,
            created_at=now,
        )
    )
    # Brokers' cached view of the device's certificates (certificate logins) drops now.
    standing.device_changed(session=session, device_id=device.device_id, now=now, cuts=False)
    audit.record(
        session=session,
        now=now,
        action="certificate.issue",
        device_id=device.device_id,
        actor=actor,
        serial=serial,
        ca=row.id,
        not_after=not_after,
    )
    return Issued(
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        ca_certificate=row.certificate,
        serial_number=serial,
        not_after=not_after,
        x5t=x5t,
    )


def crl(*, session: Session, fleet_name: str, ca_id: str, sealer: Sealer, now: int) -> bytes:
    """The CRL of the fleet's own CA: certificates revoked, and on hold those of a
    disabled device, until they expire."""
    fleet = get_fleet(session=session, name=fleet_name)
    row = session.get(FleetCa, ca_id) if len(ca_id) <= 64 else None
    if row is None or row.fleet != fleet.name or not row.managed or row.sealed_key is None:
        raise NotFound(f"fleet {fleet.name!r} has no CA of its own with id {ca_id!r}")
    authority = Authority.load(row.certificate, sealer.open(row.sealed_key, aad=_aad(row.id)))
    query = (
        select(DeviceCertificate, Device.status, Device.updated_at)
        .join(Device, col(Device.device_id) == col(DeviceCertificate.device_id), isouter=True)
        .where(DeviceCertificate.ca_id == row.id, DeviceCertificate.not_after > now)
        .order_by(col(DeviceCertificate.serial))
    )
    revoked: list[tuple[int, int, bool]] = []
    for certificate, status, updated_at in session.exec(query):
        if certificate.revoked_at is not None:
            revoked.append((int(certificate.serial, 16), certificate.revoked_at, False))
        elif status is None:  # deleted without revoke_all: never by our code
            revoked.append((int(certificate.serial, 16), certificate.created_at, False))
        elif status != "active":
            revoked.append((int(certificate.serial, 16), updated_at, True))
    return authority.crl(revoked, now)
