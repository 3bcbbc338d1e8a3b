"""`credbroker broker`: a standalone MQTT broker on the API's database. Imports neither
FastAPI nor SQLModel (a test checks)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from credbroker import heap
from credbroker.cli.lifecycle import start_broker, until_signal

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from broker.factory import Listeners
    from broker.settings import BrokerSettings
    from credbroker.anchors import TrustAnchors


async def run_broker(
    settings: BrokerSettings, listeners: Listeners, *, max_queued_messages: int
) -> None:
    from broker.factory import build_broker
    from credbroker.anchors import TrustAnchors
    from credbroker.database import create_db_engine
    from credbroker.verifier import VerifyPolicy

    engine = create_db_engine(settings.effective_database_url)
    policy = VerifyPolicy(
        issuer=settings.effective_issuer, audience=settings.audience, leeway=settings.leeway
    )
    anchors = TrustAnchors()  # the fleet CAs its MQTTS listener trusts
    anchors.refresh(engine)
    broker = build_broker(
        engine=engine,
        policy=policy,
        listeners=listeners,
        max_queued_messages=max_queued_messages,
        on_tls_context=anchors.watch,
    )
    await start_broker(broker)
    heap.settle()
    typer.echo(f"credbroker broker: MQTT {listeners.host}:{listeners.mqtt_port}", err=True)
    refreshing = asyncio.create_task(_refresh(anchors, engine))
    try:
        await until_signal()
    finally:
        refreshing.cancel()
        await broker.shutdown()


async def _refresh(anchors: TrustAnchors, engine: Engine) -> None:
    """Fleet CAs registered since, by the API (README, Trust)."""
    from credbroker.anchors import REFRESH_EVERY

    while True:
        await asyncio.sleep(REFRESH_EVERY)
        await asyncio.to_thread(anchors.refresh, engine)
