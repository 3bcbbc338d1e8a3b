"""MQTT 5.0 packets to the client (broker/v5.py has the connection's edge): the core's
3.1.1 packets as the 5.0 packets they mean, with the reason codes the edge knows
(`from_311`), the server's own CONNACK and DISCONNECT, and PUBLISH with its message's
properties (properties.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import mqtt5

from broker import properties
from broker.packets import framed
from broker.v5 import (
    MAX_PACKET,
    NOT_IN_PUBLISH_ACL,
    NOT_IN_SUBSCRIBE_ACL,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS_MAXIMUM,
    Edge,
    disconnect_code,
)
from broker.v5 import length as _length

Reason = mqtt5.ConnAckReasonCode
_CUT = mqtt5.DisconnectReasonCode
# A 3.1.1 CONNACK return code (section 3.2.2.3) as the 5.0 reason code that means it.
CONNACK_REASONS = {
    0: Reason.SUCCESS,
    1: Reason.UNSUPPORTED_PROTOCOL_VERSION,
    2: Reason.CLIENT_ID_NOT_VALID,
    3: Reason.SERVER_UNAVAILABLE,
    4: Reason.BAD_USER_NAME_OR_PASSWORD,
    5: Reason.NOT_AUTHORIZED,
}


def connack(
    reason: mqtt5.ConnAckReasonCode,
    session_present: bool = False,
    *,
    edge: Edge | None = None,
    why: str | None = None,
) -> bytes:
    """A 5.0 CONNACK: a refusal with the rule that refused it (`why`), or an acceptance
    with what this server takes and does (section 3.2.2.3)."""
    if reason != Reason.SUCCESS:
        return bytes(mqtt5.ConnAckPacket(reason_code=reason, reason_str=why).write())
    packet = mqtt5.ConnAckPacket(
        session_present=session_present,
        reason_code=reason,
        receive_max=RECEIVE_MAXIMUM,
        topic_alias_max=TOPIC_ALIAS_MAXIMUM,
        max_packet_size=MAX_PACKET,
        server_keep_alive=None if edge is None else edge.server_keep_alive,
        shared_subscription_available=True,
    )
    return bytes(packet.write())


# Why the broker cuts a session (the `kick` reasons, the verifier's words among them),
# as the 5.0 DISCONNECT reason a device can act on: renew its token (0xA0), or not.
DISCONNECT_REASONS = {
    "expired": _CUT.MAX_CONNECT_TIME,
    "key_retired": _CUT.MAX_CONNECT_TIME,  # its signing key rotated at once: renew
    "revoked": _CUT.ADMINISTRATIVE_ACTION,  # a logout or session end, by an operator
    "taken_over": _CUT.SESSION_TAKEN_OVER,
    "protocol_error": _CUT.PROTOCOL_ERROR,
}


def disconnect(reason: str) -> bytes:
    """The server's 5.0 DISCONNECT for a cut, with the reason as its reason string; not
    authorized (0x87) unless said above: a device disabled, revoked or deleted, or over
    its ACL once too often."""
    return disconnect_code(DISCONNECT_REASONS.get(reason, _CUT.NOT_AUTHORIZED), reason)


def _publish_out(
    topic: str, data: bytes | bytearray, qos: int, retain: bool, packet_id: int | None, dup: bool
) -> mqtt5.PublishPacket:
    said = properties.properties(data)
    extra: dict[str, Any] = {}
    if said is not None:
        extra = {
            "payload_format_indicator": said.payload_format_indicator,
            "message_expiry_interval": said.left(time.monotonic()),
            "content_type": said.content_type,
            "response_topic": said.response_topic,
            "correlation_data": said.correlation_data,
            "user_properties": list(said.user_properties),
            "subscription_ids": list(said.subscription_ids),
        }
    return mqtt5.PublishPacket(
        topic,
        bytes(data),
        qos=mqtt5.QoS(qos),
        retain=retain,
        packet_id=packet_id if qos else None,
        duplicate=dup,
        **extra,
    )


def publish(packet: Any) -> bytes:
    """An amqtt PublishPacket the core sends, as a 5.0 PUBLISH with its message's
    properties (the Message Expiry Interval as the time left). Without properties it is
    the 3.1.1 PUBLISH with a property length of 0 (section 3.3.2.3.1)."""
    flags = packet.fixed_header.flags
    if not isinstance(packet.data, properties.Payload):
        topic = packet.topic_name.encode()
        head = len(topic).to_bytes(2, "big") + topic
        if flags & 0x06:
            head += packet.packet_id.to_bytes(2, "big")
        body: bytes = head + b"\x00" + packet.data
        return bytes([0x30 | flags]) + _length(len(body)) + body
    out = _publish_out(
        packet.topic_name,
        packet.data,
        flags >> 1 & 3,
        bool(flags & 1),
        packet.packet_id,
        bool(flags & 0x08),
    )
    return bytes(out.write())


def publish_size(topic: str, data: bytes | bytearray, qos: int) -> int:
    """The size of the 5.0 PUBLISH that would carry a message (for a Maximum Packet Size)."""
    return len(_publish_out(topic, data, qos, False, 1, False).write())


def _suback_5(first: int, body: bytes, edge: Edge) -> Any:
    granted = mqtt5.SubAckReasonCode
    packet_id = int.from_bytes(body[:2], "big")
    edge.subscribed.pop(packet_id, None)
    # The core refuses a filter for one reason: the device's ACL does not allow it.
    codes = [granted(code) if code < 3 else granted.NOT_AUTHORIZED for code in body[2:]]
    refused = edge.problem_info and any(code >= 0x80 for code in body[2:])
    return mqtt5.SubAckPacket(
        packet_id, codes, reason_str=NOT_IN_SUBSCRIBE_ACL if refused else None
    )


def _unsuback_5(first: int, body: bytes, edge: Edge) -> Any:
    packet_id = int.from_bytes(body[:2], "big")
    count = edge.unsubscribed.pop(packet_id, 1)
    return mqtt5.UnsubAckPacket(packet_id, [mqtt5.UnsubAckReasonCode.SUCCESS] * count)


def _puback_5(first: int, body: bytes, edge: Edge) -> Any:
    """A PUBACK for a QoS 1 PUBLISH the ACL refused (`from_311` passes the others)."""
    packet_id = int.from_bytes(body[:2], "big")
    edge.refused.discard(packet_id)
    why = NOT_IN_PUBLISH_ACL if edge.problem_info else None
    refused = mqtt5.PubAckReasonCode.NOT_AUTHORIZED
    return mqtt5.PubAckPacket(packet_id, reason_code=refused, reason_str=why)


# The packets of the core that are not the same bytes in 5.0 (`from_311`).
_TO_CLIENT: dict[int, Callable[[int, bytes, Edge], Any]] = {
    4: _puback_5,
    9: _suback_5,
    11: _unsuback_5,
}


def from_311(data: bytes, edge: Edge) -> bytes:
    """A whole 3.1.1 packet the core sends (but PUBLISH: `publish`), as the 5.0 packet
    it means. A successful acknowledgement without properties, and PINGRESP, are the
    same bytes in both (MQTT 5.0 section 3.4.2.1): they go as they are."""
    kind = data[0] >> 4
    if len(data) == 4 and 4 <= kind <= 7:
        packet_id = int.from_bytes(data[2:4], "big")
        if kind in (4, 7):  # the client's PUBLISH is acknowledged: off its Receive Maximum
            edge.inflight.discard(packet_id)
        if kind != 4 or packet_id not in edge.refused:
            return data
    elif kind == 13:
        return data
    found = framed(data, 0)
    assert found is not None  # noqa: S101 - a whole packet
    body = data[found[0] :]
    if kind == 2:  # CONNACK
        reason = CONNACK_REASONS.get(body[1], Reason.UNSPECIFIED_ERROR)
        return connack(reason, bool(body[0] & 1), edge=edge)
    convert = _TO_CLIENT.get(kind)
    return data if convert is None else bytes(convert(data[0], body, edge).write())
