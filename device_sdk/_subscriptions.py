"""`Subscription`: the broker's answer to a SUBSCRIBE, as paho's `MQTTMessageInfo` is
to a PUBLISH.

MQTT 3.1.1 section 3.9.3: the SUBACK carries, per filter, the granted QoS (0, 1 or 2)
or 0x80, failure; credbroker answers 0x80 to a filter outside the token's `acl.sub`.
A subscription outlives connections: `DeviceClient` sends it again after a reconnect
that lost the session (or before any answer came), and the newest answer replaces the
last, so the object always tells what the broker holds now.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from device_sdk._errors import DeviceSDKError, SubscriptionRefused

FAILURE = 0x80  # MQTT 3.1.1 section 3.9.3


class Subscription:
    """One topic filter of `DeviceClient.subscribe` and the broker's answer to it.

    Attributes:
        topic_filter: the filter subscribed to.
        qos: the QoS asked for; the broker may grant less (`granted_qos`).
    """

    def __init__(self, topic_filter: str, qos: int) -> None:
        self.topic_filter = topic_filter
        self.qos = qos
        self._answered = threading.Event()
        self._outcome: int | DeviceSDKError = FAILURE  # granted QoS, or why not
        self.confirmed = False  # the broker answered the SUBSCRIBE sent last (SDK-internal)

    def __repr__(self) -> str:
        if not self._answered.is_set():
            state = "pending"
        elif isinstance(self._outcome, int):
            state = f"granted QoS {self._outcome}"
        else:
            state = "refused" if self.refused else "failed"
        return f"<Subscription {self.topic_filter!r} {state}>"

    @property
    def done(self) -> bool:
        """True once the broker answered (or the client stopped before it did)."""
        return self._answered.is_set()

    @property
    def granted_qos(self) -> int | None:
        """The QoS the broker granted; None before its answer and when it refused."""
        if self._answered.is_set() and isinstance(self._outcome, int):
            return self._outcome
        return None

    @property
    def refused(self) -> bool:
        """True when the broker's latest answer was 0x80 (outside the fleet's ACL)."""
        return self._answered.is_set() and isinstance(self._outcome, SubscriptionRefused)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the broker's answer and return the granted QoS.

        Args:
            timeout: seconds to wait; None waits as long as it takes.

        Raises:
            SubscriptionRefused: the broker refused the filter (SUBACK 0x80).
            DeviceSDKError: the client stopped before the broker answered (its `error`).
            TimeoutError: no answer within `timeout` (the subscription stays pending).
        """
        if not self._answered.wait(timeout):
            raise TimeoutError(f"no SUBACK for {self.topic_filter!r} within {timeout} s")
        if isinstance(self._outcome, DeviceSDKError):
            raise self._outcome
        return self._outcome

    # -- the client's side (paho's network thread, or the caller's) -----------------------

    def answer(self, codes: Sequence[int]) -> None:
        """Record a SUBACK's return code for this filter (one filter per SUBSCRIBE)."""
        code = codes[0] if len(codes) == 1 else FAILURE  # a SUBACK for one filter has one
        self._outcome = SubscriptionRefused(self.topic_filter) if code >= FAILURE else code
        self.confirmed = True
        self._answered.set()

    def abandon(self, error: DeviceSDKError) -> None:
        """The client stopped: wake the waiters of a subscription never answered."""
        if not self._answered.is_set():
            self._outcome = error
            self._answered.set()
