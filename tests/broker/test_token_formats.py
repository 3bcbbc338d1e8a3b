"""Token formats on the embedded broker, with real clients (paho 2.x, mosquitto_pub):
a reference token connects like a JWT and dies like one (README, Token formats)."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.stack import Client, Device, Stack, mosquitto_pub, wait_for


def _fleet(stack: Stack, ttl: int = 600, **fields: object) -> str:
    name = "f-" + uuid.uuid4().hex[:8]
    body = {
        "name": name,
        "token_ttl": ttl,
        "acl": {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]},
        **fields,
    }
    response = stack.http.post(stack.base + "/v1/fleets", json=body, headers=stack.admin)
    assert response.status_code == 201, response.text
    return name


def _reference_device(stack: Stack, ttl: int = 600) -> Device:
    return stack.device(_fleet(stack, ttl, token_format="reference"))


def _active(stack: Stack, token: str) -> bool:
    answer = stack.http.post(
        stack.base + "/oauth2/introspect", data={"token": token}, headers=stack.admin
    )
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["active"])


def test_a_reference_token_publishes_with_mosquitto_pub_and_paho(stack: Stack) -> None:
    sender, receiver = _reference_device(stack), _reference_device(stack)
    token = sender.token()
    assert token.startswith("cbr_") and "." not in token
    sub = Client(stack, receiver.id, receiver.token())
    assert sub.connected.wait(10)
    assert sub.subscribe(f"devices/{receiver.id}/#") == [1]
    done = mosquitto_pub(stack, sender.id, token, f"devices/{sender.id}/t")
    assert done.returncode == 0, done.stderr
    sub.publish(f"devices/{receiver.id}/echo", b"hi")
    wait_for(lambda: sub.messages, what="the message")
    assert sub.messages[0][:2] == (f"devices/{receiver.id}/echo", b"hi")
    sub.close()


def test_refusals_are_those_of_a_jwt(stack: Stack) -> None:
    device, other = _reference_device(stack), _reference_device(stack)
    token = device.token()
    topic = f"devices/{device.id}/t"
    assert mosquitto_pub(stack, other.id, token, topic).returncode == 4  # another's token
    assert mosquitto_pub(stack, device.id, "cbr_" + "B" * 43, topic).returncode == 4
    assert mosquitto_pub(stack, device.id, token + "x", topic).returncode == 4
    assert _active(stack, token)
    assert stack.http.post(stack.base + "/oauth2/revoke", data={"token": token}).is_success
    assert not _active(stack, token)
    assert mosquitto_pub(stack, device.id, token, topic).returncode == 5


@pytest.mark.parametrize("how", ["revoke token", "revoke device", "disable"])
def test_revocation_cuts_a_live_reference_session(stack: Stack, how: str) -> None:
    device = _reference_device(stack)
    token = device.token()
    client = Client(stack, device.id, token)
    assert client.connected.wait(10)
    started = time.monotonic()
    if how == "revoke token":
        stack.http.post(stack.base + "/oauth2/revoke", data={"token": token})
    elif how == "revoke device":
        device.api("POST", ":revoke")
    else:
        device.api("PATCH", json={"status": "disabled"})
    assert client.disconnected.wait(5)
    assert client.disconnected_at is not None and client.disconnected_at - started < 1.0
    client.paho.loop_stop()


def test_a_reference_session_is_cut_at_expiry(stack: Stack) -> None:
    device = _reference_device(stack, ttl=2)
    token = device.token()
    client = Client(stack, device.id, token)
    assert client.connected.wait(10)
    started = time.monotonic()
    assert client.disconnected.wait(15), "the broker kept an expired session"
    assert client.disconnected_at is not None
    assert client.disconnected_at - started < 2 + 1 + 2  # ttl + leeway + slack
    client.paho.loop_stop()
    wait_for(lambda: not _active(stack, token), what="expiry plus leeway")
    assert mosquitto_pub(stack, device.id, token, f"devices/{device.id}/t").returncode == 4
