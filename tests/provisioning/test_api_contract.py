"""The API answers by its schema: strict bodies, unknown query parameters refused, 405
with `Allow`, authentication before validation, every answer documented (issue 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_sdk import generate_key, public_pem
from tests.support import Api, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """HTTP-level behaviour: the database does not matter here, SQLite will do."""
    api = make_api(tmp_path)
    yield api
    api.engine.dispose()


@pytest.fixture
def fleet(api: Api) -> str:
    return str(api.fleet()["name"])


# (method, path, body, loc of the error): values a lax parser would coerce. FLEET and
# DEVICE are filled in per test, KEY with a fresh public key.
NOT_COERCED = {
    "batch atomic 0": (
        "POST",
        "/v1/devices:batch",
        {"atomic": 0, "devices": [{"fleet": "FLEET"}]},
        ["body", "atomic"],
    ),
    "batch atomic 'false'": (
        "POST",
        "/v1/devices:batch",
        {"atomic": "false", "devices": [{"fleet": "FLEET"}]},
        ["body", "atomic"],
    ),
    "fleet token_ttl '900'": (
        "POST",
        "/v1/fleets",
        {"name": "strict-ttl", "token_ttl": "900"},
        ["body", "token_ttl"],
    ),
    "fleet allow_client_secret 1": (
        "POST",
        "/v1/fleets",
        {"name": "strict-secret", "allow_client_secret": 1},
        ["body", "allow_client_secret"],
    ),
    "fleet patch token_ttl '60'": (
        "PATCH",
        "/v1/fleets/FLEET",
        {"token_ttl": "60"},
        ["body", "token_ttl"],
    ),
    "fleet patch allow_client_secret 'yes'": (
        "PATCH",
        "/v1/fleets/FLEET",
        {"allow_client_secret": "yes"},
        ["body", "allow_client_secret"],
    ),
    "device key_expires_at '2000000000'": (
        "POST",
        "/v1/devices",
        {"fleet": "FLEET", "public_key": "KEY", "key_expires_at": "2000000000"},
        ["body", "key_expires_at"],
    ),
    "batch row key_expires_at true": (
        "POST",
        "/v1/devices:batch",
        {"devices": [{"fleet": "FLEET", "public_key": "KEY", "key_expires_at": True}]},
        ["body", "devices", 0, "key_expires_at"],
    ),
    "key expires_at '2000000000'": (
        "POST",
        "/v1/devices/DEVICE/keys",
        {"public_key": "KEY", "expires_at": "2000000000"},
        ["body", "expires_at"],
    ),
}


def _fill(value: Any, names: dict[str, str]) -> Any:
    text = json.dumps(value)
    for placeholder, name in names.items():
        text = text.replace(placeholder, name)
    return json.loads(text)


@pytest.mark.parametrize("case", NOT_COERCED.values(), ids=NOT_COERCED.keys())
def test_bodies_are_not_coerced(api: Api, fleet: str, case: tuple[Any, ...]) -> None:
    method, path, body, loc = case
    key = public_pem(generate_key("ed25519")).replace("\n", "\\n")
    names = {"FLEET": fleet, "DEVICE": api.device(fleet).id, "KEY": key}
    response = api.client.request(
        method, _fill(path, names), json=_fill(body, names), headers=api.admin
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert loc in [e["loc"] for e in response.json()["errors"]]


def test_what_the_contract_promises_is_still_accepted(api: Api) -> None:
    body = {
        "name": "contract",
        "acl": {"publish": ["devices/{device_id}/#"], "subscribe": []},
        "token_ttl": 900,
        "allow_client_secret": False,
    }
    assert api.client.post("/v1/fleets", json=body, headers=api.admin).status_code == 201
    patch = {"token_ttl": 60, "allow_client_secret": True}
    assert api.client.patch("/v1/fleets/contract", json=patch, headers=api.admin).status_code == 200
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    batch = {"atomic": False, "devices": [{"fleet": "contract", "public_key": jwk}]}
    response = api.client.post("/v1/devices:batch", json=batch, headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "created"


UNKNOWN_QUERY = {
    "audit device (the filter is device_id)": ("/v1/audit?device=d-1", "device"),
    "audit typo": ("/v1/audit?actoin=device.create", "actoin"),
    "devices": ("/v1/devices?fleet_name=x", "fleet_name"),
    "revocations": ("/v1/revocations?since=3", "since"),
    "fleets": ("/v1/fleets?name=x", "name"),
    "admin keys": ("/v1/admin-keys?scope=x", "scope"),
}


@pytest.mark.parametrize("case", UNKNOWN_QUERY.values(), ids=UNKNOWN_QUERY.keys())
def test_unknown_query_parameters_of_lists_are_a_422_naming_them(
    api: Api, case: tuple[str, str]
) -> None:
    path, name = case
    response = api.client.get(path, headers=api.admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert ["query", name] in [e["loc"] for e in response.json()["errors"]]


def test_known_filters_still_filter(api: Api, fleet: str) -> None:
    device = api.device(fleet).id
    api.device(fleet)
    events = api.client.get(f"/v1/audit?device_id={device}&limit=5", headers=api.admin).json()
    assert {e["device_id"] for e in events["items"]} == {device}
    page = api.client.get(f"/v1/devices?fleet={fleet}&status=active&limit=1", headers=api.admin)
    assert page.status_code == 200, page.text
    assert len(page.json()["items"]) == 1 and page.json()["next_cursor"]
    feed = api.client.get("/v1/revocations?after=0&limit=10", headers=api.admin)
    assert feed.status_code == 200, feed.text


NOT_ALLOWED = {
    "device: PUT": ("PUT", "/v1/devices/d-1", "GET, PATCH, DELETE"),
    "fleets: DELETE": ("DELETE", "/v1/fleets", "GET, POST"),
    "fleet: PUT": ("PUT", "/v1/fleets/f-1", "GET, PATCH, DELETE"),
    "admin keys: PUT": ("PUT", "/v1/admin-keys", "GET, POST"),
    "admin key: GET": ("GET", "/v1/admin-keys/ak_1", "DELETE"),
    "credential key: GET": ("GET", "/v1/devices/d-1/keys/k", "DELETE"),
    "health: POST": ("POST", "/healthz", "GET"),
}


@pytest.mark.parametrize("case", NOT_ALLOWED.values(), ids=NOT_ALLOWED.keys())
def test_405_names_every_method_of_the_path(api: Api, case: tuple[str, str, str]) -> None:
    method, path, allow = case
    response = api.client.request(method, path, headers=api.admin)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 405


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
def test_405_on_oauth_endpoints_is_rfc_6749_json_with_allow(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "invalid_request"


MALFORMED = {
    "fleet create": ("POST", "/v1/fleets"),
    "fleet update": ("PATCH", "/v1/fleets/f-1"),
    "device create": ("POST", "/v1/devices"),
    "batch": ("POST", "/v1/devices:batch"),
    "device update": ("PATCH", "/v1/devices/d-1"),
    "key add": ("POST", "/v1/devices/d-1/keys"),
    "admin key create": ("POST", "/v1/admin-keys"),
    "hook": ("POST", "/v1/hooks/emqx/authn"),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("authorization", [None, "Bearer adm_wrong"])
def test_admin_endpoints_authenticate_before_reading_the_body(
    api: Api, case: tuple[str, str], authorization: str | None
) -> None:
    method, path = case
    headers = {"content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    for body in (b"{not json", b"\xff\xfe", b'{"name": 5, "token_ttl": "x"}'):
        response = api.client.request(method, path, content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "www-authenticate" in response.headers


def test_with_the_key_a_malformed_body_is_a_422(api: Api) -> None:
    headers = {**api.admin, "content-type": "application/json"}
    response = api.client.post("/v1/fleets", content=b"{not json", headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["type"] == "json_invalid"
    reader = api.client.post(
        "/v1/admin-keys", json={"scopes": ["devices:read"]}, headers=api.admin
    ).json()["key"]
    lacking = {"authorization": f"Bearer {reader}", "content-type": "application/json"}
    response = api.client.post("/v1/fleets", content=b"{not json", headers=lacking)
    assert response.status_code == 403, response.text


def _documented(api: Api, method: str, template: str) -> dict[str, Any]:
    document = api.client.get("/openapi.json").json()
    return dict(document["paths"][template][method.lower()]["responses"])


# (method, path template, path, request keywords) of answers a user can get.
ANSWERS = [
    ("GET", "/v1/devices/{device_id}", "/v1/devices/nobody", {"admin": True}),
    ("GET", "/v1/devices/{device_id}", "/v1/devices/nobody", {}),
    ("GET", "/v1/fleets/{name}", "/v1/fleets/nothing", {"admin": True}),
    ("GET", "/v1/fleets", "/v1/fleets?cursor=!", {"admin": True}),
    ("DELETE", "/v1/fleets/{name}", "/v1/fleets/nothing", {"admin": True}),
    ("DELETE", "/v1/fleets/{name}", "/v1/fleets/nothing", {}),
    ("GET", "/v1/admin-keys", "/v1/admin-keys?limit=0", {"admin": True}),
    ("DELETE", "/v1/admin-keys/{key_id}", "/v1/admin-keys/env", {"admin": True}),
    ("DELETE", "/v1/admin-keys/{key_id}", "/v1/admin-keys/nobody", {"admin": True}),
    ("POST", "/v1/fleets", "/v1/fleets", {"admin": True, "json": {"name": "FLEET"}}),
    ("POST", "/v1/fleets", "/v1/fleets", {"admin": True, "data": {"name": "x"}}),
    ("POST", "/v1/devices", "/v1/devices", {"admin": True, "json": {"fleet": "FLEET", "x": 1}}),
    (
        "POST",
        "/v1/devices",
        "/v1/devices",
        {"admin": True, "json": {"fleet": "FLEET", "public_key": "not a key"}},
    ),
    ("GET", "/v1/audit", "/v1/audit?limit=0", {"admin": True}),
    ("GET", "/v1/devices/{device_id}/jwks.json", "/v1/devices/nobody/jwks.json", {}),
    ("POST", "/v1/enroll", "/v1/enroll", {"json": {"enrollment_token": "x", "public_key": "y"}}),
    ("POST", "/oauth2/token", "/oauth2/token", {"data": {"grant_type": "password"}}),
    ("POST", "/oauth2/token", "/oauth2/token", {"data": {"grant_type": "client_credentials"}}),
    ("POST", "/oauth2/introspect", "/oauth2/introspect", {"data": {"token": "x"}}),
    ("POST", "/v1/hooks/emqx/authn", "/v1/hooks/emqx/authn", {"json": {"clientid": "c"}}),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: f"{a[0]} {a[2]} {sorted(a[3])}")
def test_every_answer_is_documented_with_its_media_type(
    api: Api, fleet: str, answer: tuple[str, str, str, dict[str, Any]]
) -> None:
    method, template, path, kw = answer
    kw = _fill(kw, {"FLEET": fleet})
    headers = api.admin if kw.pop("admin", False) else {}
    response = api.client.request(method, path, headers=headers, **kw)
    assert response.status_code >= 400, response.text
    documented = _documented(api, method, template)
    assert str(response.status_code) in documented, (response.status_code, sorted(documented))
    media = response.headers["content-type"].split(";")[0]
    assert media in documented[str(response.status_code)]["content"]


def test_error_schemas_are_problem_json_on_v1_and_rfc_6749_on_oauth(api: Api) -> None:
    fleet = _documented(api, "POST", "/v1/fleets")
    assert set(fleet) >= {"201", "400", "401", "403", "409", "413", "415", "422", "503"}
    for status in ("401", "422"):
        assert list(fleet[status]["content"]) == ["application/problem+json"]
        schema = fleet[status]["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}
    token = _documented(api, "POST", "/oauth2/token")
    assert set(token) >= {"200", "400", "401", "429"}
    assert token["400"]["content"]["application/json"]["schema"]["$ref"].endswith("OAuthErrorBody")


def test_oauth_forms_and_answers_are_documented(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    token = document["paths"]["/oauth2/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    metadata = api.client.get("/.well-known/oauth-authorization-server").json()
    assert form["properties"]["grant_type"]["enum"] == metadata["grant_types_supported"]
    assert form["required"] == ["grant_type"]
    answer = token["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    fields = document["components"]["schemas"][answer.rsplit("/", 1)[1]]["properties"]
    assert set(fields) == {"access_token", "token_type", "expires_in", "refresh_token"}
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        body = document["paths"][path]["post"]["requestBody"]["content"]
        assert body["application/x-www-form-urlencoded"]["schema"]["required"] == ["token"]
