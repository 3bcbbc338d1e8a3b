"""A real `credbroker up` on free loopback ports, and real MQTT clients against it."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_sdk import assertion_form, generate_key, public_pem
from device_sdk._keys import DevicePrivateKey

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll a cheap predicate until it holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Stack:
    base: str
    mqtt_port: int
    data_dir: Path
    admin_key: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    http: httpx.Client = field(default_factory=httpx.Client)
    plain_port: int = 0  # --http-port

    def launch(self) -> None:
        """Start `credbroker up` and wait until it is healthy."""
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.process = process

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError("credbroker up exited:\n" + self.log.read_text())
            try:
                return self.http.get(self.base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "credbroker up to be healthy")

    def terminate(self) -> None:
        """SIGTERM, as an operator stopping the service; the data directory stays."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def fleet(self, ttl: int = 600, **acl: list[str]) -> str:
        name = "f-" + uuid.uuid4().hex[:8]
        body = {
            "name": name,
            "token_ttl": ttl,
            "acl": {
                "publish": acl.get(
                    "publish", ["devices/{device_id}/#", "fleets/{fleet}/up/{device_id}"]
                ),
                "subscribe": acl.get("subscribe", ["devices/{device_id}/#", "fleets/{fleet}/up/+"]),
            },
        }
        response = self.http.post(self.base + "/v1/fleets", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return name

    def device(self, fleet: str, **extra: Any) -> Device:
        key = generate_key()
        device_id = "d-" + uuid.uuid4().hex[:10]
        response = self.http.post(
            self.base + "/v1/devices",
            headers=self.admin,
            json={"device_id": device_id, "fleet": fleet, "public_key": public_pem(key), **extra},
        )
        assert response.status_code == 201, response.text
        return Device(self, device_id, key)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `credbroker` command as an operator runs it next to this stack."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
        env.update(CREDBROKER_API=self.base, CREDBROKER_DATA_DIR=str(self.data_dir))
        return subprocess.run(
            [str(BIN / "credbroker"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        self.terminate()
        self.http.close()


@dataclass
class Device:
    stack: Stack
    id: str
    key: DevicePrivateKey

    def token(self) -> str:
        form = assertion_form(
            self.key, device_id=self.id, audience=self.stack.base + "/oauth2/token"
        )
        response = self.stack.http.post(self.stack.base + "/oauth2/token", data=form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def api(self, method: str, suffix: str = "", **kw: Any) -> httpx.Response:
        return self.stack.http.request(
            method,
            f"{self.stack.base}/v1/devices/{self.id}{suffix}",
            headers=self.stack.admin,
            **kw,
        )


def dev_certs(tmp: Path, *clients: str, name: str = "certs") -> Path:
    """`credbroker certs` in TMP/NAME: a CA, a server certificate and one client
    certificate per name of CLIENTS (its subject CN)."""
    certs = tmp / name
    made = subprocess.run(
        [str(BIN / "credbroker"), "certs", "--out", str(certs)]
        + [arg for client in clients for arg in ("--client", client)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert (certs / "server.key").stat().st_mode & 0o777 == 0o600
    return certs


def start_stack(
    tmp: Path,
    *args: str,
    seed_admin: bool = True,
    ca: Path | None = None,
    https_port: int | None = None,
    **env: str,
) -> Stack:
    """`credbroker up`; with `seed_admin=False` it makes its own admin key, as for a user.
    With `ca`, the stack serves HTTPS (ARGS name its --tls-cert and --tls-key) and its
    client trusts that CA only; with `https_port` too, HTTPS is there (the stack's base)
    and plain HTTP stays on `plain_port`."""
    port, mqtt_port = free_port(), free_port()
    admin_key = "adm_" + secrets.token_hex(24)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    full_env.update(env)
    if seed_admin:
        full_env["CREDBROKER_ADMIN_KEY"] = admin_key
    command = [
        str(BIN / "credbroker"),
        "up",
        "--host",
        "127.0.0.1",
        "--http-port",
        str(port),
        "--mqtt-port",
        str(mqtt_port),
        "--data-dir",
        str(tmp / "data"),
        *(["--https-port", str(https_port)] if https_port else []),
        *args,
    ]
    stack = Stack(
        f"{'https' if ca else 'http'}://127.0.0.1:{https_port or port}",
        mqtt_port,
        tmp / "data",
        admin_key,
        command,
        full_env,
        tmp / "up.log",
    )
    stack.plain_port = port
    if ca is not None:
        stack.http = httpx.Client(verify=ssl.create_default_context(cafile=ca))
    stack.launch()
    if not seed_admin:
        stack.admin_key = (tmp / "data" / "admin.key").read_text().strip()
    return stack


class Client:
    """A paho 2.x client whose callbacks set events and collect messages."""

    def __init__(
        self,
        stack: Stack,
        client_id: str,
        password: str | None,
        *,
        username: str | None = None,
        clean: bool = True,
        keepalive: int = 30,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.granted: list[int] = []
        self.connect_rc: int | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.subscribed = threading.Event()
        self.disconnected = threading.Event()
        self.disconnected_at: float | None = None
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=mqtt.MQTTv311,
        )
        if password is not None:
            self.paho.username_pw_set(username or client_id, password)
        if will is not None:
            self.paho.will_set(will[0], will[1], qos=1)
        self.paho.on_connect = self._on_connect
        self.paho.on_message = lambda c, u, m: self.messages.append(
            (m.topic, bytes(m.payload), m.retain)
        )
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_disconnect = self._on_disconnect
        self.paho.connect("127.0.0.1", stack.mqtt_port, keepalive=keepalive)
        self.paho.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connect_rc = int(rc.value)
        self.answered.set()
        if not rc.is_failure:
            self.connected.set()
        else:
            c.disconnect()  # do not retry: the test looks at this one answer

    def _on_subscribe(self, c: Any, u: Any, mid: Any, rcs: Any, props: Any) -> None:
        self.granted = [int(r.value) for r in rcs]
        self.subscribed.set()

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.disconnected_at = time.monotonic()
        self.disconnected.set()

    def subscribe(self, *filters: str, qos: int = 1) -> list[int]:
        self.subscribed.clear()
        self.paho.subscribe([(f, qos) for f in filters])
        assert self.subscribed.wait(10), "no SUBACK"
        return self.granted

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


class Five:
    """A paho MQTT 5.0 client whose callbacks set events and collect what they get."""

    def __init__(self, stack: Stack, client_id: str, password: str | None) -> None:
        self.connected, self.answered = threading.Event(), threading.Event()
        self.subscribed, self.unsubscribed = threading.Event(), threading.Event()
        self.disconnected = threading.Event()
        self.reason: Any = None
        self.properties: Any = None
        self.granted: list[Any] = []
        self.ungranted: list[Any] = []
        self.messages: list[tuple[str, bytes, int]] = []
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.paho.username_pw_set(client_id, password)
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_unsubscribe = self._on_unsubscribe
        self.paho.on_message = self._on_message
        self.paho.on_disconnect = self._on_disconnect
        self.disconnect_reason: Any = None  # the server's DISCONNECT reason, if it sent one
        self.acknowledged: dict[int, Any] = {}  # message id -> its PUBACK's reason
        self.paho.on_publish = lambda c, u, mid, reason, p: self.acknowledged.update({mid: reason})
        self.paho.reconnect_delay_set(60, 60)  # a cut session stays cut while we look
        self.stack = stack

    def connect(self, **kwargs: Any) -> Five:
        self.paho.connect("127.0.0.1", self.stack.mqtt_port, keepalive=30, **kwargs)
        self.paho.loop_start()
        assert self.answered.wait(10), "no CONNACK"
        return self

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.reason, self.properties = reason, properties
        self.answered.set()
        if not reason.is_failure:
            self.connected.set()

    def _on_disconnect(self, c: Any, u: Any, flags: Any, reason: Any, p: Any) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    def _on_subscribe(self, c: Any, u: Any, mid: int, reasons: list[Any], p: Any) -> None:
        self.granted = list(reasons)
        self.subscribed.set()

    def _on_unsubscribe(self, c: Any, u: Any, mid: int, reasons: list[Any], p: Any) -> None:
        self.ungranted = list(reasons)
        self.unsubscribed.set()

    def _on_message(self, c: Any, u: Any, message: Any) -> None:
        self.messages.append((message.topic, bytes(message.payload), message.qos))

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def mosquitto_pub(
    stack: Stack,
    client_id: str,
    password: str,
    topic: str,
    *extra: str,
    username: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.mqtt_port),
            "-V",
            "mqttv311",
            "-i",
            client_id,
            "-u",
            username or client_id,
            "-P",
            password,
            "-t",
            topic,
            "-m",
            "x",
            "-q",
            "1",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def connect_packet(
    client_id: str, *, password: bytes | None = None, keepalive: int = 30, level: int = 4
) -> bytes:
    """A raw CONNECT (MQTT 3.1.1 section 3.1), for clients paho will not impersonate."""

    def field(data: bytes) -> bytes:
        return struct.pack("!H", len(data)) + data

    flags = 0x02 | (0xC0 if password is not None else 0)
    body = field(b"MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive)
    if level == 5:
        body += b"\x00"  # no properties
    body += field(client_id.encode())
    if password is not None:
        body += field(client_id.encode()) + field(password)
    length, encoded = len(body), b""
    while True:  # section 2.2.3: variable-length remaining length
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return b"\x10" + encoded + body


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
