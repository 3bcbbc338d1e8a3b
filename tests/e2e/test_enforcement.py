"""Every change of standing reaches every enforcement point (issue 9, section 1).

Each change is made through the first API process. Every point is then asked as its own
users ask it: the device's live MQTT session, a new CONNECT with the same token, each
broker hook's CONNECT and its cached publish check, and introspection, in the process
that made the change and in another one. Deadlines are the contract's: 1 s where the
change was made (the embedded broker included), 2 s elsewhere (the revocation log).

Two shapes: `credbroker up` (one process, SQLite, the embedded broker) and the scaled
shape on PostgreSQL (two `credbroker api` processes and a standalone `credbroker broker`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_sdk import assertion_form, generate_key, public_pem
from device_sdk._keys import DevicePrivateKey
from tests.e2e.points import HOOKS, Api, connack, connack5, every_hook
from tests.e2e.scaled import scaled_shape
from tests.stack import Client, Stack, start_stack, wait_for

SLACK = 1.0  # on top of each deadline: this machine is shared and has two cores
ALL = dict.fromkeys(HOOKS, True)
NONE = dict.fromkeys(HOOKS, False)


@dataclass
class Shape:
    apis: list[Api]  # the first is where changes are made
    mqtt_port: int
    token_endpoint: str
    cut_within: float  # seconds from a change to the cut of a live session
    view: Stack  # for tests.stack.Client, which only reads its MQTT port

    def deadline(self, api: Api) -> float:
        return (1.0 if api is self.apis[0] else 2.0) + SLACK


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    stack = start_stack(Path(tmp_path_factory.mktemp("embedded")))
    api = Api(stack.base, stack.admin, httpx.Client())
    # In-process, a change reaches the embedded broker's sessions at once: the contract's
    # second, with no slack for a poll (before the bus, refresh families waited for one).
    yield Shape([api], stack.mqtt_port, stack.base + "/oauth2/token", 1.0, stack)
    api.http.close()
    stack.stop()


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    tmp = Path(tmp_path_factory.mktemp("scaled"))
    with scaled_shape(tmp) as shape, httpx.Client() as http:
        apis = [Api(base, shape.admin, http) for base in shape.apis]
        view = Stack(shape.apis[0], shape.broker_port, tmp, "", [], {}, tmp / "unused.log")
        yield Shape(apis, shape.broker_port, shape.issuer + "/oauth2/token", 2.0 + SLACK, view)


@pytest.fixture(params=["embedded", "scaled"])
def shape(request: pytest.FixtureRequest) -> Shape:
    return request.getfixturevalue(str(request.param))  # type: ignore[no-any-return]


@dataclass
class Device:
    id: str
    key: DevicePrivateKey
    tokens: dict[str, Any]

    @property
    def token(self) -> str:
        return str(self.tokens["access_token"])

    @property
    def topic(self) -> str:
        return f"devices/{self.id}/t"


def _grant(shape: Shape, form: dict[str, str]) -> dict[str, Any]:
    answer = shape.apis[0].http.post(shape.apis[0].base + "/oauth2/token", data=form)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _provision(shape: Shape) -> Device:
    api = shape.apis[0]
    fleet = "f-" + uuid.uuid4().hex[:8]
    acl = {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]}
    body = {"name": fleet, "acl": acl}
    assert api.http.post(api.base + "/v1/fleets", json=body, headers=api.admin).is_success
    key, device_id = generate_key(), "d-" + uuid.uuid4().hex[:10]
    body = {"device_id": device_id, "fleet": fleet, "public_key": public_pem(key)}
    assert api.http.post(api.base + "/v1/devices", json=body, headers=api.admin).is_success
    form = assertion_form(key, device_id=device_id, audience=shape.token_endpoint)
    return Device(device_id, key, _grant(shape, form))


def _admin(shape: Shape, method: str, path: str, **kw: Any) -> None:
    api = shape.apis[0]
    answer = api.http.request(method, api.base + path, headers=api.admin, **kw)
    assert answer.is_success, answer.text


def _revoke(shape: Shape, token: str) -> None:
    api = shape.apis[0]
    assert api.http.post(api.base + "/oauth2/revoke", data={"token": token}).status_code == 200


def _reuse_refresh(shape: Shape, device: Device) -> None:
    """RFC 9700 section 4.14: a used refresh token presented again kills the family."""
    used = device.tokens["refresh_token"]
    _grant(shape, {"grant_type": "refresh_token", "refresh_token": used})
    api = shape.apis[0]
    again = api.http.post(
        api.base + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": used}
    )
    assert again.json()["error"] == "invalid_grant"


def _end_session(shape: Shape, device: Device) -> None:
    api = shape.apis[0]
    listed = api.http.get(f"{api.base}/v1/devices/{device.id}/sessions", headers=api.admin)
    (family,) = listed.json()["families"]
    _admin(shape, "DELETE", f"/v1/devices/{device.id}/sessions/{family['id']}")


def _log_out_fleet(shape: Shape, device: Device) -> None:
    api = shape.apis[0]
    fleet = api.http.get(f"{api.base}/v1/devices/{device.id}", headers=api.admin).json()["fleet"]
    _admin(shape, "POST", f"/v1/fleets/{fleet}/tokens:revoke")


CUTS: dict[str, Callable[[Shape, Device], None]] = {
    "disable": lambda s, d: _admin(s, "PATCH", f"/v1/devices/{d.id}", json={"status": "disabled"}),
    "revoke": lambda s, d: _admin(s, "POST", f"/v1/devices/{d.id}:revoke"),
    "delete": lambda s, d: _admin(s, "DELETE", f"/v1/devices/{d.id}"),
    "rotate-immediately": lambda s, d: _admin(
        s, "POST", f"/v1/devices/{d.id}/signing-keys:rotate", params={"immediate": "true"}
    ),
    "revoke-access-token": lambda s, d: _revoke(s, d.token),
    "revoke-refresh-token": lambda s, d: _revoke(s, d.tokens["refresh_token"]),
    "reuse-refresh-token": _reuse_refresh,
    "end-session": _end_session,
    "log-out": lambda s, d: _admin(s, "POST", f"/v1/devices/{d.id}/tokens:revoke"),
    "log-out-fleet": _log_out_fleet,
}


def _everything_allows(shape: Shape, device: Device) -> None:
    for api in shape.apis:
        assert every_hook(lambda h, a=api: a.hook_connect(h, device.id, device.token)) == ALL
        assert every_hook(lambda h, a=api: a.hook_publish(h, device.id, device.topic)) == ALL
        assert api.active(device.token)


def _live_session(shape: Shape, device: Device) -> Client:
    client = Client(shape.view, device.id, device.token)
    assert client.connected.wait(10), client.connect_rc
    client.paho.reconnect_delay_set(60, 60)  # a cut session stays cut: the test looks
    return client


@pytest.mark.parametrize("change", sorted(CUTS))
def test_a_change_that_kills_a_token_reaches_every_point(shape: Shape, change: str) -> None:
    device = _provision(shape)
    session = _live_session(shape, device)
    _everything_allows(shape, device)  # every hook now holds a cached grant
    CUTS[change](shape, device)
    assert session.disconnected.wait(shape.cut_within), "live session not cut"
    session.paho.loop_stop()
    for api in shape.apis:
        wait_for(
            lambda a=api: every_hook(lambda h: a.hook_publish(h, device.id, device.topic)) == NONE,
            timeout=shape.deadline(api),
            what=f"every hook of {api.base} to refuse the cached grant's publish",
        )
        wait_for(lambda a=api: not a.active(device.token), timeout=shape.deadline(api))
        assert every_hook(lambda h, a=api: a.hook_connect(h, device.id, device.token)) == NONE
    assert connack(shape.mqtt_port, device.id, device.token) in (4, 5)
    assert connack5(shape.mqtt_port, device.id, device.token) in (0x86, 0x87)  # MQTT 5.0


def _settled(shape: Shape) -> None:
    """Wait until a change made now has reached every point. The revocation log is read
    in order and the bus is synchronous: every earlier change has arrived too."""
    barrier = _provision(shape)
    _everything_allows(shape, barrier)
    CUTS["revoke"](shape, barrier)
    for api in shape.apis:
        wait_for(lambda a=api: not a.hook_publish("emqx", barrier.id, barrier.topic),
                 timeout=shape.deadline(api), what="the barrier change")  # fmt: skip


def test_a_rotation_with_overlap_cuts_nothing(shape: Shape) -> None:
    device = _provision(shape)
    session = _live_session(shape, device)
    _everything_allows(shape, device)
    _admin(shape, "POST", f"/v1/devices/{device.id}/signing-keys:rotate")
    _settled(shape)
    assert session.paho.is_connected() and not session.disconnected.is_set()
    _everything_allows(shape, device)
    session.close()


def test_a_reenabled_device_is_let_in_everywhere_at_once(shape: Shape) -> None:
    """Before: the broker's device-state cache learned of an enable only after 30 s, and
    refused with CONNACK 5 meanwhile (an SDK device then stops for good)."""
    device = _provision(shape)
    _everything_allows(shape, device)
    CUTS["disable"](shape, device)
    for api in shape.apis:
        wait_for(lambda a=api: not a.active(device.token), timeout=shape.deadline(api))
    assert connack(shape.mqtt_port, device.id, device.token) == 5  # the broker caches this
    assert connack5(shape.mqtt_port, device.id, device.token) == 0x87
    _admin(shape, "PATCH", f"/v1/devices/{device.id}", json={"status": "active"})
    wait_for(
        lambda: connack(shape.mqtt_port, device.id, device.token) == 0,
        timeout=shape.cut_within,
        what="the broker to let the re-enabled device in",
    )
    for api in shape.apis:
        wait_for(lambda a=api: a.active(device.token), timeout=shape.deadline(api))
        wait_for(
            lambda a=api: every_hook(lambda h: a.hook_connect(h, device.id, device.token)) == ALL,
            timeout=shape.deadline(api),
            what=f"every hook of {api.base} to let the device in again",
        )
