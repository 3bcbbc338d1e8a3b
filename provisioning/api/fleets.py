"""Fleets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from provisioning.api.deps import DevicesRead, DevicesWrite, ServicesDep, TokensRevoke
from provisioning.models.cas import FleetCaCreate, FleetCaPublic
from provisioning.models.fleets import FleetCreate, FleetFilter, FleetPage, FleetPublic, FleetUpdate
from provisioning.store import cas, certificates, fleets, sessions

router = APIRouter(prefix="/v1/fleets", tags=["fleets"])


@router.post("", status_code=201)
def create_fleet(body: FleetCreate, services: ServicesDep, actor: DevicesWrite) -> FleetPublic:
    """Create a fleet: ACL template, token lifetime, whether client secrets are allowed."""
    with services.transaction() as session:
        fleet = fleets.create_fleet(
            session=session, fleet_create=body, now=services.now(), actor=actor.id
        )
        return fleet.public()


@router.get("")
def list_fleets(
    services: ServicesDep, _: DevicesRead, query: Annotated[FleetFilter, Query()]
) -> FleetPage:
    """List fleets by name, `limit` at a time; pass `next_cursor` back for the next page."""
    with services.transaction() as session:
        rows, next_cursor = fleets.list_fleets(
            session=session, cursor=query.cursor, limit=query.limit
        )
        return FleetPage(items=[f.public() for f in rows], next_cursor=next_cursor)


@router.get("/{name}")
def read_fleet(name: str, services: ServicesDep, _: DevicesRead) -> FleetPublic:
    """Read a fleet."""
    with services.transaction() as session:
        return fleets.get_fleet(session=session, name=name).public()


@router.patch("/{name}")
def update_fleet(
    name: str, body: FleetUpdate, services: ServicesDep, actor: DevicesWrite
) -> FleetPublic:
    """Change a fleet's ACL template, token lifetime or client secret policy."""
    with services.transaction() as session:
        fleet = fleets.update_fleet(
            session=session, name=name, fleet_update=body, now=services.now(), actor=actor.id
        )
        return fleet.public()


@router.delete("/{name}", status_code=204)
def delete_fleet(
    name: str, services: ServicesDep, actor: DevicesWrite, cascade: bool = False
) -> Response:
    """Delete a fleet: 409 while it has devices, unless `cascade=true`, which deletes
    them too (their tokens die and live sessions are cut), in one transaction."""
    with services.transaction() as session:
        fleets.delete_fleet(
            session=session, name=name, cascade=cascade, now=services.now(), actor=actor.id
        )
    return Response(status_code=204)


@router.post("/{name}/tokens:revoke")
def logout_fleet(name: str, services: ServicesDep, actor: TokensRevoke) -> dict[str, Any]:
    """An incident: every token and refresh family of every device of the fleet dies at
    once and live sessions are cut; the devices stay active. One audit event, one entry
    in the revocation feed."""
    with services.transaction() as session:
        fleet = fleets.get_fleet(session=session, name=name)
        count = sessions.logout_fleet(
            session=session, fleet=fleet, now=services.now(), actor=actor.id
        )
    return {"fleet": name, "devices": count}


@router.post("/{name}/cas", status_code=201)
def register_ca(
    name: str, body: FleetCaCreate, services: ServicesDep, actor: DevicesWrite
) -> FleetCaPublic:
    """Register a CA whose certificates name this fleet's devices by subject CN (mTLS
    token requests, `tls_client_auth`). Proof of possession of the CA's key is
    required: without `verification_certificate` the 400 answer carries the
    `verification_code` that certificate's subject CN must be."""
    with services.transaction() as session:
        row = cas.register(
            session=session,
            fleet_name=name,
            body=body,
            codes=services.codes,
            now=services.now(),
            actor=actor.id,
        )
        public = FleetCaPublic.model_validate(row)
    services.anchors.add(public.certificate)
    return public


@router.get("/{name}/cas")
def list_cas(name: str, services: ServicesDep, _: DevicesRead) -> list[FleetCaPublic]:
    """The fleet's CAs."""
    with services.transaction() as session:
        fleets.get_fleet(session=session, name=name)
        return [
            FleetCaPublic.model_validate(row)
            for row in cas.list_cas(session=session, fleet_name=name)
        ]


@router.delete("/{name}/cas/{ca_id}", status_code=204)
def remove_ca(name: str, ca_id: str, services: ServicesDep, actor: DevicesWrite) -> Response:
    """Remove a CA: its certificates get no more tokens (tokens already issued live on
    until they expire, or a logout)."""
    with services.transaction() as session:
        cas.remove(
            session=session, fleet_name=name, ca_id=ca_id, now=services.now(), actor=actor.id
        )
    return Response(status_code=204)


@router.get(
    "/{name}/cas/{ca_id}/crl",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}}},
)
def fleet_crl(name: str, ca_id: str, services: ServicesDep) -> Response:
    """The CRL (DER, RFC 5280) of the fleet's own CA, for brokers other than ours:
    certificates of revoked or deleted devices, and on hold those of disabled ones.
    Public, as CRLs are. Our own listeners need none: they check the device."""
    with services.transaction() as session:
        der = certificates.crl(
            session=session,
            fleet_name=name,
            ca_id=ca_id,
            sealer=services.keyring.sealer,
            now=services.now(),
        )
    return Response(der, media_type="application/pkix-crl", headers={"Cache-Control": "max-age=60"})
