"""Key-bound tokens on MQTT (README, Proof of possession on MQTT), on the embedded
broker with real clients: on a fleet with `proof_of_possession`, the password is the
token and a fresh proof signed by the key of its `cnf.jkt`; anything less is CONNACK 4."""

from __future__ import annotations

import json
import time
import uuid

from device_sdk import generate_key, password_with_proof, proof_of_possession, public_pem
from tests.stack import Client, Device, Stack, mosquitto_pub


def _fleet(stack: Stack, **fields: object) -> str:
    name = "f-" + uuid.uuid4().hex[:8]
    body = {
        "name": name,
        "token_ttl": 600,
        "acl": {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]},
        **fields,
    }
    response = stack.http.post(stack.base + "/v1/fleets", json=body, headers=stack.admin)
    assert response.status_code == 201, response.text
    assert response.json()["proof_of_possession"] is bool(fields.get("proof_of_possession"))
    return name


def _pop_device(stack: Stack) -> Device:
    return stack.device(_fleet(stack, proof_of_possession=True))


def _code(stack: Stack, device: Device, password: str) -> int:
    return mosquitto_pub(stack, device.id, password, f"devices/{device.id}/t").returncode


def test_a_token_with_a_fresh_proof_connects_and_publishes(stack: Stack) -> None:
    device = _pop_device(stack)
    token = device.token()
    assert _code(stack, device, password_with_proof(device.key, token)) == 0
    client = Client(stack, device.id, password_with_proof(device.key, token))
    assert client.connected.wait(10), client.connect_rc
    assert client.subscribe(f"devices/{device.id}/#") == [1]
    client.close()


def test_a_token_alone_a_replayed_proof_or_one_for_another_token_get_connack_4(
    stack: Stack,
) -> None:
    device = _pop_device(stack)
    token, other_token = device.token(), device.token()
    assert _code(stack, device, token) == 4  # a stolen token, without the key
    once = password_with_proof(device.key, token)
    assert _code(stack, device, once) == 0
    assert _code(stack, device, once) == 4  # the same proof again
    made_for_other = proof_of_possession(device.key, access_token=other_token, audience="mqtt")
    assert _code(stack, device, f"{token}~{made_for_other}") == 4  # ath mismatch
    client = Client(stack, device.id, token)
    assert client.answered.wait(10) and client.connect_rc == 134  # paho: 3.1.1 code 4
    client.paho.loop_stop()


def test_a_proof_signed_by_another_key_gets_connack_4(stack: Stack) -> None:
    device = _pop_device(stack)
    token = device.token()
    assert _code(stack, device, password_with_proof(generate_key(), token)) == 4
    # Another key registered to the same device is not the key the token was bound to.
    second = generate_key()
    added = device.api("POST", "/keys", json={"public_key": public_pem(second)})
    assert added.status_code == 201, added.text
    assert _code(stack, device, password_with_proof(second, token)) == 4
    assert _code(stack, device, password_with_proof(device.key, token)) == 0


def test_a_stale_proof_or_one_for_another_audience_gets_connack_4(stack: Stack) -> None:
    device = _pop_device(stack)
    token = device.token()
    stale = password_with_proof(device.key, token, now=time.time() - 120)
    early = password_with_proof(device.key, token, now=time.time() + 120)
    assert _code(stack, device, stale) == 4
    assert _code(stack, device, early) == 4
    assert _code(stack, device, password_with_proof(device.key, token, audience="other")) == 4
    assert _code(stack, device, password_with_proof(device.key, token, audience="mqtt")) == 0


def test_a_fleet_without_proof_of_possession_takes_a_plain_token(stack: Stack) -> None:
    device = stack.device(_fleet(stack))
    token = device.token()
    assert _code(stack, device, token) == 0
    # A proof sent anyway is checked all the same.
    assert _code(stack, device, password_with_proof(device.key, token)) == 0
    assert _code(stack, device, password_with_proof(generate_key(), token)) == 4


def test_proof_of_possession_is_set_and_changed_through_the_api(stack: Stack) -> None:
    name = _fleet(stack)
    url = f"{stack.base}/v1/fleets/{name}"
    changed = stack.http.patch(url, json={"proof_of_possession": True}, headers=stack.admin)
    assert changed.status_code == 200, changed.text
    assert stack.http.get(url, headers=stack.admin).json()["proof_of_possession"] is True
    key = ("--admin-key", stack.admin_key)
    shown = stack.cli("fleet", "show", name, "--json", *key)
    assert json.loads(shown.stdout)["proof_of_possession"] is True, shown.stderr
    updated = stack.cli("fleet", "update", name, "--no-proof-of-possession", *key)
    assert updated.returncode == 0, updated.stderr
    assert stack.http.get(url, headers=stack.admin).json()["proof_of_possession"] is False


def test_a_removed_key_stops_proving_at_once(stack: Stack) -> None:
    device = _pop_device(stack)
    token = device.token()
    assert _code(stack, device, password_with_proof(device.key, token)) == 0  # now cached
    spare = device.api("POST", "/keys", json={"public_key": public_pem(generate_key())})
    assert spare.status_code == 201, spare.text
    kid = next(k["kid"] for k in device.api("GET").json()["credential_keys"] if k != spare.json())
    assert device.api("DELETE", f"/keys/{kid}").status_code == 204
    assert _code(stack, device, password_with_proof(device.key, token)) == 4


def test_a_reference_token_is_key_bound_too(stack: Stack) -> None:
    device = stack.device(_fleet(stack, proof_of_possession=True, token_format="reference"))
    token = device.token()
    assert token.startswith("cbr_")
    assert _code(stack, device, token) == 4
    assert _code(stack, device, password_with_proof(device.key, token)) == 0
