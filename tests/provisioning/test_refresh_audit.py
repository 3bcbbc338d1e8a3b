"""Refused refresh grants name their device in the audit log when the token is known."""

from __future__ import annotations

import json
from typing import Any

from tests.support import Api


def _refresh(api: Api, token: str) -> Any:
    return api.token({"grant_type": "refresh_token", "refresh_token": token})


def _audit(api: Api, query: str) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/audit?{query}&limit=1000", headers=api.admin)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_refused_refreshes_are_audited_with_their_device(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    first = device.tokens()
    second = _refresh(api, first["refresh_token"])
    assert second.status_code == 200
    assert _refresh(api, first["refresh_token"]).status_code == 400  # reused
    assert _refresh(api, second.json()["refresh_token"]).status_code == 400  # family revoked
    late = device.tokens()["refresh_token"]  # a second family, left to expire
    api.clock.advance(31 * 86400)
    assert _refresh(api, late).status_code == 400

    events = _audit(api, f"device_id={device.id}")
    families = [e["detail"]["family"] for e in events if e["action"] == "token.refresh"]
    refused = [e for e in events if e["action"] == "token.refresh_token"]
    assert [e["detail"]["reason"] for e in refused] == [
        "refresh token was already used; its family is revoked",
        "refresh token was revoked",
        "refresh token family has expired; authenticate again",
    ]
    assert all(e["outcome"] == "refused" and e["device_id"] == device.id for e in refused)
    assert [e["detail"]["family"] for e in refused[:2]] == families * 2
    assert refused[2]["detail"]["family"] not in families
    assert first["refresh_token"] not in json.dumps(events) and late not in json.dumps(events)


def test_an_unknown_refresh_token_is_audited_without_a_device(api: Api) -> None:
    assert _refresh(api, "rt_not-a-token-of-ours").status_code == 400
    refused = [
        e
        for e in _audit(api, "action=token.refresh_token")
        if e["detail"]["reason"] == "unknown refresh token"
    ]
    assert len(refused) == 1
    assert refused[0]["device_id"] is None and "family" not in refused[0]["detail"]


def test_a_refresh_token_presented_by_another_client_names_both(api: Api, fleet: str) -> None:
    owner, other = api.device(fleet), api.device(fleet)
    stolen = owner.tokens()["refresh_token"]
    response = api.token(
        {"grant_type": "refresh_token", "refresh_token": stolen, "client_id": other.id}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert owner.id not in response.text  # the device is for the audit log, not the caller
    refused = _audit(api, f"device_id={owner.id}&action=token.refresh_token")
    assert [e["detail"]["claimed_client"] for e in refused] == [other.id]
