"""Reference tokens (fleet `token_format: "reference"`): opaque, stored hashed, and
valid wherever a JWT is: every broker hook, introspection (RFC 7662), revocation
(RFC 7009) and the deny list (README, Token formats)."""

from __future__ import annotations

import hashlib
import re

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from provisioning.grantstore import prune_used_assertions
from tests.e2e.points import HOOKS
from tests.e2e.points import Api as Points
from tests.support import Api, Device

OPAQUE = re.compile(r"cbr_[A-Za-z0-9_-]{43}")


def _device(api: Api) -> Device:
    fleet = api.fleet(token_format="reference")
    assert fleet["token_format"] == "reference" and fleet["iot_core_client_ids"] is False
    return api.device(fleet["name"])


def _hook_connect(api: Api, hook: str, device_id: str, token: str) -> bool:
    # The e2e helper speaks each broker's format over any httpx-like client.
    points = Points("", api.admin, api.client)  # type: ignore[arg-type]
    return points.hook_connect(hook, device_id, token)


def test_the_token_is_opaque_and_only_its_hash_is_kept(api: Api) -> None:
    device = _device(api)
    issued = device.tokens()
    token = issued["access_token"]
    assert OPAQUE.fullmatch(token), token
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 900
    with api.engine.connect() as conn:
        rows = conn.execute(text("SELECT token_hash, device_id FROM reference_tokens")).all()
    assert [tuple(r) for r in rows] == [(hashlib.sha256(token.encode()).hexdigest(), device.id)]


def test_introspection_shows_the_claims_until_revoked(api: Api) -> None:
    device = _device(api)
    token = device.tokens()["access_token"]
    answer = api.introspect(token)
    assert answer["active"] is True and answer["sub"] == device.id
    assert answer["token_type"] == "Bearer" and answer["acl"]["pub"][0] == f"devices/{device.id}/#"
    assert api.client.post("/oauth2/revoke", data={"token": token}).status_code == 200
    assert api.introspect(token) == {"active": False}


def test_every_hook_accepts_it_and_none_after_revocation(api: Api) -> None:
    device = _device(api)
    token = device.tokens()["access_token"]
    assert all(_hook_connect(api, hook, device.id, token) for hook in HOOKS)
    assert api.client.post("/oauth2/revoke", data={"token": token}).status_code == 200
    assert not any(_hook_connect(api, hook, device.id, token) for hook in HOOKS)


def test_refused_when_expired_unknown_or_for_another_device(api: Api) -> None:
    device, other = _device(api), _device(api)
    token = device.tokens()["access_token"]
    assert not _hook_connect(api, "emqx", other.id, token)
    made_up = "cbr_" + "A" * 43
    assert not _hook_connect(api, "emqx", device.id, made_up)
    assert api.introspect(made_up) == {"active": False}
    api.clock.advance(900 + 31)
    assert api.introspect(token) == {"active": False}
    assert not _hook_connect(api, "vernemq", device.id, token)


def test_a_device_revocation_kills_it(api: Api) -> None:
    device = _device(api)
    token = device.tokens()["access_token"]
    assert api.introspect(token)["active"] is True
    assert api.client.post(f"/v1/devices/{device.id}:revoke", headers=api.admin).is_success
    assert api.introspect(token) == {"active": False}


def test_a_jwt_fleet_is_unchanged_and_formats_are_validated(api: Api) -> None:
    fleet = api.fleet()
    assert fleet["token_format"] == "jwt" and fleet["audience"] is None
    assert api.device(fleet["name"]).tokens()["access_token"].count(".") == 2
    bad = api.client.post(
        "/v1/fleets", json={"name": "bad-format", "token_format": "paseto"}, headers=api.admin
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    patched = api.client.patch(
        f"/v1/fleets/{fleet['name']}", json={"token_format": "reference"}, headers=api.admin
    )
    assert patched.status_code == 200 and patched.json()["token_format"] == "reference"
    assert OPAQUE.fullmatch(api.device(fleet["name"]).tokens()["access_token"])


def test_expired_reference_tokens_are_pruned(api: Api) -> None:
    device = _device(api)
    token = device.tokens()["access_token"]
    now = int(api.clock())

    def kept() -> int:
        with api.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM reference_tokens")).scalar_one())

    prune_used_assertions(api.engine, now + 900)  # expired, but within the leeway's bound
    assert kept() == 1 and api.introspect(token)["active"] is True
    prune_used_assertions(api.engine, now + 900 + 301)
    assert kept() == 0
    assert api.introspect(token) == {"active": False}


def test_every_hook_accepts_a_device_signed_token_emqx_with_a_long_client_id(api: Api) -> None:
    """Cloud IoT Core style (README, Token formats): the hooks ask the same verifier."""
    fleet = api.fleet(token_format="device-signed", audience="proj", iot_core_client_ids=True)
    device = api.device(fleet["name"], alg="es256")
    now = int(api.clock())
    token = jwt.encode({"iat": now, "exp": now + 600, "aud": "proj"}, device.key, "ES256")
    long_id = f"projects/proj/locations/l/registries/r/devices/{device.id}"
    points = Points("", api.admin, api.client)  # type: ignore[arg-type]
    for hook in HOOKS:
        body = {"clientid": long_id, "username": "unused", "password": token}
        if hook == "emqx":
            answer = api.client.post("/v1/hooks/emqx/authn", json=body, headers=api.admin)
            assert answer.json()["result"] == "allow", answer.text
            for topic, result in ((f"devices/{device.id}/t", "allow"), ("devices/x/t", "deny")):
                check = {"clientid": long_id, "username": "unused", "topic": topic}
                authz = api.client.post(
                    "/v1/hooks/emqx/authz", json=check | {"action": "publish"}, headers=api.admin
                )
                assert authz.json()["result"] == result, (topic, authz.text)
        else:
            assert points.hook_connect(hook, device.id, token), hook
    assert api.introspect(token) == {"active": False}  # no client id: nothing to resolve


def test_an_rsa_credential_key_signs_rs256_assertions_only(api: Api) -> None:
    """RSA keys (for RS256 device-signed tokens) are credential keys like the others: at
    the token endpoint too, with the key's one algorithm."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fleet = api.fleet()["name"]
    created = api.client.post(
        "/v1/devices", headers=api.admin, json={"fleet": fleet, "public_key": pem.decode()}
    )
    assert created.status_code == 201, created.text
    device = Device(api, created.json()["device_id"], key)  # type: ignore[arg-type]
    assert api.token(device.grant_form(device.assertion(alg="RS256"))).status_code == 200
    refused = api.token(device.grant_form(device.assertion(alg="PS256")))
    assert refused.status_code in (400, 401), refused.text
