"""Sessions a person can see and end (issue 12, section 2), on a real `credbroker up`:
live MQTT connections listed with their refresh family, one family's end cutting only
its own connection within 1 s, log out everywhere, and the commands that do both."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_sdk import DeviceClient, assertion_form, generate_key, public_pem
from device_sdk._tokens import TokenSource
from tests.e2e.scaled import scaled_shape
from tests.stack import Client, Device, Stack, start_stack, wait_for

SLACK = 1.0  # on top of a deadline across processes: this machine is shared, two cores


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("sessions")), seed_admin=False)
    yield started
    started.stop()


def _sessions(device: Device) -> dict[str, Any]:
    response = device.api("GET", "/sessions")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _connected(stack: Stack, device: Device, token: str) -> Client:
    client = Client(stack, device.id, token)
    assert client.connected.wait(10), client.connect_rc
    return client


def _cut_within(client: Client, seconds: float, started: float) -> None:
    assert client.disconnected.wait(10), "the connection was not cut"
    assert client.disconnected_at is not None
    assert client.disconnected_at - started < seconds, client.disconnected_at - started


def test_a_connection_shows_with_its_family_and_ends_with_it(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    other_token, token = device.token(), device.token()
    client = _connected(stack, device, token)
    try:
        wait_for(lambda: _sessions(device)["connections"], what="the connection listed")
        listed = _sessions(device)
        assert len(listed["families"]) == 2
        (connection,) = listed["connections"]
        assert connection["broker"] == "embedded" and connection["protocol"] == "3.1.1"
        assert connection["address"] == "127.0.0.1" and connection["since"] <= time.time()
        family = connection["family"]
        assert family in [f["id"] for f in listed["families"]]
        # Ending the other family leaves this connection be.
        (other,) = [f["id"] for f in listed["families"] if f["id"] != family]
        assert device.api("DELETE", f"/sessions/{other}").status_code == 204
        assert _sessions(device)["connections"] and not client.disconnected.is_set()
        started = time.monotonic()
        assert device.api("DELETE", f"/sessions/{family}").status_code == 204
        _cut_within(client, 1.0, started)
        assert other_token  # granted before, ended with its family
    finally:
        client.close()
    # The device stays active: a token granted right after works at once.
    again = _connected(stack, device, device.token())
    again.close()


def test_log_out_everywhere_cuts_and_a_new_token_works_at_once(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = _connected(stack, device, device.token())
    try:
        started = time.monotonic()
        response = device.api("POST", "/tokens:revoke")
        assert response.status_code == 200 and response.json()["status"] == "active"
        _cut_within(client, 1.0, started)
    finally:
        client.close()
    again = _connected(stack, device, device.token())
    again.close()


def test_the_commands(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    device.token()
    done = stack.cli("device", "sessions", device.id, "--json")
    assert done.returncode == 0, done.stderr
    (family,) = json.loads(done.stdout)["families"]
    table = stack.cli("device", "sessions", device.id)
    assert table.returncode == 0 and family["id"] in table.stdout
    assert table.stdout.startswith("FAMILY")
    ended = stack.cli("device", "logout", device.id, "--family", family["id"])
    assert ended.returncode == 0, ended.stderr
    assert _sessions(device)["families"] == []
    missing = stack.cli("device", "logout", device.id, "--family", family["id"])
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    device.token()
    everywhere = stack.cli("device", "logout", device.id)
    assert everywhere.returncode == 0 and json.loads(everywhere.stdout)["status"] == "active"
    assert _sessions(device)["families"] == []
    unknown = stack.cli("device", "sessions", "nope")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr


def test_two_sdk_clients_are_two_families_and_one_ends_alone(stack: Stack, tmp_path: Path) -> None:
    """Two installs of the SDK for one device, each with its own state directory: two
    families, both naming the SDK. One client id per device on the broker, so the
    second install only holds tokens; ending its family leaves the first's connection
    be, ending the first's cuts it within 1 s (and it signs in again: still active)."""
    device = stack.device(stack.fleet())
    disconnected = threading.Event()
    cut_at: list[float] = []

    def on_state(state: str, details: dict[str, Any]) -> None:
        if state == "disconnected" and not disconnected.is_set():
            cut_at.append(time.monotonic())
            disconnected.set()

    first = DeviceClient(
        api_url=stack.base,
        device_id=device.id,
        private_key=device.key,
        mqtt_host="127.0.0.1",
        mqtt_port=stack.mqtt_port,
        state_dir=tmp_path / "first",
        on_state=on_state,
    )
    second = TokenSource(
        api_url=stack.base, device_id=device.id, private_key=device.key, state_dir=tmp_path / "2"
    )
    try:
        first.connect()
        second.fetch()
        wait_for(lambda: _sessions(device)["connections"], what="the first's connection")
        listed = _sessions(device)
        assert len(listed["families"]) == 2
        for family in listed["families"]:
            assert family["user_agent"].startswith("credbroker-device-sdk/")
            assert family["address"] == "127.0.0.1"
        (connection,) = listed["connections"]
        (others,) = [f["id"] for f in listed["families"] if f["id"] != connection["family"]]
        assert device.api("DELETE", f"/sessions/{others}").status_code == 204
        _sessions(device)  # a request later, the embedded broker has heard of that end
        assert not disconnected.is_set()
        started = time.monotonic()
        assert device.api("DELETE", f"/sessions/{connection['family']}").status_code == 204
        assert disconnected.wait(10), "the first's connection was not cut"
        assert cut_at[0] - started < 1.0
        wait_for(lambda: first.connected, what="the SDK to sign in again")
    finally:
        first.close()


