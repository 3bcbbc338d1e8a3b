"""Sessions a person can see and end (issue 12): refresh families, one family's end,
log out everywhere; a logout kills what was issued before it and nothing after."""

from __future__ import annotations

from typing import Any

from tests.support import Api


def _sessions(api: Api, device_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/devices/{device_id}/sessions", headers=api.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _actions(api: Api, device_id: str) -> list[dict[str, Any]]:
    page = api.client.get(f"/v1/audit?device_id={device_id}", headers=api.admin).json()
    return list(page["items"])


def _bearer(api: Api, *scopes: str) -> dict[str, str]:
    body = {"name": "k", "scopes": list(scopes)}
    response = api.client.post("/v1/admin-keys", json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def test_each_grant_is_a_family_listed_with_its_use(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    agent = {"User-Agent": "credbroker-device-sdk/9.9 " + "x" * 300}
    first = api.token(device.grant_form(), headers=agent).json()
    device.tokens()
    api.clock.advance(5)
    refreshed = api.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200
    listed = _sessions(api, device.id)
    assert listed["connections"] == []  # no broker in this process
    families = listed["families"]
    assert len(families) == 2
    for family in families:
        assert family["address"] == "testclient"  # the ASGI test transport's peer
        assert family["expires_at"] > family["created_at"]
    (used,) = [f for f in families if f["last_used_at"] > f["created_at"]]
    assert used["last_used_at"] == used["created_at"] + 5
    assert used["access_tokens_outstanding"] == 2
    assert used["user_agent"] == agent["User-Agent"][:200]  # capped
    (other,) = [f for f in families if f is not used]
    assert other["last_used_at"] == other["created_at"]
    assert other["user_agent"] == "testclient"  # Starlette's TestClient sends its own


def test_ending_a_family_kills_its_tokens_and_nothing_else(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    grants = [device.tokens(), device.tokens()]
    families = _sessions(api, device.id)["families"]
    target = families[0]["id"]  # one of the two, granted in the same second
    response = api.client.delete(f"/v1/devices/{device.id}/sessions/{target}", headers=api.admin)
    assert response.status_code == 204, response.text
    alive = [
        (api.introspect(g["access_token"])["active"], api.introspect(g["refresh_token"])["active"])
        for g in grants
    ]
    assert sorted(alive) == [(False, False), (True, True)]  # one whole family, not the other
    assert [f["id"] for f in _sessions(api, device.id)["families"]] == [families[1]["id"]]
    # The device stays active; a new grant works at once, in the same second.
    fresh = device.tokens()
    assert api.introspect(fresh["access_token"])["active"] is True
    ends = [e for e in _actions(api, device.id) if e["action"] == "refresh.family_revoke"]
    assert ends and ends[0]["detail"]["reason"] == "session_end"
    again = api.client.delete(f"/v1/devices/{device.id}/sessions/{target}", headers=api.admin)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


def test_log_out_everywhere_keeps_the_device_active(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    one, two = device.tokens(), device.tokens()
    response = api.client.post(f"/v1/devices/{device.id}/tokens:revoke", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    for tokens in (one, two):
        assert api.introspect(tokens["access_token"]) == {"active": False}
        assert api.introspect(tokens["refresh_token"]) == {"active": False}
    assert _sessions(api, device.id)["families"] == []
    # Granted in the very second of the logout: it works at once.
    fresh = device.tokens()
    assert api.introspect(fresh["access_token"])["active"] is True
    assert "device.logout" in [e["action"] for e in _actions(api, device.id)]


def test_unknown_devices_and_families_are_404(api: Api, fleet: str) -> None:
    device, other = api.device(fleet), api.device(fleet)
    other.tokens()
    theirs = _sessions(api, other.id)["families"][0]["id"]
    for method, path in (
        ("GET", "/v1/devices/nope/sessions"),
        ("DELETE", "/v1/devices/nope/sessions/abc"),
        ("POST", "/v1/devices/nope/tokens:revoke"),
        ("DELETE", f"/v1/devices/{device.id}/sessions/abc"),
        ("DELETE", f"/v1/devices/{device.id}/sessions/{theirs}"),  # another device's
    ):
        response = api.client.request(method, path, headers=api.admin)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_sessions_need_their_scopes(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    device.tokens()
    family = _sessions(api, device.id)["families"][0]["id"]
    reader = _bearer(api, "devices:read")
    assert api.client.get(f"/v1/devices/{device.id}/sessions", headers=reader).status_code == 200
    for method, path in (
        ("DELETE", f"/v1/devices/{device.id}/sessions/{family}"),
        ("POST", f"/v1/devices/{device.id}/tokens:revoke"),
    ):
        assert api.client.request(method, path, headers=reader).status_code == 403
    revoker = _bearer(api, "tokens:revoke")
    listed = api.client.get(f"/v1/devices/{device.id}/sessions", headers=revoker)
    assert listed.status_code == 403


def test_the_endpoints_are_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"404", "403"} <= set(paths["/v1/devices/{device_id}/sessions"]["get"]["responses"])
    ended = paths["/v1/devices/{device_id}/sessions/{family_id}"]["delete"]["responses"]
    assert {"204", "404", "403"} <= set(ended)
    assert "404" in paths["/v1/devices/{device_id}/tokens:revoke"]["post"]["responses"]


def test_a_fleet_logout_is_one_event_and_one_feed_entry(api: Api) -> None:
    fleet, bystander = str(api.fleet()["name"]), str(api.fleet()["name"])
    devices = [api.device(fleet) for _ in range(3)]
    spared = api.device(bystander)
    issued = [d.tokens() for d in devices]
    kept = spared.tokens()
    before = api.client.get("/v1/revocations?after=0&limit=1000", headers=api.admin).json()
    response = api.client.post(f"/v1/fleets/{fleet}/tokens:revoke", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"fleet": fleet, "devices": 3}
    for tokens in issued:
        assert api.introspect(tokens["access_token"]) == {"active": False}
        assert api.introspect(tokens["refresh_token"]) == {"active": False}
    assert api.introspect(kept["access_token"])["active"] is True
    for device in devices:
        assert _sessions(api, device.id)["families"] == []
        shown = api.client.get(f"/v1/devices/{device.id}", headers=api.admin).json()
        assert shown["status"] == "active"
        # Granted in the very second of the logout: it works at once.
        assert api.introspect(device.tokens()["access_token"])["active"] is True
    after = api.client.get(
        f"/v1/revocations?after={before['next']}&limit=1000", headers=api.admin
    ).json()
    assert [(e["kind"], e["fleet"], e["device_id"]) for e in after["items"]] == [
        ("fleet", fleet, "")
    ]
    events = api.client.get("/v1/audit?action=fleet.logout", headers=api.admin).json()["items"]
    assert len(events) == 1 and events[0]["detail"]["fleet"] == fleet
    assert api.client.post("/v1/fleets/nope/tokens:revoke", headers=api.admin).status_code == 404
    reader = _bearer(api, "devices:read")
    denied = api.client.post(f"/v1/fleets/{fleet}/tokens:revoke", headers=reader)
    assert denied.status_code == 403


def test_a_connection_admitted_through_a_hook_is_listed(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    tokens = device.tokens()
    api.clock.advance(3)
    login = {"clientid": device.id, "username": device.id, "password": tokens["access_token"]}
    answer = api.client.post("/v1/hooks/emqx/authn", json=login, headers=api.admin)
    assert answer.json()["result"] == "allow"
    listed = _sessions(api, device.id)
    (connection,) = listed["connections"]
    assert connection["broker"] == "hooks" and connection["client_id"] == device.id
    assert connection["since"] == int(api.clock())  # the CONNECT, not the token's iat
    assert connection["family"] == listed["families"][0]["id"]
    family = connection["family"]
    ended = api.client.delete(f"/v1/devices/{device.id}/sessions/{family}", headers=api.admin)
    assert ended.status_code == 204
    assert _sessions(api, device.id)["connections"] == []  # its hook grant is gone
