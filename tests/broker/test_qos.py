"""QoS of delivered messages and the outgoing QoS 1 and 2 flows (MQTT 3.1.1 section 4.3),
seen by a raw client that acknowledges what, and when, the test says."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.broker.wire import (
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    UNSUBACK,
    UNSUBSCRIBE,
    RawClient,
    ack,
    encode,
    packet,
)
from tests.stack import Client, Device, Stack

STOCK_ACK_TIMEOUT = 5.0  # amqtt 0.12.1 gave up on an acknowledgement after this


@dataclass
class Route:
    """A receiving device, a connected sender, and the sender's topic in their fleet."""

    receiver: Device
    publisher: Client
    topic: str
    topic_filter: str  # the receiver's filter for every sender of the fleet

    def send(self, payload: bytes, qos: int, *, retain: bool = False) -> None:
        self.publisher.publish(self.topic, payload, qos=qos, retain=retain)


def _route(stack: Stack) -> Route:
    fleet = stack.fleet()
    receiver, sender = stack.device(fleet), stack.device(fleet)
    publisher = Client(stack, sender.id, sender.token())
    assert publisher.connected.wait(10)
    return Route(receiver, publisher, f"fleets/{fleet}/up/{sender.id}", f"fleets/{fleet}/up/+")


def _nothing_resent(stack: Stack, route: Route) -> None:
    """On resume, the first PUBLISH is a fresh marker: nothing old was sent again."""
    again = RawClient(stack, route.receiver, clean=False)
    assert again.session_present
    route.send(b"marker", 1)
    first = again.expect(PUBLISH)
    assert first.payload == b"marker", f"resent: {first}"
    again.send(ack(PUBACK, first.packet_id))
    again.close()


@pytest.mark.parametrize(("published", "subscribed"), [(0, 2), (1, 2), (2, 1), (0, 1), (2, 2)])
def test_delivered_qos_is_the_lower_of_publish_and_subscription(
    stack: Stack, published: int, subscribed: int
) -> None:
    """MQTT-3.8.4-6; stock amqtt delivered at the subscription's QoS."""
    route = _route(stack)
    raw = RawClient(stack, route.receiver)
    assert raw.subscribe(route.topic_filter, qos=subscribed) == [subscribed]
    route.send(b"live", published)
    got = raw.expect(PUBLISH)
    assert (got.payload, got.qos, got.retain) == (b"live", min(published, subscribed), False)
    raw.close()
    route.publisher.close()


@pytest.mark.parametrize(("retained", "subscribed"), [(0, 2), (1, 2), (2, 1)])
def test_retained_messages_are_delivered_at_the_lower_qos_too(
    stack: Stack, retained: int, subscribed: int
) -> None:
    route = _route(stack)
    raw = RawClient(stack, route.receiver)
    assert raw.subscribe(route.topic_filter, qos=2) == [2]
    route.send(b"kept", retained, retain=True)
    live = raw.expect(PUBLISH)  # delivered live, so the broker has stored it by now
    if live.qos:
        raw.send(ack(PUBACK if live.qos == 1 else PUBREC, live.packet_id))
    if live.qos == 2:
        assert raw.expect(PUBREL).packet_id == live.packet_id
        raw.send(ack(PUBCOMP, live.packet_id))
    assert raw.subscribe(route.topic, qos=subscribed, packet_id=2) == [subscribed]
    got = raw.expect(PUBLISH)
    assert (got.payload, got.qos, got.retain) == (b"kept", min(retained, subscribed), True)
    raw.close()
    route.send(b"", 1, retain=True)  # clear it
    route.publisher.close()


def test_a_session_taken_over_while_it_resumes_is_not_left_connected(stack: Stack) -> None:
    """Stock amqtt made a connection's disconnect waiter only at the end of its start,
    after resending the session's unacknowledged messages. A take-over (or the end of
    the connection) in between resolved no waiter: the session stayed "connected" for
    good, and the next CONNECT with that client id waited 5 s and got no CONNACK."""
    route = _route(stack)
    raw = RawClient(stack, route.receiver, clean=False)
    assert raw.subscribe(route.topic_filter, qos=1) == [1]
    route.send(b"unacknowledged", 1)
    assert raw.expect(PUBLISH).payload == b"unacknowledged"
    raw.close()  # no PUBACK: the message stays with the session
    silent = RawClient(stack, route.receiver, clean=False)
    assert silent.expect(PUBLISH).dup  # resent; no PUBACK again, and the socket stays open
    again = RawClient(stack, route.receiver, clean=False)  # takes the session over
    resent = again.expect(PUBLISH)
    assert (resent.payload, resent.dup) == (b"unacknowledged", True)
    again.send(ack(PUBACK, resent.packet_id))
    again.close()
    silent.close()
    _nothing_resent(stack, route)
    route.publisher.close()


