"""Errors of the broker package; none of them escapes the connection it is about.

BrokerError
├── BadConnect       the first packet is not a CONNECT we can read (closed, counted)
├── Violation        a protocol violation later on (MQTT 3.1.1 section 4.8: closed)
└── ConnectionEnded  a connection ended before a message's flow finished (the message
                     stays with the session)
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of the broker package's errors."""


class BadConnect(BrokerError):
    """Not a CONNECT we can read, or take; `kind` is a short label for metrics,
    `refuse_with` the 3.1.1 CONNACK code to send, if any."""

    def __init__(
        self, reason: str, kind: str, refuse_with: int | None = None, reply: bytes = b""
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.refuse_with = refuse_with
        self.reply = reply  # an MQTT 5.0 CONNACK to send instead, as bytes


class Violation(BrokerError):
    """A protocol violation; `reason` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class ConnectionEnded(BrokerError):
    """The connection ended before a message's flow could wait for its acknowledgement;
    the message stays with the session for the next connection."""
