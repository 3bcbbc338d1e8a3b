"""`credbroker up` (the embedded stack) and `credbroker api` (the scaled shape's API)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

HostOpt = Annotated[str, typer.Option("--host", envvar="CREDBROKER_HOST")]
HttpPortOpt = Annotated[int, typer.Option("--http-port", envvar="CREDBROKER_HTTP_PORT")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="CREDBROKER_DATA_DIR")]


def _bootstrap_admin_key(app: FastAPI, data_dir: Path) -> None:
    """With no admin key configured or stored, make one, print it once, save it 0600."""
    from provisioning.db import transaction
    from provisioning.models.admin import ALL_SCOPES, AdminKeyCreate
    from provisioning.services import Services
    from provisioning.store import admin

    services: Services = app.state.services
    with transaction(services.engine) as session:
        if admin.any_active(session=session):
            return
        _, key = admin.create(
            session=session,
            now=services.now(),
            actor=None,
            admin_key_create=AdminKeyCreate(name="bootstrap", scopes=list(ALL_SCOPES)),
        )
    path = data_dir / "admin.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    typer.echo(f"admin API key (shown once, also saved to {path}):\n{key}", err=True)


def _serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        date_header=False,  # our RequestGuard sets Date, on every response
        server_header=False,
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to whatever
    # handler was there before it: make that one a plain exit with status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.Server(config).run()


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def up(
    host: HostOpt = "127.0.0.1",
    http_port: HttpPortOpt = 8000,
    mqtt_port: Annotated[
        int,
        typer.Option(
            "--mqtt-port",
            envvar="CREDBROKER_MQTT_PORT",
            help="MQTT listener (arrives with the broker)",
        ),
    ] = 1883,
    data_dir: DataDirOpt = Path("./credbroker-data"),
) -> None:
    """Run the embedded stack in one process: the API on SQLite in DATA_DIR."""
    from provisioning import Settings, create_app

    settings = Settings(host=host, http_port=http_port, data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    _bootstrap_admin_key(app, data_dir)
    typer.echo(
        f"credbroker API on http://{host}:{http_port} (issuer "
        f"{settings.effective_issuer}); data in {data_dir}",
        err=True,
    )
    _serve(app, host, http_port, settings.log_level)


def api(
    host: HostOpt = "127.0.0.1",
    http_port: HttpPortOpt = 8000,
    data_dir: DataDirOpt = Path("./credbroker-data"),
) -> None:
    """Run the API alone (scaled shape: point CREDBROKER_DATABASE_URL at PostgreSQL)."""
    from provisioning import Settings, create_app

    settings = Settings(host=host, http_port=http_port, data_dir=data_dir)
    _serve(create_app(settings), host, http_port, settings.log_level)
