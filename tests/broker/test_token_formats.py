"""Token formats on the embedded broker, with real clients (paho 2.x, mosquitto_pub):
a reference token connects like a JWT and dies like one (README, Token formats)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.stack import Client, Device, Stack, b64, mosquitto_pub, wait_for


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


# -- device-signed: a device written for Google Cloud IoT Core -----------------------

PROJECT = "my-iot-project"


def _iot_core_device(stack: Stack, fleet: str, key: Any) -> str:
    device_id = "d-" + uuid.uuid4().hex[:10]
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    response = stack.http.post(
        stack.base + "/v1/devices",
        headers=stack.admin,
        json={"device_id": device_id, "fleet": fleet, "public_key": pem.decode()},
    )
    assert response.status_code == 201, response.text
    return device_id


def _iot_core_jwt(key: Any, alg: str = "ES256", **claims: Any) -> str:
    """What Cloud IoT Core's samples sign: iat, exp (at most 24 h on), aud = project id;
    PyJWT adds the header's `typ: JWT`."""
    now = int(time.time())
    body = {"iat": now, "exp": now + 3600, "aud": PROJECT, **claims}
    return jwt.encode(body, key, algorithm=alg)


def _hs256(secret: bytes, now: int) -> str:
    """Key confusion: HMAC keyed with the public key (PyJWT refuses to make one)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iat": now, "exp": now + 600, "aud": PROJECT}).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def _none(now: int) -> str:
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{b64(json.dumps({'iat': now, 'exp': now + 600, 'aud': PROJECT}).encode())}."


def _long_id(device_id: str) -> str:
    return f"projects/{PROJECT}/locations/europe-west1/registries/meters/devices/{device_id}"


def _iot_core_fleet(stack: Stack, **fields: object) -> str:
    name = "f-" + uuid.uuid4().hex[:8]
    body = {
        "name": name,
        "token_format": "device-signed",
        "audience": PROJECT,
        "iot_core_client_ids": True,
        "acl": {"publish": ["devices/{device_id}/events"], "subscribe": ["devices/+/events"]},
        **fields,
    }
    response = stack.http.post(stack.base + "/v1/fleets", json=body, headers=stack.admin)
    assert response.status_code == 201, response.text
    return name


def test_a_cloud_iot_core_device_connects_and_publishes_unchanged(stack: Stack) -> None:
    fleet = _iot_core_fleet(stack)
    key, watcher_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    me, watcher = _iot_core_device(stack, fleet, key), _iot_core_device(stack, fleet, watcher_key)
    sub = Client(stack, _long_id(watcher), _iot_core_jwt(watcher_key), username="unused")
    assert sub.connected.wait(10), sub.connect_rc
    assert sub.subscribe("devices/+/events") == [1]
    pub = Client(stack, _long_id(me), _iot_core_jwt(key), username="unused")
    assert pub.connected.wait(10), pub.connect_rc
    pub.publish(f"devices/{me}/events", b"21.5")
    wait_for(lambda: sub.messages, what="the telemetry")
    assert sub.messages[0][:2] == (f"devices/{me}/events", b"21.5")
    started = time.monotonic()
    stack.http.post(f"{stack.base}/v1/devices/{me}:revoke", headers=stack.admin)
    assert pub.disconnected.wait(5)
    assert pub.disconnected_at is not None and pub.disconnected_at - started < 1.0
    pub.paho.loop_stop()
    sub.close()
    # the short client id works too, with any username
    done = mosquitto_pub(
        stack, watcher, _iot_core_jwt(watcher_key), f"devices/{watcher}/events", username="x"
    )
    assert done.returncode == 0, done.stderr


def test_device_signed_refusals(stack: Stack) -> None:
    fleet = _iot_core_fleet(stack)
    key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    me, _other = _iot_core_device(stack, fleet, key), _iot_core_device(stack, fleet, other_key)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    cases = {
        "expired": _iot_core_jwt(key, iat=now - 7200, exp=now - 3600),
        "another device's token": _iot_core_jwt(other_key),
        "alg swapped to HS256 keyed with the public key": _hs256(public_pem, now),
        "alg swapped to none": _none(now),
        "exp - iat over 24 h": _iot_core_jwt(key, exp=now + 86_400 + 3600),
        "another project": _iot_core_jwt(key, aud="someone-else"),
        "no exp": jwt.encode({"iat": now, "aud": PROJECT}, key, algorithm="ES256"),
    }
    topic = f"devices/{me}/events"
    for n, (name, token) in enumerate(cases.items()):
        # Both spellings of the client id, so that no one gets five failures and a
        # penalty (CONNACK 3, README, Penalties).
        client_id = _long_id(me) if n % 2 else me
        done = mosquitto_pub(stack, client_id, token, topic, username="unused")
        assert done.returncode == 4, name
    plain = _iot_core_fleet(stack, iot_core_client_ids=False)
    key2 = ec.generate_private_key(ec.SECP256R1())
    short_only = _iot_core_device(stack, plain, key2)
    long_refused = mosquitto_pub(
        stack, _long_id(short_only), _iot_core_jwt(key2), "devices/x/events"
    )
    assert long_refused.returncode == 4
    token = _iot_core_jwt(key)
    assert mosquitto_pub(stack, me, token, topic, username="unused").returncode == 0
    stack.http.post(f"{stack.base}/v1/devices/{me}:revoke", headers=stack.admin)
    assert mosquitto_pub(stack, me, token, topic, username="unused").returncode == 5


def test_an_rs256_device_connects_and_only_rs256_verifies_its_key(stack: Stack) -> None:
    fleet = _iot_core_fleet(stack)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    me = _iot_core_device(stack, fleet, key)
    topic = f"devices/{me}/events"
    done = mosquitto_pub(stack, _long_id(me), _iot_core_jwt(key, "RS256"), topic, username="u")
    assert done.returncode == 0, done.stderr
    # PS256 with the same key is a valid signature, but not of the key's algorithm
    assert mosquitto_pub(stack, me, _iot_core_jwt(key, "PS256"), topic).returncode == 4
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    pem = short.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    refused = stack.http.post(
        stack.base + "/v1/devices",
        headers=stack.admin,
        json={"fleet": fleet, "public_key": pem.decode()},
    )
    assert refused.status_code in (400, 422), refused.text


def test_a_device_signed_session_is_cut_at_its_exp(stack: Stack) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    me = _iot_core_device(stack, _iot_core_fleet(stack), key)
    client = Client(stack, _long_id(me), _iot_core_jwt(key, exp=int(time.time()) + 2))
    assert client.connected.wait(10), client.connect_rc
    started = time.monotonic()
    assert client.disconnected.wait(15), "the broker kept an expired session"
    assert client.disconnected_at is not None
    assert client.disconnected_at - started < 2 + 1 + 2  # exp + leeway + slack
    client.paho.loop_stop()
