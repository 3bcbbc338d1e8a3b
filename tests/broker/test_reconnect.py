"""Issue 16: a reconnect with the same client id right after a DISCONNECT gets the right
session. Each round connects clean, then persistent, then persistent again, each right
after the previous connection's DISCONNECT, with a QoS 1 message queued in between; stock
amqtt 0.12.1 got 12 of 15 rounds wrong with no wait (Mosquitto: none)."""

from __future__ import annotations

from tests.broker.wire import PUBACK, PUBLISH, RawClient, ack
from tests.stack import Stack

ROUNDS = 200


def test_reconnects_with_no_wait_get_the_right_session(stack: Stack) -> None:
    fleet = stack.fleet()
    device, sender = stack.device(fleet), stack.device(fleet)
    token = device.token()
    topic = f"fleets/{fleet}/up/{sender.id}"
    publisher = RawClient(stack, sender, token=sender.token())
    wrong: list[str] = []
    for n in range(ROUNDS):
        clean = RawClient(stack, device, token=token)
        if clean.session_present:  # MQTT-3.2.2-1
            wrong.append(f"round {n}: a clean session was handed back as present")
        clean.disconnect()

        first = RawClient(stack, device, clean=False, token=token)
        if first.session_present:  # MQTT-3.1.2-6: the clean session discarded the old one
            wrong.append(f"round {n}: a persistent session after a clean one was present")
        assert first.subscribe(f"fleets/{fleet}/up/+", qos=1) == [1]
        first.disconnect()

        payload = f"queued {n}".encode()
        publisher.publish(topic, payload, qos=1, packet_id=n % 65535 + 1)

        again = RawClient(stack, device, clean=False, token=token)
        if not again.session_present:  # MQTT-3.1.2-4: it resumes
            wrong.append(f"round {n}: the persistent session was lost")
        try:
            got = again.read(timeout=5)
        except TimeoutError:
            got = None
        if got is None or got.kind != PUBLISH or got.payload != payload:
            wrong.append(f"round {n}: the queued message did not come ({got})")
        elif got.qos == 1:
            again.send(ack(PUBACK, got.packet_id))
        again.disconnect()
    publisher.close()
    assert wrong == [], f"{len(wrong)} wrong of {ROUNDS} rounds: {wrong[:5]}"
