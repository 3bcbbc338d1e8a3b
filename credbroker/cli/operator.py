"""Thin API clients for operators (`fleet`, `device`) and for trying things as a device
(`token`). Output is the API's JSON, so it pipes into jq."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

ApiOpt = Annotated[str, typer.Option("--api", envvar="CREDBROKER_API", help="API base URL")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="CREDBROKER_ADMIN_KEY",
        show_default=False,
        help="admin API key (default: DATA_DIR/admin.key)",
    ),
]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="CREDBROKER_DATA_DIR")]
DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_DATA = Path("./credbroker-data")

fleet_app = typer.Typer(help="Fleets: ACL templates and token lifetimes.", no_args_is_help=True)
device_app = typer.Typer(help="Devices: create, list, show, disable, revoke.", no_args_is_help=True)
token_app = typer.Typer(help="Tokens, as a device would get them.", no_args_is_help=True)


def _admin_key(key: str | None, data_dir: Path) -> str:
    if key:
        return key
    path = data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    _fail(
        f"no admin key: {path} does not exist; pass --admin-key, set CREDBROKER_ADMIN_KEY, "
        "or point --data-dir (CREDBROKER_DATA_DIR) at the stack's data directory"
    )


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}")


def _call(
    method: str,
    api: str,
    path: str,
    *,
    key: str | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(
            method, api.rstrip("/") + path, headers=headers, json=json_body, data=form, timeout=30
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {api}: {exc}", err=True)
        raise typer.Exit(2) from exc
    body = response.json() if response.content else {}
    if response.is_error:
        typer.echo(json.dumps(body, indent=2), err=True)
        raise typer.Exit(1)
    return body


def _print(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2))


@fleet_app.command("create")
def fleet_create(
    name: str,
    publish: Annotated[list[str], typer.Option("--publish", help="ACL filter (repeat)")] = [],  # noqa: B006
    subscribe: Annotated[list[str], typer.Option("--subscribe", help="ACL filter (repeat)")] = [],  # noqa: B006
    token_ttl: Annotated[int, typer.Option("--token-ttl")] = 900,
    allow_client_secret: Annotated[bool, typer.Option("--allow-client-secret")] = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Create a fleet. Filters may use {device_id} and {fleet}."""
    _print(
        _call(
            "POST",
            api,
            "/v1/fleets",
            key=_admin_key(admin_key, data_dir),
            json_body={
                "name": name,
                "acl": {"publish": publish, "subscribe": subscribe},
                "token_ttl": token_ttl,
                "allow_client_secret": allow_client_secret,
            },
        )
    )


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
        body["public_key"] = _read_text(public_key, "the public key")
    _print(_call("POST", api, "/v1/devices", key=_admin_key(admin_key, data_dir), json_body=body))


@device_app.command("list")
def device_list(
    fleet: Annotated[str | None, typer.Option("--fleet")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """List devices (every page)."""
    key, cursor, items = _admin_key(admin_key, data_dir), None, []
    while True:
        params = {
            k: v for k, v in {"fleet": fleet, "status": status, "cursor": cursor}.items() if v
        }
        query = "&".join(f"{k}={v}" for k, v in params.items())
        page = _call("GET", api, "/v1/devices" + (f"?{query}" if query else ""), key=key)
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    _print(items)


@device_app.command("show")
def device_show(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Show one device."""
    _print(_call("GET", api, f"/v1/devices/{device_id}", key=_admin_key(admin_key, data_dir)))


@device_app.command("disable")
def device_disable(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Disable a device: its tokens stop working until it is enabled again."""
    _set_status(device_id, "disabled", api, _admin_key(admin_key, data_dir))


@device_app.command("enable")
def device_enable(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Enable a disabled device."""
    _set_status(device_id, "active", api, _admin_key(admin_key, data_dir))


def _set_status(device_id: str, status: str, api: str, key: str) -> None:
    _print(_call("PATCH", api, f"/v1/devices/{device_id}", key=key, json_body={"status": status}))


@device_app.command("revoke")
def device_revoke(
    device_id: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Revoke a device: every token and refresh token dies, live sessions are cut."""
    _print(
        _call("POST", api, f"/v1/devices/{device_id}:revoke", key=_admin_key(admin_key, data_dir))
    )


@token_app.command("get")
def token_get(
    device_id: Annotated[str, typer.Option("--device")],
    key: Annotated[Path, typer.Option("--key", help="the device's private key (PEM)")],
    api: ApiOpt = DEFAULT_API,
) -> None:
    """Get tokens with a client assertion signed by the device key (RFC 7523)."""
    from device_sdk import assertion_form, load_private_key

    try:
        private_key = load_private_key(key)
    except OSError as exc:
        _fail(f"cannot read the device key {key}: {exc.strerror or exc}")
    except ValueError as exc:  # not a PEM private key, or not one a device may use
        _fail(f"{key} is not a device private key: {exc}")
    meta = _call("GET", api, "/.well-known/oauth-authorization-server")
    form = assertion_form(private_key, device_id=device_id, audience=meta["token_endpoint"])
    _print(_call("POST", api, "/oauth2/token", form=form))


@token_app.command("refresh")
def token_refresh(refresh_token: str, api: ApiOpt = DEFAULT_API) -> None:
    """Trade a refresh token for new tokens (the old one is used up)."""
    _print(
        _call(
            "POST",
            api,
            "/oauth2/token",
            form={"grant_type": "refresh_token", "refresh_token": refresh_token},
        )
    )


@token_app.command("revoke")
def token_revoke(token: str, api: ApiOpt = DEFAULT_API) -> None:
    """Revoke an access or refresh token (RFC 7009)."""
    _print(_call("POST", api, "/oauth2/revoke", form={"token": token}))


@token_app.command("introspect")
def token_introspect(
    token: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Is this token active? (RFC 7662; needs an admin key)"""
    _print(
        _call(
            "POST",
            api,
            "/oauth2/introspect",
            key=_admin_key(admin_key, data_dir),
            form={"token": token},
        )
    )
