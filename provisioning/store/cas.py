"""A fleet's CA certificates: registration with proof of possession, listing, removal."""

from __future__ import annotations

import hmac

from cryptography import x509
from sqlmodel import Session, col, select

from credbroker import certificates
from provisioning import cas
from provisioning.cas import VerificationCodes
from provisioning.errors import BadRequest, Conflict, NotFound
from provisioning.models import FleetCa
from provisioning.models.cas import FleetCaCreate
from provisioning.store import audit
from provisioning.store.fleets import get_fleet, recheck_certificates

MAX_CAS_PER_FLEET = 16


class ProofRequired(BadRequest):
    """A CA without its proof of possession: the answer says how to make one."""

    error, title = "proof_of_possession_required", "Proof of possession required"


def _certificate(pem: str, what: str) -> x509.Certificate:
    try:
        return certificates.load_pem(pem)
    except certificates.CertificateError as exc:
        raise BadRequest(f"{what} is not a PEM certificate") from exc


def register(
    *,
    session: Session,
    fleet_name: str,
    body: FleetCaCreate,
    codes: VerificationCodes,
    now: int,
    actor: str,
) -> FleetCa:
    fleet = get_fleet(session=session, name=fleet_name)
    ca = _certificate(body.certificate, "certificate")
    if not cas.is_ca(ca):
        raise BadRequest("certificate is not a CA certificate (basicConstraints CA:TRUE)")
    if not certificates.valid_at(ca, now):
        raise BadRequest("the CA certificate is not valid now")
    ca_id = cas.ca_id(ca)
    code = codes.code(fleet.name, ca_id)
    if body.verification_certificate is None:
        refusal = ProofRequired(
            "sign a verification certificate whose subject CN is verification_code with "
            "this CA's key, and send it as verification_certificate"
        )
        refusal.extra = {"verification_code": code}
        raise refusal
    proof = _certificate(body.verification_certificate, "verification_certificate")
    common_name = certificates.common_name(proof) or ""
    if not hmac.compare_digest(common_name, code) or not certificates.issued_by(proof, ca):
        refusal = ProofRequired(
            "verification_certificate must be signed by this CA's key and have the "
            "subject CN verification_code"
        )
        refusal.extra = {"verification_code": code}
        raise refusal
    existing = session.get(FleetCa, ca_id)
    if existing is not None:
        raise Conflict(f"this CA is registered already, for fleet {existing.fleet!r}")
    if len(list_cas(session=session, fleet_name=fleet.name)) >= MAX_CAS_PER_FLEET:
        raise Conflict(f"a fleet registers at most {MAX_CAS_PER_FLEET} CAs")
    row = FleetCa(
        id=ca_id,
        fleet=fleet.name,
        subject=ca.subject.rfc4514_string(),
        not_after=int(ca.not_valid_after_utc.timestamp()),
        created_at=now,
        certificate=body.certificate.strip() + "\n",
    )
    session.add(row)
    audit.record(
        session=session,
        now=now,
        action="fleet.ca_register",
        actor=actor,
        fleet=fleet.name,
        ca=ca_id,
        subject=row.subject,
    )
    return row


def list_cas(*, session: Session, fleet_name: str) -> list[FleetCa]:
    query = select(FleetCa).where(FleetCa.fleet == fleet_name)
    return list(session.exec(query.order_by(col(FleetCa.created_at), col(FleetCa.id))))


def remove(*, session: Session, fleet_name: str, ca_id: str, now: int, actor: str) -> None:
    fleet = get_fleet(session=session, name=fleet_name)
    row = session.get(FleetCa, ca_id) if len(ca_id) <= 64 else None
    if row is None or row.fleet != fleet.name:
        raise NotFound(f"fleet {fleet.name!r} has no CA {ca_id!r}")
    session.delete(row)
    recheck_certificates(session=session, fleet=fleet.name, now=now)
    audit.record(
        session=session, now=now, action="fleet.ca_remove", actor=actor, fleet=fleet.name, ca=ca_id
    )
