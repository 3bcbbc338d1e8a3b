"""MQTT 5.0 clients on the 3.1.1 core (issue 15): each packet is transcoded at the
connection's edge with the `mqtt5` codec (sans-I/O), so that the one CONNECT decision,
amqtt's sessions and our delivery serve 5.0 and 3.1.1 clients alike, and a message
crosses between them.

What 3.1.1 packets cannot carry travels beside them, on the connection's `Edge`: each
PUBLISH's properties (to the handler, which puts them on the message, properties.py),
each SUBSCRIBE's options (to the broker), the codes the acknowledgements must say, and
what the client's CONNECT asked for (session expiry, will delay, Receive Maximum,
Maximum Packet Size). The edge itself resolves topic aliases, counts the client's
unacknowledged QoS 1 and 2 PUBLISHes against the Receive Maximum this server advertises,
refuses a QoS 2 PUBLISH outside the ACL with PUBREC 0x87, and answers re-authentication
(AUTH) by the server's verdict. Here: the edge and the client's packets; v5out.py: the
packets to the client; v5stream.py: the connection's reader and writer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mqtt5

from broker import properties
from broker.properties import Properties
from broker.subscriptions import SHARE, Options

MQTT_5 = 5
MAX_PACKET = 16 * 1024 * 1024  # the Maximum Packet Size the CONNACK advertises
RECEIVE_MAXIMUM_DEFAULT = 65535  # a CONNECT without a Receive Maximum (3.1.2.11.3)
RECEIVE_MAXIMUM = 100  # unacknowledged QoS 1 and 2 PUBLISHes a client may send (as AWS IoT)
TOPIC_ALIAS_MAXIMUM = 16  # client-to-server aliases; the server sends none
MAX_KEEP_ALIVE = 1200  # s: a client asking for none, or more, is told this one
NO_EXPIRY = 0xFFFFFFFF  # a Session Expiry Interval that never ends (section 3.1.2.11.2)
# DESIGN.md, MQTT 5: the token travels as Authentication Data, and AUTH 0x19 with a
# fresh one renews the session in place (MQTT 5.0 section 4.12).
METHOD = "credbroker-token"
_CUT = mqtt5.DisconnectReasonCode


# What an acknowledgement's refusal says, when the client asked for problem information
# (Request Problem Information, section 3.1.2.11.7). A `$` topic is never in an ACL.
NOT_IN_PUBLISH_ACL = "topic not in the device's publish ACL"
NOT_IN_SUBSCRIBE_ACL = "filter not in the device's subscribe ACL"


class Unsupported(Exception):
    """A 5.0 packet the core cannot serve: the connection ends."""


@dataclass
class Edge:
    """What one connection's reader, writer, handler and broker tell each other."""

    send: Callable[[bytes], None] | None = None
    # -- what the client's CONNECT asked for
    session_expiry: int = 0
    # the client's Receive Maximum: how many unacknowledged PUBLISHes it takes from us
    receive_max: int = RECEIVE_MAXIMUM_DEFAULT
    max_packet_size: int | None = None  # the client's
    problem_info: bool = True
    server_keep_alive: int | None = None  # said in the CONNACK when it overrides the client's
    will: mqtt5.Will | None = None
    # -- once the CONNECT is granted: the grant's publish rule, the accounting of a
    # refused PUBLISH the edge answers itself (QoS 2), and re-authentication (with
    # `METHOD`): the server's verdict on a fresh token
    may_publish: Callable[[str], bool] | None = None
    refuse_publish: Callable[[str], None] | None = None
    reauthenticate: Callable[[str], bool] | None = None
    # -- per packet
    incoming: deque[Properties | None] = field(default_factory=deque)  # each PUBLISH's
    subscribed: dict[int, list[Options]] = field(default_factory=dict)  # by packet id
    unsubscribed: dict[int, int] = field(default_factory=dict)  # filters, by packet id
    refused: set[int] = field(default_factory=set)  # QoS 1 PUBLISHes outside the ACL
    inflight: set[int] = field(default_factory=set)  # received, not yet acknowledged
    aliases: dict[int, str] = field(default_factory=dict)

    def end(self, code: mqtt5.DisconnectReasonCode, why: str) -> Unsupported:
        """Tell the client why its connection ends (a DISCONNECT), for raising."""
        if self.send is not None:
            self.send(disconnect_code(code, why))
        return Unsupported(why)

    def fits(self, size: int) -> bool:
        return self.max_packet_size is None or size <= self.max_packet_size


def length(n: int) -> bytes:
    """MQTT's variable byte integer (section 1.5.5)."""
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
    return bytes([first]) + length(len(body)) + body


def _id(packet_id: int | None) -> bytes:
    return (packet_id or 0).to_bytes(2, "big")


def connect_311(packet: mqtt5.ConnectPacket) -> bytes:
    """The 3.1.1 CONNECT of a 5.0 one. Clean Start is Clean Session at the start; how long
    the session outlives its connection (its expiry interval) the broker applies at the
    end, from the edge (`edge_of`)."""
    flags = 0x02 if packet.clean_start else 0
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


def edge_of(packet: mqtt5.ConnectPacket) -> Edge:
    """The connection's edge, with what its CONNECT asked for."""
    keep_alive = packet.keep_alive
    return Edge(
        session_expiry=packet.session_expiry_interval,
        receive_max=packet.receive_max,
        max_packet_size=packet.max_packet_size,
        problem_info=packet.request_problem_info,
        server_keep_alive=(
            MAX_KEEP_ALIVE if keep_alive == 0 or keep_alive > MAX_KEEP_ALIVE else None
        ),
        will=packet.will,
    )


# -- from the client ----------------------------------------------------------------------


