"""`credbroker device ...`: devices, their credential keys and signing keys, as thin
clients of the API.

Read commands print an aligned table, or the API's JSON with `--json`; write commands
print the API's JSON answer (pipe it into jq). Errors are one line on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from credbroker.cli.client import (
    DEFAULT_API,
    DEFAULT_DATA,
    ApiOpt,
    Column,
    DataDirOpt,
    JsonOpt,
    KeyOpt,
    call,
    every_page,
    fail,
    field,
    print_fields,
    print_json,
    print_table,
    read_text,
    resolve_key,
    time_field,
)

device_app = typer.Typer(
    help="Devices: create, list, show, disable, revoke, keys.", no_args_is_help=True
)
keys_app = typer.Typer(help="A device's credential public keys.", no_args_is_help=True)
device_app.add_typer(keys_app, name="keys")

DEVICE_COLUMNS: list[Column] = [
    ("DEVICE", field("device_id")),
    ("FLEET", field("fleet")),
    ("STATUS", field("status")),
    ("AUTH", field("auth_method")),
    ("KEYS", lambda d: len(d["credential_keys"])),
    ("SIGNING KEY", field("signing_key_version")),
    ("CREATED", time_field("created_at")),
]
DEVICE_FIELDS: list[Column] = [
    *DEVICE_COLUMNS,
    ("UPDATED", time_field("updated_at")),
    ("METADATA", field("metadata")),
    ("OWN ACL", field("acl")),
    ("CREDENTIAL KEYS", lambda d: [k["kid"] for k in d["credential_keys"]]),
]


@device_app.command("create")
def device_create(
    fleet: Annotated[str, typer.Option("--fleet")],
    device_id: Annotated[str | None, typer.Option("--id")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="PEM file")] = None,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Create a device; prints its client secret or enrollment token once, if any."""
    body: dict[str, Any] = {"fleet": fleet}
    if device_id:
        body["device_id"] = device_id
    if public_key:
        body["public_key"] = read_text(public_key, "the public key")
    key = resolve_key(admin_key, data_dir)
    print_json(call("POST", api, "/v1/devices", key=key, json_body=body))


@device_app.command("list")
def device_list(
    fleet: Annotated[str | None, typer.Option("--fleet")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    json_out: JsonOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """List devices (every page)."""
    key = resolve_key(admin_key, data_dir)
    devices = every_page(api, "/v1/devices", key=key, params={"fleet": fleet, "status": status})
    if json_out:
        print_json(devices)
    else:
        print_table(devices, DEVICE_COLUMNS)


@device_app.command("show")
def device_show(
    device_id: str,
    json_out: JsonOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Show one device."""
    device = call("GET", api, f"/v1/devices/{device_id}", key=resolve_key(admin_key, data_dir))
    if json_out:
        print_json(device)
    else:
        print_fields(device, DEVICE_FIELDS)


@device_app.command("disable")
def device_disable(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Disable a device: its tokens stop working until it is enabled again."""
    _set_status(device_id, "disabled", api, resolve_key(admin_key, data_dir))


@device_app.command("enable")
def device_enable(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Enable a disabled device."""
    _set_status(device_id, "active", api, resolve_key(admin_key, data_dir))


def _set_status(device_id: str, status: str, api: str, key: str) -> None:
    body = {"status": status}
    print_json(call("PATCH", api, f"/v1/devices/{device_id}", key=key, json_body=body))


@device_app.command("revoke")
def device_revoke(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Revoke a device: every token and refresh token dies, live sessions are cut."""
    key = resolve_key(admin_key, data_dir)
    print_json(call("POST", api, f"/v1/devices/{device_id}:revoke", key=key))


FAMILY_COLUMNS: list[Column] = [
    ("FAMILY", field("id")),
    ("CREATED", time_field("created_at")),
    ("LAST USED", time_field("last_used_at")),
    ("EXPIRES", time_field("expires_at")),
    ("ACCESS TOKENS", field("access_tokens_outstanding")),
]
CONNECTION_COLUMNS: list[Column] = [
    ("BROKER", field("broker")),
    ("ADDRESS", field("address")),
    ("SINCE", time_field("since")),
    ("PROTOCOL", field("protocol")),
    ("FAMILY", field("family")),
    ("EXPIRES", time_field("expires_at")),
]


@device_app.command("sessions")
def device_sessions(
    device_id: str,
    json_out: JsonOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """A device's refresh families and live MQTT connections."""
    key = resolve_key(admin_key, data_dir)
    listed = call("GET", api, f"/v1/devices/{device_id}/sessions", key=key)
    if json_out:
        print_json(listed)
        return
    print_table(listed["families"], FAMILY_COLUMNS)
    typer.echo("")
    print_table(listed["connections"], CONNECTION_COLUMNS)


@device_app.command("logout")
def device_logout(
    device_id: str,
    family: Annotated[str | None, typer.Option("--family", help="end only this family")] = None,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Log a device out everywhere, or end one refresh family; the device stays active."""
    key = resolve_key(admin_key, data_dir)
    if family is None:
        print_json(call("POST", api, f"/v1/devices/{device_id}/tokens:revoke", key=key))
    else:
        call("DELETE", api, f"/v1/devices/{device_id}/sessions/{family}", key=key)
        typer.echo(f"ended session {family} of {device_id}")


@device_app.command("rotate-signing-key")
def device_rotate_signing_key(
    device_id: str,
    immediate: Annotated[
        bool,
        typer.Option("--immediate", help="retire the old key now: its tokens stop working"),
    ] = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Make a new signing key version; the old one verifies until its tokens expire,
    or not at all with --immediate."""
    params = {"immediate": "true"} if immediate else None
    key = resolve_key(admin_key, data_dir)
    path = f"/v1/devices/{device_id}/signing-keys:rotate"
    print_json(call("POST", api, path, key=key, params=params))


@keys_app.command("add")
def device_keys_add(
    device_id: str,
    public_key: Annotated[Path, typer.Option("--public-key", help="PEM or JWK file")],
    expires_at: Annotated[
        int | None, typer.Option("--expires-at", help="Unix time after which it is refused")
    ] = None,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Register another credential public key of the device (rotation with overlap)."""
    import json

    text = read_text(public_key, "the public key")
    body: dict[str, Any] = {"public_key": text}
    if text.lstrip().startswith("{"):  # a JWK file
        try:
            body["public_key"] = json.loads(text)
        except ValueError:
            fail(f"{public_key} is neither PEM nor a JWK: not valid JSON")
    if expires_at is not None:
        body["expires_at"] = expires_at
    key = resolve_key(admin_key, data_dir)
    print_json(call("POST", api, f"/v1/devices/{device_id}/keys", key=key, json_body=body))


@keys_app.command("remove")
def device_keys_remove(
    device_id: str,
    kid: Annotated[str, typer.Argument(help="the key's kid (RFC 7638 thumbprint)")],
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Remove a credential key; tokens already issued live until they expire."""
    key = resolve_key(admin_key, data_dir)
    call("DELETE", api, f"/v1/devices/{device_id}/keys/{kid}", key=key)
    typer.echo(f"removed key {kid} of {device_id}")
