"""The MQTT 5.0 connection's reader and writer: amqtt's adapters around the transcoding
of broker/v5.py.

`Reader` reads what the socket has (up to `CHUNK` bytes at a time), cuts it into whole
5.0 packets and keeps their 3.1.1 bytes, which `PacketReader` (packets.py) takes one
packet at a time (`packet()`), where it reads a 3.1.1 connection's fixed header, length
and body each with its own read. `Writer` takes the core's 3.1.1 packets, a whole one a
write, and sends each as 5.0.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import mqtt5
from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, WriterAdapter

from broker import v5, v5out
from broker.packets import CHUNK, framed
from broker.v5 import Edge, Unsupported

_CUT = mqtt5.DisconnectReasonCode
# Packets that are the same bytes in 5.0 and 3.1.1 when this long: a successful
# PUBACK, PUBREC, PUBREL or PUBCOMP without properties, and PINGREQ.
_SAME = {0x40: 4, 0x50: 4, 0x62: 4, 0x70: 4, 0xC0: 2}


def _size(raw: bytes, at: int, edge: Edge) -> int | None:
    """The whole size of the packet that starts at `at`, None if not all of it is read."""
    try:
        found = framed(raw, at)
    except ValueError as exc:
        raise edge.end(_CUT.MALFORMED_PACKET, str(exc)) from exc
    if found is None:
        return None
    head, length = found
    if length > v5.MAX_PACKET:
        raise edge.end(_CUT.PACKET_TOO_LARGE, f"a packet of {length} bytes")
    return head + length if at + head + length <= len(raw) else None


def _to_311(data: bytes, edge: Edge) -> bytes:
    if _SAME.get(data[0]) == len(data):
        return data
    try:
        packet, _ = mqtt5.read(memoryview(data))
    except (ValueError, IndexError) as exc:  # the codec's verdicts: malformed
        raise edge.end(_CUT.MALFORMED_PACKET, f"malformed: {exc}") from exc
    return v5.to_311(packet, edge)


class Reader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Reads 5.0 packets off the connection and serves their 3.1.1 bytes; what it cannot
    serve reads as the end of the stream (amqtt then ends the connection, will and
    all, as for a peer that left), after the packets before it."""

    def __init__(self, reader: ReaderAdapter, edge: Edge) -> None:
        self._reader = reader
        # asyncio's stream gives what has arrived; another adapter, a byte at a time.
        self._stream = reader._reader if isinstance(reader, StreamReaderAdapter) else None
        self.edge = edge
        self._raw = b""  # read, not yet a whole packet
        self._packets: deque[bytes] = deque()  # whole 3.1.1 packets
        self._buffer = b""  # what `read` has not served yet
        self._ended = False

    async def packet(self) -> bytes:
        """The next whole 3.1.1 packet; IncompleteReadError once the stream has ended."""
        while not self._packets:
            if self._ended:
                raise asyncio.IncompleteReadError(b"", 1)
            try:
                await self._fill()
            except (Unsupported, asyncio.IncompleteReadError, OSError):
                self._ended = True
        return self._packets.popleft()

    async def _fill(self) -> None:
        if self._stream is not None:
            chunk = await self._stream.read(CHUNK)
        else:
            chunk = await self._reader.read(1)
        if not chunk:
            raise asyncio.IncompleteReadError(self._raw, None)
        raw, at = self._raw + chunk, 0
        try:
            while (size := _size(raw, at, self.edge)) is not None:
                converted = _to_311(raw[at : at + size], self.edge)
                at += size
                if converted:
                    self._packets.append(converted)
        finally:
            self._raw = raw[at:]

    async def read(self, n: int = -1) -> bytes:
        while (n < 0 and not self._buffer) or len(self._buffer) < n:
            try:
                self._buffer += await self.packet()
            except asyncio.IncompleteReadError:
                break
        size = len(self._buffer) if n < 0 else n
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def feed_eof(self) -> None:
        self._ended = True
        self._reader.feed_eof()


class Writer(WriterAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Takes the core's 3.1.1 packets (a whole one a write) and sends each as 5.0."""

    def __init__(self, writer: WriterAdapter, edge: Edge) -> None:
        self._writer = writer
        self.edge = edge

    def write(self, data: bytes) -> None:
        self._writer.write(v5out.from_311(bytes(data), self.edge))

    def write_5(self, data: bytes) -> None:
        """A 5.0 packet as it is (a CONNACK with the decision's own reason code)."""
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def get_peer_info(self) -> tuple[str, int] | None:
        return self._writer.get_peer_info()  # type: ignore[no-any-return]

    def get_ssl_info(self) -> Any:
        return self._writer.get_ssl_info()

    async def close(self) -> None:
        await self._writer.close()


def wrap(
    reader: ReaderAdapter, writer: WriterAdapter, connect: mqtt5.ConnectPacket
) -> tuple[Reader, Writer]:
    edge = v5.edge_of(connect)
    edge.send = writer.write
    return Reader(reader, edge), Writer(writer, edge)
