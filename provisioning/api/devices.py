"""Devices, their credential keys, signing keys and revocation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from credbroker.claims import is_device_id
from provisioning.api.deps import (
    DevicesRead,
    DevicesWrite,
    ServicesDep,
    TokensRevoke,
    client_address,
    client_certificate,
)
from provisioning.errors import BadRequest, ProvisioningError
from provisioning.models.cas import CertificateIssued, CertificateRequest
from provisioning.models.devices import (
    CredentialKeyCreate,
    CredentialKeyPublic,
    DeviceCreate,
    DeviceCreated,
    DeviceFilter,
    DevicePage,
    DevicePublic,
    DeviceUpdate,
)
from provisioning.models.tokens import SessionsPublic
from provisioning.services import Services
from provisioning.store import (
    admin,
    audit,
    batch,
    certificates,
    devices,
    keys,
    revocations,
    sessions,
)

router = APIRouter(prefix="/v1/devices", tags=["devices"])


def _limits(services: Services) -> dict[str, int]:
    return {"max_metadata_bytes": services.settings.max_metadata_bytes}


@router.post("", status_code=201)
def create_device(body: DeviceCreate, services: ServicesDep, actor: DevicesWrite) -> DeviceCreated:
    """Create a device; a client secret or enrollment token is shown once, here."""
    with services.transaction() as session:
        created = devices.create_device(
            session=session,
            keyring=services.keyring,
            device_create=body,
            now=services.now(),
            actor=actor.id,
            enrollment_ttl=services.settings.enrollment_token_ttl,
            **_limits(services),
        )
        public = devices.to_public(session=session, device=created.device)
    return DeviceCreated(
        **public.model_dump(),
        client_secret=created.client_secret,
        enrollment_token=created.enrollment_token,
    )


@router.post(":batch")
def create_devices(
    body: batch.BatchCreate, services: ServicesDep, actor: DevicesWrite
) -> dict[str, Any]:
    """Create many devices, atomically or reporting per row; idempotent on device_id."""
    if len(body.devices) > services.settings.max_batch:
        raise BadRequest(f"at most {services.settings.max_batch} devices per batch")
    with services.transaction() as session:
        results = batch.create_batch(
            session=session,
            keyring=services.keyring,
            batch=body,
            now=services.now(),
            actor=actor.id,
            enrollment_ttl=services.settings.enrollment_token_ttl,
            **_limits(services),
        )
    return {"results": results}


@router.get("")
def list_devices(
    services: ServicesDep, _: DevicesRead, query: Annotated[DeviceFilter, Query()]
) -> DevicePage:
    """List devices by id, `limit` at a time; pass `next_cursor` back for the next page."""
    with services.transaction() as session:
        rows, next_cursor = devices.list_devices(session=session, **query.model_dump())
        items = [devices.to_public(session=session, device=d) for d in rows]
    return DevicePage(items=items, next_cursor=next_cursor)


@router.get("/{device_id}")
def read_device(device_id: str, services: ServicesDep, _: DevicesRead) -> DevicePublic:
    """Read a device."""
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        return devices.to_public(session=session, device=device)


@router.patch("/{device_id}")
def update_device(
    device_id: str, body: DeviceUpdate, services: ServicesDep, actor: DevicesWrite
) -> DevicePublic:
    """Enable or disable a device, or change its metadata or own ACL."""
    with services.transaction() as session:
        device = devices.update_device(
            session=session,
            device_id=device_id,
            device_update=body,
            now=services.now(),
            actor=actor.id,
            **_limits(services),
        )
        return devices.to_public(session=session, device=device)


@router.delete("/{device_id}", status_code=204)
def delete_device(device_id: str, services: ServicesDep, actor: DevicesWrite) -> Response:
    """Delete a device with its keys and tokens."""
    with services.transaction() as session:
        devices.delete_device(
            session=session, device_id=device_id, now=services.now(), actor=actor.id
        )
    return Response(status_code=204)


@router.post("/{device_id}/keys", status_code=201)
def add_key(
    device_id: str, body: CredentialKeyCreate, services: ServicesDep, actor: DevicesWrite
) -> CredentialKeyPublic:
    """Register another credential public key (Ed25519 or P-256, PEM or JWK)."""
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        return keys.add_key(
            session=session,
            device=device,
            public_key=body.public_key,
            expires_at=body.expires_at,
            now=services.now(),
            actor=actor.id,
        ).public()


@router.delete("/{device_id}/keys/{kid}", status_code=204)
def remove_key(device_id: str, kid: str, services: ServicesDep, actor: DevicesWrite) -> Response:
    """Remove a credential key; tokens already issued live until they expire."""
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        keys.remove_key(session=session, device=device, kid=kid, now=services.now(), actor=actor.id)
    return Response(status_code=204)


@router.post("/{device_id}/signing-keys:rotate")
def rotate_signing_key(
    device_id: str, services: ServicesDep, actor: DevicesWrite, immediate: bool = False
) -> dict[str, Any]:
    """New signing key version; the old one verifies until its tokens expire, or
    not at all with `immediate=true`."""
    with services.transaction() as session:
        row = keys.rotate_signing_key(
            session=session,
            keyring=services.keyring,
            device=devices.get_device(session=session, device_id=device_id),
            now=services.now(),
            leeway=services.settings.leeway,
            immediate=immediate,
            actor=actor.id,
        )
    return {"kid": row.kid, "version": row.version}


@router.post("/{device_id}:revoke")
def revoke_device(device_id: str, services: ServicesDep, actor: TokensRevoke) -> DevicePublic:
    """Every token and refresh token of the device dies; live sessions are cut."""
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        revocations.revoke_device(
            session=session, device=device, now=services.now(), actor=actor.id
        )
        return devices.to_public(session=session, device=device)


@router.get("/{device_id}/sessions")
def list_sessions(device_id: str, services: ServicesDep, _: DevicesRead) -> SessionsPublic:
    """The device's live refresh families and its live MQTT connections on the embedded
    broker, each with the family whose access token it presented."""
    connections = services.connections(device_id)
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        return sessions.list_sessions(
            session=session, device=device, connections=connections, now=services.now()
        )


@router.delete("/{device_id}/sessions/{family_id}", status_code=204)
def end_session(
    device_id: str, family_id: str, services: ServicesDep, actor: TokensRevoke
) -> Response:
    """End one refresh family: its refresh and access tokens die, its live connections
    are cut; the device stays active and may be granted new tokens at once."""
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        sessions.end_family(
            session=session,
            device=device,
            family_id=family_id,
            now=services.now(),
            actor=actor.id,
        )
    return Response(status_code=204)


@router.post("/{device_id}/tokens:revoke")
def logout_device(device_id: str, services: ServicesDep, actor: TokensRevoke) -> DevicePublic:
    """Log out everywhere: every token and refresh family of the device dies and its
    live sessions are cut; the device stays active (unlike `:revoke`)."""
    with services.transaction() as session:
        device = devices.get_device(session=session, device_id=device_id)
        sessions.logout_device(session=session, device=device, now=services.now(), actor=actor.id)
        return devices.to_public(session=session, device=device)


@router.post("/{device_id}/certificates", status_code=201)
def issue_certificate(
    device_id: str,
    body: CertificateRequest,
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> CertificateIssued:
    """Sign the device's PKCS#10 CSR as its fleet's own CA (made at the first request):
    a short-lived client certificate, subject CN = the device id, for mTLS
    (`tls_client_auth`) and MQTTS. The private key never leaves the device. Authorized
    by one of the device's enrollment tokens (single use), by a certificate of the
    device presented on this HTTPS connection (renewal), or by an admin key with
    `devices:write`."""
    try:
        issued = _issue_certificate(services, device_id, body, request, authorization)
    except ProvisioningError as exc:
        _certificate_refused(services, device_id, exc, client_address(request))
        raise
    services.anchors.add(issued.ca_certificate)
    return CertificateIssued(
        certificate=issued.certificate,
        ca_certificate=issued.ca_certificate,
        serial_number=issued.serial_number,
        not_after=issued.not_after,
        x5t_s256=issued.x5t,
    )


def _issue_certificate(
    services: Services,
    device_id: str,
    body: CertificateRequest,
    request: Request,
    authorization: str | None,
) -> certificates.Issued:
    certificate = client_certificate(request)
    now = services.now()
    with services.transaction() as session:
        # Before the device is read: nobody learns whether it exists.
        if body.enrollment_token is not None:
            certificates.consume_enrollment_token(
                session=session, token=body.enrollment_token, device_id=device_id, now=now
            )
            actor = "enrollment"
        elif certificate is not None and authorization is None:
            certificates.check_holder(
                session=session, device_id=device_id, certificate=certificate, now=now
            )
            actor = f"client:{device_id}"
        else:
            actor = admin.authenticate(
                session=session, authorization=authorization, scopes=("devices:write",), now=now
            ).id
        device = devices.get_device(session=session, device_id=device_id)
        issued = certificates.issue(
            session=session,
            device=device,
            csr_pem=body.csr,
            sealer=services.keyring.sealer,
            now=now,
            lifetime=services.settings.device_certificate_lifetime,
            actor=actor,
        )
    return issued


def _certificate_refused(
    services: Services, device_id: str, exc: ProvisioningError, address: str
) -> None:
    """Audit a refused certificate request, unless its address is past the failure
    limit (a flood of junk must not become a flood of writes)."""
    key = ("addr", address)
    if exc.status_code == 401:
        services.limiter.failed(key)
    if services.limiter.retry_after(key):
        return
    with services.transaction() as session:
        audit.record(
            session=session,
            now=services.now(),
            action="certificate.issue",
            outcome="refused",
            device_id=device_id if is_device_id(device_id) else None,
            error=exc.error,
            reason=exc.detail,
            address=address,
        )
