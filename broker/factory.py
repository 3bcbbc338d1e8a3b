"""Building a `CredBroker` for a database: the embedded and the standalone shapes."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from broker.audit import SqlAudit
from broker.delivery import MAX_QUEUED_MESSAGES
from broker.metrics import BrokerStats
from broker.presence import Presence
from broker.server import CredBroker
from credbroker.decision import Authenticator
from credbroker.trust import CachedTrustStore
from credbroker.verifier import Verifier, VerifyPolicy


@dataclass(frozen=True)
class Listeners:
    host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtts_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None  # client certificates, optional, verified against it
    max_connections: int = 20_000

    def config(self) -> dict[str, Any]:
        listeners: dict[str, Any] = {
            "default": {
                "type": "tcp",
                "bind": f"{self.host}:{self.mqtt_port}",
                "max_connections": self.max_connections,
            },
        }
        if self.mqtts_port:
            if not (self.tls_cert and self.tls_key):
                raise ValueError("--mqtts-port needs --tls-cert and --tls-key")
            listeners["tls"] = {
                "type": "tcp",
                "bind": f"{self.host}:{self.mqtts_port}",
                "ssl": True,
                "certfile": str(self.tls_cert),
                "keyfile": str(self.tls_key),
                "max_connections": self.max_connections,
            }
            # amqtt asks for a client certificate (optional) and verifies one against
            # this CA; without one, against the system's CAs (a certificate grants
            # nothing yet: the MQTT password does).
            if self.client_ca is not None:
                listeners["tls"]["cafile"] = str(self.client_ca)
        # No plugins: authentication and ACL run inside CredBroker, not through amqtt's
        # plugin manager (a task per check) nor its default logger plugins.
        return {"listeners": listeners, "plugins": {}, "timeout_disconnect_delay": 0}


def quiet_logs() -> None:
    """amqtt and transitions log every state change at INFO."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_broker(
    *,
    engine: Engine,
    policy: VerifyPolicy,
    listeners: Listeners,
    max_violations: int = 10,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    registry: CollectorRegistry | None = None,
    follow_log: bool = True,
    on_tls_context: Callable[[ssl.SSLContext], None] | None = None,
) -> CredBroker:
    """Call inside a running event loop (amqtt's Broker needs one).

    Args:
        max_queued_messages: QoS 1 and 2 messages kept per offline persistent session;
            past it the oldest is dropped (and counted in /metrics).
        follow_log: False when the caller feeds `CredBroker.changed` itself (the
            embedded shape: the API's bus).
        on_tls_context: told of each MQTTS listener's context (the embedded shape
            loads the fleet CAs into it).
    """
    quiet_logs()
    trust = CachedTrustStore(engine)
    return CredBroker(
        listeners.config(),
        authenticator=Authenticator(Verifier(policy, trust), policy.leeway),
        trust=trust,
        audit=SqlAudit(engine),
        max_violations=max_violations,
        max_queued_messages=max_queued_messages,
        stats=BrokerStats(registry),
        poll_interval=1.0 if follow_log else None,
        presence=Presence(engine) if follow_log else None,
        on_tls_context=on_tls_context,
    )
