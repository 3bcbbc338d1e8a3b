"""Fleets: create, read, list, update, delete (with their devices, on request)."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from credbroker.claims import is_fleet_name
from provisioning import standing
from provisioning.errors import Conflict, NotFound
from provisioning.models import Device, Fleet, FleetCa
from provisioning.models.fleets import FleetCreate, FleetUpdate, acl_columns
from provisioning.store import audit, devices, paging


def get_fleet(*, session: Session, name: str) -> Fleet:
    fleet = session.get(Fleet, name) if is_fleet_name(name) else None
    if fleet is None:
        raise NotFound(f"no fleet named {name!r}")
    return fleet


def create_fleet(*, session: Session, fleet_create: FleetCreate, now: int, actor: str) -> Fleet:
    if session.get(Fleet, fleet_create.name) is not None:
        raise Conflict(f"fleet {fleet_create.name!r} already exists")
    fleet = Fleet(
        name=fleet_create.name,
        token_ttl=fleet_create.token_ttl,
        allow_client_secret=fleet_create.allow_client_secret,
        token_format=fleet_create.token_format,
        audience=fleet_create.audience,
        iot_core_client_ids=fleet_create.iot_core_client_ids,
        auto_register=fleet_create.auto_register,
        proof_of_possession=fleet_create.proof_of_possession,
        certificate_login=fleet_create.certificate_login,
        created_at=now,
        **acl_columns(fleet_create.acl),
    )
    session.add(fleet)
    audit.record(session=session, now=now, action="fleet.create", actor=actor, fleet=fleet.name)
    return fleet


def update_fleet(
    *, session: Session, name: str, fleet_update: FleetUpdate, now: int, actor: str
) -> Fleet:
    fleet = get_fleet(session=session, name=name)
    certificate_login = fleet.certificate_login
    if fleet_update.acl is not None:
        for column, value in acl_columns(fleet_update.acl).items():
            setattr(fleet, column, value)
    if fleet_update.token_ttl is not None:
        fleet.token_ttl = fleet_update.token_ttl
    if fleet_update.allow_client_secret is not None:
        fleet.allow_client_secret = fleet_update.allow_client_secret
    for field in (
        "token_format",
        "audience",
        "iot_core_client_ids",
        "auto_register",
        "proof_of_possession",
        "certificate_login",
    ):
        if (value := getattr(fleet_update, field)) is not None:
            setattr(fleet, field, value)
    session.add(fleet)
    if certificate_login and not fleet.certificate_login:
        recheck_certificates(session=session, fleet=fleet.name, now=now)
    changed = sorted(fleet_update.model_dump(exclude_none=True))
    audit.record(
        session=session, now=now, action="fleet.update", actor=actor, fleet=name, changed=changed
    )
    return fleet


def recheck_certificates(*, session: Session, fleet: str, now: int) -> None:
    """The certificate logins of the fleet's devices may stand no more (its CA removed,
    its `certificate_login` turned off): every broker re-checks its sessions of them, in
    one log entry. Tokens are not touched."""
    device_ids = list(session.exec(select(Device.device_id).where(Device.fleet == fleet)))
    standing.fleet_changed(session=session, fleet=fleet, device_ids=device_ids, now=now, cuts=False)


def list_fleets(
    *, session: Session, cursor: str | None, limit: int
) -> tuple[list[Fleet], str | None]:
    return paging.page(
        session=session,
        query=select(Fleet),
        key=Fleet.name,
        cursor=cursor,
        limit=limit,
        valid=is_fleet_name,
    )


def delete_fleet(*, session: Session, name: str, cascade: bool, now: int, actor: str) -> int:
    """Delete a fleet; refused while it has devices, unless `cascade`: then each of them
    is deleted as `DELETE /v1/devices/{id}` deletes one (its tokens die, its live
    sessions are cut once this transaction commits), all in this one transaction.
    Returns how many devices went."""
    fleet = get_fleet(session=session, name=name)
    members = select(Device.device_id).where(Device.fleet == name)
    if not cascade:
        count = session.exec(select(func.count()).select_from(members.subquery())).one()
        if count:
            raise Conflict(
                f"fleet {name!r} has {count} device(s): delete them first, or pass cascade=true"
            )
    device_ids = list(session.exec(members.order_by(col(Device.device_id)).with_for_update()))
    for device_id in device_ids:
        devices.delete_device(session=session, device_id=device_id, now=now, actor=actor)
    for ca in session.exec(select(FleetCa).where(FleetCa.fleet == name)):
        session.delete(ca)
    session.flush()  # the devices' and CAs' rows go before the fleet's, which they refer to
    session.delete(fleet)
    audit.record(
        session=session,
        now=now,
        action="fleet.delete",
        actor=actor,
        fleet=name,
        cascade=cascade,
        devices=len(device_ids),
    )
    return len(device_ids)
