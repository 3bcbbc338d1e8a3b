"""Every packet a client sends after CONNECT, read whole and checked before amqtt parses it.

Stock amqtt 0.12.1 parses straight off the socket. A PUBLISH to a topic with a wildcard
raised half-way through its parse: amqtt skipped the error and read the rest of that
packet as the next one. Invalid UTF-8 became the text of its `repr`. Malformed filters
got SUBACK 0x80. Each of these can end amqtt's message loop while the connection stays
open: later QoS 1 messages are acknowledged and lost, and keep-alive is never enforced.

MQTT 3.1.1 section 4.8 (MQTT-4.8.0-1): a protocol violation closes the connection.
`PacketReader` reads one packet at a time, checks it with `check`, and gives amqtt its
bytes. On a violation it reports the reason and then reads as end-of-stream, so amqtt
closes the connection as for a peer that left (and publishes the will, section 3.1.2.5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter

from broker.errors import Violation
from credbroker.topics import is_valid_filter

CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 3, 4, 5, 6, 7
SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 8, 10, 12, 14
# Section 2.2.2: the fixed-header flags of each packet a client may send (PUBLISH's
# carry DUP, QoS and RETAIN), and the remaining length of those that have a fixed one.
FLAGS = {PUBACK: 0, PUBREC: 0, PUBREL: 0b0010, PUBCOMP: 0, SUBSCRIBE: 0b0010}
FLAGS |= {UNSUBSCRIBE: 0b0010, PINGREQ: 0, DISCONNECT: 0}
CHUNK = 64 * 1024  # read from the stream at most at a time
LENGTH = {PUBACK: 2, PUBREC: 2, PUBREL: 2, PUBCOMP: 2, PINGREQ: 0, DISCONNECT: 0}


def _malformed(detail: str) -> Violation:
    return Violation("malformed_packet", detail)


def _string(body: bytes, at: int, reason: str) -> tuple[str, int]:
    """Section 1.5.3: a well-formed UTF-8 string (no surrogates, no U+0000)."""
    if at + 2 > len(body):
        raise _malformed("string length missing")
    end = at + 2 + int.from_bytes(body[at : at + 2], "big")
    if end > len(body):
        raise _malformed("string longer than the packet")
    try:
        text = body[at + 2 : end].decode("utf-8")  # strict: rejects surrogates (1.5.3-1)
    except UnicodeDecodeError as exc:
        raise Violation(reason, "ill-formed UTF-8 (MQTT-1.5.3-1)") from exc
    if "\x00" in text:
        raise Violation(reason, "U+0000 (MQTT-1.5.3-2)")
    return text, end


def _packet_id(body: bytes, at: int) -> int:
    if at + 2 > len(body):
        raise _malformed("packet identifier missing")
    packet_id = int.from_bytes(body[at : at + 2], "big")
    if packet_id == 0:
        raise _malformed("packet identifier 0 (MQTT-2.3.1-1)")
    return at + 2


def _publish(flags: int, body: bytes) -> None:
    qos = flags >> 1 & 3
    if qos == 3:
        raise _malformed("QoS 3 (MQTT-3.3.1-4)")
    if qos == 0 and flags & 0b1000:
        raise _malformed("DUP on a QoS 0 PUBLISH (MQTT-3.3.1-2)")
    topic, end = _string(body, 0, "malformed_topic")
    # Empty (MQTT-4.7.3-1) or with a wildcard (MQTT-3.3.2-2); U+0000 is out already. Not
    # topics.is_valid_topic: this runs for every PUBLISH, and it also splits the levels.
    if not topic or "+" in topic or "#" in topic:
        raise Violation("malformed_topic", f"topic name {topic!r}")
    if qos:
        _packet_id(body, end)


def _filters(kind: int, body: bytes) -> None:
    at, count = _packet_id(body, 0), 0
    while at < len(body):
        topic_filter, at = _string(body, at, "malformed_filter")
        if not is_valid_filter(topic_filter):  # sections 4.7.1 and 4.7.3
            raise Violation("malformed_filter", f"topic filter {topic_filter!r}")
        if kind == SUBSCRIBE:
            if at >= len(body) or body[at] > 2:  # reserved bits set or QoS 3: MQTT-3.8.3-4
                raise _malformed("requested QoS missing or invalid")
            at += 1
        count += 1
    if not count:  # MQTT-3.8.3-3, MQTT-3.10.3-2
        raise _malformed("no topic filter")


def check(first: int, body: bytes) -> None:
    """Raise `Violation` unless this is a packet a client may send (MQTT 3.1.1)."""
    kind, flags = first >> 4, first & 0x0F
    if kind == PUBLISH:
        _publish(flags, body)
        return
    if kind not in FLAGS:  # CONNECT again (MQTT-3.1.0-2), or a server's packet
        raise Violation("unexpected_packet", f"packet type {kind}")
    if flags != FLAGS[kind]:  # MQTT-2.2.2-2
        raise _malformed(f"flags {flags:#06b} on packet type {kind}")
    if kind in LENGTH and len(body) != LENGTH[kind]:
        raise _malformed(f"remaining length {len(body)} on packet type {kind}")
    if kind in (SUBSCRIBE, UNSUBSCRIBE):
        _filters(kind, body)


async def remaining_length(read_byte: Callable[[], Awaitable[bytes]]) -> tuple[bytes, int] | None:
    """The remaining length after a fixed header's first byte (3.1.1 section 2.2.3, 5.0
    section 1.5.5), as its bytes and its value; None past four bytes (malformed)."""
    length, multiplier, encoded = 0, 1, b""
    for _ in range(4):
        byte = await read_byte()
        encoded += byte
        length += (byte[0] & 0x7F) * multiplier
        multiplier *= 128
        if not byte[0] & 0x80:
            return encoded, length
    return None


def framed(raw: bytes, at: int) -> tuple[int, int] | None:
    """The packet that starts at `raw[at]`: its fixed header's size and its remaining
    length, or None while its fixed header is not all read; ValueError past four length
    bytes (malformed)."""
    length, multiplier = 0, 1
    for index in range(at + 1, min(at + 5, len(raw))):
        byte = raw[index]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return index + 1 - at, length
    if len(raw) >= at + 5:
        raise ValueError("remaining length of more than four bytes")
    return None


class PacketReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """A ReaderAdapter that serves amqtt one checked packet at a time.

    amqtt reads a packet's fields with small reads that never go past its end; each read
    that finds the current packet used up reads the next one from the connection.
    """

    def __init__(self, reader: ReaderAdapter, on_violation: Callable[[Violation], None]) -> None:
        self._reader = reader
        # asyncio's stream gives what has arrived: whole packets are cut from it (`_cut`)
        # with one read for many, where another adapter is read field by field.
        self._stream = reader._reader if isinstance(reader, StreamReaderAdapter) else None
        self._whole = getattr(reader, "packet", None)  # an MQTT 5.0 edge (v5stream.Reader)
        self._on_violation = on_violation
        self._packet = b""
        self._pos = 0
        self._raw, self._at = b"", 0  # read from the stream; where the next packet starts
        self._ended = False

    async def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._packet) and not self._ended:
            await self.fill()
        if self._ended:
            return b""
        end = len(self._packet) if n < 0 else self._pos + n
        chunk = self._packet[self._pos : end]
        self._pos += len(chunk)
        return chunk

    async def fill(self) -> None:
        """Read the next packet if the current one is used up. The handler's reader loop
        waits here between packets: fewer suspended frames per idle connection than
        amqtt's nested reads of a fixed header (~1 KiB)."""
        if self._pos >= len(self._packet) and not self._ended:
            try:
                self._packet, self._pos = await self._next(), 0
            except Violation as exc:
                self._ended = True
                self._on_violation(exc)
            except (asyncio.IncompleteReadError, OSError):
                self._ended = True  # the peer left
            except asyncio.CancelledError:
                # A keep-alive timeout in the middle of a packet: the handler closes the
                # connection, and the rest of this packet must not be read as a new one.
                self._ended = True
                raise

    async def _next(self) -> bytes:
        if self._whole is not None:
            data: bytes = await self._whole()
        elif self._stream is not None:
            data = await self._cut(self._stream)
        else:
            return await self._read_fields()
        found = framed(data, 0)
        assert found is not None  # noqa: S101 - a whole packet
        check(data[0], data[found[0] :])
        return data

    async def _cut(self, stream: asyncio.StreamReader) -> bytes:
        """The next whole packet from what the stream has given."""
        while True:
            try:
                found = framed(self._raw, self._at)
            except ValueError as exc:
                raise _malformed(str(exc)) from exc
            if found is not None and self._at + sum(found) <= len(self._raw):
                start, self._at = self._at, self._at + sum(found)
                data = self._raw[start : self._at]
                if self._at == len(self._raw):  # an idle connection keeps no chunk
                    self._raw, self._at = b"", 0
                return data
            chunk = await stream.read(CHUNK)
            if not chunk:
                raise asyncio.IncompleteReadError(self._raw[self._at :], None)
            self._raw, self._at = self._raw[self._at :] + chunk, 0

    async def _read_fields(self) -> bytes:
        first = await self._exactly(1)
        found = await remaining_length(lambda: self._exactly(1))
        if found is None:
            raise _malformed("remaining length of more than four bytes")
        encoded, length = found
        body = await self._exactly(length) if length else b""
        check(first[0], body)
        return first + encoded + body

    async def _exactly(self, n: int) -> bytes:
        data = await self._reader.read(n)
        if len(data) < n:
            raise asyncio.IncompleteReadError(data, n)
        return bytes(data)

    def feed_eof(self) -> None:
        self._ended = True
        self._reader.feed_eof()
