"""Admin keys and fleets as an operator manages them: listed, expired, revoked, deleted
(issue 12, section 3), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests.support import Api


def _key(api: Api, *scopes: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "k", "scopes": list(scopes or ["devices:read"]), **extra}
    response = api.client.post("/v1/admin-keys", json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert body["status"] == status
    return body


def _listed(api: Api, path: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(path, params=params, headers=headers or api.admin)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    page = api.client.get("/v1/audit", params={"action": action}, headers=api.admin)
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def test_listed_keys_never_show_a_secret(api: Api) -> None:
    made = [_key(api, "devices:read", name=f"reader {n}") for n in range(3)]
    response = api.client.get("/v1/admin-keys", headers=api.admin)
    for created in made:
        assert created["key"] not in response.text
    listed = {k["id"]: k for k in _listed(api, "/v1/admin-keys")}  # pages of 2
    assert set(listed) >= {k["id"] for k in made} | {"env"}
    for created in made:
        shown = listed[created["id"]]
        assert set(shown) == {"id", "name", "scopes", "created_at", "last_used_at", "expires_at"}
        assert shown["name"] == created["name"] and shown["scopes"] == ["devices:read"]
        assert shown["expires_at"] is None and shown["last_used_at"] is None


def test_a_revoked_key_is_refused_from_its_next_request(api: Api, fleet: str) -> None:
    key = _key(api, "devices:read", "devices:write")
    assert api.client.get("/v1/devices", headers=_bearer(key["key"])).status_code == 200
    assert api.client.delete(f"/v1/admin-keys/{key['id']}", headers=api.admin).status_code == 204
    _problem(api.client.get("/v1/devices", headers=_bearer(key["key"])), 401)
    form = {"token": "x"}
    introspect = api.client.post("/oauth2/introspect", data=form, headers=_bearer(key["key"]))
    assert introspect.status_code == 401 and introspect.json()["error"] == "invalid_token"
    assert key["id"] not in [k["id"] for k in _listed(api, "/v1/admin-keys")]
    _problem(api.client.delete(f"/v1/admin-keys/{key['id']}", headers=api.admin), 404)
    [event] = [e for e in _audit(api, "admin_key.revoke") if e["detail"]["key_id"] == key["id"]]
    assert event["actor"] == "env"


def test_a_revoked_hook_key_is_refused_by_the_hooks_at_once(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    hook = _key(api, "broker:hook")
    body = {
        "clientid": device.id,
        "username": device.id,
        "password": device.tokens()["access_token"],
    }

    def authn() -> httpx.Response:
        return api.client.post("/v1/hooks/emqx/authn", json=body, headers=_bearer(hook["key"]))

    assert authn().json()["result"] == "allow"  # the key is now taken on trust a while
    assert api.client.delete(f"/v1/admin-keys/{hook['id']}", headers=api.admin).status_code == 204
    _problem(authn(), 401)


def test_an_expired_key_is_refused_like_an_unknown_one(api: Api, fleet: str) -> None:
    key = _key(api, "devices:read", "broker:hook", expires_in=60)
    assert key["expires_at"] == int(api.clock()) + 60
    device = api.device(fleet)
    body = {
        "clientid": device.id,
        "username": device.id,
        "password": device.tokens()["access_token"],
    }
    hook = api.client.post("/v1/hooks/emqx/authn", json=body, headers=_bearer(key["key"]))
    assert hook.json()["result"] == "allow"
    assert api.client.get("/v1/devices", headers=_bearer(key["key"])).status_code == 200
    api.clock.advance(60)
    expired = _problem(api.client.get("/v1/devices", headers=_bearer(key["key"])), 401)
    unknown = _problem(api.client.get("/v1/devices", headers=_bearer("cba_" + "0" * 43)), 401)
    assert expired == unknown
    _problem(api.client.post("/v1/hooks/emqx/authn", json=body, headers=_bearer(key["key"])), 401)
    listed = {k["id"]: k for k in _listed(api, "/v1/admin-keys")}
    assert listed[key["id"]]["expires_at"] == key["expires_at"]  # still listed: it says why


def test_expires_in_is_checked(api: Api) -> None:
    for bad in (0, -5, "60", 10 * 365 * 86400 + 1):
        body = {"scopes": ["devices:read"], "expires_in": bad}
        _problem(api.client.post("/v1/admin-keys", json=body, headers=api.admin), 422)


def test_the_last_key_with_every_scope_cannot_be_revoked(api: Api) -> None:
    refused = _problem(api.client.delete("/v1/admin-keys/env", headers=api.admin), 409)
    assert "last admin API key with every scope" in refused["detail"]
    every = ["devices:read", "devices:write", "tokens:revoke", "audit:read", "broker:hook"]
    expiring = _key(api, *every, expires_in=10)
    api.clock.advance(10)  # an expired key is no way back in
    _problem(api.client.delete("/v1/admin-keys/env", headers=api.admin), 409)
    other = _key(api, *every)
    assert api.client.delete("/v1/admin-keys/env", headers=api.admin).status_code == 204
    _problem(api.client.get("/v1/devices", headers=api.admin), 401)
    mine = _bearer(other["key"])
    _problem(api.client.delete(f"/v1/admin-keys/{other['id']}", headers=mine), 409)
    # An expired key with every scope may go; it holds nothing.
    assert api.client.delete(f"/v1/admin-keys/{expiring['id']}", headers=mine).status_code == 204


def test_a_key_revokes_only_keys_within_its_scopes(api: Api) -> None:
    writer = _key(api, "devices:read", "devices:write")
    narrow = _key(api, "devices:write")
    as_writer = _bearer(writer["key"])
    _problem(api.client.delete("/v1/admin-keys/env", headers=as_writer), 403)
    assert api.client.delete(f"/v1/admin-keys/{narrow['id']}", headers=as_writer).status_code == 204
    assert api.client.delete(f"/v1/admin-keys/{writer['id']}", headers=as_writer).status_code == 204
    _problem(api.client.get("/v1/devices", headers=as_writer), 401)


def test_managing_keys_needs_devices_write(api: Api) -> None:
    reader = _bearer(_key(api, "devices:read", "audit:read")["key"])
    _problem(api.client.get("/v1/admin-keys", headers=reader), 403)
    _problem(api.client.delete("/v1/admin-keys/env", headers=reader), 403)
    _problem(api.client.get("/v1/admin-keys"), 401)
    _problem(api.client.delete("/v1/admin-keys/env"), 401)


def test_last_used_is_kept_to_the_minute(api: Api) -> None:
    key = _key(api, "devices:read", "devices:write")

    def last_used() -> int | None:
        listed = {k["id"]: k for k in _listed(api, "/v1/admin-keys")}
        return listed[key["id"]]["last_used_at"]  # type: ignore[no-any-return]

    first = int(api.clock())
    assert api.client.get("/v1/devices", headers=_bearer(key["key"])).status_code == 200
    assert last_used() == first
    api.clock.advance(59)
    assert api.client.get("/v1/devices", headers=_bearer(key["key"])).status_code == 200
    assert last_used() == first
    api.clock.advance(1)
    assert api.client.get("/v1/devices", headers=_bearer(key["key"])).status_code == 200
    assert last_used() == first + 60


def test_fleets_are_listed_in_pages(api: Api) -> None:
    names = sorted(api.fleet()["name"] for _ in range(5))
    listed = _listed(api, "/v1/fleets")
    assert [f["name"] for f in listed] == sorted(f["name"] for f in listed)
    assert [f for f in listed if f["name"] in names] == [
        api.client.get(f"/v1/fleets/{n}", headers=api.admin).json() for n in names
    ]
    _problem(api.client.get("/v1/fleets", params={"cursor": "!!"}, headers=api.admin), 400)
    reader = _bearer(_key(api, "devices:read")["key"])
    assert api.client.get("/v1/fleets", headers=reader).status_code == 200
    _problem(api.client.delete(f"/v1/fleets/{names[0]}", headers=reader), 403)


def test_a_fleet_with_devices_is_deleted_only_with_cascade(api: Api, fleet: str) -> None:
    devices = [api.device(fleet) for _ in range(2)]
    tokens = [d.tokens() for d in devices]
    refused = _problem(api.client.delete(f"/v1/fleets/{fleet}", headers=api.admin), 409)
    assert "cascade=true" in refused["detail"]
    assert api.client.get(f"/v1/fleets/{fleet}", headers=api.admin).status_code == 200
    assert api.introspect(tokens[0]["access_token"])["active"] is True

    deleted = api.client.delete(f"/v1/fleets/{fleet}?cascade=true", headers=api.admin)
    assert deleted.status_code == 204, deleted.text
    _problem(api.client.get(f"/v1/fleets/{fleet}", headers=api.admin), 404)
    for device, issued in zip(devices, tokens, strict=True):
        _problem(api.client.get(f"/v1/devices/{device.id}", headers=api.admin), 404)
        assert api.introspect(issued["access_token"]) == {"active": False}
        refresh = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
        assert api.token(refresh).json()["error"] == "invalid_grant"
    [event] = [e for e in _audit(api, "fleet.delete") if e["detail"]["fleet"] == fleet]
    assert event["detail"] == {"fleet": fleet, "cascade": True, "devices": 2}
    gone = {e["device_id"] for e in _audit(api, "device.delete")}
    assert {d.id for d in devices} <= gone
    # The name is free again.
    assert api.fleet(fleet)["name"] == fleet


def test_an_empty_fleet_is_deleted(api: Api, fleet: str) -> None:
    assert api.client.delete(f"/v1/fleets/{fleet}", headers=api.admin).status_code == 204
    _problem(api.client.delete(f"/v1/fleets/{fleet}", headers=api.admin), 404)
    [event] = [e for e in _audit(api, "fleet.delete") if e["detail"]["fleet"] == fleet]
    assert event["detail"] == {"fleet": fleet, "cascade": False, "devices": 0}


def test_the_new_endpoints_are_documented_with_their_errors(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    expected = {
        ("/v1/admin-keys", "get"): {"200", "400", "401", "403", "422", "503"},
        ("/v1/admin-keys/{key_id}", "delete"): {"204", "401", "403", "404", "409", "503"},
        ("/v1/fleets", "get"): {"200", "400", "401", "403", "422", "503"},
        ("/v1/fleets/{name}", "delete"): {"204", "401", "403", "404", "409", "503"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) >= statuses, (path, method, sorted(responses))
        for status in statuses - {"200", "204"}:
            assert list(responses[status]["content"]) == ["application/problem+json"]


def test_two_revocations_at_once_leave_a_key_with_every_scope(api: Api) -> None:
    """The only two keys with every scope revoke each other at the same moment: one
    wins, the other is refused (409, or 401 if it came after), never both (PostgreSQL:
    the live keys are read FOR UPDATE)."""
    every = ["devices:read", "devices:write", "tokens:revoke", "audit:read", "broker:hook"]
    root = {"id": "env", "key": api.admin_key}
    for _ in range(5):
        first = _key(api, *every) if root["id"] == "env" else _made_by(api, root, every)
        second = _made_by(api, first, every)
        gone = api.client.delete(f"/v1/admin-keys/{root['id']}", headers=_bearer(first["key"]))
        assert gone.status_code == 204, gone.text
        start = threading.Barrier(2)
        answers: dict[str, int] = {}

        pairs = [(first, second), (second, first)]
        threads = [
            threading.Thread(target=_revoke_at, args=(api, start, answers, *pair)) for pair in pairs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(answers.values()) in ([204, 401], [204, 409]), answers
        [root] = [actor for actor in (first, second) if answers[actor["id"]] == 204]
        listed = _listed(api, "/v1/admin-keys", _bearer(root["key"]))
        assert [k["id"] for k in listed if set(k["scopes"]) == set(every)] == [root["id"]]


def _revoke_at(
    api: Api,
    start: threading.Barrier,
    answers: dict[str, int],
    actor: dict[str, Any],
    target: dict[str, Any],
) -> None:
    start.wait()
    path = f"/v1/admin-keys/{target['id']}"
    answers[actor["id"]] = api.client.delete(path, headers=_bearer(actor["key"])).status_code


def _made_by(api: Api, actor: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    body = {"name": "k", "scopes": scopes}
    response = api.client.post("/v1/admin-keys", json=body, headers=_bearer(actor["key"]))
    assert response.status_code == 201, response.text
    return dict(response.json())
