"""What a device does after each answer from the broker or the token endpoint.

No I/O here: the threaded `DeviceClient` and the simulators' asyncio devices follow the
same rules.

- CONNACK 0: reset the backoff.
- CONNACK 3 (the key store is unreachable): keep the token, back off, try again.
- CONNACK 4 or 5: renew the token once and try again; refused again, stop. A revoked
  device must not hammer the broker.
- Connection lost: back off, renew first if the token has expired.
- MQTT 5.0 says why (MQTT 5.0 section 2.4): its CONNACK reasons are read as their
  3.1.1 counterparts (0x86 as 4, 0x87 as 5, 0x88 and 0x9F as 3); 0x8C (this SDK's
  authentication method refused) stops. A DISCONNECT from the server: 0xA0 (the
  token expired) renews and reconnects at once; 0x87 (revoked, disabled, or a refused
  re-authentication) renews once, as CONNACK 5 does, so the token endpoint says whether
  the device is still wanted; 0x98 (an operator ended the session or its tokens) renews
  after a backoff; 0x8E (another connection took this client id) tries again after at
  least `TAKE_BACK_AFTER` seconds: stopping would let whoever holds a copy of the
  token keep the device offline for good, and the pause keeps two clients with one id
  from trading the session many times a second; anything else is a lost connection.
- Token endpoint unreachable, 5xx or 429: back off, at least `Retry-After`.
- Token endpoint refuses for good (any other 4xx, `DeviceRevoked` among them): stop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from device_sdk._errors import ConnectError, DeviceSDKError, TokenError

CONNACK_REASONS = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

# MQTT 5.0 section 2.4: the reason codes credbroker sends, by name.
REASONS_5 = {
    0x00: "success",
    0x80: "unspecified error",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8E: "session taken over",
    0x98: "administrative action",
    0x9F: "connection rate exceeded",
    0xA0: "maximum connect time",
}
# A 5.0 CONNACK reason as the 3.1.1 return code that means the same (section 3.2.2.2).
_AS_311 = {0x86: 4, 0x87: 5, 0x88: 3, 0x89: 3, 0x9F: 3}
NOT_AUTHORIZED, TAKEN_OVER, ADMINISTRATIVE, EXPIRED = 0x87, 0x8E, 0x98, 0xA0
TAKE_BACK_AFTER = 10.0  # s, at least, after a take-over (0x8E)


def reason_name(code: int | None) -> str:
    """What a 3.1.1 return code (0 to 5) or a 5.0 reason code (0x80 up) means."""
    if code is None:
        return "connection lost"
    known = CONNACK_REASONS if code < 0x80 else REASONS_5
    return known.get(code, f"reason {code:#04x}")


# paho reports a 3.1.1 CONNACK code as an MQTT 5 reason whose name we map back.
_PAHO_REASONS = {
    "Success": 0,
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}


def connack_code(reason: object) -> int:
    """The MQTT 3.1.1 return code behind paho's `ReasonCode` (-1 if unknown)."""
    return _PAHO_REASONS.get(str(reason), -1)


@dataclass(frozen=True)
class Step:
    """`retry` with the current token, `renew` the token first, or `stop` with `error`."""

    action: Literal["retry", "renew", "stop"]
    delay: float = 0.0
    error: DeviceSDKError | None = None


class Backoff:
    """Exponential backoff with full jitter: wait uniformly in [0, min(cap, base * 2**n))."""

    def __init__(
        self, base: float = 0.5, cap: float = 60.0, rng: Callable[[], float] = random.random
    ) -> None:
        self.base, self.cap, self._rng = base, cap, rng
        self.attempts = 0

    def next(self, at_least: float = 0.0) -> float:
        ceiling = min(self.cap, self.base * 2.0**self.attempts)
        self.attempts += 1
        return at_least + ceiling * self._rng()

    def reset(self) -> None:
        self.attempts = 0


class Policy:
    """Args:
    refresh_at: fraction of the token lifetime at which to refresh.
    jitter: +/- fraction around `refresh_at`, so a fleet does not refresh at once.
    backoff: the backoff for failures.
    """

    def __init__(
        self,
        *,
        refresh_at: float = 0.8,
        jitter: float = 0.1,
        backoff: Backoff | None = None,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.refresh_at, self.jitter = refresh_at, jitter
        self.backoff = backoff or Backoff()
        self._uniform = rng
        self._renewed_after_refusal = False

    def refresh_in(self, expires_in: float) -> float:
        """Seconds from a token's arrival until its jittered refresh point."""
        return expires_in * self._uniform(
            self.refresh_at - self.jitter, self.refresh_at + self.jitter
        )

    def connected(self) -> None:
        self.backoff.reset()
        self._renewed_after_refusal = False

    def refused(self, code: int) -> Step:
        """After a refused CONNACK: a 3.1.1 return code, or a 5.0 reason code."""
        meaning = _AS_311.get(code, code)
        if meaning == 3:
            return Step("retry", self.backoff.next())
        if meaning in (4, 5) and not self._renewed_after_refusal:
            self._renewed_after_refusal = True
            return Step("renew")
        return Step("stop", error=self._refusal(code))

    def lost(self, *, token_expired: bool) -> Step:
        return Step("renew" if token_expired else "retry", self.backoff.next())

    def cut(self, code: int, *, token_expired: bool) -> Step:
        """After the server's MQTT 5.0 DISCONNECT with reason `code`."""
        if code == EXPIRED:
            return Step("renew")
        if code == NOT_AUTHORIZED and not self._renewed_after_refusal:
            self._renewed_after_refusal = True
            return Step("renew")
        if code == NOT_AUTHORIZED:
            return Step("stop", error=self._refusal(code))
        if code == TAKEN_OVER:
            return Step("retry", self.backoff.next(at_least=TAKE_BACK_AFTER))
        if code == ADMINISTRATIVE:
            return Step("renew", self.backoff.next())
        return self.lost(token_expired=token_expired)

    @staticmethod
    def _refusal(code: int) -> ConnectError:
        text = f"{code:#04x}" if code >= 0x80 else str(code)
        return ConnectError(f"broker refused: {reason_name(code)} ({text})", return_code=code)

    def token_failed(self, exc: TokenError) -> Step:
        if not exc.transient:
            return Step("stop", error=exc)
        return Step("renew", self.backoff.next(at_least=exc.retry_after or 0.0))
