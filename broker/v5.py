"""MQTT 5.0 clients on the 3.1.1 core (issue 15, first part): each packet is transcoded
at the connection's edge with the `mqtt5` codec (sans-I/O), so that the one CONNECT
decision, amqtt's sessions and our delivery serve 5.0 and 3.1.1 clients alike, and a
message crosses between them.

What the core does not do yet, the CONNACK says (MQTT 5.0 section 3.2.2.3): no topic
aliases (Topic Alias Maximum 0), no shared subscriptions, no subscription identifiers; a
client that uses them anyway is disconnected. Re-authentication (AUTH) is answered here,
by the server's verdict. The rest is README's "MQTT 5.0" list:
what a 3.1.1 packet cannot carry (properties, per-publish reason codes) is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mqtt5
from amqtt.adapters import ReaderAdapter, WriterAdapter

from broker.packets import remaining_length

MQTT_5 = 5
MAX_PACKET = 16 * 1024 * 1024
# DESIGN.md, MQTT 5: the token travels as Authentication Data, and AUTH 0x19 with a
# fresh one renews the session in place (MQTT 5.0 section 4.12).
METHOD = "credbroker-token"
Reason = mqtt5.ConnAckReasonCode
# A 3.1.1 CONNACK return code (section 3.2.2.3) as the 5.0 reason code that means it.
CONNACK_REASONS = {
    0: Reason.SUCCESS,
    1: Reason.UNSUPPORTED_PROTOCOL_VERSION,
    2: Reason.CLIENT_ID_NOT_VALID,
    3: Reason.SERVER_UNAVAILABLE,
    4: Reason.BAD_USER_NAME_OR_PASSWORD,
    5: Reason.NOT_AUTHORIZED,
}


class Unsupported(Exception):
    """A 5.0 packet the core cannot serve: the connection ends."""


@dataclass
class Edge:
    """What one connection's reader tells its writer: the filter count of each
    UNSUBSCRIBE (its UNSUBACK has a code each), and the QoS 1 PUBLISHes outside the ACL
    (their PUBACK says 0x87) by the grant's own rule, once the CONNECT is granted."""

    unsubscribed: dict[int, int] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)
    may_publish: Callable[[str], bool] | None = None
    # Re-authentication (set once the CONNECT is granted, with `METHOD`): the server's
    # verdict on a fresh token, and the way to answer the client outside the core.
    reauthenticate: Callable[[str], bool] | None = None
    send: Callable[[bytes], None] | None = None


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _binary(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


def _id(packet_id: int | None) -> bytes:
    return (packet_id or 0).to_bytes(2, "big")


def connect_311(packet: mqtt5.ConnectPacket) -> bytes:
    """The 3.1.1 CONNECT of a 5.0 one. A session that outlives its connection (a session
    expiry interval) is what 3.1.1 calls persistent (clean session 0); its interval is
    not kept yet: such a session lasts as a 3.1.1 one does."""
    persistent = not packet.clean_start and packet.session_expiry_interval > 0
    flags = 0 if persistent else 0x02
    payload = _string(packet.client_id)
    will = packet.will
    if will is not None:
        flags |= 0x04 | int(will.qos) << 3 | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _binary(will.payload or b"")
    if packet.username is not None:
        flags |= 0x80
        payload += _string(packet.username)
    password = packet.password
    if packet.authentication_method == METHOD:  # the token is the Authentication Data
        password = packet.authentication_data or b""
    if password is not None:
        flags |= 0x40
        payload += _binary(password)
    header = b"\x00\x04MQTT\x04" + bytes([flags]) + packet.keep_alive.to_bytes(2, "big")
    return _packet(0x10, header + payload)


# -- from the client ----------------------------------------------------------------------


def _publish(packet: mqtt5.PublishPacket, edge: Edge) -> bytes:
    if packet.topic_alias is not None:
        raise Unsupported("topic alias (the CONNACK said Topic Alias Maximum 0)")
    qos = int(packet.qos)
    if qos == 1 and edge.may_publish is not None and not edge.may_publish(packet.topic):
        edge.refused.add(packet.packet_id or 0)  # the core drops it; its PUBACK says so
    first = 0x30 | (0x08 if packet.duplicate else 0) | qos << 1 | (1 if packet.retain else 0)
    body = _string(packet.topic) + (_id(packet.packet_id) if qos else b"")
    return _packet(first, body + packet.payload)


def _subscribe(packet: mqtt5.SubscribePacket, _: Edge) -> bytes:
    if packet.subscription_id is not None:
        raise Unsupported("subscription identifier (the CONNACK said unavailable)")
    body = _id(packet.packet_id)
    for topic_filter in packet.topic_filters:
        body += _string(topic_filter.pattern) + bytes([int(topic_filter.max_qos)])
    return _packet(0x82, body)


def _unsubscribe(packet: mqtt5.UnsubscribePacket, edge: Edge) -> bytes:
    edge.unsubscribed[packet.packet_id] = len(packet.patterns)  # its UNSUBACK: a code each
    body = _id(packet.packet_id) + b"".join(_string(p) for p in packet.patterns)
    return _packet(0xA2, body)


def _disconnect(packet: mqtt5.DisconnectPacket, _: Edge) -> bytes:
    if packet.reason_code == mqtt5.DisconnectReasonCode.DISCONNECT_WITH_WILL_MESSAGE:
        raise Unsupported("disconnect with will")  # an end without DISCONNECT: the will goes
    return b"\xe0\x00"


def _auth(packet: mqtt5.AuthPacket, edge: Edge) -> bytes:
    """Re-authentication: a fresh token for the same device, the same or a narrower ACL.
    Granted, the session goes on with the new token's claims and expiry (AUTH 0x00);
    refused, it ends with DISCONNECT 0x87. Nothing reaches the core."""
    renew = mqtt5.AuthReasonCode.RE_AUTHENTICATE
    if edge.reauthenticate is None or edge.send is None:
        raise Unsupported("AUTH without the credbroker-token method at CONNECT")
    if packet.reason_code != renew or packet.authentication_method != METHOD:
        edge.send(disconnect("protocol_error"))
        raise Unsupported("AUTH that is not a re-authentication with credbroker-token")
    try:
        token = (packet.authentication_data or b"").decode("ascii")
    except UnicodeDecodeError:
        token = ""
    if not edge.reauthenticate(token):
        edge.send(disconnect("not_authorized"))
        raise Unsupported("re-authentication refused")
    success = mqtt5.AuthPacket(
        reason_code=mqtt5.AuthReasonCode.SUCCESS, authentication_method=METHOD
    )
    edge.send(bytes(success.write()))
    return b""


def _ack(first: int) -> Callable[[Any, Edge], bytes]:
    return lambda packet, _: _packet(first, _id(packet.packet_id))


_FROM_CLIENT: dict[type, Callable[[Any, Edge], bytes]] = {
    mqtt5.PublishPacket: _publish,
    mqtt5.PubAckPacket: _ack(0x40),
    mqtt5.PubRecPacket: _ack(0x50),
    mqtt5.PubRelPacket: _ack(0x62),
    mqtt5.PubCompPacket: _ack(0x70),
    mqtt5.SubscribePacket: _subscribe,
    mqtt5.UnsubscribePacket: _unsubscribe,
    mqtt5.PingReqPacket: lambda packet, _: b"\xc0\x00",
    mqtt5.DisconnectPacket: _disconnect,
    mqtt5.AuthPacket: _auth,
}


def to_311(packet: Any, edge: Edge) -> bytes:
    """A client's 5.0 packet as 3.1.1 bytes (none for AUTH, which the edge answers), or
    `Unsupported` (CONNECT again, a server's packet)."""
    convert = _FROM_CLIENT.get(type(packet))
    if convert is None:
        raise Unsupported(type(packet).__name__)
    return convert(packet, edge)


# -- to the client ------------------------------------------------------------------------


def connack(reason: mqtt5.ConnAckReasonCode, session_present: bool = False) -> bytes:
    """A 5.0 CONNACK, with what the core does not do said as unavailable."""
    packet = mqtt5.ConnAckPacket(
        session_present=session_present,
        reason_code=reason,
        subscription_id_available=False,
        shared_subscription_available=False,
    )
    return bytes(packet.write())


# Why the broker cuts a session (the `kick` reasons, the verifier's words among them),
# as the 5.0 DISCONNECT reason a device can act on: renew its token (0xA0), or not.
_CUT = mqtt5.DisconnectReasonCode
DISCONNECT_REASONS = {
    "expired": _CUT.MAX_CONNECT_TIME,
    "key_retired": _CUT.MAX_CONNECT_TIME,  # its signing key rotated at once: renew
    "revoked": _CUT.ADMINISTRATIVE_ACTION,  # a logout or session end, by an operator
    "taken_over": _CUT.SESSION_TAKEN_OVER,
    "protocol_error": _CUT.PROTOCOL_ERROR,
}


def disconnect(reason: str) -> bytes:
    """The server's 5.0 DISCONNECT for a cut; not authorized (0x87) unless said above:
    a device disabled, revoked or deleted, or over its ACL once too often."""
    code = DISCONNECT_REASONS.get(reason, _CUT.NOT_AUTHORIZED)
    return bytes(mqtt5.DisconnectPacket(reason_code=code).write())


def _publish_5(first: int, body: bytes, _: Edge) -> Any:
    qos, size = first >> 1 & 3, int.from_bytes(body[:2], "big")
    topic, at, packet_id = body[2 : 2 + size].decode(), 2 + size, None
    if qos:
        packet_id, at = int.from_bytes(body[at : at + 2], "big"), at + 2
    return mqtt5.PublishPacket(
        topic,
        bytes(body[at:]),
        qos=mqtt5.QoS(qos),
        retain=bool(first & 1),
        packet_id=packet_id,
        duplicate=bool(first & 0x08),
    )


def _suback_5(first: int, body: bytes, _: Edge) -> Any:
    granted = mqtt5.SubAckReasonCode
    # The core refuses a filter for one reason: the device's ACL does not allow it.
    codes = [granted(code) if code < 3 else granted.NOT_AUTHORIZED for code in body[2:]]
    return mqtt5.SubAckPacket(int.from_bytes(body[:2], "big"), codes)


def _unsuback_5(first: int, body: bytes, edge: Edge) -> Any:
    packet_id = int.from_bytes(body[:2], "big")
    count = edge.unsubscribed.pop(packet_id, 1)
    return mqtt5.UnsubAckPacket(packet_id, [mqtt5.UnsubAckReasonCode.SUCCESS] * count)


def _ack_5(kind: type) -> Callable[[int, bytes, Edge], Any]:
    return lambda first, body, _: kind(int.from_bytes(body[:2], "big"))


def _puback_5(first: int, body: bytes, edge: Edge) -> Any:
    packet_id = int.from_bytes(body[:2], "big")
    if packet_id in edge.refused:
        edge.refused.discard(packet_id)
        return mqtt5.PubAckPacket(packet_id, reason_code=mqtt5.PubAckReasonCode.NOT_AUTHORIZED)
    return mqtt5.PubAckPacket(packet_id)


_TO_CLIENT: dict[int, Callable[[int, bytes, Edge], Any]] = {
    3: _publish_5,
    4: _puback_5,
    5: _ack_5(mqtt5.PubRecPacket),
    6: _ack_5(mqtt5.PubRelPacket),
    7: _ack_5(mqtt5.PubCompPacket),
    9: _suback_5,
    11: _unsuback_5,
    13: lambda first, body, _: mqtt5.PingRespPacket(),
}


def from_311(data: bytes, edge: Edge) -> bytes:
    """A whole 3.1.1 packet the core sends, as the 5.0 packet it means."""
    first, at = data[0], 1
    while data[at] & 0x80:
        at += 1
    body = data[at + 1 :]
    if first >> 4 == 2:  # CONNACK
        return connack(CONNACK_REASONS.get(body[1], Reason.UNSPECIFIED_ERROR), bool(body[0] & 1))
    convert = _TO_CLIENT.get(first >> 4)
    return data if convert is None else bytes(convert(first, body, edge).write())


# -- the adapters -------------------------------------------------------------------------


class Reader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Reads 5.0 packets off the connection and serves their 3.1.1 bytes; what it cannot
    serve reads as the end of the stream (amqtt then ends the connection, will and
    all, as for a peer that left)."""

    def __init__(self, reader: ReaderAdapter, edge: Edge) -> None:
        self._reader = reader
        self.edge = edge
        self._buffer = b""
        self._ended = False

    async def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = await self._reader.read(n - len(data))
            if not chunk:
                raise asyncio.IncompleteReadError(data, n)
            data += chunk
        return data

    async def _next(self) -> bytes:
        first = await self._exactly(1)
        found = await remaining_length(lambda: self._exactly(1))
        if found is None:
            raise Unsupported("malformed: remaining length of more than four bytes")
        encoded, length = found
        if length > MAX_PACKET:
            raise Unsupported(f"a packet of {length} bytes")
        data = first + encoded + (await self._exactly(length) if length else b"")
        try:
            packet, _ = mqtt5.read(memoryview(data))
        except (ValueError, IndexError) as exc:  # the codec's verdicts: malformed
            raise Unsupported(f"malformed: {exc}") from exc
        return to_311(packet, self.edge)

    async def read(self, n: int = -1) -> bytes:
        while not self._ended and ((n < 0 and not self._buffer) or len(self._buffer) < n):
            try:
                self._buffer += await self._next()
            except (Unsupported, asyncio.IncompleteReadError, OSError):
                self._ended = True
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
        self._writer.write(from_311(bytes(data), self.edge))

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


def wrap(reader: ReaderAdapter, writer: WriterAdapter) -> tuple[Reader, Writer]:
    edge = Edge(send=writer.write)
    return Reader(reader, edge), Writer(writer, edge)
