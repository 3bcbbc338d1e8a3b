"""Messages kept for an offline persistent session: how they go out on resume, and the
bound on how many are kept. A stack of its own, with a small bound, so that the session
gauge tells when the broker has seen a device go."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.wire import (
    DISCONNECT,
    PUBACK,
    PUBLISH,
    SUBSCRIBE,
    RawClient,
    ack,
    encode,
    packet,
)
from tests.stack import Client, Device, Stack, start_stack, wait_for

BOUND = 3


@pytest.fixture(scope="module")
def queue_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(
        Path(tmp_path_factory.mktemp("queue")), "--max-queued-messages", str(BOUND)
    )
    yield started
    started.stop()


def _metric(stack: Stack, name: str) -> float:
    match = re.search(
        rf"^{re.escape(name)} (\S+)$", stack.http.get(stack.base + "/metrics").text, re.M
    )
    return float(match.group(1)) if match else 0.0


def _gone(stack: Stack, device: Device, topic_filter: str) -> None:
    """Subscribe with a persistent session, leave, and wait until the broker knows."""
    raw = RawClient(stack, device, clean=False)
    assert raw.subscribe(topic_filter, qos=1) == [1]
    raw.send(packet(DISCONNECT, 0, b""))
    assert raw.closed_by_server()
    raw.close()
    connected = 'credbroker_mqtt_sessions{state="connected"}'
    wait_for(lambda: _metric(stack, connected) == 0, what="the session to be offline")


def test_kept_messages_go_out_with_retain_0(queue_stack: Stack) -> None:
    """MQTT-3.3.1-9: forwarded because of a subscription, so RETAIN=0 (stock amqtt: 1)."""
    fleet = queue_stack.fleet()
    receiver, watcher, sender = (queue_stack.device(fleet) for _ in range(3))
    topic_filter = f"fleets/{fleet}/up/+"
    _gone(queue_stack, receiver, topic_filter)
    watching = Client(queue_stack, watcher.id, watcher.token())
    assert watching.connected.wait(10)
    watching.subscribe(topic_filter)
    publisher = Client(queue_stack, sender.id, sender.token())
    assert publisher.connected.wait(10)
    publisher.publish(f"fleets/{fleet}/up/{sender.id}", b"while away", qos=1)
    # Delivered to the watcher: the same broadcast has kept it for the receiver.
    wait_for(lambda: watching.messages, what="the watcher's copy")
    again = RawClient(queue_stack, receiver, clean=False)
    assert again.session_present
    kept = again.expect(PUBLISH)
    assert (kept.payload, kept.qos, kept.retain) == (b"while away", 1, False)
    again.send(ack(PUBACK, kept.packet_id))
    for client in (again, watching, publisher):
        client.close()


def test_an_offline_session_keeps_the_latest_messages_up_to_its_bound(
    queue_stack: Stack,
) -> None:
    fleet = queue_stack.fleet()
    receiver, sender = queue_stack.device(fleet), queue_stack.device(fleet)
    topic_filter = f"fleets/{fleet}/up/+"
    _gone(queue_stack, receiver, topic_filter)
    dropped = _metric(queue_stack, "credbroker_mqtt_queue_dropped_total")
    publisher = Client(queue_stack, sender.id, sender.token())
    assert publisher.connected.wait(10)
    for i in range(BOUND + 2):
        publisher.publish(f"fleets/{fleet}/up/{sender.id}", str(i).encode(), qos=1)
    wait_for(
        lambda: _metric(queue_stack, "credbroker_mqtt_queue_dropped_total") == dropped + 2,
        what="two messages dropped at the bound",
    )
    publisher.close()
    again = RawClient(queue_stack, receiver, clean=False)
    kept = []
    for _ in range(BOUND):
        message = again.expect(PUBLISH)
        again.send(ack(PUBACK, message.packet_id))
        kept.append(message.payload)
    assert kept == [b"2", b"3", b"4"]  # the oldest went first
    again.close()


def test_a_subscribe_sent_with_the_disconnect_still_holds(queue_stack: Stack) -> None:
    """SUBSCRIBE and DISCONNECT in one write, the SUBACK not awaited: the persistent
    session keeps the subscription (packets are handled in order, MQTT 3.1.1 section
    4.6), and what is published while it is away waits for it."""
    fleet = queue_stack.fleet()
    receiver, sender = queue_stack.device(fleet), queue_stack.device(fleet)
    raw = RawClient(queue_stack, receiver, clean=False)
    body = struct.pack("!H", 1) + encode(f"fleets/{fleet}/up/+") + b"\x01"
    raw.send(packet(SUBSCRIBE, 0b0010, body) + packet(DISCONNECT, 0, b""))
    assert raw.closed_by_server()
    raw.close()
    connected = 'credbroker_mqtt_sessions{state="connected"}'
    wait_for(lambda: _metric(queue_stack, connected) == 0, what="the session to be offline")
    publisher = Client(queue_stack, sender.id, sender.token())
    assert publisher.connected.wait(10)
    publisher.publish(f"fleets/{fleet}/up/{sender.id}", b"while away", qos=1)
    publisher.close()
    again = RawClient(queue_stack, receiver, clean=False)
    assert again.session_present
    assert again.expect(PUBLISH).payload == b"while away"
    again.close()


def test_the_cli_default_is_the_brokers() -> None:
    from broker.delivery import MAX_QUEUED_MESSAGES
    from credbroker.cli import server

    assert server.MAX_QUEUED_MESSAGES == MAX_QUEUED_MESSAGES
