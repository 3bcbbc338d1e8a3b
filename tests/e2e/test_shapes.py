"""The other ways to run the broker: a standalone broker process (MQTT over TLS is in
test_https.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from credbroker.anchors import REFRESH_EVERY
from device_sdk import generate_key, load_private_key, password_with_proof, public_pem
from tests.certs import register_ca
from tests.stack import (
    BIN,
    Client,
    Five,
    Stack,
    assertion_form,
    dev_certs,
    free_port,
    mosquitto_pub,
    port_open,
    start_stack,
    wait_for,
)


@contextlib.contextmanager
def _standalone(tmp_path: Path, *args: str) -> Iterator[Stack]:
    """`credbroker up`, and a standalone broker (with ARGS) on its database: the stack's
    MQTT port is the standalone broker's."""
    stack = start_stack(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    env.update(
        CREDBROKER_DATABASE_URL=f"sqlite:///{stack.data_dir / 'credbroker.db'}",
        CREDBROKER_ISSUER=stack.base,
    )
    log = (tmp_path / "broker.log").open("wb")
    broker = subprocess.Popen(
        [str(BIN / "credbroker"), "broker", "--mqtt-port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(port), timeout=30, what="the standalone broker")
        stack.mqtt_port = port
        yield stack
    finally:
        os.killpg(broker.pid, signal.SIGTERM)
        assert broker.wait(20) == 0
        log.close()
        stack.stop()


def test_standalone_broker_learns_revocations_from_the_database(tmp_path: Path) -> None:
    with _standalone(tmp_path) as stack:
        device = stack.device(stack.fleet())
        client = Client(stack, device.id, device.token())
        assert client.connected.wait(10)
        device.api("POST", ":revoke")
        assert client.disconnected.wait(2 + 1), "not cut within 2 s (plus slack)"
        client.paho.loop_stop()
        assert mosquitto_pub(stack, device.id, "garbage", "x").returncode == 4


def test_standalone_broker_wants_proofs_of_possession(tmp_path: Path) -> None:
    """README, Proof of possession on MQTT: the same decision as the embedded broker's,
    and a removed credential key stops proving within 2 s (the revocation log)."""
    with _standalone(tmp_path) as stack:
        name = stack.fleet()
        url = f"{stack.base}/v1/fleets/{name}"
        assert stack.http.patch(url, json={"proof_of_possession": True}, headers=stack.admin)
        device = stack.device(name)
        token, topic = device.token(), f"devices/{device.id}/t"
        assert mosquitto_pub(stack, device.id, token, topic).returncode == 4
        proven = password_with_proof(device.key, token)
        assert mosquitto_pub(stack, device.id, proven, topic).returncode == 0
        assert mosquitto_pub(stack, device.id, proven, topic).returncode == 4  # replayed
        spare = device.api("POST", "/keys", json={"public_key": public_pem(generate_key())})
        assert spare.status_code == 201, spare.text
        first = device.api("GET").json()["credential_keys"][0]["kid"]
        assert first != spare.json()["kid"]
        assert device.api("DELETE", f"/keys/{first}").status_code == 204
        wait_for(
            lambda: (
                mosquitto_pub(
                    stack, device.id, password_with_proof(device.key, token), topic
                ).returncode
                == 4
            ),
            timeout=2 + 1,
            what="the removed key to stop proving",
        )


def test_mqtt_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                str(BIN / "credbroker"),
                "up",
                "--http-port",
                str(free_port()),
                "--mqtt-port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")},
        )
    assert done.returncode == 1
    assert "address already in use" in done.stderr and "--mqtt-port" in done.stderr
    assert "Traceback" not in done.stderr


