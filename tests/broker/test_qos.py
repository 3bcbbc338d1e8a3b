"""QoS of delivered messages and the outgoing QoS 1 and 2 flows (MQTT 3.1.1 section 4.3),
seen by a raw client that acknowledges what, and when, the test says."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.broker.wire import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RawClient,
    ack,
)
from tests.stack import Client, Device, Stack


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
