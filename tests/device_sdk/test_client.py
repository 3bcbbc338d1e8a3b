"""The SDK against a real embedded stack: connect, publish, subscribe, refresh, reboot."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sdk import ConnectError, DeviceClient, DeviceRevoked
from tests.device_sdk.clients import device_client
from tests.stack import Stack, start_stack, wait_for

EXPECTED_ALL = [
    "Backoff",
    "ConnectError",
    "DeviceClient",
    "DeviceRevoked",
    "DeviceSDKError",
    "EnrollmentError",
    "Policy",
    "Subscription",
    "SubscriptionRefused",
    "TokenError",
    "assertion_form",
    "client_assertion",
    "generate_key",
    "load_private_key",
    "password_with_proof",
    "proof_of_possession",
    "public_pem",
    "save_key_pair",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("sdk")), CREDBROKER_LEEWAY="1")
    yield started
    started.stop()


def test_public_surface_is_exactly_the_intended_names() -> None:
    import device_sdk

    assert device_sdk.__all__ == sorted(EXPECTED_ALL)
    assert (Path(device_sdk.__file__).parent / "py.typed").exists()


def test_importing_the_sdk_loads_no_server_stack() -> None:
    import subprocess

    code = (
        "import sys, device_sdk; bad = {'fastapi', 'sqlmodel', 'httpx', 'sqlalchemy'} "
        "& set(sys.modules); print(sorted(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_publish_and_subscribe(stack: Stack) -> None:
    fleet = stack.fleet()
    device = stack.device(fleet)
    received: list[bytes] = []
    with device_client(stack, device) as client:
        client.subscribe(f"devices/{device.id}/#", lambda topic, payload: received.append(payload))
        wait_for(client._connected.is_set, what="connection")
        client.publish(f"devices/{device.id}/echo", b"hello").wait_for_publish(10)
        wait_for(lambda: received == [b"hello"], what="the echo")


def test_refresh_reconnects_with_new_tokens_and_survives_a_reboot(
    stack: Stack, tmp_path: Path
) -> None:
    fleet = stack.fleet(ttl=3)
    device = stack.device(fleet)
    states: list[str] = []
    received: list[bytes] = []
    client = device_client(
        stack, device, state_dir=tmp_path, on_state=lambda s, d: states.append(s)
    )
    client.connect()
    client.subscribe(f"devices/{device.id}/#", lambda topic, payload: received.append(payload))
    # The broker cuts a session at exp + leeway (4 s): two refreshes mean the client
    # reconnected with a fresh token before each cut.
    wait_for(lambda: states.count("refreshed") >= 2, timeout=20, what="two refreshes")
    wait_for(lambda: states[-1] == "connected", timeout=10, what="the reconnect")
    client.publish(f"devices/{device.id}/after", b"still here").wait_for_publish(10)
    wait_for(lambda: b"still here" in received, what="delivery after refreshes")
    assert (tmp_path / "refresh_token").stat().st_mode & 0o777 == 0o600
    client.close()
    # A reboot: a new client with the same state_dir refreshes instead of re-proving.
    again = device_client(stack, device, state_dir=tmp_path)
    again.connect()
    again.close()
    events = stack.http.get(
        f"{stack.base}/v1/audit?device_id={device.id}&limit=1000", headers=stack.admin
    ).json()["items"]
    grants = [e["action"] for e in events if e["action"] in ("token.issue", "token.refresh")]
    assert grants[0] == "token.issue" and grants[-1] == "token.refresh"


def test_no_qos1_message_is_lost_across_refreshes(stack: Stack) -> None:
    device = stack.device(stack.fleet(ttl=3))
    states: list[str] = []
    received: set[int] = set()
    client = device_client(stack, device, on_state=lambda s, d: states.append(s))
    client.connect()
    client.subscribe(f"devices/{device.id}/#", lambda topic, payload: received.add(int(payload)))
    sent = 0
    while states.count("refreshed") < 2:  # two reconnects, at ~2.4 s each
        client.publish(f"devices/{device.id}/seq", str(sent).encode())
        sent += 1
        wait_for(lambda n=sent: len(received) >= n - 20, timeout=30, what="delivery")
    wait_for(lambda: len(received) >= sent, timeout=30, what="every message")
    assert received == set(range(sent))
    client.close()


def test_revoked_device_stops_with_a_clear_error(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    device.api("POST", ":revoke")
    with pytest.raises(DeviceRevoked):
        device_client(stack, device).connect()


def test_garbage_key_is_refused_by_the_api(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    from device_sdk import generate_key

    device.key = generate_key()
    with pytest.raises((DeviceRevoked, ConnectError)):
        device_client(stack, device).connect()


def _audit(stack: Stack, device_id: str, action: str) -> list[dict]:  # type: ignore[type-arg]
    items = stack.http.get(
        f"{stack.base}/v1/audit?device_id={device_id}&action={action}&limit=1000",
        headers=stack.admin,
    ).json()["items"]
    return list(items)


def test_a_device_revoked_while_connected_stops_instead_of_hammering(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    states: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    client = device_client(stack, device, on_state=lambda s, d: states.append((s, d)))
    client.connect()
    device.api("POST", ":revoke")
    wait_for(lambda: client.stopped, what="the client to give up")
    assert isinstance(client.error, DeviceRevoked)
    assert "revoked" in [s for s, _ in states]
    # Cut at revocation, one reconnect refused with 5, one renewal refused: then silence.
    refused = [e for e in _audit(stack, device.id, "mqtt.connect") if e["outcome"] != "ok"]
    assert len(refused) <= 1
    # on_state says why each connection ended: 3.1.1 has no reason for the cut itself,
    # a refused CONNACK has its return code.
    ended = [d for s, d in states if s == "disconnected"]
    assert (ended[0]["code"], ended[0]["name"]) == (None, "connection lost")
    assert [(d["reason"], d["code"], d["name"]) for d in ended[1:]] in (
        [],
        [("refused", 5, "not authorized")],
    )
    wait_for(lambda: client._paho._thread is None, what="paho's network thread to end")
    client.close()


def test_a_broker_restart_is_survived_without_losing_queued_messages(tmp_path: Path) -> None:
    own = start_stack(tmp_path, CREDBROKER_LEEWAY="1")
    try:
        device = own.device(own.fleet())
        received: set[int] = set()
        states: list[str] = []
        client = device_client(own, device, on_state=lambda s, d: states.append(s))
        client.connect()
        client.subscribe(f"devices/{device.id}/#", lambda t, p: received.add(int(p)))
        client.publish(f"devices/{device.id}/n", b"0").wait_for_publish(10)
        wait_for(lambda: received == {0}, what="the first message")
        own.terminate()
        wait_for(lambda: not client.connected, what="the drop")
        pending = [client.publish(f"devices/{device.id}/n", str(n).encode()) for n in (1, 2, 3)]
        own.launch()
        wait_for(lambda: client.connected, timeout=60, what="the reconnect")
        for info in pending:
            info.wait_for_publish(20)
        # The restarted broker has no session: the client subscribed again by itself.
        client.publish(f"devices/{device.id}/n", b"4").wait_for_publish(10)
        wait_for(lambda: 4 in received, what="delivery after the restart")
        assert client.error is None and states.count("connected") >= 2
        client.close()
    finally:
        own.stop()


def test_a_device_clock_hours_off_still_gets_tokens(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as real_time

    import device_sdk._tokens

    class ClockWithoutRtc:
        """A device that booted without a real-time clock: five hours behind."""

        monotonic = staticmethod(real_time.monotonic)

        @staticmethod
        def time() -> float:
            return real_time.time() - 5 * 3600

    monkeypatch.setattr(device_sdk._tokens, "time", ClockWithoutRtc)
    device = stack.device(stack.fleet())
    received: list[bytes] = []
    with device_client(stack, device) as client:
        client.subscribe(f"devices/{device.id}/#", lambda t, p: received.append(p))
        client.publish(f"devices/{device.id}/x", b"on time").wait_for_publish(10)
        wait_for(lambda: received == [b"on time"], what="the echo")
    assert client.tokens.skew == pytest.approx(5 * 3600, abs=10)


def test_claim_provisioning_with_an_enrollment_token(stack: Stack) -> None:
    from device_sdk import EnrollmentError, generate_key

    response = stack.http.post(
        stack.base + "/v1/devices", headers=stack.admin, json={"fleet": stack.fleet()}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    device_id, enrollment_token = created["device_id"], created["enrollment_token"]
    key = generate_key()
    client = DeviceClient(
        api_url=stack.base,
        device_id=device_id,
        private_key=key,
        mqtt_host="127.0.0.1",
        mqtt_port=stack.mqtt_port,
    )
    client.enroll(enrollment_token)
    with client:
        assert client.connected
    with pytest.raises(EnrollmentError) as caught:  # single use
        client.enroll(enrollment_token)
    assert caught.value.status is not None and 400 <= caught.value.status < 500


def test_proof_of_possession_on_every_connect_and_reconnect(stack: Stack) -> None:
    """README, Proof of possession on MQTT: with the flag, each CONNECT (the first, and
    the reconnects of each refresh) carries a fresh proof; without it, CONNACK 4."""
    name = "f-pop-" + uuid.uuid4().hex[:6]
    body = {
        "name": name,
        "token_ttl": 3,
        "proof_of_possession": True,
        "acl": {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]},
    }
    assert stack.http.post(stack.base + "/v1/fleets", json=body, headers=stack.admin).is_success
    device = stack.device(name)
    states: list[str] = []
    received: list[bytes] = []
    client = device_client(
        stack, device, proof_of_possession=True, on_state=lambda s, d: states.append(s)
    )
    client.connect()
    client.subscribe(f"devices/{device.id}/#", lambda topic, payload: received.append(payload))
    wait_for(lambda: states.count("refreshed") >= 2, timeout=20, what="two refreshes")
    wait_for(lambda: states[-1] == "connected", timeout=10, what="the reconnect")
    client.publish(f"devices/{device.id}/after", b"proven").wait_for_publish(10)
    wait_for(lambda: b"proven" in received, what="delivery after refreshes")
    client.close()
    with pytest.raises(ConnectError):
        device_client(stack, device).connect(timeout=10)
