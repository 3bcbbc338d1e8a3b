"""The `credbroker` command. Subcommands import their heavy dependencies lazily."""

from __future__ import annotations

import typer

from credbroker.cli import certs, keys, operator, server, simulate

app = typer.Typer(
    name="credbroker",
    no_args_is_help=True,
    add_completion=False,
    help="Credential broker for IoT fleets on MQTT.",
)
app.command("up")(server.up)
app.command("api")(server.api)
app.command("broker")(server.broker)
app.command("keygen")(keys.keygen)
app.command("certs")(certs.certs)
app.add_typer(operator.fleet_app, name="fleet")
app.add_typer(operator.device_app, name="device")
app.add_typer(operator.token_app, name="token")
app.command("simulate", epilog=simulate.EPILOG)(simulate.simulate)


def main() -> None:
    app()
