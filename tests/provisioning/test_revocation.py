"""Revocation (RFC 7009), introspection (RFC 7662), signing key rotation."""

from __future__ import annotations

from tests.support import Api


def test_introspection_needs_an_admin_key(api: Api, fleet: str) -> None:
    token = api.device(fleet).tokens()["access_token"]
    response = api.client.post("/oauth2/introspect", data={"token": token})
    assert response.status_code == 401
    active = api.introspect(token)
    assert active["active"] is True and active["token_type"] == "Bearer"
    assert api.introspect("garbage") == {"active": False}


def test_revoking_an_access_token(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    tokens = device.tokens()
    response = api.client.post("/oauth2/revoke", data={"token": tokens["access_token"]})
    assert response.status_code == 200
    assert api.introspect(tokens["access_token"]) == {"active": False}
    # The refresh token still works: only that access token was revoked.
    assert api.introspect(tokens["refresh_token"])["active"] is True


def test_revoking_a_refresh_token_kills_its_family(api: Api, fleet: str) -> None:
    tokens = api.device(fleet).tokens()
    assert api.introspect(tokens["refresh_token"])["token_type"] == "refresh_token"
    assert (
        api.client.post("/oauth2/revoke", data={"token": tokens["refresh_token"]}).status_code
        == 200
    )
    assert api.introspect(tokens["refresh_token"]) == {"active": False}
    assert api.introspect(tokens["access_token"]) == {"active": False}
    refused = api.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refused.json()["error"] == "invalid_grant"


def test_revoke_is_quiet_about_unknown_tokens_and_loud_about_bad_requests(api: Api) -> None:
    assert api.client.post("/oauth2/revoke", data={"token": "nope"}).status_code == 200
    missing = api.client.post("/oauth2/revoke", data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_device_revocation_kills_everything(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    tokens = device.tokens()
    revoked = api.client.post(f"/v1/devices/{device.id}:revoke", headers=api.admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api.introspect(tokens["access_token"]) == {"active": False}
    assert api.introspect(tokens["refresh_token"]) == {"active": False}
    assert api.token(device.grant_form()).status_code == 401
    actions = [
        e["action"]
        for e in api.client.get(f"/v1/audit?device_id={device.id}", headers=api.admin).json()[
            "items"
        ]
    ]
    assert "device.revoke" in actions


def test_reenabled_device_gets_fresh_tokens_but_old_ones_stay_dead(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    old = device.tokens()["access_token"]
    api.client.post(f"/v1/devices/{device.id}:revoke", headers=api.admin)
    api.client.patch(f"/v1/devices/{device.id}", json={"status": "active"}, headers=api.admin)
    api.clock.advance(2)
    assert api.introspect(device.tokens()["access_token"])["active"] is True
    assert api.introspect(old) == {"active": False}


def test_disabled_device_tokens_are_inactive_until_enabled(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    token = device.tokens()["access_token"]
    api.client.patch(f"/v1/devices/{device.id}", json={"status": "disabled"}, headers=api.admin)
    assert api.introspect(token) == {"active": False}
    api.client.patch(f"/v1/devices/{device.id}", json={"status": "active"}, headers=api.admin)
    assert api.introspect(token)["active"] is True


def test_signing_key_rotation_overlaps(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    old = device.tokens()["access_token"]
    rotated = api.client.post(f"/v1/devices/{device.id}/signing-keys:rotate", headers=api.admin)
    assert rotated.json() == {"kid": f"{device.id}#2", "version": 2}
    new = device.tokens()["access_token"]
    assert api.introspect(new)["active"] is True
    from tests.provisioning.test_token_grants import _segment

    assert _segment(new, 0)["kid"] == f"{device.id}#2"
    assert api.introspect(old)["active"] is True  # still within its lifetime
    kids = [k["kid"] for k in api.client.get(f"/v1/devices/{device.id}/jwks.json").json()["keys"]]
    assert kids == [f"{device.id}#1", f"{device.id}#2"]
    api.clock.advance(900 + 31)  # lifetime plus the 30 s leeway
    assert api.introspect(old) == {"active": False}


def test_immediate_rotation_kills_old_tokens(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    old = device.tokens()["access_token"]
    api.client.post(
        f"/v1/devices/{device.id}/signing-keys:rotate?immediate=true", headers=api.admin
    )
    api.clock.advance(1)
    assert api.introspect(old) == {"active": False}
    kids = [k["kid"] for k in api.client.get(f"/v1/devices/{device.id}/jwks.json").json()["keys"]]
    assert kids == [f"{device.id}#2"]


def test_the_revocation_feed_pages_in_order_for_broker_keys(api: Api, fleet: str) -> None:
    device, other = api.device(fleet), api.device(fleet)
    access = device.tokens()["access_token"]
    api.client.post("/oauth2/revoke", data={"token": access})
    api.client.post(f"/v1/devices/{other.id}:revoke", headers=api.admin)
    page = api.client.get("/v1/revocations?after=0&limit=1", headers=api.admin).json()
    assert [(e["kind"], e["device_id"]) for e in page["items"]] == [("token", device.id)]
    assert page["items"][0]["jti"] and page["items"][0]["expires_at"]
    rest = api.client.get(f"/v1/revocations?after={page['next']}", headers=api.admin).json()
    assert [(e["kind"], e["device_id"]) for e in rest["items"]] == [("device", other.id)]
    done = api.client.get(f"/v1/revocations?after={rest['next']}", headers=api.admin).json()
    assert done == {"items": [], "next": rest["next"]}
    # Once the token has expired, its entry denies nothing: skipped, cursor moves on.
    api.clock.advance(7 * 86400)
    later = api.client.get("/v1/revocations?after=0", headers=api.admin).json()
    assert [e["kind"] for e in later["items"]] == ["device"] and later["next"] == rest["next"]


def test_the_revocation_feed_needs_the_broker_scope(api: Api) -> None:
    assert api.client.get("/v1/revocations").status_code == 401
    reader = api.client.post(
        "/v1/admin-keys", headers=api.admin, json={"name": "ro", "scopes": ["devices:read"]}
    )
    assert reader.status_code == 201, reader.text
    key = reader.json()["key"]
    denied = api.client.get("/v1/revocations", headers={"Authorization": f"Bearer {key}"})
    assert denied.status_code == 403
    bad = api.client.get("/v1/revocations?after=-1", headers=api.admin)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
