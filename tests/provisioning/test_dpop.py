"""DPoP at the token endpoint (RFC 9449): proofs checked as section 4.3 lists, refresh
families bound to the proof's key (section 5). Proofs are minted with joserfc, a
third-party JOSE library, apart from the malformed ones it will not make."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from device_sdk._keys import DevicePrivateKey
from tests.support import ISSUER, JWT_BEARER, TOKEN_URL, Api, Device, p256_key

ALGS = ["EdDSA", "Ed25519", "ES256", "RS256"]


def _jose_key(key: DevicePrivateKey) -> Any:
    return (OKPKey if isinstance(key, ed25519.Ed25519PrivateKey) else ECKey).import_key(key)


def proof(
    api: Api,
    key: DevicePrivateKey,
    *,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A DPoP proof for the token endpoint, now; `claims` and `header` override."""
    jose = _jose_key(key)
    alg = "Ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    body = {
        "jti": uuid.uuid4().hex,
        "htm": "POST",
        "htu": TOKEN_URL,
        "iat": int(api.clock()),
        **claims,
    }
    protected = {"typ": "dpop+jwt", "alg": alg, "jwk": jose.as_dict(private=False)}
    protected.update(header or {})
    protected = {k: v for k, v in protected.items() if v is not None}
    payload = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(protected, payload, jose, algorithms=[protected["alg"]])


def _b64(value: Any) -> str:
    raw = json.dumps(value).encode() if not isinstance(value, bytes) else value
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(api: Api, key: DevicePrivateKey, alg: str, signature: bytes = b"") -> str:
    """A proof joserfc would not make: `alg` none or HS256 (signature made up)."""
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": _jose_key(key).as_dict(private=False)}
    claims = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL, "iat": int(api.clock())}
    return f"{_b64(header)}.{_b64(claims)}.{_b64(signature) if signature else ''}"


def refresh(api: Api, token: str, dpop: str | None = None) -> Any:
    headers = {"DPoP": dpop} if dpop else {}
    return api.token({"grant_type": "refresh_token", "refresh_token": token}, headers=headers)


def bound_tokens(api: Api, device: Device) -> dict[str, Any]:
    response = api.token(device.grant_form(), headers={"DPoP": proof(api, device.key)})
    assert response.status_code == 200, response.text
    return dict(response.json())


def error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    return str(response.json()["error_description"])


def test_metadata_advertises_the_credential_key_algorithms(api: Api) -> None:
    meta = api.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["dpop_signing_alg_values_supported"] == ALGS
    assert meta["token_endpoint"] == TOKEN_URL


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_a_bound_family_refreshes_with_proofs_by_its_key(api: Api, fleet: str, alg: str) -> None:
    device = api.device(fleet, alg=alg)
    tokens = bound_tokens(api, device)
    assert tokens["token_type"] == "Bearer"  # access tokens are not DPoP-bound (README)
    families = api.client.get(f"/v1/devices/{device.id}/sessions", headers=api.admin).json()
    assert [f["dpop_jkt"] for f in families["families"]] == [
        device.created["credential_keys"][0]["kid"]
    ]
    for _ in range(2):
        answer = refresh(api, tokens["refresh_token"], proof(api, device.key))
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        assert tokens["token_type"] == "Bearer"


def test_a_bound_refresh_without_a_proof_is_refused_and_the_family_lives(
    api: Api, fleet: str
) -> None:
    device = api.device(fleet)
    tokens = bound_tokens(api, device)
    reason = error(refresh(api, tokens["refresh_token"]), 400, "invalid_grant")
    assert "bound" in reason
    # The same token, not spent by the refusal, still works for the holder of the key.
    answer = refresh(api, tokens["refresh_token"], proof(api, device.key))
    assert answer.status_code == 200, answer.text
    refused = api.client.get(
        f"/v1/audit?device_id={device.id}&action=token.refresh_token", headers=api.admin
    ).json()["items"]
    assert [e["outcome"] for e in refused] == ["refused"]
    assert refused[0]["detail"]["error"] == "invalid_grant"


