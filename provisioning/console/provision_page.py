"""Provisioning: one device (its public key pasted or uploaded, or an enrollment token or
client secret shown once), or many from a CSV file with a result per row. Both go
through the store functions of `POST /v1/devices` and `POST /v1/devices:batch`."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

import pydantic
from fastapi import File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from provisioning.api.deps import ServicesDep
from provisioning.console.signin import Signed
from provisioning.console.web import SignedIn, acting, need, render, router
from provisioning.errors import ProvisioningError
from provisioning.models.devices import DeviceCreate
from provisioning.services import Services
from provisioning.store import batch, devices

CSV_COLUMNS = ("device_id", "fleet", "public_key")
MAX_KEY_CHARS = 8_000  # a PEM or JWK public key is well under this


def _limits(services: Services) -> dict[str, Any]:
    return {
        "max_metadata_bytes": services.settings.max_metadata_bytes,
        "enrollment_ttl": services.settings.enrollment_token_ttl,
    }


@router.get("/provision")
def provision_page(request: Request, signed: SignedIn) -> HTMLResponse:
    need(signed, "devices:write")
    return render(request, "provision.html", signed=signed, form={}, errors={})


async def _key_text(pasted: str, upload: UploadFile | None) -> str:
    if upload is not None and upload.filename:
        return (await upload.read(MAX_KEY_CHARS + 1)).decode("utf-8", "replace").strip()
    return pasted.strip()


@router.post("/provision")
async def provision_one(
    request: Request,
    services: ServicesDep,
    signed: Annotated[Signed, acting("devices:write")],
    fleet: Annotated[str, Form(max_length=64)] = "",
    device_id: Annotated[str, Form(max_length=128)] = "",
    public_key: Annotated[str, Form(max_length=MAX_KEY_CHARS)] = "",
    key_file: Annotated[UploadFile | None, File()] = None,
    credential: Annotated[str, Form(max_length=16)] = "key",
) -> Response:
    form = {"fleet": fleet, "device_id": device_id, "public_key": public_key}
    key = await _key_text(public_key, key_file)
    body: dict[str, Any] = {"fleet": fleet.strip()}
    if device_id.strip():
        body["device_id"] = device_id.strip()
    if key:
        body["public_key"] = key
    elif credential == "client_secret":
        body["auth_method"] = "client_secret"
    try:
        create = DeviceCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors() if e["loc"]}
        return render(request, "provision.html", 422, signed=signed, form=form, errors=errors)
    try:
        with services.transaction() as session:
            created = devices.create_device(
                session=session,
                keyring=services.keyring,
                device_create=create,
                now=services.now(),
                actor=signed.admin.id,
                **_limits(services),
            )
            new_id = created.device.device_id
    except ProvisioningError as exc:
        errors = {"form": exc.detail}
        return render(
            request, "provision.html", exc.status_code, signed=signed, form=form, errors=errors
        )
    return render(
        request,
        "provisioned.html",
        201,
        signed=signed,
        device_id=new_id,
        enrollment_token=created.enrollment_token,
        client_secret=created.client_secret,
    )


def _rows(text: str) -> list[dict[str, str]]:
    """The CSV's rows by header name; `public_key` may be empty (enrollment)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"fleet"} <= set(reader.fieldnames):
        raise ValueError(f"the first line must name the columns: {', '.join(CSV_COLUMNS)}")
    return [{k: (v or "").strip() for k, v in row.items() if k in CSV_COLUMNS} for row in reader]


@router.post("/provision/batch")
async def provision_batch(
    request: Request,
    services: ServicesDep,
    signed: Annotated[Signed, acting("devices:write")],
    csv_file: Annotated[UploadFile, File()],
) -> Response:
    limit = services.settings.max_batch
    raw = await csv_file.read(services.settings.max_body_bytes + 1)
    try:
        rows = _rows(raw.decode("utf-8-sig"))
        if not 1 <= len(rows) <= limit:
            raise ValueError(f"a batch has 1 to {limit} rows")
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        errors = {"csv_file": str(exc)}
        return render(request, "provision.html", 422, signed=signed, form={}, errors=errors)
    results: list[dict[str, Any]] = []
    items: list[DeviceCreate] = []
    for line, row in enumerate(rows, start=2):
        body = {k: v for k, v in row.items() if v}
        try:
            items.append(DeviceCreate.model_validate(body))
        except pydantic.ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            results.append(
                {
                    "line": line,
                    "device_id": row.get("device_id"),
                    "status": "error",
                    "detail": detail,
                }
            )
    lines = [n for n in range(2, len(rows) + 2) if n not in {r["line"] for r in results}]
    if items:
        with services.transaction() as session:
            created = batch.create_batch(
                session=session,
                keyring=services.keyring,
                batch=batch.BatchCreate(devices=items, atomic=False),
                now=services.now(),
                actor=signed.admin.id,
                **_limits(services),
            )
        results += [{"line": n, **r} for n, r in zip(lines, created, strict=True)]
    results.sort(key=lambda r: r["line"])
    return render(request, "batch_result.html", signed=signed, results=results)