def _topic(packet: mqtt5.PublishPacket, edge: Edge) -> str:
    """The PUBLISH's topic, its alias resolved or recorded (section 3.3.2.3.4)."""
    alias = packet.topic_alias
    if alias is None:
        if not packet.topic:
            raise edge.end(_CUT.PROTOCOL_ERROR, "PUBLISH without a topic or an alias")
        return packet.topic
    if not 0 < alias <= TOPIC_ALIAS_MAXIMUM:
        raise edge.end(_CUT.TOPIC_ALIAS_INVALID, f"topic alias {alias}")
    if packet.topic:
        edge.aliases[alias] = packet.topic
        return packet.topic
    topic = edge.aliases.get(alias)
    if topic is None:
        raise edge.end(_CUT.PROTOCOL_ERROR, f"topic alias {alias} was never set")
    return topic


def _publish(packet: mqtt5.PublishPacket, edge: Edge) -> bytes:
    topic, qos, packet_id = _topic(packet, edge), int(packet.qos), packet.packet_id or 0
    if qos and packet_id not in edge.inflight:
        if len(edge.inflight) >= RECEIVE_MAXIMUM:  # section 3.3.4
            raise edge.end(_CUT.RECEIVE_MAX_EXCEEDED, "more than the Receive Maximum")
        if edge.may_publish is not None and not edge.may_publish(topic):
            if qos == 2:  # refused here, or the core would wait for a PUBREL (4.3.3)
                if edge.refuse_publish is not None:
                    edge.refuse_publish(topic)
                refused = mqtt5.PubRecReasonCode.NOT_AUTHORIZED
                why = NOT_IN_PUBLISH_ACL if edge.problem_info else None
                _send(edge, mqtt5.PubRecPacket(packet_id, reason_code=refused, reason_str=why))
                return b""
            edge.refused.add(packet_id)  # the core drops it; its PUBACK says so
        edge.inflight.add(packet_id)
    edge.incoming.append(properties.of_publish(packet))  # the handler takes them, in order
    first = 0x30 | (0x08 if packet.duplicate else 0) | qos << 1 | (1 if packet.retain else 0)
    body = _string(topic) + (_id(packet_id) if qos else b"")
    return _packet(first, body + packet.payload)


def _subscribe(packet: mqtt5.SubscribePacket, edge: Edge) -> bytes:
    body, options = _id(packet.packet_id), []
    for topic_filter in packet.topic_filters:
        if topic_filter.no_local and topic_filter.pattern.startswith(SHARE):
            raise edge.end(_CUT.PROTOCOL_ERROR, "No Local on a shared subscription")
        options.append(
            Options(
                no_local=topic_filter.no_local,
                retain_as_published=topic_filter.retain_as_published,
                retain_handling=int(topic_filter.retain_handling),
                subscription_id=packet.subscription_id,
            )
        )
        body += _string(topic_filter.pattern) + bytes([int(topic_filter.max_qos)])
    edge.subscribed[packet.packet_id] = options
    return _packet(0x82, body)


def _unsubscribe(packet: mqtt5.UnsubscribePacket, edge: Edge) -> bytes:
    edge.unsubscribed[packet.packet_id] = len(packet.patterns)  # its UNSUBACK: a code each
    body = _id(packet.packet_id) + b"".join(_string(p) for p in packet.patterns)
    return _packet(0xA2, body)


def _disconnect(packet: mqtt5.DisconnectPacket, edge: Edge) -> bytes:
    expiry = packet.session_expiry_interval
    if expiry is not None:  # section 3.14.2.2.2: it may change, but not from 0
        if edge.session_expiry == 0 and expiry > 0:
            raise edge.end(_CUT.PROTOCOL_ERROR, "session expiry set at DISCONNECT")
        edge.session_expiry = expiry
    if packet.reason_code == mqtt5.DisconnectReasonCode.DISCONNECT_WITH_WILL_MESSAGE:
        raise Unsupported("disconnect with will")  # an end without DISCONNECT: the will goes
    return b"\xe0\x00"


def _auth(packet: mqtt5.AuthPacket, edge: Edge) -> bytes:
    """Re-authentication: a fresh token for the same device, the same or a narrower ACL.
    Granted, the session goes on with the new token's claims and expiry (AUTH 0x00);
    refused, it ends with DISCONNECT 0x87. Nothing reaches the core."""
    renew = mqtt5.AuthReasonCode.RE_AUTHENTICATE
    if edge.reauthenticate is None:
        raise edge.end(_CUT.PROTOCOL_ERROR, "AUTH without the credbroker-token method")
    if packet.reason_code != renew or packet.authentication_method != METHOD:
        raise edge.end(_CUT.PROTOCOL_ERROR, "AUTH that is not a re-authentication")
    try:
        token = (packet.authentication_data or b"").decode("ascii")
    except UnicodeDecodeError:
        token = ""
    if not edge.reauthenticate(token):
        raise edge.end(_CUT.NOT_AUTHORIZED, "re-authentication refused")
    _send(
        edge,
        mqtt5.AuthPacket(reason_code=mqtt5.AuthReasonCode.SUCCESS, authentication_method=METHOD),
    )
    return b""


def _send(edge: Edge, packet: Any) -> None:
    if edge.send is not None:
        edge.send(bytes(packet.write()))


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
    """A client's 5.0 packet as 3.1.1 bytes (none for what the edge answers itself), or
    `Unsupported` (CONNECT again, a server's packet)."""
    convert = _FROM_CLIENT.get(type(packet))
    if convert is None:
        raise edge.end(_CUT.PROTOCOL_ERROR, type(packet).__name__)
    return convert(packet, edge)


def disconnect_code(code: mqtt5.DisconnectReasonCode, why: str) -> bytes:
    return bytes(mqtt5.DisconnectPacket(reason_code=code, reason_str=why).write())
