"""Authentication and ACL for existing brokers that ask over HTTP (RabbitMQ, EMQX,
mosquitto-go-auth, VerneMQ): the embedded broker's own `Authenticator` and `Grant`,
with verified grants cached per connection.

A CONNECT is verified once per (client id, token) and the grant kept until the token
expires; a revocation heard on this process's bus drops it at once. Publish and
subscribe checks carry no token, only the client id: they use the grant of that client
id's latest accepted CONNECT: from this process's cache, else from `SharedGrants` (the
database), since another API process may have answered the CONNECT. No grant: refused.
Other processes' revocations arrive through the revocation log (`apply_log`).
RabbitMQ maps topics to routing keys: `routing_key_to_topic` undoes it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from threading import Lock
from typing import Protocol

from broker.auth import Authenticator, Grant, Refusal
from broker.trust import Revoked
from credbroker.topics import is_valid_topic

MAX_CACHED = 200_000
KEY_TTL = 5.0  # seconds an accepted hook key is taken on trust


class SharedGrants(Protocol):
    def save(self, client_id: str, grant: Grant) -> None: ...

    def load(self, client_id: str) -> Grant | None: ...


class HookAuthority:
    def __init__(
        self,
        authenticator: Authenticator,
        shared: SharedGrants,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authenticator = authenticator
        self.shared = shared
        self.clock = clock
        self._lock = Lock()  # FastAPI runs sync routes on a thread pool
        self._by_token: dict[tuple[str, bytes], Grant] = {}
        self._by_client: dict[str, Grant] = {}
        self._keys: dict[bytes, float] = {}  # sha256(Authorization header) -> until

    def known_key(self, authorization: str) -> bool:
        until = self._keys.get(hashlib.sha256(authorization.encode()).digest(), 0.0)
        return until > self.clock()

    def remember_key(self, authorization: str) -> None:
        if len(self._keys) > 1000:  # a handful of brokers: anything more is noise
            self._keys.clear()
        self._keys[hashlib.sha256(authorization.encode()).digest()] = self.clock() + KEY_TTL

    def connect(
        self, *, client_id: str, username: str, password: str, address: str
    ) -> Grant | Refusal:
        key = (client_id, hashlib.sha256(password.encode()).digest())
        with self._lock:
            cached = self._by_token.get(key)
        if cached is not None and cached.exp > self.clock():
            with self._lock:
                self._by_client[client_id] = cached
            return cached
        decision = self.authenticator.authenticate(
            client_id=client_id, username=username, password=password, address=address
        )
        if isinstance(decision, Grant):
            self.shared.save(client_id, decision)
            with self._lock:
                if len(self._by_token) >= MAX_CACHED:
                    self._drop_expired()
                self._by_token[key] = decision
                self._by_client[client_id] = decision
        return decision

    def grant(self, client_id: str, username: str | None = None) -> Grant | None:
        """The live grant of a connected client id (and its username, if given)."""
        with self._lock:
            grant = self._by_client.get(client_id)
        if grant is None:
            grant = self.shared.load(client_id)  # the CONNECT went to another process
            if grant is not None:
                with self._lock:
                    self._by_client[client_id] = grant
        if grant is None or grant.exp <= self.clock():
            return None
        if username is not None and username != grant.device_id:
            return None
        return grant

    def may_publish(self, client_id: str, topic: str, username: str | None = None) -> bool:
        grant = self.grant(client_id, username)
        return grant is not None and is_valid_topic(topic) and grant.may_publish(topic)

    def may_subscribe(self, client_id: str, topic_filter: str, username: str | None = None) -> bool:
        grant = self.grant(client_id, username)
        return grant is not None and grant.may_subscribe(topic_filter)

    def revoked(self, device_id: str, jti: str | None) -> None:
        """Drop cached grants of a device (all of them, or one token's)."""
        self.apply_log([Revoked(device_id, jti)])

    def apply_log(self, entries: Iterable[Revoked]) -> None:
        """Drop the grants the revocations kill: one pass over the caches per batch,
        however many entries (the log read brings them a second's worth at a time)."""
        devices, jtis = set(), set()
        for entry in entries:
            if entry.jti is None:
                devices.add(entry.device_id)
            else:
                jtis.add(entry.jti)
        if not devices and not jtis:
            return

        def dead(grant: Grant) -> bool:
            return grant.device_id in devices or grant.jti in jtis

        with self._lock:
            for key in [k for k, g in self._by_token.items() if dead(g)]:
                del self._by_token[key]
            for client in [c for c, g in self._by_client.items() if dead(g)]:
                del self._by_client[client]

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, g in self._by_token.items() if g.exp <= now]:
            del self._by_token[key]
        for client in [c for c, g in self._by_client.items() if g.exp <= now]:
            del self._by_client[client]
        while len(self._by_token) >= MAX_CACHED:  # all live: the oldest go first
            del self._by_token[next(iter(self._by_token))]


def routing_key_to_topic(routing_key: str) -> str:
    """RabbitMQ's MQTT plugin turns `/` into `.` and `+` into `*` (device ids may
    contain neither `.` nor `*`, so the mapping back is exact for our topics)."""
    return "/".join("+" if level == "*" else level for level in routing_key.split("."))
