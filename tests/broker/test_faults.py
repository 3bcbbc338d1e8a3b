"""Each amqtt 0.12.1 fault that CredBroker fixes stays fixed."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import paho.mqtt.client as mqtt

from tests.stack import Client, Stack, connect_packet, mosquitto_pub, wait_for


def _sessions(stack: Stack, state: str) -> int:
    text = stack.http.get(stack.base + "/metrics").text
    match = re.search(rf'credbroker_mqtt_sessions\{{state="{state}"\}} (\S+)', text)
    assert match, text[-2000:]
    return int(float(match.group(1)))


def test_wrong_password_with_a_victims_id_changes_nothing(stack: Stack) -> None:
    fleet = stack.fleet()
    victim, sender = stack.device(fleet), stack.device(fleet)
    for clean in (True, False):
        client = Client(stack, victim.id, victim.token(), clean=clean)
        assert client.connected.wait(10)
        client.subscribe(f"fleets/{fleet}/up/+")
        assert mosquitto_pub(stack, victim.id, "forged-password", "x").returncode == 4
        done = mosquitto_pub(stack, sender.id, sender.token(), f"fleets/{fleet}/up/{sender.id}")
        assert done.returncode == 0
        wait_for(lambda c=client: c.messages, what="delivery to the victim")
        assert client.paho.is_connected() and not client.disconnected.is_set()
        client.close()


def test_refused_connects_leave_no_session(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    before = _sessions(stack, "connected") + _sessions(stack, "disconnected")
    for i in range(5):
        assert mosquitto_pub(stack, f"{device.id}", f"bad-{i}", "x").returncode == 4
    after = _sessions(stack, "connected") + _sessions(stack, "disconnected")
    assert after == before


def test_acknowledged_qos1_burst_survives_an_immediate_disconnect(stack: Stack) -> None:
    fleet = stack.fleet()
    publisher, subscriber = stack.device(fleet), stack.device(fleet)
    sub = Client(stack, subscriber.id, subscriber.token())
    assert sub.connected.wait(10)
    sub.subscribe(f"fleets/{fleet}/up/+")
    pub = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=publisher.id, protocol=mqtt.MQTTv311
    )
    pub.username_pw_set(publisher.id, publisher.token())
    pub.max_inflight_messages_set(100)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", stack.mqtt_port)
    pub.loop_start()
    infos = [
        pub.publish(f"fleets/{fleet}/up/{publisher.id}", str(i).encode(), qos=1)
        for i in range(1000)
    ]
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()  # at once, right after the last PUBACK
    pub.loop_stop()
    wait_for(lambda: len(sub.messages) >= 1000, timeout=60, what="all 1000 messages")
    assert sorted(int(m[1]) for m in sub.messages) == list(range(1000))
    sub.close()


def test_retained_messages_only_through_own_subscriptions(stack: Stack) -> None:
    fleet = stack.fleet()
    owner, other = stack.device(fleet), stack.device(fleet)
    keeper = Client(stack, owner.id, owner.token())
    assert keeper.connected.wait(10)
    keeper.subscribe(f"devices/{owner.id}/#")
    keeper.publish(f"devices/{owner.id}/config", b"wifi-psk=hunter2", qos=1, retain=True)
    wait_for(lambda: keeper.messages, what="the owner's own copy")
    nosy = Client(stack, other.id, other.token())
    assert nosy.connected.wait(10)
    nosy.subscribe(f"devices/{other.id}/#")
    nosy.publish(f"devices/{other.id}/ping", b"marker", qos=1)
    wait_for(lambda: any(m[1] == b"marker" for m in nosy.messages), what="the marker")
    assert [m[1] for m in nosy.messages] == [b"marker"]
    keeper.close()
    nosy.close()


def test_keepalive_is_enforced(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    sock = socket.create_connection(("127.0.0.1", stack.mqtt_port))
    sock.sendall(connect_packet(device.id, keepalive=1, password=device.token().encode()))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    sock.settimeout(10)
    started = time.monotonic()
    assert sock.recv(1) == b""  # silent client: the broker closes after 1.5 x keep-alive
    assert 1.0 <= time.monotonic() - started < 5
    sock.close()


def test_mqtt5_connect_with_credentials_is_answered_promptly(stack: Stack) -> None:
    """amqtt 0.12.1 hung on an MQTT 5 CONNECT with credentials; it is ours now
    (broker/v5.py): a bad token gets an MQTT 5 CONNACK with reason 0x86 at once."""
    device = stack.device(stack.fleet())
    sock = socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=10)
    sock.sendall(connect_packet(device.id, level=5, password=b"token"))
    answer = sock.recv(16)
    assert answer[0] == 0x20 and answer[3] == 0x86  # CONNACK, bad user name or password
    sock.close()
    done = subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.mqtt_port),
            "-V",
            "mqttv5",
            "-i",
            device.id,
            "-u",
            device.id,
            "-P",
            "token",
            "-t",
            "x",
            "-m",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0x86  # refused with its reason, promptly: no hang


def test_peers_that_leave_early_do_not_hold_the_listener(stack: Stack) -> None:
    sockets = []
    for payload in (b"", b"\x10", b"\x10\xff\xff\xff\xff", b"garbage!", b"\x30\x02ab"):
        sock = socket.create_connection(("127.0.0.1", stack.mqtt_port))
        if payload:
            sock.sendall(payload)
        sockets.append(sock)
    for sock in sockets:
        sock.close()
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, device.token())
    assert client.connected.wait(10)
    client.close()


def test_second_connection_takes_over_the_client_id(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    first = Client(stack, device.id, device.token())
    assert first.connected.wait(10)
    first.paho.reconnect_delay_set(60, 60)  # keep paho from fighting for the id
    second = Client(stack, device.id, device.token())
    assert second.connected.wait(10)
    assert first.disconnected.wait(10)
    assert second.paho.is_connected()
    first.paho.loop_stop()
    second.close()


def test_many_late_devices_behind_one_address_do_not_lock_it_out(stack: Stack) -> None:
    """Expired but genuine tokens count against their client ids, not the address: an
    overloaded minute must not turn into a lockout of every device behind one NAT."""
    import jwt

    fleet = stack.fleet(ttl=1)
    late = [stack.device(fleet) for _ in range(25)]  # more than the address's free 20
    tokens = [d.token() for d in late]
    expires = max(jwt.decode(t, options={"verify_signature": False})["exp"] for t in tokens)
    wait_for(lambda: time.time() > expires + 2, timeout=15, what="the tokens to expire")
    for device, token in zip(late, tokens, strict=True):
        client = Client(stack, device.id, token)
        assert client.answered.wait(10)
        assert client.connect_rc == 134  # paho's name for CONNACK 4
        client.paho.loop_stop()
    honest = stack.device(stack.fleet())
    client = Client(stack, honest.id, honest.token())
    assert client.connected.wait(10), client.connect_rc
    client.close()


def test_a_persistent_session_cut_at_expiry_keeps_receiving_until_the_device_returns(
    stack: Stack,
) -> None:
    """Fault 9: messages for a persistent session whose token had just expired (a late
    refresh) were dropped by the authorization check instead of kept for the session."""
    import jwt

    device = stack.device(stack.fleet(ttl=1))
    token = device.token()
    first = Client(stack, device.id, token, clean=False)
    assert first.connected.wait(10)
    assert first.subscribe(f"devices/{device.id}/cmd") == [1]
    first.paho.reconnect_delay_set(60, 60)  # paho must not come back with the dead token
    assert first.disconnected.wait(10)  # cut at exp + leeway
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert time.time() > exp + 1
    first.paho.loop_stop()
    sender = stack.device(stack.fleet(publish=["devices/#"]))
    publisher = Client(stack, sender.id, sender.token())
    assert publisher.connected.wait(10)
    publisher.publish(f"devices/{device.id}/cmd", b"while you were away")
    publisher.close()
    again = Client(stack, device.id, device.token(), clean=False)  # a fresh token
    assert again.connected.wait(10)
    wait_for(
        lambda: (f"devices/{device.id}/cmd", b"while you were away", False) in again.messages,
        what="the message kept for the session (RETAIN=0: MQTT-3.3.1-9)",
    )
    again.close()


def test_a_resumed_session_gets_the_retained_messages_of_its_subscriptions(stack: Stack) -> None:
    owner = stack.device(stack.fleet())
    first = Client(stack, owner.id, owner.token(), clean=False)
    assert first.connected.wait(10)
    assert first.subscribe(f"devices/{owner.id}/cfg/#") == [1]
    first.close()
    sender = stack.device(stack.fleet(publish=["devices/#"]))
    publisher = Client(stack, sender.id, sender.token())
    assert publisher.connected.wait(10)
    # QoS 0: not queued for the offline session; only the retained copy can reach it.
    publisher.publish(f"devices/{owner.id}/cfg/wifi", b"v2", qos=0, retain=True)
    publisher.close()
    again = Client(stack, owner.id, owner.token(), clean=False)
    assert again.connected.wait(10)
    wait_for(
        lambda: (f"devices/{owner.id}/cfg/wifi", b"v2", True) in again.messages,
        what="the retained message on resume",
    )
    again.close()
