"""What every server process does: claim its listening ports with a one-line error for a
user's mistake, and run until SIGTERM or SIGINT. Imports nothing of the API."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from broker.server import CredBroker


async def until_signal(*tasks: asyncio.Future[Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def cannot_listen(what: str, reason: object, flag: str) -> NoReturn:
    """A port clash (or any failure to listen) is a user's error, said in one line."""
    typer.echo(
        f"error: {what} cannot listen: {reason} (is the port taken? choose another with {flag})",
        err=True,
    )
    raise typer.Exit(1)


def bind_http(host: str, port: int, flag: str = "--http-port") -> list[socket.socket]:
    """Bound sockets for the API on every address of HOST (as asyncio's create_server
    would), made before anything else starts so that a taken port stops the process
    cleanly; uvicorn turns its own bind failure into a traceback and exit 3."""
    bound: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in bound:
            sock.close()
        cannot_listen("the API", f"{host}:{port}: {exc.strerror or exc}", flag)
    return bound


async def start_broker(broker: CredBroker) -> None:
    from amqtt.errors import BrokerError

    amqtt_log = logging.getLogger("amqtt.broker")
    level = amqtt_log.level
    amqtt_log.setLevel(logging.CRITICAL)  # it logs a traceback for a port in use
    try:
        await broker.start()
    except BrokerError as exc:
        cannot_listen("the MQTT broker", exc.__cause__ or exc, "--mqtt-port")
    finally:
        amqtt_log.setLevel(level)


def check_tls(
    cert: Path | None,
    key: Path | None,
    client_ca: Path | None = None,
    https_port: int | None = None,
) -> None:
    """Both or neither, a pair that loads, a client CA and an HTTPS port only with them
    and a CA that loads: said in one line, before anything starts (uvicorn and amqtt
    would fail later, with a traceback)."""
    if cert is None and key is None:
        for flag, value in (("--https-port", https_port), ("--client-ca", client_ca)):
            if value is not None:
                typer.echo(f"error: {flag} needs --tls-cert and --tls-key", err=True)
                raise typer.Exit(2)
        return
    if cert is None or key is None:
        typer.echo("error: --tls-cert and --tls-key go together", err=True)
        raise typer.Exit(2)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        typer.echo(f"error: cannot use {cert} and {key} for TLS: {exc}", err=True)
        raise typer.Exit(2) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            typer.echo(f"error: cannot use {client_ca} as --client-ca: {exc}", err=True)
            raise typer.Exit(2) from None
