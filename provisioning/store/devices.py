"""Devices: creation (single and batch), reading, paging, status changes, deletion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import Session, col, delete, func, select

from credbroker.claims import is_device_id
from provisioning import credentials, hashing, standing
from provisioning.errors import BadRequest, Conflict, NotFound
from provisioning.models import (
    CredentialKey,
    Device,
    EnrollmentToken,
    RefreshFamily,
    RefreshToken,
    SigningKey,
)
from provisioning.models.devices import (
    DeviceCreate,
    DevicePublic,
    DeviceUpdate,
)
from provisioning.models.fleets import AclTemplate
from provisioning.signing import Keyring
from provisioning.store import audit, fleets, keys, paging, revocations

_STATUS_ACTIONS = {"active": "device.enable", "disabled": "device.disable"}


@dataclass
class Created:
    device: Device
    client_secret: str | None = None
    enrollment_token: str | None = None


def get_device(*, session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id) if is_device_id(device_id) else None
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    return device


def to_public(*, session: Session, device: Device) -> DevicePublic:
    acl = None
    if device.acl_publish is not None or device.acl_subscribe is not None:
        acl = AclTemplate(publish=device.acl_publish or [], subscribe=device.acl_subscribe or [])
    keys = credentials.all_keys(session=session, device_id=device.device_id)
    return DevicePublic(
        device_id=device.device_id,
        fleet=device.fleet,
        status=device.status,
        metadata=device.meta,
        acl=acl,
        auth_method=device.auth_method,
        signing_key_version=device.signing_key_version,
        tokens_valid_after=device.tokens_valid_after,
        created_at=device.created_at,
        updated_at=device.updated_at,
        credential_keys=[k.public() for k in keys],
    )


def _check_metadata(metadata: dict[str, Any], limit: int) -> None:
    if len(orjson.dumps(metadata)) > limit:
        raise BadRequest(f"metadata is larger than {limit} bytes")


def create_device(
    *,
    session: Session,
    keyring: Keyring,
    device_create: DeviceCreate,
    now: int,
    actor: str,
    max_metadata_bytes: int,
    enrollment_ttl: int,
) -> Created:
    fleet = fleets.get_fleet(session=session, name=device_create.fleet)
    _check_metadata(device_create.metadata, max_metadata_bytes)
    device_id = device_create.device_id or f"dev-{hashing.new_token('x')[2:14].lower()}"
    if session.get(Device, device_id) is not None:
        raise Conflict(f"device {device_id!r} already exists")
    method = device_create.auth_method or (
        "client_secret"
        if fleet.allow_client_secret and device_create.public_key is None
        else "private_key_jwt"
    )
    if method == "client_secret" and not fleet.allow_client_secret:
        raise BadRequest(f"fleet {fleet.name!r} does not allow client secrets")
    device = Device(
        device_id=device_id,
        fleet=fleet.name,
        meta=device_create.metadata,
        auth_method=method,
        created_at=now,
        updated_at=now,
    )
    if device_create.acl is not None:
        device.acl_publish = list(device_create.acl.publish)
        device.acl_subscribe = list(device_create.acl.subscribe)
    created = Created(device)
    if method == "client_secret":
        created.client_secret = hashing.new_token("cbs")
        device.client_secret_hash = hashing.hash_secret(created.client_secret)
    session.add(device)
    session.flush()  # the device row must exist before rows that refer to it
    if device_create.public_key is not None:
        keys.add_key(
            session=session,
            device=device,
            public_key=device_create.public_key,
            expires_at=device_create.key_expires_at,
            now=now,
            actor=actor,
        )
    elif method == "private_key_jwt":
        created.enrollment_token = hashing.new_token("cbe")
        session.add(
            EnrollmentToken(
                token_hash=hashing.token_hash(created.enrollment_token),
                device_id=device_id,
                expires_at=now + enrollment_ttl,
            )
        )
    keyring.new_key(session=session, device=device, now=now)
    audit.record(
        session=session,
        now=now,
        action="device.create",
        device_id=device_id,
        actor=actor,
        fleet=fleet.name,
        auth_method=method,
    )
    return created


def list_devices(
    *,
    session: Session,
    fleet: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
    prefix: str | None = None,
) -> tuple[list[Device], str | None]:
    """Keyset paging by device_id: stable under concurrent inserts and deletes.
    `prefix` matches the start of the id exactly (case and all; no LIKE, which SQLite
    folds to lower case and where `_` is a wildcard)."""
    query = select(Device)
    if prefix:
        query = query.where(func.substr(Device.device_id, 1, len(prefix)) == prefix)
    if fleet is not None:
        query = query.where(Device.fleet == fleet)
    if status is not None:
        query = query.where(Device.status == status)
    return paging.page(
        session=session,
        query=query,
        key=Device.device_id,
        cursor=cursor,
        limit=limit,
        valid=is_device_id,
    )


def update_device(
    *,
    session: Session,
    device_id: str,
    device_update: DeviceUpdate,
    now: int,
    actor: str,
    max_metadata_bytes: int,
) -> Device:
    device = get_device(session=session, device_id=device_id)
    if device_update.metadata is not None:
        _check_metadata(device_update.metadata, max_metadata_bytes)
        device.meta = device_update.metadata
    if device_update.acl is not None:
        device.acl_publish = list(device_update.acl.publish)
        device.acl_subscribe = list(device_update.acl.subscribe)
    if device_update.status is not None and device_update.status != device.status:
        audit.record(
            session=session,
            now=now,
            action=_STATUS_ACTIONS[device_update.status],
            device_id=device_id,
            actor=actor,
            previous=device.status,
        )
        device.status = device_update.status
        cuts = device.status != "active"
        standing.device_changed(session=session, device_id=device_id, now=now, cuts=cuts)
    device.updated_at = now
    session.add(device)
    return device


def delete_device(*, session: Session, device_id: str, now: int, actor: str) -> None:
    device = get_device(session=session, device_id=device_id)
    families = select(RefreshFamily.id).where(RefreshFamily.device_id == device_id)
    session.exec(delete(RefreshToken).where(col(RefreshToken.family_id).in_(families)))
    session.exec(delete(RefreshFamily).where(col(RefreshFamily.device_id) == device_id))
    session.exec(delete(EnrollmentToken).where(col(EnrollmentToken.device_id) == device_id))
    session.exec(delete(CredentialKey).where(col(CredentialKey.device_id) == device_id))
    session.exec(delete(SigningKey).where(col(SigningKey.device_id) == device_id))
    revocations.revoke_certificates(session=session, device_id=device_id, now=now)
    session.delete(device)
    audit.record(session=session, now=now, action="device.delete", device_id=device_id, actor=actor)
    standing.device_changed(session=session, device_id=device_id, now=now, cuts=True)
