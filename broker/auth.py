"""CONNECT authentication: the token in the password, checked by the shared verifier.

MQTT 3.1.1 CONNACK codes (DESIGN.md, MQTT contract): 4 bad credentials, 5 not
authorized (device disabled or revoked), 3 key store unreachable. Repeated refusals
from one address or for one client id are answered early, for a growing interval,
without any key lookup or signature check.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from credbroker.claims import AccessClaims
from credbroker.topics import any_contains, any_matches
from credbroker.verifier import TokenRejected, Verifier

BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5
SERVER_UNAVAILABLE = 3

PENALTY_START = 1.0
# Many devices may share one NAT address, and a client id may be a victim's: both get
# some free failures, and the client id only a short penalty.
FREE_FAILURES = {"addr": 20, "client": 5}
PENALTY_MAX = {"addr": 60.0, "client": 10.0}
FORGET_AFTER = 300.0  # a key quiet this long starts again from zero
# Refusals of tokens whose signature verified: a real device that is late (expired) or
# revoked, not someone guessing. They count against the client id only: an overloaded
# moment, where many devices behind one address present expired tokens, must not lock
# the whole address out (the simulator's 1,000-device refresh storm did exactly that).
GENUINE_TOKEN_REASONS = frozenset(
    {"expired", "not_yet_valid", "device_revoked", "device_disabled", "revoked"}
)
_MAX_TRACKED = 50_000


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified CONNECT may do, kept with the session: no decoding after this."""

    device_id: str
    jti: str
    exp: float
    pub: tuple[str, ...]
    sub: tuple[str, ...]

    def may_publish(self, topic: str) -> bool:
        return any_matches(self.pub, topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        return any_contains(self.sub, topic_filter)


@dataclass(frozen=True, slots=True)
class Refusal:
    return_code: int
    reason: str


class PenaltyBox:
    """Refused CONNECTs per key, with an interval that doubles after a few failures."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    def blocked(self, *keys: tuple[str, str]) -> bool:
        now = self._clock()
        return any(self._entries.get(key, (0, 0.0))[1] > now for key in keys)

    def failed(self, *keys: tuple[str, str]) -> None:
        now = self._clock()
        for key in keys:
            failures, until = self._entries.pop(key, (0, 0.0))
            failures = 1 if now - until > FORGET_AFTER else failures + 1
            free, wait = FREE_FAILURES[key[0]], 0.0
            if failures > free:
                wait = min(PENALTY_START * 2 ** (failures - free - 1), PENALTY_MAX[key[0]])
            self._entries[key] = (failures, now + wait)
        while len(self._entries) > _MAX_TRACKED:
            self._entries.popitem(last=False)

    def succeeded(self, client_id: str) -> None:
        self._entries.pop(("client", client_id), None)


class Authenticator:
    def __init__(self, verifier: Verifier, leeway: int) -> None:
        self.verifier = verifier
        self.leeway = leeway
        self.penalties = PenaltyBox()

    def authenticate(
        self, *, client_id: str | None, username: str | None, password: str | None, address: str
    ) -> Grant | Refusal:
        keys = [("addr", address)] + ([("client", client_id)] if client_id else [])
        if self.penalties.blocked(*keys):
            return Refusal(BAD_CREDENTIALS, "throttled")
        if not client_id or not username or not password:
            self.penalties.failed(*keys)
            return Refusal(BAD_CREDENTIALS, "missing_credentials")
        try:
            claims = self.verifier.verify(password, client_id=client_id, username=username)
        except TokenRejected as exc:
            if exc.is_unavailable:
                return Refusal(SERVER_UNAVAILABLE, exc.reason)
            self.penalties.failed(*(keys[1:] if exc.reason in GENUINE_TOKEN_REASONS else keys))
            code = BAD_CREDENTIALS if exc.is_credential_error else NOT_AUTHORIZED
            return Refusal(code, exc.reason)
        self.penalties.succeeded(client_id)
        return grant_from(claims, self.leeway)

    def recheck(
        self, *, client_id: str | None, username: str | None, password: str | None
    ) -> Grant | Refusal:
        """Verify a live session's token again (after a device-wide change); no penalties."""
        try:
            claims = self.verifier.verify(password or "", client_id=client_id, username=username)
        except TokenRejected as exc:
            return Refusal(NOT_AUTHORIZED, exc.reason)
        return grant_from(claims, self.leeway)


def grant_from(claims: AccessClaims, leeway: int) -> Grant:
    return Grant(
        device_id=claims["sub"],
        jti=claims["jti"],
        exp=float(claims["exp"]) + leeway,
        pub=tuple(claims["acl"]["pub"]),
        sub=tuple(claims["acl"]["sub"]),
    )
