"""The Eclipse Paho MQTT 3.1.1 interoperability client test against the embedded broker.

The suite is vendored in tests/broker/paho_interop/ (see its README for what changed). It
runs once per module, against a real `credbroker up`, with devices for its client ids
and a fleet ACL for its topics; each upstream test is then one pytest case here.
"""

from __future__ import annotations

import io
import unittest
import warnings
from collections.abc import Iterator

import pytest

from device_sdk import generate_key, public_pem
from tests.broker.paho_interop import client_test as upstream
from tests.stack import Client, Device, Stack

CLIENT_IDS = ("myclientid", "myclientid2")
CLEANUP_ID = "clean-retained"  # upstream's "clean retained": a space is not a device id
# The suite subscribes to `+/+`, so every two-level filter is inside the ACL; the filter
# the broker must refuse (upstream's `-n` option) has three levels.
NOSUBSCRIBE = "test/nosubscribe/x"
PUBLISH = ["TopicA", "TopicA/#", "Topic/C", "/TopicA"]
SUBSCRIBE = ["TopicA", "TopicA/#", "+/+", "/#"]
PASSING = [
    "testBasic",
    "test_dollar_topics",
    "test_keepalive",
    "test_offline_message_queueing",
    "test_overlapping_subscriptions",
    "test_redelivery_on_reconnect",
    "test_retained_messages",
    "test_subscribe_failure",
    "test_unsubscribe",
]
REFUSED = "test_zero_length_clientid"  # client id = username = device id, on purpose


def _devices(stack: Stack) -> dict[str, Device]:
    interop = stack.fleet(publish=PUBLISH, subscribe=SUBSCRIBE)
    cleaner = stack.fleet(publish=["#"], subscribe=["#"])
    devices = {}
    for device_id, fleet in [*((i, interop) for i in CLIENT_IDS), (CLEANUP_ID, cleaner)]:
        key = generate_key()
        response = stack.http.post(
            stack.base + "/v1/devices",
            headers=stack.admin,
            json={"device_id": device_id, "fleet": fleet, "public_key": public_pem(key)},
        )
        assert response.status_code == 201, response.text
        devices[device_id] = Device(stack, device_id, key)
    return devices


@pytest.fixture(scope="module")
def outcomes(stack: Stack) -> Iterator[dict[str, str | None]]:
    """Each upstream test's failure report, or None if it passed; the suite runs once."""
    devices = _devices(stack)
    tokens = {device_id: device.token() for device_id, device in devices.items()}  # 600 s

    def credentials(client_id: str) -> tuple[str | None, bytes | None]:
        token = tokens.get(client_id)
        return (client_id, token.encode()) if token else (None, None)

    upstream.host, upstream.port = "127.0.0.1", stack.mqtt_port
    upstream.nosubscribe_topics = (NOSUBSCRIBE,)
    upstream.cleanup_clientid = CLEANUP_ID
    upstream.credentials = credentials
    names = unittest.defaultTestLoader.getTestCaseNames(upstream.Test)
    assert sorted([*PASSING, REFUSED]) == sorted(names), "the upstream suite changed"
    suite = unittest.TestSuite(upstream.Test(name) for name in PASSING)
    with warnings.catch_warnings():
        # Upstream's tests return their verdict too (Python 3.11 warns; not our concern).
        warnings.filterwarnings("ignore", "It is deprecated to return a value", DeprecationWarning)
        result = unittest.TextTestRunner(stream=io.StringIO(), buffer=True).run(suite)
    failed = {test.id().rsplit(".", 1)[-1]: report for test, report in result.failures}
    failed |= {test.id().rsplit(".", 1)[-1]: report for test, report in result.errors}
    yield {name: failed.get(name) for name in PASSING}


@pytest.mark.parametrize("name", PASSING)
def test_paho_interoperability(outcomes: dict[str, str | None], name: str) -> None:
    assert outcomes[name] is None, outcomes[name]


def test_zero_length_client_id_is_refused(stack: Stack) -> None:
    """Upstream expects a zero-length client id with clean session to be accepted (MQTT
    3.1.1 section 3.1.3.1 allows a server to assign one). credbroker binds the session to
    the device: client id = username = device id, so it is refused, with or without a
    device's valid token."""
    device = stack.device(stack.fleet())
    for username, password in ((None, None), (device.id, device.token())):
        client = Client(stack, "", password, username=username)
        assert client.answered.wait(10)
        assert client.connect_rc in (134, 135), client.connect_rc  # CONNACK 4 or 5
        assert not client.connected.is_set()
        client.paho.loop_stop()
