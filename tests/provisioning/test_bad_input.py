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
