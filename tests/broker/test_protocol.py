"""Protocol violations close the connection (MQTT 3.1.1 section 4.8); nothing is left
half alive. Stock amqtt stopped serving such a connection but kept it open: later QoS 1
messages were acknowledged and lost, and keep-alive was no longer enforced."""

from __future__ import annotations

import re
import socket
import struct

import pytest

from broker.connect import MAX_CONNECT_BYTES
from tests.broker.wire import (
    PUBACK,
    SUBSCRIBE,
    UNSUBSCRIBE,
    RawClient,
    encode,
    packet,
    publish_packet,
)
from tests.stack import Stack, connect_packet, wait_for

BAD_TOPICS = {
    "single-level wildcard": b"devices/{id}/+",
    "multi-level wildcard": b"devices/{id}/#",
    "invalid UTF-8": b"devices/{id}/\xff\xfe",
    "UTF-16 surrogate": b"devices/{id}/\xed\xa0\x80",
    "NUL": b"devices/{id}/a\x00b",
    "empty": b"",
}
BAD_FILTERS = {
    "# not last": b"devices/{id}/#/b",
    "+ inside a level": b"devices/{id}/a+",
    "# inside a level": b"devices/{id}/a#",
    "invalid UTF-8": b"devices/{id}/\xc3",
    "NUL": b"devices/{id}/\x00",
    "empty": b"",
}


def _dropped(stack: Stack, reason: str) -> float:
    text = stack.http.get(stack.base + "/metrics").text
    pattern = rf'credbroker_mqtt_dropped_connections_total\{{reason="{reason}"\}} (\S+)'
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("case", BAD_TOPICS)
def test_a_publish_with_a_malformed_topic_name_closes_the_connection(
    stack: Stack, case: str
) -> None:
    device = stack.device(stack.fleet())
    before = _dropped(stack, "malformed_topic")
    raw = RawClient(stack, device)
    topic = BAD_TOPICS[case].replace(b"{id}", device.id.encode())
    raw.send(publish_packet(topic, b"bad", qos=1, packet_id=1))
    raw.send(publish_packet(f"devices/{device.id}/ok", b"after", qos=1, packet_id=2))
    assert raw.closed_by_server(), f"{case}: the connection stayed open"
    raw.close()
    assert _dropped(stack, "malformed_topic") == before + 1


@pytest.mark.parametrize("case", BAD_FILTERS)
@pytest.mark.parametrize("kind", [SUBSCRIBE, UNSUBSCRIBE])
def test_a_malformed_topic_filter_closes_the_connection(stack: Stack, case: str, kind: int) -> None:
    """MQTT 3.1.1 sections 1.5.3, 4.7.1 and 4.7.3: a filter that breaks them is a
    protocol violation, so the connection closes (section 4.8), not a SUBACK 0x80."""
    device = stack.device(stack.fleet())
    raw = RawClient(stack, device)
    topic_filter = BAD_FILTERS[case].replace(b"{id}", device.id.encode())
    body = struct.pack("!H", 7) + encode(topic_filter) + (b"\x01" if kind == SUBSCRIBE else b"")
    raw.send(packet(kind, 0b0010, body))
    assert raw.closed_by_server(), f"{case}: the connection stayed open"
    raw.close()


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("SUBSCRIBE with QoS 3", packet(SUBSCRIBE, 0b0010, b"\x00\x07" + encode("a/b") + b"\x03")),
        ("SUBSCRIBE without filters", packet(SUBSCRIBE, 0b0010, b"\x00\x07")),
        ("SUBSCRIBE with wrong flags", packet(SUBSCRIBE, 0, b"\x00\x07" + encode("a") + b"\x01")),
        ("PUBLISH with QoS 3", publish_packet("a/b", b"x", qos=3)),
        ("QoS 0 PUBLISH with DUP", publish_packet("a/b", b"x", qos=0, dup=True)),
        ("PUBLISH with packet id 0", publish_packet("a/b", b"x", qos=1, packet_id=0)),
        ("SUBACK from a client", packet(9, 0, b"\x00\x07\x01")),
        ("a second CONNECT", connect_packet("again")),
    ],
)
def test_other_protocol_violations_close_the_connection(
    stack: Stack, case: str, data: bytes
) -> None:
    device = stack.device(stack.fleet())
    raw = RawClient(stack, device)
    raw.send(data)
    assert raw.closed_by_server(), f"{case}: the connection stayed open"
    raw.close()


def test_a_publish_to_a_dollar_topic_is_refused_and_the_connection_keeps_working(
    stack: Stack,
) -> None:
    """MQTT 3.1.1 section 4.7.2: `$` topics are the server's; it SHOULD keep clients from
    exchanging messages through them. Such a PUBLISH is not malformed, so it is refused as
    an ACL violation would be (acknowledged, never delivered), even when the ACL names the
    topic, and the connection goes on."""
    dollar = "$devices/{device_id}/x"
    fleet = stack.fleet(
        publish=["devices/{device_id}/#", dollar], subscribe=["devices/{device_id}/#", dollar]
    )
    device = stack.device(fleet)
    raw = RawClient(stack, device)
    assert raw.subscribe(f"$devices/{device.id}/x", f"devices/{device.id}/ok") == [1, 1]
    raw.publish(f"$devices/{device.id}/x", b"dollar", qos=1, packet_id=1)
    raw.publish(f"devices/{device.id}/ok", b"after", qos=1, packet_id=2)
    delivered = raw.expect(3)  # the first PUBLISH the broker sends
    assert (delivered.topic, delivered.payload) == (f"devices/{device.id}/ok", b"after")
    raw.send(packet(PUBACK, 0, struct.pack("!H", delivered.packet_id)))
    raw.close()


def test_an_oversized_connect_is_closed_without_connack_and_counted(stack: Stack) -> None:
    before = _dropped(stack, "connect_too_large")
    sock = socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=10)
    sock.sendall(connect_packet("big", password=b"x" * (MAX_CONNECT_BYTES + 1)))
    try:
        answer = sock.recv(4)
    except ConnectionResetError:  # closed with the rest of the CONNECT unread
        answer = b""
    assert answer == b""  # closed, no CONNACK
    sock.close()
    wait_for(lambda: _dropped(stack, "connect_too_large") == before + 1, what="the count")