def test_api_with_workers_serves_from_several_processes(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    log = (tmp_path / "api.log").open("wb")
    data = tmp_path / "data"
    api = subprocess.Popen(
        [str(BIN / "credbroker"), "api", "--workers", "2", "--http-port", str(port),
         "--data-dir", str(data)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: port_open(port), timeout=60, what="the API workers")
        workers = subprocess.run(
            ["pgrep", "-P", str(api.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(workers) >= 2  # uvicorn's supervisor forks one process per worker
        admin = {"Authorization": f"Bearer {(data / 'admin.key').read_text().strip()}"}
        fleet = {"name": "w", "acl": {"publish": ["x/{device_id}"], "subscribe": []}}
        import httpx

        with httpx.Client(base_url=base) as http:
            assert http.post("/v1/fleets", json=fleet, headers=admin).status_code == 201
            for n in range(20):  # new connections: the kernel spreads them over the workers
                body = {"device_id": f"w-{n}", "fleet": "w"}
                with httpx.Client(base_url=base) as fresh:
                    assert fresh.post("/v1/devices", json=body, headers=admin).status_code == 201
            listed = http.get("/v1/devices?fleet=w&limit=100", headers=admin).json()
        assert len(listed["items"]) == 20
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        assert api.wait(30) == 0
        log.close()


def test_hooks_from_a_trusted_network_need_no_key(tmp_path: Path) -> None:
    import httpx

    stack = start_stack(tmp_path, CREDBROKER_HOOKS_TRUSTED_NETWORKS="127.0.0.0/8, 10.9.0.0/16")
    try:
        device = stack.device(stack.fleet())
        form = {"username": device.id, "password": device.token(), "client_id": device.id}
        answer = httpx.post(stack.base + "/v1/hooks/rabbitmq/user", data=form)
        assert answer.status_code == 200 and answer.text == "allow"
    finally:
        stack.stop()
    (tmp_path / "other").mkdir()
    other = start_stack(tmp_path / "other", CREDBROKER_HOOKS_TRUSTED_NETWORKS="10.9.0.0/16")
    try:
        device = other.device(other.fleet())
        form = {"username": device.id, "password": device.token(), "client_id": device.id}
        assert httpx.post(other.base + "/v1/hooks/rabbitmq/user", data=form).status_code == 401
    finally:
        other.stop()


def test_every_worker_process_learns_an_immediate_rotation(tmp_path: Path) -> None:
    """Before: with two workers, 11 of 30 introspections still said active 40 s after an
    immediate rotation (a worker's positive signing-key cache had no bound in time)."""
    import httpx

    from device_sdk import assertion_form, generate_key, public_pem

    port, data = free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen(
        [str(BIN / "credbroker"), "api", "--workers", "2", "--http-port", str(port),
         "--data-dir", str(data)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def introspections(token: str) -> list[bool]:
        answers = []
        for _ in range(30):  # new connections: the kernel spreads them over the workers
            with httpx.Client(base_url=base) as fresh:
                body = fresh.post("/oauth2/introspect", data={"token": token}, headers=admin)
                answers.append(body.json()["active"])
        return answers

    try:
        wait_for(lambda: port_open(port), timeout=60, what="the API workers")
        admin = {"Authorization": f"Bearer {(data / 'admin.key').read_text().strip()}"}
        key = generate_key()
        with httpx.Client(base_url=base, headers=admin) as http:
            fleet = {"name": "r", "acl": {"publish": ["x/{device_id}"], "subscribe": []}}
            assert http.post("/v1/fleets", json=fleet).status_code == 201
            device = {"device_id": "r-1", "fleet": "r", "public_key": public_pem(key)}
            assert http.post("/v1/devices", json=device).status_code == 201
        form = assertion_form(key, device_id="r-1", audience=base + "/oauth2/token")
        token = httpx.post(base + "/oauth2/token", data=form).json()["access_token"]
        assert introspections(token) == [True] * 30  # every worker has the key cached now
        rotate = "/v1/devices/r-1/signing-keys:rotate?immediate=true"
        assert httpx.post(base + rotate, headers=admin).status_code == 200
        wait_for(
            lambda: introspections(token) == [False] * 30,
            timeout=2 + 2,  # the log is read every second; slack for this shared machine
            what="every worker to see the retired key",
        )
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        assert api.wait(30) == 0
        log.close()


def test_a_broker_started_before_the_api_waits_quietly_then_serves(tmp_path: Path) -> None:
    """Before: `credbroker broker` on a database without the API's tables logged a
    22-line traceback every second."""
    import base64
    import secrets

    import httpx

    from device_sdk import assertion_form, generate_key, public_pem
    from tests.databases import postgres_database
    from tests.e2e.points import connack

    with postgres_database() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
        admin_key = "adm_" + secrets.token_hex(24)
        env.update(
            CREDBROKER_DATABASE_URL=url,
            CREDBROKER_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            CREDBROKER_ADMIN_KEY=admin_key,
            CREDBROKER_ISSUER="http://credbroker.test",
        )
        broker_port, api_port = free_port(), free_port()
        broker_log, api_log = tmp_path / "broker.log", tmp_path / "api.log"
        with broker_log.open("wb") as out:
            broker = subprocess.Popen(
                [str(BIN / "credbroker"), "broker", "--mqtt-port", str(broker_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        api = None
        try:
            wait_for(lambda: port_open(broker_port), timeout=30, what="the broker")
            wait_for(lambda: "not ready" in broker_log.read_text(), what="its one-line warning")
            with api_log.open("wb") as out:
                api = subprocess.Popen(
                    [str(BIN / "credbroker"), "api", "--http-port", str(api_port),
                     "--data-dir", str(tmp_path / "api")],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            base, admin = f"http://127.0.0.1:{api_port}", {"Authorization": f"Bearer {admin_key}"}
            wait_for(lambda: port_open(api_port), timeout=60, what="the API")
            key = generate_key()
            with httpx.Client(base_url=base, headers=admin) as http:
                fleet = {"name": "late", "acl": {"publish": ["x/{device_id}"], "subscribe": []}}
                assert http.post("/v1/fleets", json=fleet).status_code == 201
                device = {"device_id": "late-1", "fleet": "late", "public_key": public_pem(key)}
                assert http.post("/v1/devices", json=device).status_code == 201
            form = assertion_form(
                key, device_id="late-1", audience="http://credbroker.test/oauth2/token"
            )
            token = httpx.post(base + "/oauth2/token", data=form).json()["access_token"]
            wait_for(lambda: connack(broker_port, "late-1", token) == 0, timeout=10,
                     what="the broker to serve once the schema exists")  # fmt: skip
            text = broker_log.read_text()
            assert "Traceback" not in text and len(text.splitlines()) <= 4, text
        finally:
            for process in (broker, api):
                if process is not None and process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(20)


def test_standalone_broker_trusts_the_fleet_cas_the_api_registers(tmp_path: Path) -> None:
    """README, Trust: a fleet CA registered while the broker runs lets its certificates
    through the MQTTS handshake within `REFRESH_EVERY`, though --client-ca does not name
    it; before, the handshake refuses them."""
    server = dev_certs(tmp_path, name="server")
    fleet_ca = dev_certs(tmp_path, "cert-1", name="fleet-ca")
    tls_port = free_port()
    args = ["--mqtts-port", str(tls_port), "--client-ca", str(server / "ca.pem")]
    args += ["--tls-cert", str(server / "server.pem"), "--tls-key", str(server / "server.key")]
    with _standalone(tmp_path, *args) as stack:
        fleet = stack.fleet()
        body = {"device_id": "cert-1", "fleet": fleet}
        body["public_key"] = (fleet_ca / "cert-1.pem").read_text()
        created = stack.http.post(stack.base + "/v1/devices", json=body, headers=stack.admin)
        assert created.status_code == 201, created.text
        key = load_private_key(fleet_ca / "cert-1.key")
        form = assertion_form(key, device_id="cert-1", audience=stack.base + "/oauth2/token")
        token = stack.http.post(stack.base + "/oauth2/token", data=form).json()["access_token"]
        wait_for(lambda: port_open(tls_port), what="the standalone MQTTS listener")
        stack.mqtt_port = tls_port
        tls = ["--cafile", str(server / "ca.pem"), "--cert", str(fleet_ca / "cert-1.pem")]
        tls += ["--key", str(fleet_ca / "cert-1.key")]

        def publishes() -> bool:
            done = mosquitto_pub(stack, "cert-1", token, "devices/cert-1/t", *tls)
            return done.returncode == 0

        assert not publishes()  # a CA nobody registered: the handshake ends it
        register_ca(stack, fleet, fleet_ca)
        wait_for(publishes, timeout=REFRESH_EVERY + 10, what="the broker to trust the CA")


def test_standalone_broker_speaks_mqtt_5(tmp_path: Path) -> None:
    with _standalone(tmp_path) as stack:
        device = stack.device(stack.fleet())
        client = Five(stack, device.id, device.token()).connect()
        client.close()
        assert client.reason.value == 0
        refused = Five(stack, device.id, "garbage").connect()
        refused.close()
        assert refused.reason.value == 0x86
