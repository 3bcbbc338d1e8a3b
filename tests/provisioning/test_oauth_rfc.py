"""The OAuth endpoints by their RFCs (issue 10): errors (RFC 6749 section 5.2) on every
`/oauth2/*` path, `WWW-Authenticate` on every 401, admin keys as bearer tokens at
introspection (RFC 7662 section 2.3)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.stack import b64, wait_for
from tests.support import ISSUER, TOKEN_URL, Api, make_api

FORM = {"content-type": "application/x-www-form-urlencoded"}


def oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 section 5.2 error: that JSON shape and nothing else, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    return body


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _key(api: Api, *scopes: str) -> dict[str, str]:
    created = api.client.post(
        "/v1/admin-keys", headers=api.admin, json={"name": "k", "scopes": list(scopes)}
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def test_introspection_refusals_are_rfc6749_json_with_bearer_challenges(api: Api) -> None:
    missing = api.client.post("/oauth2/introspect", data={"token": "x"})
    oauth_error(missing, 401, "invalid_client")
    assert missing.headers["www-authenticate"] == 'Bearer realm="credbroker"'
    wrong = api.client.post(
        "/oauth2/introspect", data={"token": "x"}, headers={"Authorization": "Bearer nope"}
    )
    oauth_error(wrong, 401, "invalid_token")  # RFC 6750 section 3.1, as RFC 7662 2.3 says
    assert wrong.headers["www-authenticate"] == 'Bearer realm="credbroker", error="invalid_token"'
    # RFC 7662 section 2.3: a bearer token without the privileges is a 401 too.
    weak = api.client.post(
        "/oauth2/introspect", data={"token": "x"}, headers=_key(api, "audit:read")
    )
    oauth_error(weak, 401, "insufficient_scope")
    assert 'error="insufficient_scope"' in weak.headers["www-authenticate"]
    # HTTP Basic is not taken here: the challenge names the scheme that is.
    tried = api.client.post("/oauth2/introspect", data={"token": "x"}, headers=basic("a", "b"))
    oauth_error(tried, 401, "invalid_client")
    assert tried.headers["www-authenticate"].startswith("Bearer ")
    reader = api.client.post(
        "/oauth2/introspect", data={"token": "x"}, headers=_key(api, "devices:read")
    )
    assert reader.status_code == 200 and reader.json() == {"active": False}


def test_revoke_with_a_bad_admin_key_is_rfc6749_json(api: Api) -> None:
    wrong = api.client.post(
        "/oauth2/revoke", data={"token": "x"}, headers={"Authorization": "Bearer nope"}
    )
    oauth_error(wrong, 401, "invalid_token")
    assert wrong.headers["www-authenticate"].startswith("Bearer ")
    weak = api.client.post("/oauth2/revoke", data={"token": "x"}, headers=_key(api, "audit:read"))
    oauth_error(weak, 401, "insufficient_scope")


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
def test_framework_errors_under_oauth2_are_rfc6749_json(api: Api, path: str) -> None:
    oauth_error(api.client.get(path), 405, "invalid_request")
    oauth_error(api.client.post(path, json={"token": "x"}), 400, "invalid_request")
    cap = api.settings.max_body_bytes
    declared = api.client.post(path, content=b"token=" + b"a" * cap, headers=FORM)
    oauth_error(declared, 413, "invalid_request")

    def chunks() -> Any:  # no Content-Length: the cap counts the stream
        yield b"token="
        for _ in range(cap // 8192 + 1):
            yield b"a" * 8192

    streamed = api.client.post(path, content=chunks(), headers={**FORM, **api.admin})
    oauth_error(streamed, 413, "invalid_request")
    many = "&".join(f"f{i}=x" for i in range(17))  # Starlette's "Too many fields" 400
    oauth_error(
        api.client.post(path, content=many.encode(), headers={**FORM, **api.admin}),
        400,
        "invalid_request",
    )


def test_unknown_oauth2_paths_too_and_v1_stays_problem_json(api: Api) -> None:
    oauth_error(api.client.post("/oauth2/authorize", data={"a": "b"}), 404, "invalid_request")
    elsewhere = api.client.get("/v1/nowhere")
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"] == "application/problem+json"


def test_every_invalid_client_of_the_token_endpoint_carries_a_challenge(
    api: Api, fleet: str
) -> None:
    device = api.device(fleet)
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"grant_type": "client_credentials"}, {}),
        (device.grant_form(device.assertion(aud="http://elsewhere")), {}),
        ({"grant_type": "client_credentials", "client_id": device.id, "client_secret": "x"}, {}),
        ({"grant_type": "client_credentials"}, basic(device.id, "wrong")),
        ({"grant_type": "client_credentials"}, {"Authorization": "Basic !!!"}),
        ({"grant_type": "client_credentials"}, {"Authorization": "Bearer something"}),
    ]
    for form, headers in cases:
        refused = api.token(form, headers=headers)
        oauth_error(refused, 401, "invalid_client")
        # Basic is the one HTTP scheme the token endpoint takes (RFC 6749 section 2.3.1).
        assert refused.headers["www-authenticate"] == 'Basic realm="credbroker", charset="UTF-8"'


def _joserfc_key(device: Any) -> Any:
    from joserfc.jwk import ECKey, OKPKey

    pem = device.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (OKPKey if isinstance(device.key, ed25519.Ed25519PrivateKey) else ECKey).import_key(pem)


def test_authlib_assertions_as_shipped_get_a_token(api: Api, fleet: str) -> None:
    """authlib's `PrivateKeyJWT` signs `exp = iat + 3600`: within the one-hour bound.
    `Ed25519`, not `EdDSA`: joserfc warns that RFC 9864 deprecates the latter."""
    from authlib.oauth2.rfc7523 import private_key_jwt_sign

    device = api.device(fleet)
    assertion = private_key_jwt_sign(
        _joserfc_key(device), client_id=device.id, token_endpoint=TOKEN_URL, alg="Ed25519"
    )
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert api.token(device.grant_form(assertion)).status_code == 200


@pytest.mark.parametrize(
    ("iat", "exp", "why"),
    [
        (0, 3600 + 31, "ahead"),  # past the bound and the 30 s leeway
        (-200, 3500, "lives more than"),  # made long before: exp - iat over the bound
    ],
)
def test_assertion_lifetime_is_bounded(api: Api, fleet: str, iat: int, exp: int, why: str) -> None:
    device = api.device(fleet)
    now = int(api.clock())
    refused = api.token(device.grant_form(device.assertion(iat=now + iat, exp=now + exp)))
    assert why in oauth_error(refused, 401, "invalid_client")["error_description"]


def test_rfc9864_ed25519_alg_is_accepted_for_an_ed25519_key(api: Api, fleet: str) -> None:
    from joserfc import jwt as jose_jwt

    device = api.device(fleet)
    now = int(api.clock())
    claims = {"iss": device.id, "sub": device.id, "aud": TOKEN_URL, "iat": now}
    claims |= {"exp": now + 60, "jti": uuid.uuid4().hex}
    assertion = jose_jwt.encode(
        {"alg": "Ed25519"}, claims, _joserfc_key(device), algorithms=["Ed25519"]
    )
    assert api.token(device.grant_form(assertion)).status_code == 200
    meta = api.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == [
        "EdDSA",
        "Ed25519",
        "ES256",
        "RS256",
    ]


def _with_header(token: str, header: dict[str, str]) -> str:
    """The same claims and signature under another header: the alg is checked first."""
    return b64(json.dumps(header).encode()) + "." + token.split(".", 1)[1]


@pytest.mark.parametrize(("key_alg", "alg"), [("es256", "Ed25519"), ("ed25519", "ES256")])
def test_an_alg_the_key_cannot_verify_is_unsupported_not_a_bad_signature(
    api: Api, fleet: str, key_alg: str, alg: str
) -> None:
    device = api.device(fleet, alg=key_alg)
    kid = device.created["credential_keys"][0]["kid"]
    for header, which in (
        ({"alg": alg}, "this device's keys"),
        ({"alg": alg, "kid": kid}, "this key"),
    ):
        signed = _with_header(device.assertion(), header)
        body = oauth_error(api.token(device.grant_form(signed)), 401, "invalid_client")
        assert body["error_description"] == f"unsupported algorithm {alg!r} for {which}"
    hs256 = device.assertion(key="k" * 32, alg="HS256")
    assert "unsupported algorithm 'HS256'" in api.token(device.grant_form(hs256)).text


def test_the_replay_cache_forgets_expired_assertions(api: Api, fleet: str) -> None:
    """Each jti is kept until its assertion expires, and no longer: the table stays at
    what the one-hour bound allows instead of growing with every grant."""
    from sqlalchemy import text

    def kept() -> int:
        with api.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM used_assertions")).scalar_one())

    device = api.device(fleet)
    with api.client:  # the lifespan: the loop that follows the revocation log prunes too
        device.tokens()
        assert kept() == 1
        api.clock.advance(60 + 31)  # the assertion's exp plus leeway
        wait_for(lambda: kept() == 0, 10, "the expired jti to be pruned")
        device.tokens()
        assert kept() == 1


REVOKE_URL = ISSUER + "/oauth2/revoke"


def _secret_device(api: Api, device_id: str | None = None) -> tuple[str, str]:
    fleet = api.fleet(allow_client_secret=True)["name"]
    device_id = device_id or f"s-{uuid.uuid4().hex[:8]}"
    created = api.client.post(
        "/v1/devices", json={"device_id": device_id, "fleet": fleet}, headers=api.admin
    )
    assert created.status_code == 201, created.text
    return device_id, created.json()["client_secret"]


def _secret_tokens(api: Api, device_id: str, secret: str) -> dict[str, Any]:
    got = api.token({"grant_type": "client_credentials"}, headers=basic(device_id, secret))
    assert got.status_code == 200, got.text
    return dict(got.json())


def _actors(api: Api, device_id: str) -> list[tuple[str, str | None]]:
    events = api.client.get(f"/v1/audit?device_id={device_id}", headers=api.admin).json()
    return [(e["action"], e["actor"]) for e in events["items"] if "revoke" in e["action"]]


def test_a_client_secret_device_revokes_with_http_basic(api: Api) -> None:
    """RFC 7009 section 2.1: the token endpoint's client authentication, HTTP Basic
    included (authlib's default `revoke_token`)."""
    device_id, secret = _secret_device(api)
    tokens = _secret_tokens(api, device_id, secret)
    for kind in ("access_token", "refresh_token"):
        revoked = api.client.post(
            "/oauth2/revoke", data={"token": tokens[kind]}, headers=basic(device_id, secret)
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.headers["cache-control"] == "no-store"
        assert api.introspect(tokens[kind]) == {"active": False}
    assert ("token.revoke", f"client:{device_id}") in _actors(api, device_id)
    assert ("refresh.family_revoke", f"client:{device_id}") in _actors(api, device_id)
    posted = _secret_tokens(api, device_id, secret)["access_token"]
    form = {"token": posted, "client_id": device_id, "client_secret": secret}
    assert api.client.post("/oauth2/revoke", data=form).status_code == 200
    assert api.introspect(posted) == {"active": False}


def test_a_device_with_the_longest_id_revokes_and_is_audited(api: Api) -> None:
    """The audit actor `client:<device id>` is longer than an id: the column holds it
    (PostgreSQL enforces column widths; issue 10)."""
    device_id, secret = _secret_device(api, "L" + uuid.uuid4().hex + "x" * 95)
    assert len(device_id) == 128
    access = _secret_tokens(api, device_id, secret)["access_token"]
    revoked = api.client.post(
        "/oauth2/revoke", data={"token": access}, headers=basic(device_id, secret)
    )
    assert revoked.status_code == 200, revoked.text
    assert ("token.revoke", f"client:{device_id}") in _actors(api, device_id)


def test_failed_client_authentication_on_revoke_is_a_challenged_401(api: Api) -> None:
    device_id, secret = _secret_device(api)
    access = _secret_tokens(api, device_id, secret)["access_token"]
    wrong = api.client.post(
        "/oauth2/revoke", data={"token": access}, headers=basic(device_id, "wrong")
    )
    oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"] == 'Basic realm="credbroker", charset="UTF-8"'
    posted = api.client.post(
        "/oauth2/revoke", data={"token": access, "client_id": device_id, "client_secret": "x"}
    )
    oauth_error(posted, 401, "invalid_client")
    assert posted.headers["www-authenticate"].startswith("Basic ")
    assert api.introspect(access)["active"] is True  # credentials that fail revoke nothing
    both = api.client.post(
        "/oauth2/revoke",
        data={"token": access, "client_secret": secret},
        headers=basic(device_id, secret),
    )
    oauth_error(both, 400, "invalid_request")  # RFC 6749 section 2.3: one method
    events = api.client.get(f"/v1/audit?device_id={device_id}", headers=api.admin).json()
    refusals = [e for e in events["items"] if e["action"] == "token.revoke"]
    assert refusals and all(e["outcome"] == "refused" for e in refusals)


@pytest.mark.parametrize("aud", [REVOKE_URL, TOKEN_URL, ISSUER])
def test_a_key_device_revokes_with_private_key_jwt(api: Api, fleet: str, aud: str) -> None:
    device = api.device(fleet)
    tokens = device.tokens()
    form = {**device.grant_form(device.assertion(aud=aud)), "token": tokens["access_token"]}
    del form["grant_type"]
    assert api.client.post("/oauth2/revoke", data=form).status_code == 200
    assert api.introspect(tokens["access_token"]) == {"active": False}
    replayed = api.client.post("/oauth2/revoke", data={**form, "token": tokens["refresh_token"]})
    assert "replay" in oauth_error(replayed, 401, "invalid_client")["error_description"]
    assert api.introspect(tokens["refresh_token"])["active"] is True


def test_an_assertion_made_for_revocation_gets_no_token(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    refused = api.token(device.grant_form(device.assertion(aud=REVOKE_URL)))
    assert "aud" in oauth_error(refused, 401, "invalid_client")["error_description"]


def test_an_authenticated_client_may_revoke_only_its_own_tokens(api: Api, fleet: str) -> None:
    """RFC 7009 section 2.1: the server "verifies whether the token was issued to the
    client making the revocation request. If this validation fails, the request is
    refused" (RFC 6749 section 5.2: invalid_grant, "issued to another client")."""
    device_id, secret = _secret_device(api)
    other = api.device(fleet)
    theirs = other.tokens()
    for kind in ("access_token", "refresh_token"):
        refused = api.client.post(
            "/oauth2/revoke", data={"token": theirs[kind]}, headers=basic(device_id, secret)
        )
        assert "another client" in oauth_error(refused, 400, "invalid_grant")["error_description"]
        assert api.introspect(theirs[kind])["active"] is True
        # Naming a client without credentials holds the request to that client too.
        named = api.client.post(
            "/oauth2/revoke", data={"token": theirs[kind], "client_id": device_id}
        )
        oauth_error(named, 400, "invalid_grant")
    # Unknown and dead tokens stay a quiet 200 (RFC 7009 section 2.2).
    quiet = api.client.post(
        "/oauth2/revoke", data={"token": "nope"}, headers=basic(device_id, secret)
    )
    assert quiet.status_code == 200
    # Holding the token alone is still enough (README, Decisions), and so is an admin key.
    assert (
        api.client.post("/oauth2/revoke", data={"token": theirs["access_token"]}).status_code == 200
    )
    admin = api.client.post(
        "/oauth2/revoke", data={"token": theirs["refresh_token"]}, headers=api.admin
    )
    assert admin.status_code == 200
    assert api.introspect(theirs["refresh_token"]) == {"active": False}
    assert ("refresh.family_revoke", "env") in _actors(api, other.id)


def test_failed_revocations_count_against_the_same_limits(tmp_path: Path) -> None:
    """A client secret accepted by revocation is no way around the token endpoint's
    penalties; a penalty still never stands between the right secret and its answer."""
    api = make_api(tmp_path, failed_auth_limit=3, failed_auth_window=60)
    device_id, secret = _secret_device(api)
    access = _secret_tokens(api, device_id, secret)["access_token"]
    for _ in range(3):
        wrong = api.client.post(
            "/oauth2/revoke", data={"token": access}, headers=basic(device_id, "guess")
        )
        assert wrong.status_code == 401
    guessing = api.token({"grant_type": "client_credentials"}, headers=basic(device_id, "g"))
    oauth_error(guessing, 429, "invalid_client")
    assert guessing.headers["retry-after"]
    again = api.client.post(
        "/oauth2/revoke", data={"token": access}, headers=basic(device_id, "guess")
    )
    oauth_error(again, 429, "invalid_client")
    right = api.client.post(
        "/oauth2/revoke", data={"token": access}, headers=basic(device_id, secret)
    )
    assert right.status_code == 200
    assert api.introspect(access) == {"active": False}


def test_metadata_names_what_each_endpoint_accepts(api: Api) -> None:
    """RFC 8414 section 2, with names from the IANA registries it points to."""
    meta = api.client.get("/.well-known/oauth-authorization-server").json()
    methods = ["private_key_jwt", "client_secret_basic", "client_secret_post"]
    methods += ["tls_client_auth", "self_signed_tls_client_auth"]  # RFC 8705 section 2
    assert meta["token_endpoint_auth_methods_supported"] == methods
    assert meta["revocation_endpoint_auth_methods_supported"] == ["none", *methods]
    algs = ["EdDSA", "Ed25519", "ES256", "RS256"]  # RS256: for RSA credential keys
    assert meta["revocation_endpoint_auth_signing_alg_values_supported"] == algs
    assert meta["introspection_endpoint_auth_methods_supported"] == ["Bearer"]
    assert meta["revocation_endpoint"] == REVOKE_URL
