"""What every server process does: start its broker with a one-line error for a user's
mistake, and run until SIGTERM or SIGINT. Imports nothing of the API."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

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


async def start_broker(broker: CredBroker) -> None:
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
