"""The places where one decision ("may this client connect, publish, subscribe") is
enforced, each asked as its own users ask it: an MQTT client of the broker, each
existing broker calling its hook, a resource server introspecting."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import mqtt5

from tests.stack import connect_packet

# VerneMQ asks its `_m5` hooks for MQTT 5.0 clients: a point of their own.
HOOKS = ("rabbitmq", "emqx", "mosquitto-go-auth", "vernemq", "vernemq-m5")


def connack(port: int, client_id: str, token: str) -> int:
    """The CONNACK return code for a raw MQTT 3.1.1 CONNECT; the connection is closed
    at once (a DISCONNECT-less close: an accepted test connection leaves no will)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(connect_packet(client_id, password=token.encode()))
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                raise AssertionError(f"no CONNACK for {client_id}, only {answer!r}")
            answer += chunk
    assert answer[:2] == b"\x20\x02", answer
    return answer[3]


def connack5(port: int, client_id: str, token: str) -> int:
    """The CONNACK reason code for an MQTT 5.0 CONNECT with the token as Authentication
    Data (DESIGN.md, MQTT 5); the connection is closed at once."""
    connect = mqtt5.ConnectPacket(
        client_id,
        username=client_id,
        clean_start=True,
        authentication_method="credbroker-token",
        authentication_data=token.encode(),
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(bytes(connect.write()))
        answer = b""
        while True:
            try:
                packet, _ = mqtt5.read(memoryview(answer))
            except IndexError:  # not all of it yet
                chunk = sock.recv(4096)
                if not chunk:
                    raise AssertionError(f"no CONNACK for {client_id}, only {answer!r}") from None
                answer += chunk
                continue
            assert isinstance(packet, mqtt5.ConnAckPacket), packet
            return int(packet.reason_code)


@dataclass
class Api:
    """One API process, with the key a broker's hooks or an operator would present."""

    base: str
    admin: dict[str, str]
    http: httpx.Client

    def hook_connect(self, hook: str, device_id: str, token: str) -> bool:
        me = device_id
        if hook == "rabbitmq":
            form = {"username": me, "password": token, "client_id": me}
            return self._post("rabbitmq/user", data=form).text == "allow"
        if hook == "emqx":
            body = {"clientid": me, "username": me, "password": token}
            return bool(self._post("emqx/authn", json=body).json()["result"] == "allow")
        if hook == "mosquitto-go-auth":
            body = {"username": me, "password": token, "clientid": me}
            return self._post("mosquitto-go-auth/user", json=body).status_code == 200
        body = {"client_id": me, "username": me, "password": token}
        if hook == "vernemq-m5":  # granted: "ok" with the session's lifetime
            return bool(
                self._post("vernemq/auth_on_register_m5", json=body).json()["result"] == "ok"
            )
        return bool(self._post("vernemq/auth_on_register", json=body).json() == {"result": "ok"})

    def hook_publish(self, hook: str, device_id: str, topic: str) -> bool:
        """A publish check of a connected client: no token, the cached grant decides."""
        me = device_id
        if hook == "rabbitmq":
            form = {
                "username": me, "vhost": "/", "resource": "topic", "name": "amq.topic",
                "permission": "write", "routing_key": topic.replace("/", "."),
                "variable_map.client_id": me,
            }  # fmt: skip
            return self._post("rabbitmq/topic", data=form).text == "allow"
        if hook == "emqx":
            body = {"clientid": me, "username": me, "topic": topic, "action": "publish"}
            return bool(self._post("emqx/authz", json=body).json()["result"] == "allow")
        if hook == "mosquitto-go-auth":
            body = {"username": me, "clientid": me, "topic": topic, "acc": 2}
            return self._post("mosquitto-go-auth/acl", json=body).status_code == 200
        body = {"client_id": me, "username": me, "topic": topic}
        path = "vernemq/auth_on_publish_m5" if hook == "vernemq-m5" else "vernemq/auth_on_publish"
        return bool(self._post(path, json=body).json() == {"result": "ok"})

    def active(self, token: str) -> bool:
        answer = self.http.post(
            self.base + "/oauth2/introspect", data={"token": token}, headers=self.admin
        )
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["active"])

    def _post(self, path: str, **kw: object) -> httpx.Response:
        answer = self.http.post(f"{self.base}/v1/hooks/{path}", headers=self.admin, **kw)  # type: ignore[arg-type]
        assert answer.status_code in (200, 403), answer.text
        return answer


def every_hook(check: Callable[[str], bool]) -> dict[str, bool]:
    return {hook: check(hook) for hook in HOOKS}
