"""A RabbitMQ node of the tests' own (Debian's rabbitmq-server package): its own node
name, ports, configuration and data directory in a temporary directory, so the
machine's node stays untouched. MQTT plugin on, authentication and authorization by
credbroker's hooks through rabbitmq_auth_backend_http."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.stack import free_port, port_open, wait_for

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
PLUGINS = "[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_auth_backend_cache]."


def config(*, amqp_port: int, mqtt_port: int, hooks: str, cache_ttl_ms: int | None) -> str:
    """rabbitmq.conf: what README's "Scaling out" tells users to write."""
    backend = (
        f"auth_backends.1 = cache\nauth_cache.cached_backend = http\n"
        f"auth_cache.cache_ttl = {cache_ttl_ms}\n"
        if cache_ttl_ms
        else "auth_backends.1 = http\n"
    )
    paths = "".join(
        f"auth_http.{name}_path = {hooks}/v1/hooks/rabbitmq/{name}\n"
        for name in ("user", "vhost", "resource", "topic")
    )
    return (
        f"listeners.tcp.1 = 127.0.0.1:{amqp_port}\n"
        f"mqtt.listeners.tcp.1 = 127.0.0.1:{mqtt_port}\n"
        "mqtt.allow_anonymous = false\n"
        "loopback_users = none\n"
        f"{backend}auth_http.http_method = post\n{paths}"
    )


@dataclass
class RabbitNode:
    mqtt_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start_rabbit(
    tmp: Path, *, api: str, hook_key: str, cache_ttl_ms: int | None = None
) -> RabbitNode:
    """`api` like http://127.0.0.1:8000; the key travels as the HTTP Basic password."""
    amqp_port, mqtt_port, dist_port = free_port(), free_port(), free_port()
    scheme, _, host = api.partition("://")
    hooks = f"{scheme}://hook:{hook_key}@{host}"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rabbitmq.conf").write_text(
        config(amqp_port=amqp_port, mqtt_port=mqtt_port, hooks=hooks, cache_ttl_ms=cache_ttl_ms)
    )
    (tmp / "enabled_plugins").write_text(PLUGINS)
    env = dict(
        os.environ,
        HOME=str(tmp),  # the node's Erlang cookie lives here
        RABBITMQ_NODENAME=f"credbroker-test-{uuid.uuid4().hex[:8]}@localhost",
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(amqp_port),
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_CONFIG_FILE=str(tmp / "rabbitmq.conf"),
        RABBITMQ_MNESIA_BASE=str(tmp / "mnesia"),
        RABBITMQ_LOG_BASE=str(tmp / "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(tmp / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(tmp / "rabbit.pid"),
        RABBITMQ_LOGS="-",
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    log = tmp / "rabbit.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SERVER)], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    node = RabbitNode(mqtt_port, process, log)

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError("rabbitmq-server exited:\n" + log.read_text()[-3000:])
        return port_open(mqtt_port)

    try:
        wait_for(listening, timeout=90, what="RabbitMQ's MQTT listener")
    except BaseException:
        node.stop()
        raise
    return node
