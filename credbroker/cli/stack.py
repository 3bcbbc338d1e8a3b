"""Running processes with an API: the embedded stack (API and broker on one event loop)
and the API alone (the standalone broker is `standalone.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import uvicorn

from credbroker import heap
from credbroker.cli.datadir import claim
from credbroker.cli.lifecycle import bind_http, start_broker, until_signal

if TYPE_CHECKING:
    from fastapi import FastAPI

    from broker.factory import Listeners
    from provisioning import Settings


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the stack stops API and broker together),
    saying when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    async def serving(self, sockets: list[socket.socket]) -> asyncio.Future[None]:
        """Serve on bound sockets; returns once they listen (or serving ended)."""
        serving = asyncio.ensure_future(self.serve(sockets=sockets))
        listening = asyncio.ensure_future(self.listening.wait())
        await asyncio.wait([serving, listening], return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        return serving


def bootstrap_admin_key(app: FastAPI, data_dir: Path) -> None:
    """With no admin key configured or stored, make one, print it once, save it 0600.

    The key is saved and shown before its transaction commits: if either fails, the key
    is not kept, so no operator is locked out by a key nobody saw."""
    from provisioning.models.admin import ALL_SCOPES, AdminKeyCreate
    from provisioning.store import admin

    services = app.state.services
    with services.transaction() as session:
        if admin.any_active(session=session, now=services.now()):
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


def _tls(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options: HTTPS with the pair, client certificates optional and
    verified against the client CA when there is one."""
    if not settings.https:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
    }
    if settings.tls_client_ca is not None:
        options.update(ssl_ca_certs=str(settings.tls_client_ca), ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return options


def _uvicorn(app: FastAPI, settings: Settings, tls: dict[str, Any]) -> _Server:
    from provisioning import httpprotocol

    return _Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.http_port,
            http=httpprotocol.protocol(settings.http_header_timeout),
            **tls,
            log_level=settings.log_level,
            access_log=False,
            server_header=False,
            date_header=False,  # RequestGuard sets Date on every response
        )
    )


class _Api:
    """The API's listeners, bound before anything starts: HTTP on --http-port (HTTPS
    there when the certificate comes without --https-port) and HTTPS on --https-port;
    one uvicorn server each, all serving one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        first = bind_http(settings.host, settings.http_port)
        if settings.https_port is None:
            self.bound = [(first, _tls(settings))]
        else:
            https = bind_http(settings.host, settings.https_port, "--https-port")
            self.bound = [(first, {}), (https, _tls(settings))]
        self.servers: list[_Server] = []
        self.serving: list[asyncio.Future[None]] = []

    async def start(self, app: FastAPI) -> bool:
        """Serve; True once every listener listens. A listener that asks for client
        certificates trusts the fleet CAs too (`TrustAnchors`)."""
        for sockets, tls in self.bound:
            server = _uvicorn(app, self.settings, tls)
            self.servers.append(server)
            self.serving.append(await server.serving(sockets))
            if not server.listening.is_set():
                return False
            context = server.config.ssl
            if context is not None and context.verify_mode != ssl.CERT_NONE:
                app.state.services.anchors.watch(context)
        return True

    async def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        await asyncio.gather(*self.serving)


async def run_embedded(
    settings: Settings, listeners: Listeners, *, max_queued_messages: int
) -> None:
    from broker.factory import build_broker
    from credbroker.trust import Change
    from provisioning import create_app

    claim(settings.data_dir)
    api = _Api(settings)
    app = create_app(settings)
    services = app.state.services
    app.state.health = {"api": True, "mqtt": False}
    broker = build_broker(
        engine=services.engine,
        policy=services.verifier.policy,
        listeners=listeners,
        registry=services.metrics.registry,
        follow_log=False,  # the API's bus brings every change, its own and the log's
        max_queued_messages=max_queued_messages,
        on_tls_context=services.anchors.watch,
    )
    loop = asyncio.get_running_loop()

    def on_change(changes: list[Change]) -> None:
        # Routes run in worker threads: hand the news to the broker's loop.
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(broker.changed(changes)))

    services.bus.subscribe(on_change)
    services.connections = broker.connections
    await start_broker(broker)
    try:
        # Every port is ours now: a clash has stopped the process before any key is made.
        bootstrap_admin_key(app, settings.data_dir)
        app.state.health["mqtt"] = True
        heap.settle()
        if await api.start(app):
            typer.echo(
                f"credbroker: API {settings.effective_issuer}, MQTT "
                f"{listeners.host}:{listeners.mqtt_port}, data in {settings.data_dir}",
                err=True,
            )
            await until_signal(*api.serving)
    finally:
        await api.stop()
        await broker.shutdown()


async def run_api(settings: Settings) -> None:
    from provisioning import create_app

    claim(settings.data_dir)
    api = _Api(settings)
    app = create_app(settings)
    bootstrap_admin_key(app, settings.data_dir)
    heap.settle()
    try:
        if await api.start(app):
            await until_signal(*api.serving)
    finally:
        await api.stop()


def run_api_workers(settings: Settings, workers: int) -> None:
    """N API processes on one port (uvicorn's supervisor). The schema, master key and
    admin key are settled here first, so the workers never race to create them."""
    from provisioning import create_app, httpprotocol

    claim(settings.data_dir)
    for sock in bind_http(settings.host, settings.http_port):  # a clash said in one line
        sock.close()  # uvicorn's supervisor binds it again for its workers
    app = create_app(settings)
    bootstrap_admin_key(app, settings.data_dir)
    app.state.services.engine.dispose()
    # The workers build their Settings from the environment, as this process did.
    os.environ.update(
        CREDBROKER_HOST=settings.host,
        CREDBROKER_HTTP_PORT=str(settings.http_port),
        CREDBROKER_DATA_DIR=str(settings.data_dir),
    )
    for name, value in (
        ("CREDBROKER_TLS_CERT", settings.tls_cert),
        ("CREDBROKER_TLS_KEY", settings.tls_key),
        ("CREDBROKER_TLS_CLIENT_CA", settings.tls_client_ca),
    ):
        if value is not None:
            os.environ[name] = str(value)
    uvicorn.run(
        "provisioning.asgi:app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.http_port,
        loop="uvloop",  # without it, uvicorn's workers stall 44 ms per request (#3149)
        http=httpprotocol.protocol(settings.http_header_timeout),  # httptools, with a deadline
        **_tls(settings),
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        date_header=False,
    )
