"""The scaled shape on PostgreSQL: two stateless `credbroker api` processes and a
standalone `credbroker broker` on one database of the test's own."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_sdk import assertion_form, generate_key, public_pem
from tests.e2e.scaled import ISSUER, Scaled, scaled_shape
from tests.stack import Client, Stack, wait_for


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    with scaled_shape(Path(tmp_path_factory.mktemp("scaled"))) as shape:
        yield shape


def _device(scaled: Scaled) -> tuple[str, object]:
    fleet = "f-" + secrets.token_hex(4)
    acl = {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]}
    httpx.post(
        scaled.apis[0] + "/v1/fleets", json={"name": fleet, "acl": acl}, headers=scaled.admin
    ).raise_for_status()
    key = generate_key()
    device_id = "d-" + secrets.token_hex(5)
    body = {"device_id": device_id, "fleet": fleet, "public_key": public_pem(key)}
    httpx.post(scaled.apis[0] + "/v1/devices", json=body, headers=scaled.admin).raise_for_status()
    return device_id, key


def _at_once(requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    """POST each (url, form) from its own thread, released together."""
    gate = threading.Barrier(len(requests))
    answers: list[httpx.Response] = []

    def post(url: str, form: dict[str, str]) -> None:
        with httpx.Client() as http:
            gate.wait()
            answers.append(http.post(url, data=form))

    threads = [threading.Thread(target=post, args=r) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_one_refresh_token_redeemed_by_two_processes_at_once_succeeds_once(
    scaled: Scaled,
) -> None:
    device_id, key = _device(scaled)
    endpoint = ISSUER + "/oauth2/token"
    for _ in range(10):
        form = assertion_form(key, device_id=device_id, audience=endpoint)  # type: ignore[arg-type]
        first = httpx.post(scaled.apis[0] + "/oauth2/token", data=form)
        assert first.status_code == 200, first.text
        refresh = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
        answers = _at_once([(api + "/oauth2/token", refresh) for api in scaled.apis])
        assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 400)
        assert refused.json()["error"] == "invalid_grant"


def test_the_assertion_replay_cache_is_shared_by_the_processes(scaled: Scaled) -> None:
    device_id, key = _device(scaled)
    for _ in range(5):
        form = assertion_form(key, device_id=device_id, audience=ISSUER + "/oauth2/token")  # type: ignore[arg-type]
        answers = _at_once([(api + "/oauth2/token", form) for api in scaled.apis])
        assert sorted(a.status_code for a in answers) == [200, 401], [a.text for a in answers]


def test_a_revocation_through_any_api_process_reaches_the_broker_in_2_seconds(
    scaled: Scaled, tmp_path: Path
) -> None:
    device_id, key = _device(scaled)
    form = assertion_form(key, device_id=device_id, audience=ISSUER + "/oauth2/token")  # type: ignore[arg-type]
    token = httpx.post(scaled.apis[0] + "/oauth2/token", data=form).json()["access_token"]
    view = Stack(scaled.apis[1], scaled.broker_port, tmp_path, "", [], {}, tmp_path / "unused.log")
    client = Client(view, device_id, token)
    assert client.connected.wait(10), client.connect_rc
    revoked = httpx.post(f"{scaled.apis[1]}/v1/devices/{device_id}:revoke", headers=scaled.admin)
    assert revoked.status_code == 200
    assert client.disconnected.wait(2 + 1), "not cut within 2 s (plus slack)"
    client.paho.loop_stop()


def test_hooks_answered_by_different_processes_agree_and_learn_revocations(
    scaled: Scaled,
) -> None:
    """RabbitMQ's CONNECT check may reach one API process and its topic checks another;
    a revocation through one reaches the others' caches within 2 seconds."""
    device_id, key = _device(scaled)
    form = assertion_form(key, device_id=device_id, audience=ISSUER + "/oauth2/token")  # type: ignore[arg-type]
    token = httpx.post(scaled.apis[0] + "/oauth2/token", data=form).json()["access_token"]

    def hook(api: str, path: str, **fields: str) -> str:
        answer = httpx.post(f"{api}/v1/hooks/rabbitmq/{path}", data=fields, headers=scaled.admin)
        assert answer.status_code == 200, answer.text
        return answer.text

    user = {"username": device_id, "password": token, "client_id": device_id}
    assert hook(scaled.apis[0], "user", **user) == "allow"
    topic = {
        "username": device_id,
        "permission": "write",
        "routing_key": f"devices.{device_id}.temp",
        "variable_map.client_id": device_id,
    }
    assert hook(scaled.apis[1], "topic", **topic) == "allow"  # cached in process 1 now
    httpx.post(
        f"{scaled.apis[0]}/v1/devices/{device_id}:revoke", headers=scaled.admin
    ).raise_for_status()
    wait_for(
        lambda: hook(scaled.apis[1], "topic", **topic) == "deny",
        timeout=3,
        what="process 1 to learn the revocation made through process 0",
    )


def test_a_cloud_iot_core_device_is_authorized_by_a_process_that_did_not_see_its_connect(
    scaled: Scaled,
) -> None:
    """A device-signed token with the username "unused" (README, Token formats): EMQX's
    authn reaches one API process, its authz checks another, which knows the username
    the CONNECT was accepted with from the database."""
    fleet = "f-" + secrets.token_hex(4)
    body = {
        "name": fleet,
        "token_format": "device-signed",
        "audience": "proj",
        "iot_core_client_ids": True,
        "acl": {"publish": ["devices/{device_id}/#"], "subscribe": []},
    }
    httpx.post(scaled.apis[0] + "/v1/fleets", json=body, headers=scaled.admin).raise_for_status()
    key = ec.generate_private_key(ec.SECP256R1())
    device_id = "d-" + secrets.token_hex(5)
    device = {"device_id": device_id, "fleet": fleet, "public_key": public_pem(key)}
    httpx.post(scaled.apis[0] + "/v1/devices", json=device, headers=scaled.admin).raise_for_status()
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 600, "aud": "proj"}, key, algorithm="ES256")
    client_id = f"projects/proj/locations/l/registries/r/devices/{device_id}"

    def emqx(api: str, path: str, **fields: str) -> str:
        answer = httpx.post(f"{api}/v1/hooks/emqx/{path}", json=fields, headers=scaled.admin)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["result"])

    login = {"clientid": client_id, "username": "unused"}
    assert emqx(scaled.apis[0], "authn", **login, password=token) == "allow"
    check = {**login, "action": "publish"}
    assert emqx(scaled.apis[1], "authz", **check, topic=f"devices/{device_id}/t") == "allow"
    assert emqx(scaled.apis[1], "authz", **check, topic="devices/other/t") == "deny"
    # Another username on the same client id is not the connection that was accepted.
    other = {**check, "username": "someone-else"}
    assert emqx(scaled.apis[1], "authz", **other, topic=f"devices/{device_id}/t") == "deny"
