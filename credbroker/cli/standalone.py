"""`credbroker broker`: a standalone MQTT broker on the API's database. Imports neither
FastAPI nor SQLModel (a test checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from credbroker import heap
from credbroker.cli.lifecycle import start_broker, until_signal

if TYPE_CHECKING:
    from broker.factory import Listeners
    from broker.settings import BrokerSettings


async def run_broker(
    settings: BrokerSettings, listeners: Listeners, *, max_queued_messages: int
) -> None:
    from broker.factory import build_broker, fleet_anchors
    from credbroker.database import create_db_engine
    from credbroker.verifier import VerifyPolicy

    engine = create_db_engine(settings.effective_database_url)
    policy = VerifyPolicy(
        issuer=settings.effective_issuer, audience=settings.audience, leeway=settings.leeway
    )
    broker = build_broker(
        engine=engine,
        policy=policy,
        listeners=listeners,
        max_queued_messages=max_queued_messages,
        on_tls_context=fleet_anchors(engine).watch,
    )
    await start_broker(broker)
    heap.settle()
    typer.echo(f"credbroker broker: MQTT {listeners.host}:{listeners.mqtt_port}", err=True)
    try:
        await until_signal()
    finally:
        await broker.shutdown()
