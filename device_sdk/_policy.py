"""What a device does after each answer from the broker or the token endpoint.

No I/O here: the threaded `DeviceClient` and the simulators' asyncio devices follow the
same rules.

- CONNACK 0: reset the backoff.
- CONNACK 3 (the key store is unreachable): keep the token, back off, try again.
- CONNACK 4 or 5: renew the token once and try again; refused again, stop. A revoked
  device must not hammer the broker.
- Connection lost: back off, renew first if the token has expired.
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
        if code == 3:
            return Step("retry", self.backoff.next())
        if code in (4, 5) and not self._renewed_after_refusal:
            self._renewed_after_refusal = True
            return Step("renew")
        reason = CONNACK_REASONS.get(code, "unknown return code")
        return Step(
            "stop", error=ConnectError(f"broker refused: {reason} ({code})", return_code=code)
        )

    def lost(self, *, token_expired: bool) -> Step:
        return Step("renew" if token_expired else "retry", self.backoff.next())

    def token_failed(self, exc: TokenError) -> Step:
        if not exc.transient:
            return Step("stop", error=exc)
        return Step("renew", self.backoff.next(at_least=exc.retry_after or 0.0))
