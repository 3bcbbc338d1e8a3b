"""`DeviceClient(protocol="5")` against a real stack: the token as Authentication Data,
refreshed in the session by AUTH (MQTT 5.0 section 4.12), and the broker's reasons."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_sdk import DeviceClient, DeviceRevoked, Policy
from tests.device_sdk.clients import device_client
from tests.stack import Stack, start_stack, wait_for

States = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("sdk5")), CREDBROKER_LEEWAY="1")
    yield started
    started.stop()


def _five(stack: Stack, device: Any, states: States, **kw: Any) -> DeviceClient:
    lock = threading.Lock()

    def record(state: str, details: dict[str, Any]) -> None:
        with lock:
            states.append((state, details))

    return device_client(stack, device, protocol="5", on_state=record, **kw)


def _named(states: States, name: str) -> list[dict[str, Any]]:
    return [details for state, details in list(states) if state == name]


def test_an_unknown_protocol_is_refused_at_construction(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    with pytest.raises(ValueError, match="protocol"):
        device_client(stack, device, protocol="4")


def test_a_5_0_client_publishes_and_receives(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    received: list[bytes] = []
    states: States = []
    with _five(stack, device, states) as client:
        client.subscribe(f"devices/{device.id}/#", lambda t, p: received.append(p)).wait(10)
        client.publish(f"devices/{device.id}/echo", b"over 5.0").wait_for_publish(10)
        wait_for(lambda: received == [b"over 5.0"], what="the echo")
    assert [s for s, _ in states] == ["connected", "disconnected"]


def test_refreshes_re_authenticate_in_the_session_without_a_reconnect_or_a_loss(
    stack: Stack,
) -> None:
    """3 s tokens, cut by the broker at exp + 1 s: each refresh is an AUTH 0x19 that the
    broker grants (AUTH 0x00); the one connection carries every QoS 1 message."""
    device = stack.device(stack.fleet(ttl=3))
    states: States = []
    received: set[int] = set()
    client = _five(stack, device, states)
    client.connect()
    client.subscribe(f"devices/{device.id}/#", lambda t, p: received.add(int(p))).wait(10)
    sent = 0
    while len(_named(states, "refreshed")) < 3:  # past the first two tokens' cut-offs
        client.publish(f"devices/{device.id}/seq", str(sent).encode())
        sent += 1
        wait_for(lambda n=sent: len(received) >= n - 20, timeout=30, what="delivery")
    wait_for(lambda: len(received) >= sent, timeout=30, what="every message")
    client.close()
    assert received == set(range(sent))
    assert all(d["in_session"] for d in _named(states, "refreshed"))
    assert len(_named(states, "connected")) == 1  # zero reconnects
    assert [d["reason"] for d in _named(states, "disconnected")] == ["closed"]


def test_a_device_revoked_while_connected_is_told_0x87_and_stops(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    states: States = []
    client = _five(stack, device, states)
    client.connect()
    device.api("POST", ":revoke")
    wait_for(lambda: client.stopped, what="the client to give up")
    assert isinstance(client.error, DeviceRevoked)
    cut = _named(states, "disconnected")[0]
    assert (cut["code"], cut["name"]) == (0x87, "not authorized")
    assert [s for s, _ in states][-2:] == ["disconnected", "revoked"]
    assert len(_named(states, "connected")) == 1  # the token endpoint said no: no CONNECT
    wait_for(lambda: client._paho._thread is None, what="paho's network thread to end")
    client.close()


def test_an_expired_token_is_cut_with_0xa0_and_renewed_by_a_reconnect(stack: Stack) -> None:
    """A refresh point past the expiry (refresh_at 2): the broker cuts at exp + 1 s
    with 0xA0, and the client reconnects at once with a new token, same session."""
    device = stack.device(stack.fleet(ttl=2))
    states: States = []
    received: list[bytes] = []
    late = Policy(refresh_at=2.0, jitter=0.0)
    client = _five(stack, device, states, policy=late)
    client.connect()
    client.subscribe(f"devices/{device.id}/#", lambda t, p: received.append(p)).wait(10)
    wait_for(lambda: len(_named(states, "connected")) >= 2, timeout=20, what="the reconnect")
    cut = _named(states, "disconnected")[0]
    assert (cut["code"], cut["name"]) == (0xA0, "maximum connect time")
    assert _named(states, "connected")[-1]["session_present"] is True
    client.publish(f"devices/{device.id}/after", b"renewed").wait_for_publish(10)
    wait_for(lambda: b"renewed" in received, what="delivery after the renewal")
    assert client.error is None
    client.close()


def test_a_refused_re_authentication_renews_once_and_reconnects(stack: Stack) -> None:
    """A fleet whose ACL grew: the fresh token's wider ACL is refused in the session
    (DISCONNECT 0x87); the client renews and connects again with the wider grant."""
    fleet = stack.fleet(ttl=3)
    device = stack.device(fleet)
    states: States = []
    client = _five(stack, device, states)
    client.connect()
    acl = {"publish": ["devices/{device_id}/#", "wider/{device_id}"]}
    wider = {"acl": acl | {"subscribe": ["devices/{device_id}/#"]}}
    changed = stack.http.patch(f"{stack.base}/v1/fleets/{fleet}", json=wider, headers=stack.admin)
    assert changed.status_code == 200
    wait_for(lambda: len(_named(states, "connected")) >= 2, timeout=20, what="the reconnect")
    assert _named(states, "disconnected")[0]["code"] == 0x87
    client.publish(f"wider/{device.id}", b"now allowed").wait_for_publish(10)
    assert client.error is None
    client.close()


def test_auth_client_sends_and_receives_auth_on_paho(stack: Stack) -> None:
    """The paho extension alone: AUTH 0x19 with a fresh token is answered AUTH 0x00 (to
    `on_auth`); with garbage, the broker's DISCONNECT 0x87 reaches `on_disconnect`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes

    from device_sdk._mqtt5 import AuthClient, token_properties

    device = stack.device(stack.fleet())
    answers: list[int] = []
    cut: list[tuple[bool, int]] = []
    connected = threading.Event()
    client = AuthClient(CallbackAPIVersion.VERSION2, client_id=device.id, protocol=mqtt.MQTTv5)
    client.username_pw_set(device.id, None)
    client.on_connect = lambda c, u, f, reason, p: connected.set()
    client.on_auth = lambda c, reason, p: answers.append(reason.value)
    client.on_disconnect = lambda c, u, flags, reason, p: cut.append(
        (flags.is_disconnect_packet_from_server, reason.value)
    )
    client.reconnect_delay_set(60, 60)  # a cut connection stays cut while we look
    properties = token_properties(PacketTypes.CONNECT, device.token())
    client.connect("127.0.0.1", stack.mqtt_port, properties=properties)
    client.loop_start()
    try:
        assert connected.wait(10)
        client.reauthenticate(device.token())
        wait_for(lambda: answers == [0], what="AUTH 0x00")
        client.reauthenticate("garbage")
        wait_for(lambda: cut == [(True, 0x87)], what="DISCONNECT 0x87")
        assert answers == [0]
    finally:
        client.loop_stop()
        client.release()
    plain = AuthClient(CallbackAPIVersion.VERSION2, client_id=device.id)
    with pytest.raises(ValueError, match="an MQTT 5"):
        plain.reauthenticate(device.token())
