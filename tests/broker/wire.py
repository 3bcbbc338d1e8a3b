"""A raw MQTT 3.1.1 client on a socket, for what paho will not send or will not show:
malformed packets, withheld or late acknowledgements, and the exact flags of a PUBLISH."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tests.stack import Device, Stack

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
DISCONNECT = 14


def encode(value: str | bytes) -> bytes:
    """An MQTT string (section 1.5.3); bytes go out as they are, valid or not."""
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:  # section 2.2.3
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([kind << 4 | flags]) + encoded + body


def publish_packet(
    topic: str | bytes,
    payload: bytes,
    qos: int = 0,
    packet_id: int = 1,
    *,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    flags = dup << 3 | qos << 1 | retain
    body = encode(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, flags, body)


def ack(kind: int, packet_id: int) -> bytes:
    return packet(kind, 0b0010 if kind == PUBREL else 0, struct.pack("!H", packet_id))


@dataclass
class Packet:
    kind: int
    flags: int
    body: bytes

    @property
    def packet_id(self) -> int:
        if self.kind != PUBLISH:
            return int(struct.unpack("!H", self.body[:2])[0])
        start = 2 + struct.unpack("!H", self.body[:2])[0]
        return int(struct.unpack("!H", self.body[start : start + 2])[0])

    @property
    def qos(self) -> int:
        return self.flags >> 1 & 3

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0b1000)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 1)

    @property
    def topic(self) -> str:
        return self.body[2 : 2 + struct.unpack("!H", self.body[:2])[0]].decode()

    @property
    def payload(self) -> bytes:
        start = 2 + struct.unpack("!H", self.body[:2])[0] + (2 if self.qos else 0)
        return self.body[start:]


class RawClient:
    """One connection, CONNECT accepted; every other packet is the test's business."""

    def __init__(
        self,
        stack: Stack,
        device: Device,
        *,
        clean: bool = True,
        keepalive: int = 60,
        token: str | None = None,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=10)
        flags = 0xC0 | (0x02 if clean else 0)
        body = encode("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
        body += encode(device.id) + encode(device.id) + encode(token or device.token())
        self.sock.sendall(packet(1, 0, body))
        connack = self.read()
        assert connack is not None and connack.kind == 2, connack
        assert connack.body[1] == 0, f"CONNACK {connack.body[1]}"
        self.session_present = bool(connack.body[0] & 1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def read(self, timeout: float = 10) -> Packet | None:
        """The next packet, or None when the server has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            first = self._exactly(1)
            if first is None:
                return None
            length, multiplier = 0, 1
            while True:
                byte = self._exactly(1)
                if byte is None:
                    return None
                length += (byte[0] & 0x7F) * multiplier
                multiplier *= 128
                if not byte[0] & 0x80:
                    break
            body = self._exactly(length) if length else b""
        except ConnectionResetError:
            return None
        if body is None:
            return None
        return Packet(first[0] >> 4, first[0] & 0x0F, body)

    def expect(self, kind: int, timeout: float = 10) -> Packet:
        """The next packet, which must be of `kind` (PINGRESPs of `ping` are skipped)."""
        while True:
            got = self.read(timeout)
            assert got is not None, f"connection closed while waiting for packet type {kind}"
            if got.kind != PINGRESP or kind == PINGRESP:
                assert got.kind == kind, f"expected packet type {kind}, got {got}"
                return got

    def closed_by_server(self, timeout: float = 10) -> bool:
        """True if the server closes the connection (packets before that are skipped)."""
        try:
            while self.read(timeout) is not None:
                pass
        except TimeoutError:
            return False
        return True

    def subscribe(self, *filters: str | bytes, qos: int = 1, packet_id: int = 1) -> list[int]:
        body = struct.pack("!H", packet_id) + b"".join(encode(f) + bytes([qos]) for f in filters)
        self.send(packet(SUBSCRIBE, 0b0010, body))
        return list(self.expect(SUBACK).body[2:])

    def publish(self, topic: str, payload: bytes, qos: int = 1, packet_id: int = 1) -> None:
        """A valid PUBLISH, acknowledged as QoS requires."""
        self.send(publish_packet(topic, payload, qos, packet_id))
        if qos == 1:
            assert self.expect(PUBACK).packet_id == packet_id
        elif qos == 2:
            assert self.expect(PUBREC).packet_id == packet_id
            self.send(ack(PUBREL, packet_id))
            assert self.expect(PUBCOMP).packet_id == packet_id

    def disconnect(self) -> None:
        """DISCONNECT and close at once, as a client does that does not wait for the server."""
        self.send(packet(DISCONNECT, 0, b""))
        self.close()

    def ping(self) -> None:
        self.send(packet(PINGREQ, 0, b""))

    def close(self) -> None:
        self.sock.close()
