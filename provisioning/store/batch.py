"""Batch device creation: all in one transaction, or each row on its own.

Idempotent on device_id: a row naming a device that already exists in the same fleet
reports `exists` (no secret is shown again) instead of failing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session

from provisioning.errors import BadRequest, ProvisioningError
from provisioning.models import Device
from provisioning.models.bounds import STRICT_BODY
from provisioning.models.devices import DeviceCreate
from provisioning.signing import Keyring
from provisioning.store import devices


class BatchCreate(BaseModel):
    model_config = STRICT_BODY

    devices: list[DeviceCreate] = Field(min_length=1)
    atomic: bool = True


class BatchRowError(BadRequest):
    def __init__(self, results: list[dict[str, Any]]) -> None:
        super().__init__("some rows failed; nothing was written")
        self.extra = {"results": results}


def _row(*, session: Session, keyring: Keyring, item: DeviceCreate, **kw: Any) -> dict[str, Any]:
    existing = session.get(Device, item.device_id) if item.device_id else None
    if existing is not None and existing.fleet == item.fleet:
        return {"device_id": existing.device_id, "status": "exists"}
    created = devices.create_device(session=session, keyring=keyring, device_create=item, **kw)
    public = devices.to_public(session=session, device=created.device)
    row: dict[str, Any] = {
        "device_id": created.device.device_id,
        "status": "created",
        "device": public.model_dump(),
    }
    if created.client_secret:
        row["client_secret"] = created.client_secret
    if created.enrollment_token:
        row["enrollment_token"] = created.enrollment_token
    return row


def create_batch(
    *, session: Session, keyring: Keyring, batch: BatchCreate, **kw: Any
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    failed = False
    for index, item in enumerate(batch.devices):
        try:
            with session.begin_nested():
                row = _row(session=session, keyring=keyring, item=item, **kw)
        except ProvisioningError as exc:
            failed = True
            row = {
                "device_id": item.device_id,
                "status": "error",
                "error": exc.error,
                "detail": exc.detail,
            }
        results.append({"index": index, **row})
    if failed and batch.atomic:
        raise BatchRowError([r for r in results if r["status"] == "error"])
    return results
