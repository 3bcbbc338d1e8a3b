"""`credbroker fleet ...`: fleets, as thin clients of the API.

Read commands print an aligned table, or the API's JSON with `--json`; write commands
print the API's JSON answer (pipe it into jq). Errors are one line on stderr."""

from __future__ import annotations

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
    resolve_key,
    time_field,
)

fleet_app = typer.Typer(help="Fleets: ACL templates and token lifetimes.", no_args_is_help=True)

FormatOpt = Annotated[
    str, typer.Option("--token-format", help="jwt, reference or device-signed (README)")
]
AudienceOpt = Annotated[str | None, typer.Option("--audience", help="aud of device-signed tokens")]
PossessionOpt = Annotated[
    bool,
    typer.Option(
        "--proof-of-possession",
        help="MQTT passwords must carry a proof signed by the device key (README)",
    ),
]
CertificateLoginOpt = Annotated[
    bool,
    typer.Option(
        "--certificate-login",
        help="MQTTS with the device's client certificate and no password logs in (README)",
    ),
]

FLEET_COLUMNS: list[Column] = [
    ("NAME", field("name")),
    ("TOKEN TTL", field("token_ttl")),
    ("CLIENT SECRETS", field("allow_client_secret")),
    ("TOKEN FORMAT", field("token_format")),
    ("PROOF OF POSSESSION", field("proof_of_possession")),
    ("CERTIFICATE LOGIN", field("certificate_login")),
    ("PUBLISH", lambda f: f["acl"]["publish"]),
    ("SUBSCRIBE", lambda f: f["acl"]["subscribe"]),
    ("CREATED", time_field("created_at")),
]


@fleet_app.command("create")
def fleet_create(
    name: str,
    publish: Annotated[list[str], typer.Option("--publish", help="ACL filter (repeat)")] = [],  # noqa: B006
    subscribe: Annotated[list[str], typer.Option("--subscribe", help="ACL filter (repeat)")] = [],  # noqa: B006
    token_ttl: Annotated[int, typer.Option("--token-ttl")] = 900,
    allow_client_secret: Annotated[bool, typer.Option("--allow-client-secret")] = False,
    token_format: FormatOpt = "jwt",  # noqa: S107 - a format name
    audience: AudienceOpt = None,
    iot_core_client_ids: Annotated[bool, typer.Option("--iot-core-client-ids")] = False,
    proof_of_possession: PossessionOpt = False,
    certificate_login: CertificateLoginOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Create a fleet. Filters may use {device_id} and {fleet}."""
    body: dict[str, Any] = {
        "name": name,
        "acl": {"publish": publish, "subscribe": subscribe},
        "token_ttl": token_ttl,
        "allow_client_secret": allow_client_secret,
        "token_format": token_format,
        "iot_core_client_ids": iot_core_client_ids,
        "proof_of_possession": proof_of_possession,
        "certificate_login": certificate_login,
    }
    if audience is not None:
        body["audience"] = audience
    key = resolve_key(admin_key, data_dir)
    print_json(call("POST", api, "/v1/fleets", key=key, json_body=body))


@fleet_app.command("list")
def fleet_list(
    json_out: JsonOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """List fleets (every page)."""
    fleets = every_page(api, "/v1/fleets", key=resolve_key(admin_key, data_dir))
    if json_out:
        print_json(fleets)
    else:
        print_table(fleets, FLEET_COLUMNS)


@fleet_app.command("show")
def fleet_show(
    name: str,
    json_out: JsonOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Show one fleet."""
    fleet = call("GET", api, f"/v1/fleets/{name}", key=resolve_key(admin_key, data_dir))
    if json_out:
        print_json(fleet)
    else:
        print_fields(fleet, FLEET_COLUMNS)


@fleet_app.command("update")
def fleet_update(
    name: str,
    publish: Annotated[
        list[str] | None, typer.Option("--publish", help="ACL filter (repeat); replaces the list")
    ] = None,
    subscribe: Annotated[
        list[str] | None,
        typer.Option("--subscribe", help="ACL filter (repeat); replaces the list"),
    ] = None,
    token_ttl: Annotated[int | None, typer.Option("--token-ttl")] = None,
    allow_client_secret: Annotated[
        bool | None, typer.Option("--allow-client-secret/--no-allow-client-secret")
    ] = None,
    token_format: FormatOpt | None = None,
    audience: AudienceOpt = None,
    iot_core_client_ids: Annotated[
        bool | None, typer.Option("--iot-core-client-ids/--no-iot-core-client-ids")
    ] = None,
    proof_of_possession: Annotated[
        bool | None,
        typer.Option(
            "--proof-of-possession/--no-proof-of-possession",
            help="MQTT passwords must carry a proof signed by the device key (README)",
        ),
    ] = None,
    certificate_login: Annotated[
        bool | None,
        typer.Option(
            "--certificate-login/--no-certificate-login",
            help="MQTTS with the device's client certificate and no password logs in (README)",
        ),
    ] = None,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Change a fleet's ACL, token lifetime or client secret policy. --publish or
    --subscribe alone keeps the other list as it is."""
    key = resolve_key(admin_key, data_dir)
    body: dict[str, Any] = {}
    if publish or subscribe:
        acl = call("GET", api, f"/v1/fleets/{name}", key=key)["acl"]
        body["acl"] = {
            "publish": publish or acl["publish"],
            "subscribe": subscribe or acl["subscribe"],
        }
    if token_ttl is not None:
        body["token_ttl"] = token_ttl
    if allow_client_secret is not None:
        body["allow_client_secret"] = allow_client_secret
    for option, value in (
        ("token_format", token_format),
        ("audience", audience),
        ("iot_core_client_ids", iot_core_client_ids),
        ("proof_of_possession", proof_of_possession),
        ("certificate_login", certificate_login),
    ):
        if value is not None:
            body[option] = value
    if not body:
        fail("nothing to change: pass --publish, --subscribe, --token-ttl or --allow-client-secret")
    print_json(call("PATCH", api, f"/v1/fleets/{name}", key=key, json_body=body))


@fleet_app.command("delete")
def fleet_delete(
    name: str,
    cascade: Annotated[
        bool, typer.Option("--cascade", help="delete its devices too (their tokens die)")
    ] = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Delete a fleet; refused while it has devices, unless --cascade."""
    params = {"cascade": "true"} if cascade else None
    call("DELETE", api, f"/v1/fleets/{name}", key=resolve_key(admin_key, data_dir), params=params)
    typer.echo(f"deleted fleet {name}")
