"""Reading the first packet of a connection safely, before amqtt sees it.

amqtt 0.12.1 hangs on an MQTT 5 CONNECT with credentials (it misreads the properties)
and waits forever for a peer that sends nothing. Here the whole CONNECT is read with a
deadline and a size cap; a 5.0 CONNECT (level 5) is read by the `mqtt5` codec and
becomes the 3.1.1 CONNECT it means (broker/v5.py); any other level than 4 (MQTT 3.1.1)
gets CONNACK 1 (MQTT 3.1.1 section 3.2.2.3) and amqtt never parses it. A CONNECT larger than
MAX_CONNECT_BYTES is closed without a CONNACK. Every such drop is counted by its `kind`
(credbroker_mqtt_dropped_connections_total in /metrics).
"""

from __future__ import annotations

import asyncio

import mqtt5
from amqtt.adapters import ReaderAdapter

from broker import v5, v5out
from broker.errors import BadConnect
from broker.packets import remaining_length

MAX_CONNECT_BYTES = 16 * 1024  # a token is under 1 KiB; nothing honest needs more
CONNECT_TIMEOUT = 10.0
MQTT_311 = 4


class BufferReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """A ReaderAdapter over bytes already read, for amqtt's CONNECT parser."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    async def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def feed_eof(self) -> None:
        self._pos = len(self._data)


async def _exactly(reader: ReaderAdapter, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await reader.read(n - len(data))
        if not chunk:
            raise BadConnect("connection closed before CONNECT was complete", "connect_incomplete")
        data += chunk
    return data


Connect = tuple[bytes, mqtt5.ConnectPacket | None]  # the 3.1.1 CONNECT, and a 5.0 one's own


async def _read(reader: ReaderAdapter) -> Connect:
    first = await _exactly(reader, 1)
    if first[0] >> 4 != 1:
        raise BadConnect("first packet is not CONNECT", "not_connect")
    found = await remaining_length(lambda: _exactly(reader, 1))
    if found is None:
        raise BadConnect("malformed remaining length", "not_connect")
    encoded, length = found
    header = first + encoded
    if length > MAX_CONNECT_BYTES:
        raise BadConnect(
            f"CONNECT of {length} bytes is larger than {MAX_CONNECT_BYTES}", "connect_too_large"
        )
    body = await _exactly(reader, length)
    if len(body) < 7 or body[:6] != b"\x00\x04MQTT":
        raise BadConnect("not an MQTT 3.1.1 CONNECT", "unsupported_protocol", refuse_with=1)
    if body[6] == v5.MQTT_5:
        return _connect_5(header + body)
    if body[6] != MQTT_311:
        raise BadConnect(
            f"protocol level {body[6]} is not supported", "unsupported_protocol", refuse_with=1
        )
    return header + body, None


def _connect_5(raw: bytes) -> Connect:
    """A 5.0 CONNECT as the 3.1.1 one it means (`broker.v5`), and itself."""
    try:
        packet, _ = mqtt5.read(memoryview(raw))
    except (ValueError, IndexError) as exc:  # the codec's verdicts: malformed
        raise BadConnect(f"malformed MQTT 5 CONNECT: {exc}", "not_connect") from exc
    if not isinstance(packet, mqtt5.ConnectPacket):
        raise BadConnect("first packet is not CONNECT", "not_connect")
    if packet.authentication_method not in (None, v5.METHOD):  # MQTT 5.0 section 4.12
        reason = mqtt5.ConnAckReasonCode.BAD_AUTHENTICATION_METHOD
        raise BadConnect(
            "authentication method", "bad_authentication_method", reply=v5out.connack(reason)
        )
    return v5.connect_311(packet), packet


async def read_connect(reader: ReaderAdapter, timeout: float = CONNECT_TIMEOUT) -> Connect:
    """The raw 3.1.1 CONNECT packet (a 5.0 one's as 3.1.1, with the 5.0 packet), or
    `BadConnect`."""
    try:
        return await asyncio.wait_for(_read(reader), timeout)
    except TimeoutError as exc:
        raise BadConnect("no CONNECT in time", "connect_timeout") from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise BadConnect(f"connection failed: {exc}", "connect_incomplete") from exc