def test_a_copied_spent_token_cannot_kill_a_bound_family(api: Api, fleet: str) -> None:
    """An old copy of the state file, replayed without the key, is not reuse: the
    device's family lives (RFC 9700 section 4.14 would revoke an unbound one)."""
    device = api.device(fleet)
    spent = bound_tokens(api, device)["refresh_token"]
    current = refresh(api, spent, proof(api, device.key)).json()["refresh_token"]
    error(refresh(api, spent), 400, "invalid_grant")
    error(refresh(api, spent, proof(api, p256_key())), 400, "invalid_grant")
    assert refresh(api, current, proof(api, device.key)).status_code == 200


def test_a_proof_by_another_key_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    tokens = bound_tokens(api, device)
    other = api.device(fleet, alg="es256")  # a registered key, of another device
    for key in (p256_key(), ed25519.Ed25519PrivateKey.generate(), other.key):
        reason = error(refresh(api, tokens["refresh_token"], proof(api, key)), 400, "invalid_grant")
        assert "another key" in reason
    assert refresh(api, tokens["refresh_token"], proof(api, device.key)).status_code == 200


def test_a_replayed_proof_is_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    first = proof(api, device.key)
    tokens = api.token(device.grant_form(), headers={"DPoP": first}).json()
    replay = refresh(api, tokens["refresh_token"], first)
    assert "replay" in error(replay, 400, "invalid_dpop_proof")
    assert refresh(api, tokens["refresh_token"], proof(api, device.key)).status_code == 200


def _bad_proof(api: Api, key: ec.EllipticCurvePrivateKey, case: str) -> str:
    now = int(api.clock())
    made: dict[str, Callable[[], str]] = {
        "wrong htu": lambda: proof(api, key, htu=ISSUER + "/oauth2/revoke"),
        "another host": lambda: proof(api, key, htu="http://elsewhere/oauth2/token"),
        "htu with userinfo": lambda: proof(api, key, htu="http://x@testserver/oauth2/token"),
        "another port": lambda: proof(api, key, htu="http://testserver:8080/oauth2/token"),
        "wrong htm": lambda: proof(api, key, htm="GET"),
        "stale iat": lambda: proof(api, key, iat=now - 60 - 31),  # window and 30 s leeway
        "future iat": lambda: proof(api, key, iat=now + 31),
        "no iat": lambda: proof(api, key, iat=None),
        "no jti": lambda: proof(api, key, jti=None),
        "typ JWT": lambda: proof(api, key, header={"typ": "JWT"}),
        "private jwk": lambda: proof(
            api, key, header={"jwk": _jose_key(key).as_dict(private=True)}
        ),
        "no jwk": lambda: proof(api, key, header={"jwk": None}),
        "jwk of another key": lambda: proof(
            api, key, header={"jwk": _jose_key(p256_key()).as_dict(private=False)}
        ),
        "alg none": lambda: unsigned(api, key, "none"),
        "alg HS256": lambda: unsigned(api, key, "HS256", b"\x00" * 32),
        "not a JWS": lambda: "not-a-jwt",
    }
    return made[case]()


@pytest.mark.parametrize(
    "case",
    [
        "wrong htu",
        "another host",
        "htu with userinfo",
        "another port",
        "wrong htm",
        "stale iat",
        "future iat",
        "no iat",
        "no jti",
        "typ JWT",
        "private jwk",
        "no jwk",
        "jwk of another key",
        "alg none",
        "alg HS256",
        "not a JWS",
    ],
)
def test_a_bad_proof_is_invalid_dpop_proof(api: Api, fleet: str, case: str) -> None:
    device = api.device(fleet, alg="es256")
    key = device.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    bad = _bad_proof(api, key, case)
    error(api.token(device.grant_form(), headers={"DPoP": bad}), 400, "invalid_dpop_proof")
    tokens = bound_tokens(api, device)
    error(
        refresh(api, tokens["refresh_token"], _bad_proof(api, key, case)), 400, "invalid_dpop_proof"
    )
    assert refresh(api, tokens["refresh_token"], proof(api, device.key)).status_code == 200
    refused = api.client.get(
        f"/v1/audit?device_id={device.id}&action=token.client_credentials", headers=api.admin
    ).json()["items"]
    assert [e["detail"]["error"] for e in refused] == ["invalid_dpop_proof"]


