"""The MQTT 5.0 properties of an application message, riding on its payload through the
3.1.1 core (MQTT 5.0 section 3.3.2.3).

The core passes a PUBLISH's payload object along untouched: to live subscribers, into
offline sessions' queues and into the retained store. A 5.0 client's PUBLISH with
properties becomes a `Payload`, the same bytes carrying its `Properties`, so that
they reach every 5.0 subscriber however the message travels (a 3.1.1 subscriber gets
the bytes alone). The Message Expiry Interval becomes a deadline: a copy not sent by
then is dropped, and a copy sent carries the time left (section 3.3.2.3.3).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import mqtt5


@dataclass(frozen=True, slots=True)
class Properties:
    """What a PUBLISH says about its message, as the receiver gets it."""

    payload_format_indicator: int = 0
    expires_at: float | None = None  # time.monotonic() deadline
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    subscription_ids: tuple[int, ...] = ()  # set per copy, by the subscription it went by

    def left(self, now: float) -> int | None:
        """The Message Expiry Interval to send on, in whole seconds; None if it has none."""
        if self.expires_at is None:
            return None
        return max(0, math.ceil(self.expires_at - now))


def of_publish(packet: mqtt5.PublishPacket | mqtt5.Will) -> Properties | None:
    """A 5.0 PUBLISH's (or will's) properties, or None when it has none (most do not)."""
    expiry = packet.message_expiry_interval
    if not (
        packet.payload_format_indicator
        or expiry is not None
        or packet.content_type is not None
        or packet.response_topic is not None
        or packet.correlation_data is not None
        or packet.user_properties
    ):
        return None
    return Properties(
        payload_format_indicator=packet.payload_format_indicator,
        expires_at=None if expiry is None else time.monotonic() + expiry,
        content_type=packet.content_type,
        response_topic=packet.response_topic,
        correlation_data=packet.correlation_data,
        user_properties=tuple(packet.user_properties),
    )


class Payload(bytes):
    """A message's bytes with the properties they were published with."""

    properties: Properties  # (bytes subtypes cannot have __slots__)

    def __new__(cls, data: bytes | bytearray, properties: Properties) -> Payload:
        payload = super().__new__(cls, data)
        payload.properties = properties
        return payload


def carry(data: bytes | bytearray, properties: Properties | None) -> bytes | bytearray:
    return data if properties is None else Payload(data, properties)


def identified(data: bytes | bytearray, subscription_id: int) -> Payload:
    """A subscriber's own copy of a message, with the identifier of the subscription it
    matched (MQTT 5.0 section 3.3.4, MQTT-3.3.4-5: one per copy)."""
    said = properties(data) or Properties()
    return Payload(data, replace(said, subscription_ids=(subscription_id,)))


def properties(data: object) -> Properties | None:
    return data.properties if isinstance(data, Payload) else None


def expired(data: object, now: float | None = None) -> bool:
    """Whether a message's expiry interval has passed: no copy of it goes out any more."""
    if not isinstance(data, Payload) or data.properties.expires_at is None:
        return False
    return (time.monotonic() if now is None else now) >= data.properties.expires_at