def test_a_standalone_brokers_connections_are_listed_and_cut_by_a_fleet_logout(
    tmp_path: Path,
) -> None:
    """The scaled shape (PostgreSQL, two API processes, `credbroker broker`): the broker
    writes its live connections once a second; a fleet logout made through one API
    process reaches it through the revocation log, one entry, within 2 s."""
    with scaled_shape(tmp_path) as shape, httpx.Client() as http:
        base = shape.apis[1]  # not the one the logout is made through

        def api(method: str, path: str, **kw: Any) -> httpx.Response:
            return http.request(method, shape.apis[0] + path, headers=shape.admin, **kw)

        def sessions(device_id: str) -> dict[str, Any]:
            answer = http.get(f"{base}/v1/devices/{device_id}/sessions", headers=shape.admin)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        fleet = "f-" + uuid.uuid4().hex[:8]
        acl = {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]}
        assert api("POST", "/v1/fleets", json={"name": fleet, "acl": acl}).is_success
        key, device_id = generate_key(), "d-" + uuid.uuid4().hex[:10]
        body = {"device_id": device_id, "fleet": fleet, "public_key": public_pem(key)}
        assert api("POST", "/v1/devices", json=body).is_success
        form = assertion_form(key, device_id=device_id, audience=shape.issuer + "/oauth2/token")
        token = http.post(shape.apis[0] + "/oauth2/token", data=form).json()["access_token"]
        view = Stack(shape.apis[0], shape.broker_port, tmp_path, "", [], {}, tmp_path / "x.log")
        client = Client(view, device_id, token)
        try:
            assert client.connected.wait(10), client.connect_rc
            client.paho.reconnect_delay_set(60, 60)
            wait_for(lambda: sessions(device_id)["connections"], what="the broker's presence")
            listed = sessions(device_id)
            (connection,) = listed["connections"]
            assert connection["broker"] != "embedded" and connection["protocol"] == "3.1.1"
            assert connection["family"] == listed["families"][0]["id"]
            started = time.monotonic()
            answer = api("POST", f"/v1/fleets/{fleet}/tokens:revoke")
            assert answer.status_code == 200, answer.text
            _cut_within(client, 2.0 + SLACK, started)
        finally:
            client.close()
        wait_for(lambda: not sessions(device_id)["connections"], what="the cut to be seen")
        assert sessions(device_id)["families"] == []
