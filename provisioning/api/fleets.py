"""Fleets."""

from __future__ import annotations

from fastapi import APIRouter

from provisioning.api.deps import DevicesRead, DevicesWrite, ServicesDep
from provisioning.models.fleets import FleetCreate, FleetPublic, FleetUpdate
from provisioning.store import fleets

router = APIRouter(prefix="/v1/fleets", tags=["fleets"])


@router.post("", status_code=201)
def create_fleet(body: FleetCreate, services: ServicesDep, actor: DevicesWrite) -> FleetPublic:
    """Create a fleet: ACL template, token lifetime, whether client secrets are allowed."""
    with services.transaction() as session:
        fleet = fleets.create_fleet(
            session=session, fleet_create=body, now=services.now(), actor=actor.id
        )
        return fleet.public()


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
