"""The MQTT contract with real clients (paho 2.x, mosquitto_pub) and a real broker."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.broker.forge import server_signed
from tests.stack import Client, Stack, b64, mosquitto_pub, wait_for

NONE_HEADER = b64(b'{"alg":"none","typ":"at+jwt","kid":"x#1"}')


def test_good_token_connects_publishes_and_allowed_subscriber_receives(stack: Stack) -> None:
    fleet = stack.fleet()
    sender, receiver = stack.device(fleet), stack.device(fleet)
    sub = Client(stack, receiver.id, receiver.token())
    assert sub.connected.wait(10)
    assert sub.subscribe(f"fleets/{fleet}/up/+") == [1]
    done = mosquitto_pub(stack, sender.id, sender.token(), f"fleets/{fleet}/up/{sender.id}")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: sub.messages, what="the message")
    assert sub.messages[0][0] == f"fleets/{fleet}/up/{sender.id}"
    sub.close()


def _refusal(stack: Stack, client_id: str, password: str, username: str | None = None) -> int:
    return mosquitto_pub(stack, client_id, password, "devices/x/y", username=username).returncode


def test_credential_refusals_get_connack_4(stack: Stack) -> None:
    fleet = stack.fleet()
    device, other = stack.device(fleet), stack.device(fleet)
    token = device.token()
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["acl"]["pub"] = ["#"]
    tampered = f"{head}.{b64(json.dumps(claims).encode())}.{sig}"
    cases = {
        "wrong signature": (device.id, tampered, None),
        "garbage password": (device.id, "garbage", None),
        "alg none": (device.id, f"{NONE_HEADER}.{body}.", None),
        "another device's token": (other.id, token, other.id),
        "username does not match": (device.id, token, other.id),
        "wrong audience": (device.id, server_signed(stack, device.id, aud="http"), None),
        "wrong issuer": (device.id, server_signed(stack, device.id, iss="https://evil"), None),
        "expired": (device.id, server_signed(stack, device.id, exp=int(time.time()) - 60), None),
    }
    for name, (client_id, password, username) in cases.items():
        assert _refusal(stack, client_id, password, username) == 4, name


def test_disabled_and_revoked_devices_get_connack_5(stack: Stack) -> None:
    fleet = stack.fleet()
    disabled, revoked = stack.device(fleet), stack.device(fleet)
    disabled_token, revoked_token = disabled.token(), revoked.token()
    disabled.api("PATCH", json={"status": "disabled"})
    revoked.api("POST", ":revoke")
    assert _refusal(stack, disabled.id, disabled_token) == 5
    assert _refusal(stack, revoked.id, revoked_token) == 5


def test_paho_sees_the_refusal(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, "not-a-token")
    assert client.answered.wait(10)
    assert client.connect_rc == 134  # paho's MQTT 5 name for 3.1.1 code 4
    client.close()


def test_subscribe_outside_the_acl_gets_0x80(stack: Stack) -> None:
    fleet = stack.fleet()
    device = stack.device(fleet)
    client = Client(stack, device.id, device.token())
    assert client.connected.wait(10)
    granted = client.subscribe(
        f"devices/{device.id}/cmd", "devices/+/cmd", "#", "$SYS/#", f"fleets/{fleet}/up/+"
    )
    assert granted == [1, 0x80, 0x80, 0x80, 1]
    assert client.paho.is_connected()
    client.close()


def test_refused_publish_is_never_delivered(stack: Stack) -> None:
    fleet = stack.fleet()
    mallory, victim = stack.device(fleet), stack.device(fleet)
    watcher = Client(stack, victim.id, victim.token())
    assert watcher.connected.wait(10)
    watcher.subscribe(f"devices/{victim.id}/#", f"fleets/{fleet}/up/+")
    sender = Client(stack, mallory.id, mallory.token())
    assert sender.connected.wait(10)
    sender.publish(f"devices/{victim.id}/cmd", b"forged", qos=1)
    sender.publish(f"fleets/{fleet}/up/{mallory.id}", b"marker", qos=1)
    wait_for(lambda: any(m[1] == b"marker" for m in watcher.messages), what="the marker")
    assert all(m[1] != b"forged" for m in watcher.messages)
    events = stack.http.get(
        f"{stack.base}/v1/audit?device_id={mallory.id}&action=mqtt.publish", headers=stack.admin
    ).json()["items"]
    assert events and events[0]["outcome"] == "refused"
    sender.close()
    watcher.close()


def test_repeated_violations_disconnect(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, device.token())
    assert client.connected.wait(10)
    for i in range(10):
        client.paho.publish(f"devices/other/{i}", b"x", qos=0)
    assert client.disconnected.wait(10)
    client.paho.loop_stop()


def test_session_is_cut_at_expiry(stack: Stack) -> None:
    device = stack.device(stack.fleet(ttl=2))
    token = device.token()
    client = Client(stack, device.id, token)
    assert client.connected.wait(10)
    started = time.monotonic()
    assert client.disconnected.wait(15), "the broker kept an expired session"
    assert client.disconnected_at is not None
    assert client.disconnected_at - started < 2 + 1 + 2  # ttl + leeway + slack
    client.paho.loop_stop()
    wait_for(lambda: time.time() > _exp(token) + 1.5, what="expiry plus leeway")
    assert _refusal(stack, device.id, token) == 4


def _exp(token: str) -> int:
    part = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(part + "=="))["exp"])


@pytest.mark.parametrize("how", ["revoke device", "disable", "revoke token", "rotate key now"])
def test_revocation_cuts_a_live_session_within_a_second(stack: Stack, how: str) -> None:
    fleet = stack.fleet()
    device = stack.device(fleet)
    token = device.token()
    client = Client(stack, device.id, token)
    assert client.connected.wait(10)
    started = time.monotonic()
    if how == "revoke device":
        device.api("POST", ":revoke")
    elif how == "disable":
        device.api("PATCH", json={"status": "disabled"})
    elif how == "revoke token":
        stack.http.post(stack.base + "/oauth2/revoke", data={"token": token})
    else:
        device.api("POST", "/signing-keys:rotate", params={"immediate": "true"})
    assert client.disconnected.wait(5)
    assert client.disconnected_at is not None and client.disconnected_at - started < 1.0
    client.paho.loop_stop()


def test_cut_session_does_not_publish_its_will(stack: Stack) -> None:
    fleet = stack.fleet()
    device, watcher_device = stack.device(fleet), stack.device(fleet)
    watcher = Client(stack, watcher_device.id, watcher_device.token())
    assert watcher.connected.wait(10)
    watcher.subscribe(f"fleets/{fleet}/up/+")
    will = (f"fleets/{fleet}/up/{device.id}", b"gone")
    client = Client(stack, device.id, device.token(), will=will)
    assert client.connected.wait(10)
    device.api("POST", ":revoke")
    assert client.disconnected.wait(5)
    client.paho.loop_stop()
    marker = stack.device(fleet)
    done = mosquitto_pub(stack, marker.id, marker.token(), f"fleets/{fleet}/up/{marker.id}")
    assert done.returncode == 0
    wait_for(lambda: watcher.messages, what="the marker")
    assert [m[0] for m in watcher.messages] == [f"fleets/{fleet}/up/{marker.id}"]
    watcher.close()


def test_reconnect_with_fresh_token_after_refresh(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    first = Client(stack, device.id, device.token(), clean=False)
    assert first.connected.wait(10)
    first.close()
    second = Client(stack, device.id, device.token(), clean=False)
    assert second.connected.wait(10)
    second.close()
