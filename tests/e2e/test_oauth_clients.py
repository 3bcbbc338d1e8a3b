"""A third-party OAuth client, authlib, as shipped, against a real `credbroker up` over
real HTTP: token, refresh, revocation with its own client authentication, then
introspection says inactive (issue 10)."""

from __future__ import annotations

import uuid
import warnings
from typing import Any

from cryptography.hazmat.primitives import serialization
from joserfc.jwk import OKPKey

from tests.stack import Stack

# authlib 1.9 warns at import that its httpx client will move to httpx2, with a filter
# of its own ("always") that would outrank pytest's: recorded here, and dropped.
with warnings.catch_warnings(record=True):
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT


def _introspect(stack: Stack, token: str) -> dict[str, Any]:
    response = stack.http.post(
        stack.base + "/oauth2/introspect", data={"token": token}, headers=stack.admin
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _discovered(stack: Stack) -> dict[str, Any]:
    meta = stack.http.get(stack.base + "/.well-known/oauth-authorization-server").json()
    assert "client_secret_basic" in meta["revocation_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in meta["revocation_endpoint_auth_methods_supported"]
    return dict(meta)


def _refresh_then_revoke(stack: Stack, client: OAuth2Client, meta: dict[str, Any]) -> None:
    first = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert _introspect(stack, first["access_token"])["active"] is True
    refreshed = client.refresh_token(meta["token_endpoint"])
    assert refreshed["refresh_token"] != first["refresh_token"]
    access, refresh = refreshed["access_token"], refreshed["refresh_token"]
    assert _introspect(stack, access)["active"] is True
    revoked = client.revoke_token(meta["revocation_endpoint"], token=access)
    assert revoked.status_code == 200, revoked.text
    assert _introspect(stack, access) == {"active": False}
    revoked = client.revoke_token(meta["revocation_endpoint"], token=refresh)
    assert revoked.status_code == 200, revoked.text
    assert _introspect(stack, refresh) == {"active": False}


def test_authlib_with_a_client_secret_revokes_with_http_basic(stack: Stack) -> None:
    """authlib's defaults for a client secret: client_secret_basic everywhere."""
    meta = _discovered(stack)
    fleet = "f-" + uuid.uuid4().hex[:8]
    body = {"name": fleet, "allow_client_secret": True, "acl": {"publish": [], "subscribe": []}}
    assert stack.http.post(stack.base + "/v1/fleets", json=body, headers=stack.admin).is_success
    device_id = "s-" + uuid.uuid4().hex[:8]
    created = stack.http.post(
        stack.base + "/v1/devices",
        json={"device_id": device_id, "fleet": fleet},
        headers=stack.admin,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    with OAuth2Client(client_id=device_id, client_secret=secret) as client:
        _refresh_then_revoke(stack, client, meta)
    with OAuth2Client(client_id=device_id, client_secret="wrong") as client:
        refused = client.revoke_token(meta["revocation_endpoint"], token="x")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["www-authenticate"].startswith("Basic realm=")


def test_authlib_private_key_jwt_as_shipped_gets_refreshes_and_revokes(stack: Stack) -> None:
    """`PrivateKeyJWT` with its defaults (exp = iat + 3600, aud = the URL it posts to);
    `Ed25519` because joserfc warns that RFC 9864 deprecates `EdDSA`."""
    meta = _discovered(stack)
    assert "Ed25519" in meta["token_endpoint_auth_signing_alg_values_supported"]
    device = stack.device(stack.fleet())
    pem = device.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = OKPKey.import_key(pem)
    with OAuth2Client(
        client_id=device.id,
        client_secret=key,
        token_endpoint_auth_method=PrivateKeyJWT(alg="Ed25519"),
        # authlib's default here is client_secret_basic whenever client_secret is set,
        # even to a key: it would send the key's text as a password, and get a 401.
        revocation_endpoint_auth_method=PrivateKeyJWT(alg="Ed25519"),
    ) as client:
        _refresh_then_revoke(stack, client, meta)
    with OAuth2Client(client_id=device.id, client_secret=key) as client:
        mistaken = client.revoke_token(meta["revocation_endpoint"], token="x")
    assert mistaken.status_code == 401 and mistaken.json()["error"] == "invalid_client"


def test_oauth2_errors_over_real_http_are_rfc6749_json(stack: Stack) -> None:
    for response in (
        stack.http.get(stack.base + "/oauth2/token"),
        stack.http.post(stack.base + "/oauth2/revoke", content=b"x" * (300 * 1024)),
        stack.http.post(stack.base + "/oauth2/introspect", data={"token": "x"}),
    ):
        assert response.headers["content-type"] == "application/json", response.text
        assert response.headers["cache-control"] == "no-store"
        assert set(response.json()) == {"error", "error_description"}
