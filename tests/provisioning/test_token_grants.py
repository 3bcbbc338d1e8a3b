"""POST /oauth2/token: the three grants and every way to be refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support import ISSUER, JWT_BEARER, TOKEN_URL, Api, p256_key


def _segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_private_key_jwt_grant_issues_rfc9068_token(api: Api, fleet: str, alg: str) -> None:
    device = api.device(fleet, alg=alg)
    response = api.token(device.grant_form())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "date" in response.headers
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"] and set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
    }
    header = _segment(body["access_token"], 0)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": f"{device.id}#1"}
    claims = _segment(body["access_token"], 1)
    assert claims["iss"] == ISSUER and claims["aud"] == "mqtt"
    assert claims["sub"] == claims["client_id"] == device.id
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert claims["fleet"] == fleet
    assert claims["acl"] == {
        "pub": [f"devices/{device.id}/#", f"fleets/{fleet}/up/{device.id}"],
        "sub": [f"devices/{device.id}/cmd/#", f"fleets/{fleet}/down/+"],
    }
    jkt = device.created["credential_keys"][0]["kid"]
    assert claims["cnf"] == {"jkt": jkt}


def test_token_verifies_with_published_jwks(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    token = device.tokens()["access_token"]
    jwks = api.client.get(f"/v1/devices/{device.id}/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="mqtt", issuer=ISSUER)
    assert claims["sub"] == device.id


def test_assertion_audience_may_be_the_issuer(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    assert api.token(device.grant_form(device.assertion(aud=ISSUER))).status_code == 200


def test_replayed_assertion_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    assertion = device.assertion()
    assert api.token(device.grant_form(assertion)).status_code == 200
    replay = api.token(device.grant_form(assertion))
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert "replay" in replay.json()["error_description"]


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "http://elsewhere/oauth2/token"}, "aud"),
        ({"exp": -60}, "expired"),  # beyond the 30 s leeway
        ({"exp": 3600 + 31}, "ahead"),  # the bound is an hour (authlib's default), plus leeway
        ({"iss": "someone-else"}, "iss"),
        ({"jti": None}, "jti"),
        ({"exp": None}, "exp"),
        ({"nbf": 3600}, "nbf"),
    ],
)
def test_bad_assertion_claims_are_refused(api: Api, fleet: str, claims: dict, why: str) -> None:
    device = api.device(fleet)
    now = int(api.clock())
    resolved = {
        k: (now + v if k in ("exp", "nbf") and v is not None else v) for k, v in claims.items()
    }
    response = api.token(device.grant_form(device.assertion(**resolved)))
    assert response.status_code == 401, (why, response.text)
    assert response.json()["error"] == "invalid_client"


def test_assertion_signed_by_another_key_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    intruder = api.device(fleet)
    forged = device.assertion(key=intruder.key)
    response = api.token(device.grant_form(forged))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_hs256_assertion_keyed_with_the_public_key_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet, alg="es256")
    public = device.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(device.assertion(), options={"verify_signature": False})
    forged = _hs256(claims, public)
    response = api.token(device.grant_form(forged))
    assert response.status_code == 401


def _hs256(claims: dict, secret: bytes) -> str:
    import hashlib
    import hmac

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = enc(b'{"alg":"HS256","typ":"JWT"}') + "." + enc(json.dumps(claims).encode())
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + enc(sig)


def test_alg_none_assertion_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    claims = jwt.decode(device.assertion(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    assert api.token(device.grant_form(unsigned)).status_code == 401


def test_disabled_and_unknown_devices_get_no_token(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    api.client.patch(f"/v1/devices/{device.id}", json={"status": "disabled"}, headers=api.admin)
    assert api.token(device.grant_form()).json()["error"] == "invalid_client"
    device.id = "no-such-device"
    assert api.token(device.grant_form()).status_code == 401


def test_grant_requests_are_validated(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    cases = [
        ({}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        ({**device.grant_form(), "client_assertion_type": "x"}, 400, "invalid_request"),
        (
            {
                "grant_type": "client_credentials",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": "not.a.jwt",
            },
            401,
            "invalid_client",
        ),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "cbr_nope"}, 400, "invalid_grant"),
    ]
    for form, status, error in cases:
        response = api.token(form)
        assert response.status_code == status, (form, response.text)
        assert response.json()["error"] == error
        assert response.headers["content-type"] == "application/json"


def test_token_endpoint_wants_a_form(api: Api) -> None:
    response = api.client.post("/oauth2/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    twice = api.client.post(
        "/oauth2/token",
        content=b"grant_type=a&grant_type=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_request"


def test_refresh_rotates_and_reuse_revokes_the_family(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    first = device.tokens()
    second = api.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert (
        _segment(second_body["access_token"], 1)["cnf"] == _segment(first["access_token"], 1)["cnf"]
    )
    reuse = api.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is dead: the newest refresh token and its access token too.
    latest = api.token(
        {"grant_type": "refresh_token", "refresh_token": second_body["refresh_token"]}
    )
    assert latest.status_code == 400
    assert api.introspect(second_body["access_token"]) == {"active": False}
    events = api.client.get(
        f"/v1/audit?device_id={device.id}&action=refresh.family_revoke", headers=api.admin
    ).json()["items"]
    assert events and events[0]["detail"]["reason"] == "refresh_reuse"


def test_refresh_family_has_an_absolute_lifetime(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    refresh = device.tokens()["refresh_token"]
    api.clock.advance(29 * 86400)
    refreshed = api.token({"grant_type": "refresh_token", "refresh_token": refresh})
    assert refreshed.status_code == 200
    api.clock.advance(2 * 86400)
    late = api.token(
        {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]}
    )
    assert late.status_code == 400 and "expired" in late.json()["error_description"]


def test_refresh_refused_once_device_is_disabled(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    refresh = device.tokens()["refresh_token"]
    api.client.patch(f"/v1/devices/{device.id}", json={"status": "disabled"}, headers=api.admin)
    response = api.token({"grant_type": "refresh_token", "refresh_token": refresh})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_client_secret_basic_and_post(api: Api) -> None:
    fleet = api.fleet(allow_client_secret=True)["name"]
    created = api.client.post(
        "/v1/devices", json={"device_id": "tiny-1", "fleet": fleet}, headers=api.admin
    ).json()
    secret = created["client_secret"]
    assert secret and created["enrollment_token"] is None
    basic = base64.b64encode(f"tiny-1:{secret}".encode()).decode()
    ok = api.token(
        {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert ok.status_code == 200, ok.text
    assert "cnf" not in _segment(ok.json()["access_token"], 1)
    post = api.token(
        {"grant_type": "client_credentials", "client_id": "tiny-1", "client_secret": secret}
    )
    assert post.status_code == 200
    wrong = api.token(
        {"grant_type": "client_credentials", "client_id": "tiny-1", "client_secret": secret + "x"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    shown = api.client.get("/v1/devices/tiny-1", headers=api.admin).json()
    assert secret not in json.dumps(shown)


def test_fleet_without_client_secrets_refuses_them(api: Api, fleet: str) -> None:
    response = api.client.post(
        "/v1/devices",
        headers=api.admin,
        json={"device_id": "s-1", "fleet": fleet, "auth_method": "client_secret"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


def test_failed_attempts_are_throttled_per_client(tmp_path) -> None:
    from tests.support import make_api

    api = make_api(tmp_path, failed_auth_limit=3, failed_auth_window=60)
    fleet = api.fleet()["name"]
    device = api.device(fleet)
    bad = device.assertion(key=p256_key(), alg="ES256")
    for _ in range(3):
        assert api.token(device.grant_form(bad)).status_code == 401
    throttled = api.token(device.grant_form(device.assertion(key=p256_key(), alg="ES256")))
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "invalid_client"  # RFC 6749, not RFC 8628's slow_down
    assert 0 < int(throttled.headers["retry-after"]) <= 60
    # The device id is no secret: the junk someone sent in its name does not lock it out.
    assert api.token(device.grant_form()).status_code == 200


def test_issuance_and_refusal_are_audited(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    device.tokens()
    api.token(device.grant_form(device.assertion(aud="http://elsewhere")))
    events = api.client.get(f"/v1/audit?device_id={device.id}", headers=api.admin).json()
    outcomes = [(e["action"], e["outcome"]) for e in events["items"]]
    assert ("token.issue", "ok") in outcomes
    assert ("token.client_credentials", "refused") in outcomes


def test_discovery_metadata(api: Api) -> None:
    meta = api.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == ISSUER and meta["token_endpoint"] == TOKEN_URL
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert meta["revocation_endpoint"].endswith("/oauth2/revoke")
    assert meta["introspection_endpoint"].endswith("/oauth2/introspect")


def test_revoked_devices_behind_one_address_do_not_throttle_the_others(tmp_path) -> None:
    """Refusals of real but dead credentials count against the device, not the address
    (many devices share a NAT address; the 1,000-device simulation hit this)."""
    from tests.support import make_api

    api = make_api(tmp_path, failed_auth_limit=3, failed_auth_limit_address=5)
    fleet = api.fleet()["name"]
    revoked = [api.device(fleet) for _ in range(4)]
    for device in revoked:
        refresh = device.tokens()["refresh_token"]
        api.client.post(f"/v1/devices/{device.id}:revoke", headers=api.admin)
        refused = api.token({"grant_type": "refresh_token", "refresh_token": refresh})
        assert refused.json()["error"] == "invalid_grant"
        assert api.token(device.grant_form()).json()["error"] == "invalid_client"
    honest = api.device(fleet)
    assert api.token(honest.grant_form()).status_code == 200
    # Guessing still counts against the address: 5 bad assertions, then 429 for the
    # next failure from there, whichever device it names; a verified assertion still passes.
    for expected in (401, 401, 401, 401, 401, 429):
        other = api.device(fleet)
        bad = api.token(other.grant_form(other.assertion(key=p256_key(), alg="ES256")))
        assert bad.status_code == expected
    assert api.token(honest.grant_form()).status_code == 200


def test_a_guessed_client_secret_id_still_gets_its_token_but_a_flooding_address_waits(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Secrets are checked under a per-client penalty (the device id is no secret), but
    not from an address past its limit: each check is an argon2 verification."""
    from tests.support import make_api

    api = make_api(tmp_path, failed_auth_limit=3, failed_auth_limit_address=6)
    fleet = api.fleet(allow_client_secret=True)["name"]
    created = api.client.post(
        "/v1/devices", headers=api.admin, json={"device_id": "tiny-2", "fleet": fleet}
    ).json()

    def grant(secret: str) -> Any:
        form = {"grant_type": "client_credentials", "client_id": "tiny-2", "client_secret": secret}
        return api.token(form)

    assert [grant("wrong").status_code for _ in range(4)] == [401, 401, 401, 429]
    assert grant(created["client_secret"]).status_code == 200  # through its id's penalty
    assert [grant("wrong").status_code for _ in range(2)] == [429, 429]  # the address: 6
    refused = grant(created["client_secret"])
    assert refused.status_code == 429 and refused.json()["error"] == "invalid_client"
    api.clock.advance(61)
    assert grant(created["client_secret"]).status_code == 200
