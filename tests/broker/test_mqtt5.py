"""MQTT 5.0 clients on the embedded broker (issue 15, first part): paho-mqtt's MQTTv5
client and `mosquitto_pub -V mqttv5` against a real `credbroker up`, beside 3.1.1
clients (README, MQTT 5.0)."""

from __future__ import annotations

import subprocess
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.stack import Client, Five, Stack, wait_for


def _received(messages: list[Any], count: int) -> None:
    wait_for(lambda: len(messages) >= count, what=f"{count} messages")


def test_a_5_0_client_connects_subscribes_and_publishes_at_every_qos(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = Five(stack, device.id, device.token()).connect()
    try:
        assert client.reason.value == 0
        # What the core does not do, the CONNACK says (MQTT 5.0 section 3.2.2.3).
        said = client.properties.json()
        assert said["SharedSubscriptionAvailable"] == 0
        assert said["SubscriptionIdentifierAvailable"] == 0
        assert said.get("TopicAliasMaximum", 0) == 0
        client.paho.subscribe([(f"devices/{device.id}/#", 2), ("elsewhere/#", 1)])
        assert client.subscribed.wait(10)
        assert [code.value for code in client.granted] == [2, 0x87]  # 0x87: not authorized
        for qos in (0, 1, 2):
            info = client.paho.publish(f"devices/{device.id}/t", f"qos {qos}".encode(), qos)
            info.wait_for_publish(10)
        _received(client.messages, 3)
        assert sorted(client.messages) == [
            (f"devices/{device.id}/t", f"qos {qos}".encode(), qos) for qos in (0, 1, 2)
        ]
        client.paho.unsubscribe(f"devices/{device.id}/#")
        assert client.unsubscribed.wait(10)
        assert [code.value for code in client.ungranted] == [0]
    finally:
        client.close()


def test_messages_cross_between_5_0_and_3_1_1_clients(stack: Stack) -> None:
    fleet = stack.fleet()
    five, old = stack.device(fleet), stack.device(fleet)
    up = f"fleets/{fleet}/up/+"
    listener = Five(stack, five.id, five.token()).connect()
    subscriber = Client(stack, old.id, old.token())
    try:
        assert subscriber.connected.wait(10)
        subscriber.subscribe(up, qos=1)
        listener.paho.subscribe(up, 1)
        assert listener.subscribed.wait(10)
        listener.paho.publish(f"fleets/{fleet}/up/{five.id}", b"from 5.0", 1).wait_for_publish(10)
        subscriber.publish(f"fleets/{fleet}/up/{old.id}", b"from 3.1.1")
        _received(listener.messages, 2)
        assert {payload for _, payload, _ in listener.messages} == {b"from 5.0", b"from 3.1.1"}
        _received(subscriber.messages, 2)
        assert {payload for _, payload, _ in subscriber.messages} == {b"from 5.0", b"from 3.1.1"}
    finally:
        listener.close()
        subscriber.close()


def test_refused_connects_carry_the_5_0_reason_codes(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    bad = Five(stack, device.id, "garbage").connect()
    bad.close()
    assert bad.reason.value == 0x86  # bad user name or password
    token = device.token()
    assert device.api("PATCH", json={"status": "disabled"}).status_code == 200
    refused = Five(stack, device.id, token).connect()
    refused.close()
    assert refused.reason.value == 0x87  # not authorized


def test_mosquitto_pub_speaks_5_0_with_a_token(stack: Stack) -> None:
    device = stack.device(stack.fleet())

    def publish(password: str) -> int:
        command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(stack.mqtt_port)]
        command += ["-V", "mqttv5", "-q", "1", "-i", device.id, "-u", device.id]
        command += ["-P", password, "-t", f"devices/{device.id}/t", "-m", "five"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        return done.returncode

    assert publish(device.token()) == 0
    assert publish("garbage") == 0x86  # mosquitto_pub exits with the reason code


def _cut(client: Five, reason: int) -> None:
    assert client.disconnected.wait(5), "not cut"
    assert client.disconnect_reason.value == reason, client.disconnect_reason
    client.paho.loop_stop()


def test_each_cut_of_a_5_0_session_says_why(stack: Stack) -> None:
    """DESIGN.md, MQTT 5: DISCONNECT 0x87 at revocation or disabling, 0xA0 at token
    expiry, 0x8E at take-over, 0x98 at an operator's session end."""
    fleet = stack.fleet()
    revoked, disabled, ended, taken = (stack.device(fleet) for _ in range(4))
    clients = {d.id: Five(stack, d.id, d.token()).connect() for d in (revoked, disabled, ended)}
    assert revoked.api("POST", ":revoke").status_code == 200
    _cut(clients[revoked.id], 0x87)
    assert disabled.api("PATCH", json={"status": "disabled"}).status_code == 200
    _cut(clients[disabled.id], 0x87)
    assert ended.api("POST", "/tokens:revoke").status_code == 200
    _cut(clients[ended.id], 0x98)
    first = Five(stack, taken.id, taken.token()).connect()
    second = Five(stack, taken.id, taken.token()).connect()
    _cut(first, 0x8E)
    second.close()
    short = stack.device(stack.fleet(ttl=1))  # the stack's leeway is 1 s
    expiring = Five(stack, short.id, short.token()).connect()
    _cut(expiring, 0xA0)


def test_a_disconnect_with_will_publishes_the_will(stack: Stack) -> None:
    fleet = stack.fleet()
    five, old = stack.device(fleet), stack.device(fleet)
    subscriber = Client(stack, old.id, old.token())
    assert subscriber.connected.wait(10)
    subscriber.subscribe(f"fleets/{fleet}/up/+", qos=1)
    client = Five(stack, five.id, five.token())
    client.paho.will_set(f"fleets/{fleet}/up/{five.id}", b"gone", 1)
    client.connect()
    try:
        with_will = mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=4)
        client.paho.disconnect(reasoncode=with_will)
        _received(subscriber.messages, 1)
        assert [payload for _, payload, _ in subscriber.messages] == [b"gone"]
    finally:
        client.paho.loop_stop()
        subscriber.close()


def test_a_penalty_and_an_authentication_method_have_their_reason_codes(stack: Stack) -> None:
    """0x9F once a client id's failures earn a penalty (the 3.1.1 contract's 3); 0x8C for
    an Authentication Method, since AUTH is not built yet."""
    device = stack.device(stack.fleet())
    reasons = []
    for _ in range(8):
        guess = Five(stack, device.id, "garbage").connect()
        guess.close()
        reasons.append(guess.reason.value)
    assert reasons[0] == 0x86 and reasons[-1] == 0x9F, reasons
    properties = Properties(PacketTypes.CONNECT)
    properties.AuthenticationMethod = "credbroker-token"
    asked = Five(stack, device.id, None).connect(properties=properties)
    asked.close()
    assert asked.reason.value == 0x8C


def test_a_publish_outside_the_acl_gets_puback_0x87(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = Five(stack, device.id, device.token()).connect()
    try:
        outside = client.paho.publish("elsewhere/x", b"no", 1)
        inside = client.paho.publish(f"devices/{device.id}/t", b"yes", 1)
        outside.wait_for_publish(10)
        inside.wait_for_publish(10)
        wait_for(lambda: len(client.acknowledged) == 2, what="both PUBACKs")
        assert client.acknowledged[outside.mid].value == 0x87  # not authorized
        assert client.acknowledged[inside.mid].value == 0
    finally:
        client.close()
