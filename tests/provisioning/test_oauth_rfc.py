"""The OAuth endpoints by their RFCs (issue 10): errors (RFC 6749 section 5.2) on every
`/oauth2/*` path, `WWW-Authenticate` on every 401, admin keys as bearer tokens at
introspection (RFC 7662 section 2.3)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.support import Api

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
