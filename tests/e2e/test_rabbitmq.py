"""A real RabbitMQ (Debian's 3.10, a node of the tests' own) authenticating and
authorizing MQTT clients through credbroker's hooks, driven by mosquitto_pub and paho."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.rabbitmq import RabbitNode, start_rabbit
from tests.stack import Client, Stack, mosquitto_pub, start_stack, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("api")))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def rabbit(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack's API, with RabbitMQ's MQTT port in place of the embedded broker's."""
    node: RabbitNode = start_rabbit(
        Path(tmp_path_factory.mktemp("rabbit")), api=stack.base, hook_key=stack.admin_key
    )
    view = copy.copy(stack)
    view.mqtt_port = node.mqtt_port
    yield view
    node.stop()


def _watcher(rabbit: Stack) -> Client:
    """A backend client whose own ACL may read every device's temperature."""
    fleet = rabbit.fleet()
    watcher = rabbit.device(fleet, acl={"publish": [], "subscribe": ["devices/+/temp"]})
    client = Client(rabbit, watcher.id, watcher.token())
    assert client.connected.wait(20), client.connect_rc
    assert client.subscribe("devices/+/temp") == [1]
    return client


def test_a_device_publishes_through_rabbitmq_and_the_subscriber_receives(rabbit: Stack) -> None:
    watcher = _watcher(rabbit)
    device = rabbit.device(rabbit.fleet())
    done = mosquitto_pub(rabbit, device.id, device.token(), f"devices/{device.id}/temp", "-q", "1")
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: any(topic == f"devices/{device.id}/temp" for topic, _, _ in watcher.messages),
        timeout=20,
        what="delivery through RabbitMQ",
    )
    watcher.close()


def test_a_wrong_token_gets_connack_4(rabbit: Stack) -> None:
    device = rabbit.device(rabbit.fleet())
    assert mosquitto_pub(rabbit, device.id, "not-a-token", f"devices/{device.id}/t").returncode == 4
    stolen = rabbit.device(rabbit.fleet()).token()  # valid, but another device's
    assert mosquitto_pub(rabbit, device.id, stolen, f"devices/{device.id}/t").returncode == 4


def test_a_topic_outside_the_acl_closes_the_connection_undelivered(rabbit: Stack) -> None:
    watcher = _watcher(rabbit)
    device = rabbit.device(rabbit.fleet())
    client = Client(rabbit, device.id, device.token())
    assert client.connected.wait(20)
    client.paho.reconnect_delay_set(60, 60)
    client.paho.publish("devices/someone-else/temp", b"forged", qos=1)
    assert client.disconnected.wait(20), "RabbitMQ closes the connection on a refused publish"
    client.paho.loop_stop()
    # Same watcher, later message: once the marker arrives, the forged one would have.
    marker = mosquitto_pub(
        rabbit, device.id, device.token(), f"devices/{device.id}/temp", "-q", "1"
    )
    assert marker.returncode == 0
    wait_for(
        lambda: any(topic == f"devices/{device.id}/temp" for topic, _, _ in watcher.messages),
        timeout=20,
        what="the marker",
    )
    assert all(topic != "devices/someone-else/temp" for topic, _, _ in watcher.messages)
    watcher.close()


def test_a_revoked_device_cannot_connect_again(rabbit: Stack) -> None:
    device = rabbit.device(rabbit.fleet())
    token = device.token()
    assert mosquitto_pub(rabbit, device.id, token, f"devices/{device.id}/t").returncode == 0
    assert device.api("POST", ":revoke").status_code == 200
    # RabbitMQ 3.10 answers every refused login with CONNACK 4.
    assert mosquitto_pub(rabbit, device.id, token, f"devices/{device.id}/t").returncode == 4
