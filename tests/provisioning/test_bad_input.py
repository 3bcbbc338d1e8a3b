"""Never a 500: out-of-range numbers and unstorable values from requests are a 4xx
problem+json naming the field, on SQLite and on PostgreSQL (issue 9 section 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from device_sdk import generate_key, public_pem
from tests.support import Api

BIG = 2**64  # orjson writes 64 bits at most
OVER_INT32 = 2**31  # PostgreSQL INTEGER columns hold 31 bits and a sign
NESTED_40 = "[" * 40 + "]" * 40

# (method, path, raw JSON body or None, loc of the error). FLEET, DEVICE and KEY are
# filled in per test: KEY is a fresh public key as a JSON string. Raw text, since
# NaN, Infinity and lone surrogates cannot be written with `json=`.
REFUSED = {
    "metadata int over 64 bits": (
        "POST",
        "/v1/devices",
        f'{{"fleet": FLEET, "metadata": {{"a": {BIG}}}}}',
        ["body", "metadata"],
    ),
    "metadata int under -2**63": (
        "POST",
        "/v1/devices",
        f'{{"fleet": FLEET, "metadata": {{"a": {-(2**63) - 1}}}}}',
        ["body", "metadata"],
    ),
    "metadata int deep inside": (
        "POST",
        "/v1/devices",
        f'{{"fleet": FLEET, "metadata": {{"a": [1, {{"b": {BIG}}}]}}}}',
        ["body", "metadata"],
    ),
    "metadata NaN": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "metadata": {"a": NaN}}',
        ["body", "metadata"],
    ),
    "metadata Infinity": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "metadata": {"a": [-Infinity]}}',
        ["body", "metadata"],
    ),
    "metadata float overflow": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "metadata": {"a": 1e999}}',
        ["body", "metadata"],
    ),
    "metadata lone surrogate": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "metadata": {"a": "\\ud800"}}',
        ["body", "metadata"],
    ),
    "metadata lone surrogate key": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "metadata": {"\\udfff": 1}}',
        ["body", "metadata"],
    ),
    "metadata nested 40 deep": (
        "POST",
        "/v1/devices",
        f'{{"fleet": FLEET, "metadata": {{"a": {NESTED_40}}}}}',
        ["body", "metadata"],
    ),
    "key_expires_at over 64 bits": (
        "POST",
        "/v1/devices",
        f'{{"fleet": FLEET, "public_key": KEY, "key_expires_at": {BIG}}}',
        ["body", "key_expires_at"],
    ),
    "key_expires_at over INTEGER": (
        "POST",
        "/v1/devices",
        f'{{"fleet": FLEET, "public_key": KEY, "key_expires_at": {OVER_INT32}}}',
        ["body", "key_expires_at"],
    ),
    "batch metadata over 64 bits": (
        "POST",
        "/v1/devices:batch",
        f'{{"devices": [{{"fleet": FLEET, "metadata": {{"a": {BIG}}}}}]}}',
        ["body", "devices", 0, "metadata"],
    ),
    "batch key_expires_at over INTEGER": (
        "POST",
        "/v1/devices:batch",
        f'{{"atomic": false, "devices": [{{"fleet": FLEET, "public_key": KEY, '
        f'"key_expires_at": {OVER_INT32}}}]}}',
        ["body", "devices", 0, "key_expires_at"],
    ),
    "patch metadata over 64 bits": (
        "PATCH",
        "/v1/devices/DEVICE",
        f'{{"metadata": {{"a": {BIG}}}}}',
        ["body", "metadata"],
    ),
    "patch metadata NaN": (
        "PATCH",
        "/v1/devices/DEVICE",
        '{"metadata": {"a": NaN}}',
        ["body", "metadata"],
    ),
    "key expires_at over 64 bits": (
        "POST",
        "/v1/devices/DEVICE/keys",
        f'{{"public_key": KEY, "expires_at": {BIG}}}',
        ["body", "expires_at"],
    ),
    "key expires_at over INTEGER": (
        "POST",
        "/v1/devices/DEVICE/keys",
        f'{{"public_key": KEY, "expires_at": {OVER_INT32}}}',
        ["body", "expires_at"],
    ),
    "fleet token_ttl": (
        "POST",
        "/v1/fleets",
        f'{{"name": "ttl-{BIG}", "token_ttl": {BIG}}}',
        ["body", "token_ttl"],
    ),
    "fleet patch token_ttl": (
        "PATCH",
        "/v1/fleets/FLEETNAME",
        f'{{"token_ttl": {BIG}}}',
        ["body", "token_ttl"],
    ),
    "audit cursor over 64 bits": ("GET", f"/v1/audit?cursor={BIG}", None, ["query", "cursor"]),
    "audit cursor over INTEGER": (
        "GET",
        f"/v1/audit?cursor={OVER_INT32}",
        None,
        ["query", "cursor"],
    ),
    "audit limit": ("GET", f"/v1/audit?limit={BIG}", None, ["query", "limit"]),
    "revocations after over 64 bits": (
        "GET",
        f"/v1/revocations?after={BIG}",
        None,
        ["query", "after"],
    ),
    "revocations after over INTEGER": (
        "GET",
        f"/v1/revocations?after={OVER_INT32}",
        None,
        ["query", "after"],
    ),
    "revocations limit": ("GET", f"/v1/revocations?limit={BIG}", None, ["query", "limit"]),
    "devices limit": ("GET", f"/v1/devices?limit={BIG}", None, ["query", "limit"]),
    "mosquitto-go-auth acc over 64 bits": (
        "POST",
        "/v1/hooks/mosquitto-go-auth/acl",
        f'{{"username": "DEVICE", "clientid": "DEVICE", "topic": "t", "acc": {BIG}}}',
        ["body", "acc"],
    ),
    "mosquitto-go-auth acc not a MOSQ_ACL value": (
        "POST",
        "/v1/hooks/mosquitto-go-auth/acl",
        '{"username": "DEVICE", "clientid": "DEVICE", "topic": "t", "acc": 16}',
        ["body", "acc"],
    ),
    "vernemq qos over 64 bits": (
        "POST",
        "/v1/hooks/vernemq/auth_on_subscribe",
        f'{{"client_id": "DEVICE", "topics": [{{"topic": "t", "qos": {BIG}}}]}}',
        ["body", "topics", 0, "qos"],
    ),
    "vernemq qos 3": (
        "POST",
        "/v1/hooks/vernemq/auth_on_subscribe",
        '{"client_id": "DEVICE", "topics": [{"topic": "t", "qos": 3}]}',
        ["body", "topics", 0, "qos"],
    ),
}


def _send(api: Api, fleet: str, method: str, path: str, body: str | None) -> Any:
    device = api.device(fleet).id
    key = json.dumps(public_pem(generate_key("ed25519")))

    def fill(text: str) -> str:
        return (
            text.replace("FLEETNAME", fleet)
            .replace("FLEET", json.dumps(fleet))
            .replace("DEVICE", device)
            .replace("KEY", key)
        )

    headers = {**api.admin, "content-type": "application/json"}
    content = None if body is None else fill(body).encode()
    return api.client.request(method, fill(path), content=content, headers=headers)


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_out_of_range_input_is_a_422_naming_the_field(api: Api, fleet: str, case: tuple) -> None:
    method, path, body, loc = case
    response = _send(api, fleet, method, path, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert loc in [e["loc"] for e in problem["errors"]], problem


def test_values_at_the_bounds_are_stored_as_sent(api: Api, fleet: str) -> None:
    metadata = {"max": 2**63 - 1, "min": -(2**63), "big": 1.5e308, "text": "\u00e9\U0001f600"}
    metadata["deep"] = json.loads("[" * 31 + "]" * 31)  # 32 levels with the outer object
    created = _send(
        api,
        fleet,
        "POST",
        "/v1/devices",
        json.dumps({"fleet": fleet, "metadata": metadata, "key_expires_at": 2**31 - 1}).replace(
            '"key_expires_at"', '"public_key": KEY, "key_expires_at"'
        ),
    )
    assert created.status_code == 201, created.text
    device = created.json()
    assert device["credential_keys"][0]["expires_at"] == 2**31 - 1
    read = api.client.get(f"/v1/devices/{device['device_id']}", headers=api.admin).json()
    assert read["metadata"] == metadata
    for path in (f"/v1/audit?cursor={2**31 - 1}", f"/v1/revocations?after={2**31 - 1}"):
        response = api.client.get(path, headers=api.admin)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []


NUL = "%00"  # PostgreSQL text columns cannot hold U+0000
# (method, path, raw JSON body or None, expected status): text that no column can hold
# (NUL, lone surrogates) and malformed key members, each reaching a query or a parser.
UNSTORABLE = {
    "device fleet with NUL": ("POST", "/v1/devices", '{"fleet": "a\\u0000"}', 422),
    "fleet name in the path with NUL": ("GET", f"/v1/fleets/a{NUL}b", None, 404),
    "fleet PATCH in the path with NUL": ("PATCH", f"/v1/fleets/a{NUL}", '{"token_ttl": 60}', 404),
    "devices fleet filter with NUL": ("GET", f"/v1/devices?fleet=a{NUL}", None, 422),
    "audit device filter with NUL": ("GET", f"/v1/audit?device_id=a{NUL}", None, 422),
    "audit action filter with NUL": ("GET", f"/v1/audit?action=a{NUL}", None, 422),
    "key id with NUL": ("DELETE", f"/v1/devices/DEVICE/keys/a{NUL}", None, 404),
    "admin key name with NUL": (
        "POST",
        "/v1/admin-keys",
        '{"name": "a\\u0000", "scopes": ["devices:read"]}',
        422,
    ),
    "JWK x not a string": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "public_key": {"kty": "OKP", "crv": "Ed25519", "x": 5}}',
        400,
    ),
    "JWK x not base64url": (
        "POST",
        "/v1/devices",
        '{"fleet": FLEET, "public_key": {"kty": "OKP", "crv": "Ed25519", "x": "a!"}}',
        400,
    ),
    "JWK y a list": (
        "POST",
        "/v1/devices/DEVICE/keys",
        '{"public_key": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": []}}',
        400,
    ),
    "enrollment JWK malformed": (
        "POST",
        "/v1/enroll",
        '{"enrollment_token": "cbe_x", "public_key": {"kty": "OKP", "crv": "Ed25519", "x": 1}}',
        400,
    ),
}
# Hook calls whose client id no grant can have: refused in the broker's own format.
HOOK_CLIENT_IDS = ["a\\u0000", "\\ud800"]
HOOKS = {
    "emqx authz": (
        "/v1/hooks/emqx/authz",
        '{"clientid": CID, "topic": "t", "action": "publish"}',
        200,
        {"result": "deny"},
    ),
    "mosquitto-go-auth acl": (
        "/v1/hooks/mosquitto-go-auth/acl",
        '{"username": "u", "clientid": CID, "topic": "t", "acc": 1}',
        403,
        {"ok": False, "error": ""},
    ),
    "vernemq auth_on_publish": (
        "/v1/hooks/vernemq/auth_on_publish",
        '{"client_id": CID, "topic": "t"}',
        200,
        {"result": {"error": "not_allowed"}},
    ),
    "vernemq auth_on_subscribe": (
        "/v1/hooks/vernemq/auth_on_subscribe",
        '{"client_id": CID, "topics": [{"topic": "t", "qos": 1}]}',
        200,
        {"result": {"error": "not_allowed"}},
    ),
}


@pytest.mark.parametrize("case", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_text_and_malformed_keys_are_a_4xx(api: Api, fleet: str, case: tuple) -> None:
    method, path, body, status = case
    response = _send(api, fleet, method, path, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("client_id", HOOK_CLIENT_IDS)
@pytest.mark.parametrize("case", HOOKS.values(), ids=HOOKS.keys())
def test_hooks_refuse_client_ids_no_grant_can_have(
    api: Api, fleet: str, case: tuple, client_id: str
) -> None:
    path, body, status, answer = case
    response = _send(api, fleet, "POST", path, body.replace("CID", f'"{client_id}"'))
    assert (response.status_code, response.json()) == (status, answer)


@pytest.mark.parametrize("hook", ["vhost", "topic"])
def test_rabbitmq_hooks_refuse_client_ids_no_grant_can_have(api: Api, hook: str) -> None:
    fields = {"username": "u", "vhost": "/", "permission": "write", "routing_key": "t"}
    fields["client_id"] = fields["variable_map.client_id"] = "a\x00"
    response = api.client.post(f"/v1/hooks/rabbitmq/{hook}", data=fields, headers=api.admin)
    assert (response.status_code, response.text) == (200, "deny")


def test_an_assertion_jti_with_nul_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    response = api.token(device.grant_form(device.assertion(jti="a\x00")))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("credentials", [b"Basic \xc3\xa9", b"Basic \xff", b"Basic //8="])
def test_hook_basic_credentials_that_are_not_base64_text_are_a_401(
    api: Api, credentials: bytes
) -> None:
    response = api.client.post(
        "/v1/hooks/emqx/authz",
        json={"clientid": "d", "topic": "t", "action": "publish"},
        headers={"Authorization": credentials},
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
