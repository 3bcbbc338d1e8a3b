"""Running processes: the embedded stack (API and broker on one event loop), the API
alone, and a standalone broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI

    from broker.factory import Listeners
    from broker.server import CredBroker
    from provisioning import Settings


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the stack stops API and broker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bootstrap_admin_key(app: FastAPI, data_dir: Path) -> None:
    """With no admin key configured or stored, make one, print it once, save it 0600."""
    from provisioning.models.admin import ALL_SCOPES, AdminKeyCreate
    from provisioning.store import admin

    services = app.state.services
    with services.transaction() as session:
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


def _uvicorn(app: FastAPI, settings: Settings) -> _Server:
    from provisioning import httpprotocol

    return _Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.http_port,
            http=httpprotocol.protocol(settings.http_header_timeout),
            log_level=settings.log_level,
            access_log=False,
            server_header=False,
            date_header=False,  # RequestGuard sets Date on every response
        )
    )


async def _until_signal(*tasks: asyncio.Future[Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


async def _start(broker: CredBroker) -> None:
    from amqtt.errors import BrokerError

    amqtt_log = logging.getLogger("amqtt.broker")
    level = amqtt_log.level
    amqtt_log.setLevel(logging.CRITICAL)  # it logs a traceback for a port in use
    try:
        await broker.start()
    except BrokerError as exc:  # a user's error, said in one line
        typer.echo(
            f"error: the MQTT broker cannot start: {exc.__cause__ or exc}\n"
            "(is another broker on that port? choose one with --mqtt-port)",
            err=True,
        )
        raise typer.Exit(1) from exc
    finally:
        amqtt_log.setLevel(level)


async def run_embedded(
    settings: Settings, listeners: Listeners, *, max_queued_messages: int
) -> None:
    from broker.factory import build_broker
    from credbroker.trust import Change
    from provisioning import create_app

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    app = create_app(settings)
    bootstrap_admin_key(app, settings.data_dir)
    services = app.state.services
    app.state.health = {"api": True, "mqtt": False}
    broker = build_broker(
        engine=services.engine,
        policy=services.verifier.policy,
        listeners=listeners,
        registry=services.metrics.registry,
        follow_log=False,  # the API's bus brings every change, its own and the log's
        max_queued_messages=max_queued_messages,
    )
    loop = asyncio.get_running_loop()

    def on_change(changes: list[Change]) -> None:
        # Routes run in worker threads: hand the news to the broker's loop.
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(broker.changed(changes)))

    services.bus.subscribe(on_change)
    await _start(broker)
    app.state.health["mqtt"] = True
    server = _uvicorn(app, settings)
    serving = asyncio.ensure_future(server.serve())
    typer.echo(
        f"credbroker: API http://{settings.host}:{settings.http_port}, MQTT "
        f"{listeners.host}:{listeners.mqtt_port}, data in {settings.data_dir}",
        err=True,
    )
    try:
        await _until_signal(serving)
    finally:
        server.should_exit = True
        await serving
        await broker.shutdown()


async def run_api(settings: Settings) -> None:
    from provisioning import create_app

    app = create_app(settings)
    bootstrap_admin_key(app, settings.data_dir)
    server = _uvicorn(app, settings)
    serving = asyncio.ensure_future(server.serve())
    try:
        await _until_signal(serving)
    finally:
        server.should_exit = True
        await serving


def run_api_workers(settings: Settings, workers: int) -> None:
    """N API processes on one port (uvicorn's supervisor). The schema, master key and
    admin key are settled here first, so the workers never race to create them."""
    from provisioning import create_app, httpprotocol

    app = create_app(settings)
    bootstrap_admin_key(app, settings.data_dir)
    app.state.services.engine.dispose()
    # The workers build their Settings from the environment, as this process did.
    os.environ.update(
        CREDBROKER_HOST=settings.host,
        CREDBROKER_HTTP_PORT=str(settings.http_port),
        CREDBROKER_DATA_DIR=str(settings.data_dir),
    )
    uvicorn.run(
        "provisioning.asgi:app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.http_port,
        loop="uvloop",  # without it, uvicorn's workers stall 44 ms per request (#3149)
        http=httpprotocol.protocol(settings.http_header_timeout),  # httptools, with a deadline
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        date_header=False,
    )


async def run_broker(settings: Settings, listeners: Listeners, *, max_queued_messages: int) -> None:
    from broker.factory import build_broker
    from credbroker.verifier import VerifyPolicy
    from provisioning.db import create_db_engine

    engine = create_db_engine(settings.effective_database_url)
    policy = VerifyPolicy(
        issuer=settings.effective_issuer, audience=settings.audience, leeway=settings.leeway
    )
    broker = build_broker(
        engine=engine,
        policy=policy,
        listeners=listeners,
        max_queued_messages=max_queued_messages,
    )
    await _start(broker)
    typer.echo(f"credbroker broker: MQTT {listeners.host}:{listeners.mqtt_port}", err=True)
    try:
        await _until_signal()
    finally:
        await broker.shutdown()