def test_two_dpop_headers_are_refused(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    headers = [("DPoP", proof(api, device.key)), ("DPoP", proof(api, device.key))]
    error(api.token(device.grant_form(), headers=headers), 400, "invalid_dpop_proof")


def test_htu_is_compared_without_query_and_fragment(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    htu = "HTTP://TestServer:80/oauth2/token?x=1#f"  # RFC 3986 section 6.2.2 and 6.2.3
    answer = api.token(device.grant_form(), headers={"DPoP": proof(api, device.key, htu=htu)})
    assert answer.status_code == 200, answer.text


def test_a_device_binds_only_to_one_of_its_credential_keys(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    stranger = proof(api, p256_key())
    reason = error(
        api.token(device.grant_form(), headers={"DPoP": stranger}), 400, "invalid_dpop_proof"
    )
    assert "credential key" in reason


def test_a_removed_key_refreshes_its_family_no_more(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    tokens = bound_tokens(api, device)
    kid = device.created["credential_keys"][0]["kid"]
    second = p256_key()
    from device_sdk import public_pem

    added = api.client.post(
        f"/v1/devices/{device.id}/keys", headers=api.admin, json={"public_key": public_pem(second)}
    )
    assert added.status_code == 201, added.text
    removed = api.client.delete(f"/v1/devices/{device.id}/keys/{kid}", headers=api.admin)
    assert removed.status_code in (200, 204), removed.text
    error(refresh(api, tokens["refresh_token"], proof(api, device.key)), 400, "invalid_grant")


def test_a_family_granted_without_a_proof_needs_none(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    tokens = device.tokens()
    families = api.client.get(f"/v1/devices/{device.id}/sessions", headers=api.admin).json()
    assert [f["dpop_jkt"] for f in families["families"]] == [None]
    answer = refresh(api, tokens["refresh_token"])
    assert answer.status_code == 200, answer.text
    # A proof is still checked when sent, and binds nothing afterwards.
    answer = refresh(api, answer.json()["refresh_token"], proof(api, device.key))
    assert answer.status_code == 200, answer.text
    assert refresh(api, answer.json()["refresh_token"]).status_code == 200


def test_a_secret_device_may_bind_its_family_to_a_key_of_its_own(api: Api) -> None:
    fleet = api.fleet(allow_client_secret=True)["name"]
    created = api.client.post(
        "/v1/devices", headers=api.admin, json={"fleet": fleet, "device_id": "sec-1"}
    )
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    form = {"grant_type": "client_credentials", "client_id": "sec-1", "client_secret": secret}
    key = p256_key()
    tokens = api.token(form, headers={"DPoP": proof(api, key)}).json()
    error(refresh(api, tokens["refresh_token"]), 400, "invalid_grant")
    assert refresh(api, tokens["refresh_token"], proof(api, key)).status_code == 200


def test_the_dpop_header_is_documented(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    parameters = document["paths"]["/oauth2/token"]["post"]["parameters"]
    dpop = next(p for p in parameters if p["name"].lower() == "dpop")
    assert dpop["in"] == "header" and not dpop["required"]
    assert "invalid_dpop_proof" in dpop["description"]


def test_a_bound_refresh_token_is_revoked_only_by_its_client(api: Api, fleet: str) -> None:
    """Possession alone revokes other tokens (README, Decisions), but a copy of a bound
    refresh token must not end the family of the device that holds the key."""
    device = api.device(fleet)
    tokens = bound_tokens(api, device)
    held = api.client.post("/oauth2/revoke", data={"token": tokens["refresh_token"]})
    assert "client authentication" in error(held, 401, "invalid_client")
    assert "www-authenticate" in held.headers
    answer = refresh(api, tokens["refresh_token"], proof(api, device.key))
    assert answer.status_code == 200, answer.text
    form = {
        "token": answer.json()["refresh_token"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": device.assertion(),
    }
    assert api.client.post("/oauth2/revoke", data=form).status_code == 200
    spent = refresh(api, form["token"], proof(api, device.key))
    error(spent, 400, "invalid_grant")
