"""MQTT 5.0 clients on the embedded broker (issue 15, first part): paho-mqtt's MQTTv5
client and `mosquitto_pub -V mqttv5` against a real `credbroker up`, beside 3.1.1
clients (README, MQTT 5.0)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import jwt
import mqtt5
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.broker.wire5 import Raw5
from tests.stack import Client, Five, Stack, wait_for


def _received(messages: list[Any], count: int) -> None:
    wait_for(lambda: len(messages) >= count, what=f"{count} messages")


def test_a_5_0_client_connects_subscribes_and_publishes_at_every_qos(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = Five(stack, device.id, device.token()).connect()
    try:
        assert client.reason.value == 0
        # What the broker takes and does, the CONNACK says (MQTT 5.0 section 3.2.2.3).
        said = client.properties.json()
        assert said.get("SharedSubscriptionAvailable", 1) == 1
        assert said.get("SubscriptionIdentifierAvailable", 1) == 1
        assert said["TopicAliasMaximum"] == 16
        assert said["ReceiveMaximum"] == 100
        assert said["MaximumPacketSize"] == 16 * 1024 * 1024
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
    an Authentication Method other than credbroker-token."""
    device = stack.device(stack.fleet())
    reasons = []
    for _ in range(8):
        guess = Five(stack, device.id, "garbage").connect()
        guess.close()
        reasons.append(guess.reason.value)
    assert reasons[0] == 0x86 and reasons[-1] == 0x9F, reasons
    properties = Properties(PacketTypes.CONNECT)
    properties.AuthenticationMethod = "SCRAM-SHA-256"
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


def test_re_authentication_moves_the_session_expiry_without_a_reconnect(
    stack: Stack,
) -> None:
    """MQTT 5.0 section 4.12: AUTH 0x19 with a fresh token; the session and its
    subscription go on past the first token's cut-off (its exp plus the 1 s leeway)."""
    fleet = stack.fleet(ttl=2)
    device = stack.device(fleet)
    first = device.token()
    client = Raw5(stack, device.id, first)
    try:
        assert client.next().reason_code == mqtt5.ConnAckReasonCode.SUCCESS
        topic = f"devices/{device.id}/t"
        client.send(mqtt5.SubscribePacket(1, [mqtt5.TopicFilter(topic, max_qos=mqtt5.QoS(1))]))
        assert isinstance(client.next(), mqtt5.SubAckPacket)
        longer = stack.http.patch(
            f"{stack.base}/v1/fleets/{fleet}", json={"token_ttl": 60}, headers=stack.admin
        )
        assert longer.status_code == 200  # the fresh token lives longer than the first
        answer = client.renew(device.token())
        assert isinstance(answer, mqtt5.AuthPacket), answer
        assert answer.reason_code == mqtt5.AuthReasonCode.SUCCESS
        # The first token's cut would come as a DISCONNECT before this; nothing comes.
        cut_off = jwt.decode(first, options={"verify_signature": False})["exp"] + 1
        client.sock.settimeout(cut_off + 1.5 - time.time())
        with pytest.raises(TimeoutError):
            arrived = client.next()
            raise AssertionError(f"{arrived!r} came before the first token's cut-off")
        client.sock.settimeout(10)
        client.send(mqtt5.PublishPacket(topic, b"still here", qos=mqtt5.QoS(1), packet_id=2))
        got = [client.next(), client.next()]
        assert {type(p) for p in got} == {mqtt5.PubAckPacket, mqtt5.PublishPacket}, got
    finally:
        client.sock.close()


def test_re_authentication_with_a_bad_token_disconnects_with_0x87(stack: Stack) -> None:
    """Another device's token, garbage, or the device's own with a wider ACL."""
    fleet = stack.fleet()
    device, other = stack.device(fleet), stack.device(fleet)
    tokens = [other.token(), "garbage"]
    before = device.token()
    wider = {"acl": {"publish": ["#"], "subscribe": ["#"]}}
    changed = stack.http.patch(f"{stack.base}/v1/fleets/{fleet}", json=wider, headers=stack.admin)
    assert changed.status_code == 200
    tokens.append(device.token())  # its own, with a wider ACL than the session's
    for token in tokens:
        client = Raw5(stack, device.id, before)
        try:
            assert client.next().reason_code == mqtt5.ConnAckReasonCode.SUCCESS
            answer = client.renew(token)
            assert isinstance(answer, mqtt5.DisconnectPacket), answer
            assert answer.reason_code == mqtt5.DisconnectReasonCode.NOT_AUTHORIZED
            assert client.next() is None  # and the connection ends
        finally:
            client.sock.close()


