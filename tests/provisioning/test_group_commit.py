"""Token requests that arrive together: on the embedded database they share a commit
(provisioning/groupcommit.py), on PostgreSQL they run in threads. Either way each
request gets its own answer, as if it had come alone.

The requests go to the application in one event loop at once (httpx's ASGI transport),
which is how grants of one turn of a server's loop meet."""

import asyncio
from typing import Any

import httpx

from tests.support import Api


def _concurrently(api: Api, forms: list[dict[str, str]]) -> list[httpx.Response]:
    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return list(await asyncio.gather(*(http.post("/oauth2/token", data=f) for f in forms)))

    return asyncio.run(send())


def _audit(api: Api, device_id: str) -> list[tuple[str, str]]:
    events = api.client.get(f"/v1/audit?device_id={device_id}", headers=api.admin).json()
    return [(e["action"], e["outcome"]) for e in events["items"]]


def test_grants_together_each_get_their_own_answer(api: Api, fleet: str) -> None:
    devices = [api.device(fleet) for _ in range(12)]
    forms = [d.grant_form() for d in devices]
    disabled = api.device(fleet)
    changed = api.client.patch(
        f"/v1/devices/{disabled.id}", json={"status": "disabled"}, headers=api.admin
    )
    assert changed.status_code == 200
    # A replay of one of the assertions, and a disabled device's, among honest grants.
    responses = _concurrently(api, [*forms, forms[3], disabled.grant_form()])
    *honest, replay, refused = responses
    # The assertion sent twice wins once, either of the two (on PostgreSQL they race).
    twice = [honest[3], replay]
    assert sorted(r.status_code for r in twice) == [200, 401]
    loser = next(r for r in twice if r.status_code == 401)
    assert loser.json()["error"] == "invalid_client"
    honest[3] = next(r for r in twice if r.status_code == 200)
    assert [r.status_code for r in honest] == [200] * len(devices)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    for device, response in zip(devices, honest, strict=True):
        claims = api.introspect(response.json()["access_token"])
        assert claims["active"] is True and claims["sub"] == device.id
        assert _audit(api, device.id).count(("token.issue", "ok")) == 1
    # What was refused left nothing behind but its audit event.
    assert ("token.client_credentials", "refused") in _audit(api, devices[3].id)
    assert ("token.issue", "ok") not in _audit(api, disabled.id)


def test_one_refresh_token_used_twice_at_once_wins_once(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    refresh = device.tokens()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    responses = _concurrently(api, [form, form])
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 400]
    loser: Any = next(r for r in responses if r.status_code == 400).json()
    assert loser["error"] == "invalid_grant"
    # Reuse is theft (RFC 9700 section 4.14): the family dies, the winner's new pair too.
    winner = next(r for r in responses if r.status_code == 200).json()
    assert api.introspect(winner["access_token"]) == {"active": False}
    again = api.token({"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]})
    assert again.status_code == 400
