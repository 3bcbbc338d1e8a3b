"""A standalone broker's live connections, written to the database once a second so that
`GET /v1/devices/{id}/sessions` can list them (the embedded broker is asked in-process).

Each broker has an id (host name and process id) and a heartbeat row; its connection
rows are replaced whole when its set of connections changed. Rows of a broker whose
heartbeat is older than `STALE` seconds (stopped, crashed) are ignored by readers and
removed by the next broker that starts. The API reads them in
`provisioning.store.sessions`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable

from sqlalchemy import Engine, text

from credbroker.presence import STALE, Connection

_BEAT = text("UPDATE broker_heartbeats SET seen_at = :now WHERE broker_id = :broker")
_NEW_BEAT = text("INSERT INTO broker_heartbeats (broker_id, seen_at) VALUES (:broker, :now)")
_CLEAR = text("DELETE FROM broker_connections WHERE broker_id = :broker")
_INSERT = text(
    "INSERT INTO broker_connections "
    "(broker_id, client_id, device_id, address, since, protocol, jti, expires_at) "
    "VALUES (:broker, :client_id, :device_id, :address, :since, :protocol, :jti, :expires_at)"
)
_PRUNE_CONNECTIONS = text(
    "DELETE FROM broker_connections WHERE broker_id IN "
    "(SELECT broker_id FROM broker_heartbeats WHERE seen_at < :before)"
)
_PRUNE_BEATS = text("DELETE FROM broker_heartbeats WHERE seen_at < :before")


def broker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


class Presence:
    """Called from a worker thread by the broker's log poller, once a second."""

    def __init__(self, engine: Engine, broker: str | None = None) -> None:
        self.engine = engine
        self.broker = broker or broker_id()
        self._written: frozenset[Connection] | None = None
        self._started = False

    def write(self, connections: Iterable[Connection]) -> None:
        now = time.time()
        current = frozenset(connections)
        with self.engine.begin() as conn:
            if not self._started:
                conn.execute(_PRUNE_CONNECTIONS, {"before": int(now - STALE)})
                conn.execute(_PRUNE_BEATS, {"before": int(now - STALE)})
                conn.execute(_CLEAR, {"broker": self.broker})
                conn.execute(_NEW_BEAT, {"broker": self.broker, "now": int(now)})
                self._started = True
            else:
                conn.execute(_BEAT, {"broker": self.broker, "now": int(now)})
            if current != self._written:
                conn.execute(_CLEAR, {"broker": self.broker})
                rows = [
                    {
                        "broker": self.broker,
                        "client_id": c.client_id,
                        "device_id": c.client_id,  # one client id per device
                        "address": c.address[:64],
                        "since": int(c.since),
                        "protocol": c.protocol,
                        "jti": c.jti,
                        "expires_at": int(c.expires_at),
                    }
                    for c in current
                ]
                if rows:
                    conn.execute(_INSERT, rows)
        self._written = current
