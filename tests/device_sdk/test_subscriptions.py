"""`DeviceClient.subscribe` tells what the broker answered, across reconnects too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from device_sdk import (
    ConnectError,
    DeviceClient,
    DeviceSDKError,
    Subscription,
    SubscriptionRefused,
    generate_key,
)
from tests.device_sdk.clients import device_client
from tests.stack import Stack, start_stack, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("subs")), CREDBROKER_LEEWAY="1")
    yield started
    started.stop()


def _assert_refused(subscription: Subscription) -> None:
    with pytest.raises(SubscriptionRefused) as caught:
        subscription.wait(10)
    assert isinstance(caught.value, DeviceSDKError)
    assert caught.value.topic_filter == subscription.topic_filter
    assert subscription.refused and subscription.granted_qos is None


def test_an_allowed_filter_is_granted_and_one_outside_the_acl_is_refused(stack: Stack) -> None:
    device = stack.device(stack.fleet(subscribe=["devices/{device_id}/cmd/#"]))
    with device_client(stack, device) as client:
        granted = client.subscribe(f"devices/{device.id}/cmd/#", lambda t, p: None)
        assert granted.wait(10) == 1
        assert granted.granted_qos == 1 and not granted.refused and granted.done
        _assert_refused(client.subscribe("devices/someone-else/cmd/#", lambda t, p: None))
        _assert_refused(client.subscribe(f"devices/{device.id}/#", lambda t, p: None))
        at_most_once = client.subscribe(f"devices/{device.id}/cmd/low", lambda t, p: None, qos=0)
        assert at_most_once.wait(10) == 0


def test_a_subscription_made_before_connecting_is_answered_once_connected(
    stack: Stack,
) -> None:
    device = stack.device(stack.fleet())
    client = device_client(stack, device)
    early = client.subscribe(f"devices/{device.id}/cmd", lambda t, p: None)
    refused = client.subscribe("elsewhere/#", lambda t, p: None)
    assert not early.done
    with pytest.raises(TimeoutError):
        early.wait(0)
    with client:
        assert early.wait(10) == 1
        _assert_refused(refused)


def test_answers_stay_right_across_refresh_reconnects(stack: Stack) -> None:
    device = stack.device(stack.fleet(ttl=3))
    states: list[str] = []
    received: list[bytes] = []
    client = device_client(stack, device, on_state=lambda s, d: states.append(s))
    client.connect()
    commands = client.subscribe(f"devices/{device.id}/cmd/#", lambda t, p: received.append(p))
    refused = client.subscribe("devices/other/cmd/#", lambda t, p: None)
    assert commands.wait(10) == 1
    _assert_refused(refused)
    # Each refresh is a reconnect on the same persistent session (two within ~5 s).
    wait_for(lambda: states.count("refreshed") >= 2, timeout=20, what="two refreshes")
    wait_for(lambda: states[-1] == "connected", timeout=10, what="the reconnect")
    assert commands.granted_qos == 1
    _assert_refused(refused)
    later = client.subscribe(f"devices/{device.id}/cmd2", lambda t, p: None)
    assert later.wait(10) == 1
    _assert_refused(client.subscribe("devices/other/cmd2", lambda t, p: None))
    client.publish(f"devices/{device.id}/cmd/x", b"after refreshes").wait_for_publish(10)
    wait_for(lambda: received == [b"after refreshes"], what="delivery on the subscription")
    client.close()


def test_a_broker_restart_subscribes_again_with_fresh_answers(tmp_path: Path) -> None:
    own = start_stack(tmp_path, CREDBROKER_LEEWAY="1")
    try:
        device = own.device(own.fleet())
        received: list[bytes] = []
        client = device_client(own, device)
        client.connect()
        commands = client.subscribe(f"devices/{device.id}/cmd", lambda t, p: received.append(p))
        refused = client.subscribe("devices/other/cmd", lambda t, p: None)
        assert commands.wait(10) == 1
        _assert_refused(refused)
        own.terminate()
        wait_for(lambda: not client.connected, what="the drop")
        own.launch()
        wait_for(lambda: client.connected, timeout=60, what="the reconnect")
        # The restarted broker lost the session: the client subscribed again by itself.
        client.publish(f"devices/{device.id}/cmd", b"back").wait_for_publish(10)
        wait_for(lambda: received == [b"back"], what="delivery after the restart")
        assert commands.granted_qos == 1
        _assert_refused(refused)
        client.close()
    finally:
        own.stop()


def test_waiting_on_a_client_that_closed_before_any_answer_raises() -> None:
    client = DeviceClient(
        api_url="http://127.0.0.1:9",
        device_id="never-connected",
        private_key=generate_key(),
        mqtt_host="127.0.0.1",
    )
    pending = client.subscribe("devices/never-connected/cmd", lambda t, p: None)
    client.close()
    with pytest.raises(ConnectError):
        pending.wait(10)
    assert pending.done and not pending.refused and pending.granted_qos is None
