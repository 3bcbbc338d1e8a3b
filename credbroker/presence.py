"""Live MQTT connections as a broker reports them, for `GET /v1/devices/{id}/sessions`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

STALE = 5  # seconds without a heartbeat after which a standalone broker's rows are ignored


@dataclass(frozen=True, slots=True)
class Connection:
    broker: str  # "embedded", or a standalone broker's id
    client_id: str
    address: str
    since: float  # when its CONNECT was accepted
    protocol: str
    jti: str  # the access token it presented: its refresh family is found through it
    expires_at: float  # when the broker ends it (token exp plus leeway)


Connections = Callable[[str], list[Connection]]  # a device id -> its live connections


def none(_: str) -> list[Connection]:
    """No broker in this process."""
    return []
