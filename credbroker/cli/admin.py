"""`credbroker admin-key ...` and `credbroker audit`: the operator's own keys, and what
happened. Read commands print an aligned table, or JSON with `--json`."""

from __future__ import annotations

import json
import time
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
    field,
    print_json,
    print_table,
    resolve_key,
    text,
    time_field,
)

admin_key_app = typer.Typer(
    help="Admin API keys: create (shown once), list, revoke.", no_args_is_help=True
)
KEY_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("NAME", field("name")),
    ("SCOPES", field("scopes")),
    ("CREATED", time_field("created_at")),
    ("LAST USED", time_field("last_used_at")),
    ("EXPIRES", time_field("expires_at")),
]
SCOPES = ("devices:read", "devices:write", "tokens:revoke", "audit:read", "broker:hook")


@admin_key_app.command("create")
def admin_key_create(
    scope: Annotated[
        list[str], typer.Option("--scope", help=f"repeat; any of {', '.join(SCOPES)}")
    ],
    name: Annotated[str, typer.Option("--name", help="what the key is for")] = "",
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", min=1, help="seconds until it stops working")
    ] = None,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Create an admin API key; prints it once (it holds only scopes your key holds)."""
    body: dict[str, Any] = {"name": name, "scopes": scope}
    if expires_in is not None:
        body["expires_in"] = expires_in
    key = resolve_key(admin_key, data_dir)
    print_json(call("POST", api, "/v1/admin-keys", key=key, json_body=body))


@admin_key_app.command("list")
def admin_key_list(
    json_out: JsonOpt = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """List admin API keys that are not revoked (never the keys themselves)."""
    keys = every_page(api, "/v1/admin-keys", key=resolve_key(admin_key, data_dir))
    if json_out:
        print_json(keys)
    else:
        print_table(keys, KEY_COLUMNS)


@admin_key_app.command("revoke")
def admin_key_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (ak_...), from `admin-key list`")],
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Revoke an admin API key: refused from its next request on."""
    call("DELETE", api, f"/v1/admin-keys/{key_id}", key=resolve_key(admin_key, data_dir))
    typer.echo(f"revoked admin API key {key_id}")


AUDIT_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("TIME", time_field("at")),
    ("ACTION", field("action")),
    ("OUTCOME", field("outcome")),
    ("DEVICE", field("device_id")),
    ("ACTOR", field("actor")),
    ("DETAIL", lambda e: e["detail"] or None),
]
# With --follow, rows are printed as they come, so columns cannot be as wide as their
# widest cell: fixed widths that fit the usual ids; a longer cell is kept whole.
FOLLOW_WIDTHS = (8, 20, 24, 8, 24, 22)
PAGE = 1000


def _follow_line(cells: list[str]) -> str:
    padded = [c.ljust(w) for c, w in zip(cells, FOLLOW_WIDTHS, strict=False)]
    return "  ".join([*padded, *cells[len(FOLLOW_WIDTHS) :]]).rstrip()


def _follow_row(event: dict[str, Any]) -> str:
    return _follow_line([text(get(event)) for _, get in AUDIT_COLUMNS])


def audit(
    device: Annotated[str | None, typer.Option("--device", help="only this device's")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="only this action (device.create, ...)")
    ] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="only events after this id")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events until Ctrl-C")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="seconds between polls with --follow")
    ] = 1.0,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="JSON on stdout: an array, or one event a line with --follow"),
    ] = False,
    api: ApiOpt = DEFAULT_API,
    admin_key: KeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA,
) -> None:
    """Audit events, oldest first; --follow polls for new ones until Ctrl-C."""
    key = resolve_key(admin_key, data_dir)
    params = {"device_id": device, "action": action, "limit": PAGE}

    def page(cursor: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = call(
            "GET", api, "/v1/audit", key=key, params={**params, "cursor": cursor}
        )["items"]
        return items

    if not follow:
        events, cursor = [], after
        while batch := page(cursor):
            events += batch
            cursor = batch[-1]["id"]
            if len(batch) < PAGE:
                break
        if json_out:
            print_json(events)
        else:
            print_table(events, AUDIT_COLUMNS)
        return
    try:
        _follow(page, after, interval, json_out)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None  # Ctrl-C is how --follow ends


def _follow(page: Any, cursor: int, interval: float, json_out: bool) -> None:
    if not json_out:
        typer.echo(_follow_line([header for header, _ in AUDIT_COLUMNS]))
    while True:
        batch = page(cursor)
        for event in batch:
            typer.echo(json.dumps(event) if json_out else _follow_row(event))
        if batch:
            cursor = batch[-1]["id"]
        if len(batch) < PAGE:
            time.sleep(interval)  # a poll of the API, not a wait in a test
