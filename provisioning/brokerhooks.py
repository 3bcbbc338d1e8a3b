"""Authentication and ACL for existing brokers that ask over HTTP (RabbitMQ, EMQX,
mosquitto-go-auth, VerneMQ): the shared `Authenticator` and `Grant`, with verified
grants cached per connection.

A CONNECT is verified once per (client id, username, token) and the grant kept until
the token expires. Publish and subscribe checks carry no token, only the client id:
they use the grant of that client id's latest accepted CONNECT, from this process's
cache, else from `SharedGrants` (the database), since another API process may have
answered the CONNECT. No grant: refused.

A cached grant holds standing, so it is checked again (`Authenticator.standing`) when
it comes from the database, when its device's standing changes (this process's bus,
or the revocation log that every process reads each second), and at least every
`STANDING_TTL` seconds whatever happens. RabbitMQ maps topics to routing keys:
`routing_key_to_topic` undoes it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import Protocol, TypeVar

from credbroker import proof
from credbroker.decision import Authenticator, Grant, Refusal
from credbroker.trust import STANDING_TTL, Change
from provisioning.models.bounds import storable

MAX_CACHED = 200_000
KEY_TTL = 5.0  # seconds an accepted hook key is taken on trust
K = TypeVar("K")


class SharedGrants(Protocol):
    def save(self, client_id: str, grant: Grant, username: str | None) -> None: ...

    def load(self, client_id: str) -> tuple[Grant, str | None] | None: ...


@dataclass(frozen=True, slots=True)
class _Cached:
    grant: Grant
    checked_until: float  # standing is checked again after this
    # The username its CONNECT was accepted with: the device id, or anything for a
    # device-signed token (Cloud IoT Core devices send "unused", README, Token formats).
    username: str | None = None


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
        self._by_login: dict[tuple[str, str, bytes], _Cached] = {}
        self._by_client: dict[str, _Cached] = {}
        self._keys: dict[bytes, float] = {}  # sha256(Authorization header) -> until
        self._epoch = 0  # counts the batches of changes heard (see `_entry`)

    def known_key(self, authorization: str) -> bool:
        until = self._keys.get(hashlib.sha256(authorization.encode()).digest(), 0.0)
        return until > self.clock()

    def remember_key(self, authorization: str, *, expires_at: int | None = None) -> None:
        if len(self._keys) > 1000:  # a handful of brokers: anything more is noise
            self._keys.clear()
        until = self.clock() + KEY_TTL
        if expires_at is not None:
            until = min(until, expires_at)
        self._keys[hashlib.sha256(authorization.encode()).digest()] = until

    def remembers_keys(self) -> bool:
        return bool(self._keys)

    def forget_keys(self) -> None:
        """An admin key was revoked: every hook key is checked again at its next use
        (a handful of keys, one read each)."""
        self._keys.clear()

    def connect(
        self, *, client_id: str, username: str, password: str, address: str | None
    ) -> Grant | Refusal:
        """Decide a CONNECT; `address` is the client's as the broker reports it (never
        the broker's own: one attacker's guesses would lock out every device behind it)."""
        login = (client_id, username, hashlib.sha256(password.encode()).digest())
        # A password with a proof of possession is good for one CONNECT: never answered
        # from the login cache, where a replay would find it (credbroker.proof).
        single_use = proof.SEPARATOR in password
        epoch = self._epoch
        with self._lock:
            cached = None if single_use else self._by_login.get(login)
        grant = self._still_good(cached) if cached else None
        if grant is None:
            decision = self.authenticator.authenticate(
                client_id=client_id, username=username, password=password, address=address
            )
            if not isinstance(decision, Grant):
                return decision
            # The username, for the other processes, only where it is not the device id.
            other = username if username != decision.device_id and _fits(username) else None
            self.shared.save(client_id, decision, other)
            grant, cached = decision, None
        if cached is None or cached.checked_until <= self.clock():
            cached = self._entry(grant, epoch)
        cached = _Cached(cached.grant, cached.checked_until, username)
        with self._lock:
            if len(self._by_login) >= MAX_CACHED:
                self._drop_expired()
            if not single_use:
                self._by_login[login] = cached
            self._by_client[client_id] = cached
        return grant

    def grant(self, client_id: str, username: str | None = None) -> Grant | None:
        """The live grant of a connected client id (and its username, if given)."""
        epoch = self._epoch
        with self._lock:
            cached = self._by_client.get(client_id)
        if cached is None:
            loaded = self.shared.load(client_id)  # the CONNECT went to another process
            if loaded is None:
                return None
            cached = _Cached(loaded[0], 0.0, loaded[1])  # checked below, before any use
        grant = self._still_good(cached)
        with self._lock:
            if grant is None:
                self._by_client.pop(client_id, None)
            elif cached.checked_until <= self.clock():
                self._by_client[client_id] = self._entry(grant, epoch, cached.username)
        if grant is None or username not in (None, grant.device_id, cached.username):
            return None
        return grant

    def _still_good(self, cached: _Cached) -> Grant | None:
        """The grant if unexpired and, once its check is due, still standing."""
        now = self.clock()
        if cached.grant.exp <= now:
            return None
        if cached.checked_until <= now and self.authenticator.standing(cached.grant):
            return None
        return cached.grant

    def _entry(self, grant: Grant, epoch: int, username: str | None = None) -> _Cached:
        """A grant just checked; if a change arrived meanwhile, the check may have read
        the standing from before it: then it is due again at its next use."""
        fresh = self._epoch == epoch
        return _Cached(grant, self.clock() + STANDING_TTL if fresh else 0.0, username)

    def may_publish(self, client_id: str, topic: str, username: str | None = None) -> bool:
        grant = self.grant(client_id, username)
        return grant is not None and grant.may_publish(topic)

    def may_subscribe(self, client_id: str, topic_filter: str, username: str | None = None) -> bool:
        grant = self.grant(client_id, username)
        return grant is not None and grant.may_subscribe(topic_filter)

    def changed(self, changes: list[Change]) -> None:
        """Changes of standing: grants of revoked tokens go; grants of devices whose
        standing changed are checked again at their next use. One pass over the caches
        per batch, however many changes (the log brings a second's worth at a time)."""
        devices = {c.device_id for c in changes if c.jti is None}
        jtis = {c.jti for c in changes if c.jti is not None}

        def dead(entry: _Cached) -> bool:
            return entry.grant.jti in jtis

        def stale(entry: _Cached) -> _Cached | None:
            if entry.grant.device_id not in devices:
                return None
            return _Cached(entry.grant, 0.0, entry.username)

        with self._lock:
            self._epoch += 1
            _sweep(self._by_login, dead, stale)
            _sweep(self._by_client, dead, stale)

    def _drop_expired(self) -> None:
        now = self.clock()

        def expired(entry: _Cached) -> bool:
            return entry.grant.exp <= now

        _sweep(self._by_login, expired)
        _sweep(self._by_client, expired)
        while len(self._by_login) >= MAX_CACHED:  # all live: the oldest go first
            del self._by_login[next(iter(self._by_login))]


def _sweep(
    cache: dict[K, _Cached],
    drop: Callable[[_Cached], bool],
    replace: Callable[[_Cached], _Cached | None] = lambda _: None,
) -> None:
    """Delete the entries `drop` says, and swap in what `replace` gives for the rest."""
    for key, entry in list(cache.items()):
        if drop(entry):
            del cache[key]
        elif (new := replace(entry)) is not None:
            cache[key] = new


def routing_key_to_topic(routing_key: str) -> str:
    """RabbitMQ's MQTT plugin turns `/` into `.` and `+` into `*` (device ids may
    contain neither `.` nor `*`, so the mapping back is exact for our topics)."""
    return "/".join("+" if level == "*" else level for level in routing_key.split("."))


def _fits(username: str) -> bool:
    """A username `hook_grants` can keep; any other is matched in this process only."""
    return len(username) <= 128 and storable(username)