def test_a_qos2_message_without_pubrec_is_resent_with_dup_on_resume(stack: Stack) -> None:
    """MQTT-4.4.0-1; stock amqtt forgot an outgoing QoS 2 message when its connection
    ended before PUBREC."""
    route = _route(stack)
    raw = RawClient(stack, route.receiver, clean=False)
    assert raw.subscribe(route.topic_filter, qos=2) == [2]
    route.send(b"exactly once", 2)
    first = raw.expect(PUBLISH)
    assert (first.qos, first.dup) == (2, False)
    raw.close()  # no PUBREC
    again = RawClient(stack, route.receiver, clean=False)
    assert again.session_present
    resent = again.expect(PUBLISH)
    assert (resent.packet_id, resent.payload, resent.qos, resent.dup) == (
        first.packet_id,
        b"exactly once",
        2,
        True,
    )
    again.send(ack(PUBREC, resent.packet_id))
    assert again.expect(PUBREL).packet_id == resent.packet_id
    again.send(ack(PUBCOMP, resent.packet_id))
    again.close()
    _nothing_resent(stack, route)
    route.publisher.close()


def test_a_qos2_message_without_pubcomp_gets_its_pubrel_again_on_resume(stack: Stack) -> None:
    """MQTT-4.4.0-1: after PUBREC the sender resends PUBREL, never the PUBLISH (4.3.3)."""
    route = _route(stack)
    raw = RawClient(stack, route.receiver, clean=False)
    assert raw.subscribe(route.topic_filter, qos=2) == [2]
    route.send(b"exactly once", 2)
    first = raw.expect(PUBLISH)
    raw.send(ack(PUBREC, first.packet_id))
    assert raw.expect(PUBREL).packet_id == first.packet_id
    raw.close()  # no PUBCOMP
    again = RawClient(stack, route.receiver, clean=False)
    assert again.expect(PUBREL).packet_id == first.packet_id
    again.send(ack(PUBCOMP, first.packet_id))
    again.close()
    _nothing_resent(stack, route)
    route.publisher.close()


def test_late_acknowledgements_complete_their_flows(stack: Stack) -> None:
    """A PUBACK, PUBREC or PUBCOMP that comes after amqtt's old 5 s timeout still counts:
    MQTT 3.1.1 resends only on reconnect, so the message must not come back then."""
    route = _route(stack)
    raw = RawClient(stack, route.receiver, clean=False)
    assert raw.subscribe(route.topic_filter, qos=2) == [2]
    for payload, qos in ((b"one", 1), (b"two", 2), (b"three", 2)):
        route.send(payload, qos)
    one, two, three = (raw.expect(PUBLISH) for _ in range(3))
    assert [m.payload for m in (one, two, three)] == [b"one", b"two", b"three"]
    raw.send(ack(PUBREC, two.packet_id))
    assert raw.expect(PUBREL).packet_id == two.packet_id
    # The stimulus, not a synchronisation: these acknowledgements are late on purpose.
    time.sleep(STOCK_ACK_TIMEOUT + 1)
    raw.send(ack(PUBACK, one.packet_id))
    raw.send(ack(PUBCOMP, two.packet_id))
    raw.send(ack(PUBREC, three.packet_id))
    assert raw.expect(PUBREL).packet_id == three.packet_id
    raw.send(ack(PUBCOMP, three.packet_id))
    raw.ping()  # answered after the PUBCOMPs: they have been read
    raw.expect(PINGRESP)
    raw.close()
    _nothing_resent(stack, route)
    route.publisher.close()


def test_a_repeated_subscribe_replaces_the_subscriptions_qos(stack: Stack) -> None:
    """MQTT-3.8.4-3: stock amqtt kept the first subscription's QoS."""
    route = _route(stack)
    raw = RawClient(stack, route.receiver)
    assert raw.subscribe(route.topic_filter, qos=2) == [2]
    assert raw.subscribe(route.topic_filter, qos=0, packet_id=2) == [0]
    route.send(b"now at 0", 2)
    got = raw.expect(PUBLISH)
    assert (got.payload, got.qos) == (b"now at 0", 0)
    raw.send(packet(UNSUBSCRIBE, 0b0010, b"\x00\x03" + encode(route.topic_filter)))
    assert raw.expect(UNSUBACK).packet_id == 3
    raw.close()
    route.publisher.close()
