"""The `credbroker` command. Subcommands import their heavy dependencies lazily."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperOption

from credbroker import __version__
from credbroker.cli import admin, certs, devices, fleets, keys, server, simulate, tokens

_display_type_rich = TyperOption.display_type_rich


def _flag_takes_no_value(self: TyperOption, ctx: Any) -> str | None:
    # typer 0.2x shows `<bool>` after every flag (`--help <bool>`), as if it took a value.
    return None if self.is_flag else _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_takes_no_value  # type: ignore[method-assign]

app = typer.Typer(
    name="credbroker",
    no_args_is_help=True,
    add_completion=False,
    help="Credential broker for IoT fleets on MQTT.",
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"credbroker {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Credential broker for IoT fleets on MQTT."""


app.command("up")(server.up)
app.command("api")(server.api)
app.command("broker")(server.broker)
app.command("keygen")(keys.keygen)
app.command("certs")(certs.certs)
app.add_typer(fleets.fleet_app, name="fleet")
app.add_typer(devices.device_app, name="device")
app.add_typer(tokens.token_app, name="token")
app.add_typer(admin.admin_key_app, name="admin-key")
app.command("audit")(admin.audit)
app.command("simulate", epilog=simulate.EPILOG)(simulate.simulate)


def main() -> None:
    app()
