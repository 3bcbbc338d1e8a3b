"""`credbroker token ...`: tokens as a device would get them. Output is the API's JSON,
so it pipes into jq."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credbroker.cli.client import (
    DEFAULT_API,
    DEFAULT_DATA,
    ApiOpt,
    DataDirOpt,
    KeyOpt,
    call,
    fail,
    print_json,
    resolve_key,
)

token_app = typer.Typer(help="Tokens, as a device would get them.", no_args_is_help=True)


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
        fail(f"cannot read the device key {key}: {exc.strerror or exc}")
    except ValueError as exc:  # not a PEM private key, or not one a device may use
        fail(f"{key} is not a device private key: {exc}")
    meta = call("GET", api, "/.well-known/oauth-authorization-server")
    form = assertion_form(private_key, device_id=device_id, audience=meta["token_endpoint"])
    print_json(call("POST", api, "/oauth2/token", form=form))


@token_app.command("refresh")
def token_refresh(refresh_token: str, api: ApiOpt = DEFAULT_API) -> None:
    """Trade a refresh token for new tokens (the old one is used up)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    print_json(call("POST", api, "/oauth2/token", form=form))


@token_app.command("revoke")
def token_revoke(token: str, api: ApiOpt = DEFAULT_API) -> None:
    """Revoke an access or refresh token (RFC 7009)."""
    print_json(call("POST", api, "/oauth2/revoke", form={"token": token}))


@token_app.command("introspect")
def token_introspect(
    token: str,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Is this token active? (RFC 7662; needs an admin key)"""
    key = resolve_key(admin_key, data_dir)
    print_json(call("POST", api, "/oauth2/introspect", key=key, form={"token": token}))