def test_a_resumed_session_re_authenticates_with_the_new_claims_and_is_still_cut(
    stack: Stack,
) -> None:
    """The fresh token's claims hold from the AUTH on, for a session resumed from an
    earlier connection too; a revocation then still cuts it (0x87)."""
    fleet = stack.fleet(publish=["devices/{device_id}/#"], subscribe=["devices/{device_id}/#"])
    device = stack.device(fleet)
    first = Raw5(stack, device.id, device.token(), session_expiry_interval=60)
    assert first.connack().reason_code == mqtt5.ConnAckReasonCode.SUCCESS
    first.send(mqtt5.DisconnectPacket())
    first.close()
    client = Raw5(stack, device.id, device.token(), clean_start=False, session_expiry_interval=60)
    try:
        assert client.connack().session_present
        narrower = {"acl": {"publish": ["devices/{device_id}/up"], "subscribe": []}}
        changed = stack.http.patch(
            f"{stack.base}/v1/fleets/{fleet}", json=narrower, headers=stack.admin
        )
        assert changed.status_code == 200
        answer = client.renew(device.token())
        assert isinstance(answer, mqtt5.AuthPacket), answer
        topic = f"devices/{device.id}/other"  # allowed by the first token, not the fresh one
        client.send(mqtt5.PublishPacket(topic, b"x", qos=mqtt5.QoS(1), packet_id=1))
        acknowledged = client.expect(mqtt5.PubAckPacket)
        assert acknowledged.reason_code == mqtt5.PubAckReasonCode.NOT_AUTHORIZED
        assert device.api("POST", ":revoke").status_code == 200
        cut = client.expect(mqtt5.DisconnectPacket)
        assert cut.reason_code == mqtt5.DisconnectReasonCode.NOT_AUTHORIZED
    finally:
        client.close()


def test_re_authentication_keeps_the_subscriptions_and_the_flows_in_flight(
    stack: Stack,
) -> None:
    """Issue 15: QoS 1 and 2 messages in flight both ways when the AUTH comes complete
    after it, each once; the subscription goes on."""
    fleet = stack.fleet()
    device, sender = stack.device(fleet), stack.device(fleet)
    topic = f"fleets/{fleet}/up/{sender.id}"
    client = Raw5(stack, device.id, device.token())
    other = Client(stack, sender.id, sender.token())
    try:
        client.connack()
        assert other.connected.wait(10)
        client.subscribe(1, mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=mqtt5.QoS(2)))
        other.publish(topic, b"one", qos=1)
        other.publish(topic, b"two", qos=2)
        inbound = [client.expect(mqtt5.PublishPacket) for _ in range(2)]
        by_payload = {p.payload: p for p in inbound}
        client.send(mqtt5.PubRecPacket(by_payload[b"two"].packet_id))
        assert client.expect(mqtt5.PubRelPacket).packet_id == by_payload[b"two"].packet_id
        own = f"fleets/{fleet}/up/{device.id}"
        client.send(mqtt5.PublishPacket(own, b"mine", qos=mqtt5.QoS(2), packet_id=9))
        assert client.expect(mqtt5.PubRecPacket).packet_id == 9
        answer = client.renew(device.token())
        assert isinstance(answer, mqtt5.AuthPacket), answer
        assert answer.reason_code == mqtt5.AuthReasonCode.SUCCESS
        client.send(mqtt5.PubAckPacket(by_payload[b"one"].packet_id))
        client.send(mqtt5.PubCompPacket(by_payload[b"two"].packet_id))
        client.send(mqtt5.PubRelPacket(9))
        assert client.expect(mqtt5.PubCompPacket).packet_id == 9
        mine = client.expect(mqtt5.PublishPacket)  # its own message, through its subscription
        assert (mine.payload, mine.duplicate) == (b"mine", False)
        client.send(mqtt5.PubRecPacket(mine.packet_id))  # (QoS 2, as sent and subscribed)
        other.publish(topic, b"after", qos=1)
        after = client.expect(mqtt5.PublishPacket)
        assert (after.payload, after.duplicate) == (b"after", False)  # nothing sent twice
    finally:
        client.close()
        other.close()


def test_re_authentication_with_an_expired_token_disconnects_with_0x87(stack: Stack) -> None:
    fleet = stack.fleet(ttl=1)
    device = stack.device(fleet)
    stale = device.token()
    cut_off = jwt.decode(stale, options={"verify_signature": False})["exp"] + 1  # the leeway
    longer = stack.http.patch(
        f"{stack.base}/v1/fleets/{fleet}", json={"token_ttl": 60}, headers=stack.admin
    )
    assert longer.status_code == 200
    client = Raw5(stack, device.id, device.token())
    try:
        assert client.connack().reason_code == mqtt5.ConnAckReasonCode.SUCCESS
        time.sleep(max(0.0, cut_off + 0.2 - time.time()))  # the clock, not the broker
        answer = client.renew(stale)
        assert isinstance(answer, mqtt5.DisconnectPacket), answer
        assert answer.reason_code == mqtt5.DisconnectReasonCode.NOT_AUTHORIZED
    finally:
        client.close()


def test_a_5_0_connection_shows_its_protocol_in_the_device_sessions(stack: Stack) -> None:
    """DESIGN.md: GET /v1/devices/{id}/sessions lists live connections with `protocol`."""
    device = stack.device(stack.fleet())
    client = Raw5(stack, device.id, device.token())
    try:
        assert client.connack().reason_code == mqtt5.ConnAckReasonCode.SUCCESS

        def protocols() -> list[str]:
            answer = device.api("GET", "/sessions")
            assert answer.status_code == 200, answer.text
            return [c["protocol"] for c in answer.json()["connections"]]

        wait_for(lambda: protocols() != [], what="the connection listed")
        assert protocols() == ["5.0"]
    finally:
        client.close()
