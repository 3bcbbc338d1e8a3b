"""Reference tokens read by a third-party RFC 7662 client, authlib as shipped, against a
real `credbroker up` over real HTTP: a resource server (or a broker extension that
speaks introspection, as HiveMQ's) needs nothing of ours (README, Token formats)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.stack import (
    BIN,
    Client,
    Stack,
    free_port,
    mosquitto_pub,
    port_open,
    start_stack,
    wait_for,
)

with warnings.catch_warnings(record=True):  # see test_oauth_clients.py
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc6750 import InvalidTokenError
    from authlib.oauth2.rfc7662 import IntrospectTokenValidator


class Introspecting(IntrospectTokenValidator):  # type: ignore[misc]  # authlib is untyped
    """authlib's resource-server validator, with the one method it asks us to write."""

    def __init__(self, stack: Stack) -> None:
        super().__init__()
        self.stack = stack

    def introspect_token(self, token_string: str) -> Any:
        with OAuth2Client() as client:
            answer = client.introspect_token(
                self.stack.base + "/oauth2/introspect",
                token=token_string,
                token_type_hint="access_token",
                headers=self.stack.admin,
            )
        answer.raise_for_status()
        return answer.json()


def _reference_fleet(stack: Stack) -> str:
    fleet = "f-" + uuid.uuid4().hex[:8]
    acl = {"publish": ["devices/{device_id}/#"], "subscribe": []}
    body = {"name": fleet, "token_format": "reference", "acl": acl}
    assert stack.http.post(stack.base + "/v1/fleets", json=body, headers=stack.admin).is_success
    return fleet


def test_authlib_introspection_reads_a_reference_token_until_revoked(stack: Stack) -> None:
    device = stack.device(_reference_fleet(stack))
    token = device.token()
    validator = Introspecting(stack)
    info = validator.authenticate_token(token)
    validator.validate_token(info, None, None)
    assert info["sub"] == device.id and info["client_id"] == device.id
    assert info["exp"] > info["iat"] and info["token_type"] == "Bearer"
    assert stack.http.post(stack.base + "/oauth2/revoke", data={"token": token}).is_success
    with pytest.raises(InvalidTokenError):
        validator.validate_token(validator.authenticate_token(token), None, None)


def test_the_standalone_broker_resolves_reference_tokens_from_the_database(
    tmp_path: Path,
) -> None:
    stack = start_stack(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    env.update(
        CREDBROKER_DATABASE_URL=f"sqlite:///{stack.data_dir / 'credbroker.db'}",
        CREDBROKER_ISSUER=stack.base,
    )
    log = (tmp_path / "broker.log").open("wb")
    broker = subprocess.Popen(
        [str(BIN / "credbroker"), "broker", "--mqtt-port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(port), timeout=30, what="the standalone broker")
        device = stack.device(_reference_fleet(stack))
        token = device.token()
        stack.mqtt_port = port
        done = mosquitto_pub(stack, device.id, token, f"devices/{device.id}/t")
        assert done.returncode == 0, done.stderr
        client = Client(stack, device.id, token)
        assert client.connected.wait(10)
        assert stack.http.post(stack.base + "/oauth2/revoke", data={"token": token}).is_success
        assert client.disconnected.wait(2 + 1), "not cut within 2 s (plus slack)"
        client.paho.loop_stop()
        assert mosquitto_pub(stack, device.id, token, "devices/x/t").returncode == 5
    finally:
        os.killpg(broker.pid, signal.SIGTERM)
        assert broker.wait(20) == 0
        log.close()
        stack.stop()
