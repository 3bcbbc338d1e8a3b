"""TLS on both listeners of `credbroker up` (issue 14, part 1): HTTPS for the API, with
an https:// issuer (RFC 8414 section 2), and MQTT over TLS, with certificates made by
`credbroker certs`; real clients (httpx, mosquitto_pub, the device SDK) trust only the
development CA."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from device_sdk import DeviceClient, DeviceSDKError
from tests.stack import (
    BIN,
    Stack,
    dev_certs,
    free_port,
    mosquitto_pub,
    port_open,
    start_stack,
    wait_for,
)


def _tls_stack(
    tmp: Path, certs: Path, tls_port: int, *extra: str, https_port: int | None = None
) -> Stack:
    """`credbroker up` with the pair of CERTS on HTTPS and on MQTTS (TLS_PORT)."""
    pair = ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")]
    return start_stack(
        tmp,
        "--mqtts-port",
        str(tls_port),
        *pair,
        *extra,
        ca=certs / "ca.pem",
        https_port=https_port,
    )


def test_the_api_speaks_https_and_the_broker_mqtts_with_development_certificates(
    tmp_path: Path,
) -> None:
    certs = dev_certs(tmp_path)
    tls_port = free_port()
    stack = _tls_stack(tmp_path, certs, tls_port)
    try:
        metadata = stack.http.get(stack.base + "/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == stack.base and stack.base.startswith("https://")
        assert metadata["token_endpoint"] == stack.base + "/oauth2/token"
        with pytest.raises(httpx.HTTPError):  # the port speaks TLS only
            httpx.get(stack.base.replace("https://", "http://") + "/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError):  # and a client checks whom it talks to
            httpx.get(stack.base + "/healthz", timeout=5)

        # A token over HTTPS (its audience is the https:// token endpoint), used on MQTTS.
        wait_for(lambda: port_open(tls_port), what="the MQTTS listener")
        device = stack.device(stack.fleet())
        stack.mqtt_port = tls_port
        cafile = ("--cafile", str(certs / "ca.pem"))
        done = mosquitto_pub(stack, device.id, device.token(), f"devices/{device.id}/t", *cafile)
        assert done.returncode == 0, done.stderr
        refused = mosquitto_pub(stack, device.id, "garbage", f"devices/{device.id}/t", *cafile)
        assert refused.returncode == 4

        # The console's cookie is Secure over HTTPS.
        answer = stack.http.post(
            stack.base + "/console/sign-in",
            data={"key": stack.admin_key},
            headers={"Origin": stack.base},
        )
        assert answer.status_code == 303, answer.text
        assert "secure" in answer.headers["set-cookie"].lower()
    finally:
        stack.stop()


def test_the_sdk_gets_tokens_over_https_and_connects_over_mqtts(tmp_path: Path) -> None:
    certs = dev_certs(tmp_path)
    tls_port = free_port()
    stack = _tls_stack(tmp_path, certs, tls_port)
    try:
        wait_for(lambda: port_open(tls_port), what="the MQTTS listener")
        device = stack.device(stack.fleet())
        connected = threading.Event()
        client = DeviceClient(
            api_url=stack.base,
            device_id=device.id,
            private_key=device.key,
            mqtt_host="127.0.0.1",
            mqtt_port=tls_port,
            tls=ssl.create_default_context(cafile=certs / "ca.pem"),
            on_state=lambda state, details: state == "connected" and connected.set(),
        )
        try:
            client.connect(timeout=20)
            assert connected.wait(10)
            client.publish(f"devices/{device.id}/t", b"over TLS").wait_for_publish(10)
        finally:
            client.close()
        # Without the CA, the SDK refuses the server rather than trusting it.
        untrusting = DeviceClient(
            api_url=stack.base,
            device_id=device.id,
            private_key=device.key,
            mqtt_host="127.0.0.1",
            mqtt_port=tls_port,
        )
        with pytest.raises(DeviceSDKError):
            untrusting.connect(timeout=5)
        assert not untrusting.connected
    finally:
        stack.stop()


def test_https_port_serves_https_beside_plain_http(tmp_path: Path) -> None:
    """`--https-port`: its own listener beside `--http-port` (DESIGN.md); the issuer is
    the HTTPS one, whichever listener is asked."""
    certs = dev_certs(tmp_path)
    https_port = free_port()
    stack = _tls_stack(tmp_path, certs, free_port(), https_port=https_port)
    try:
        base = f"https://127.0.0.1:{https_port}"
        plain = f"http://127.0.0.1:{stack.plain_port}"
        assert httpx.get(plain + "/healthz", timeout=5).status_code == 200
        path = "/.well-known/oauth-authorization-server"
        for metadata in (stack.http.get(base + path).json(), httpx.get(plain + path).json()):
            assert metadata["issuer"] == base
            assert metadata["token_endpoint"] == base + "/oauth2/token"
        with pytest.raises(httpx.HTTPError):  # the HTTPS port speaks TLS only
            httpx.get(f"http://127.0.0.1:{https_port}/healthz", timeout=5)
        device = stack.device(stack.fleet())  # a token over HTTPS, used on plain MQTT
        done = mosquitto_pub(stack, device.id, device.token(), f"devices/{device.id}/t")
        assert done.returncode == 0, done.stderr
    finally:
        stack.stop()
    assert "Traceback" not in stack.log.read_text()


@pytest.mark.parametrize("command", ["up", "api"])
def test_a_half_or_broken_tls_pair_is_refused_in_one_line(tmp_path: Path, command: str) -> None:
    certs = dev_certs(tmp_path)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    for args, message in (
        (["--tls-cert", str(certs / "server.pem")], "go together"),
        (["--tls-cert", str(tmp_path / "bad.pem"), "--tls-key", str(certs / "server.key")], ""),
        (["--tls-cert", str(certs / "server.pem"), "--tls-key", str(tmp_path / "none")], ""),
    ):
        where = ["--http-port", str(free_port()), "--data-dir", str(tmp_path / "data")]
        done = subprocess.run(
            [str(BIN / "credbroker"), command, *where, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error:") and message in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_every_api_worker_speaks_https_with_an_https_issuer(tmp_path: Path) -> None:
    certs = dev_certs(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    env.update(CREDBROKER_TLS_CERT=str(certs / "server.pem"))  # the pair, half from env
    command = [str(BIN / "credbroker"), "api", "--http-port", str(port), "--workers", "2"]
    command += ["--data-dir", str(tmp_path / "data"), "--tls-key", str(certs / "server.key")]
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: port_open(port), timeout=60, what="credbroker api")
        base = f"https://127.0.0.1:{port}"
        trusting = ssl.create_default_context(cafile=certs / "ca.pem")
        for _ in range(6):  # new connections, spread over the workers by the kernel
            with httpx.Client(verify=trusting) as http:
                metadata = http.get(base + "/.well-known/oauth-authorization-server").json()
            assert metadata["issuer"] == base
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        assert api.wait(30) == 0
    assert "Traceback" not in (tmp_path / "api.log").read_text()


def test_client_certificates_of_the_client_ca_are_accepted_and_others_refused(
    tmp_path: Path,
) -> None:
    """`--client-ca`: a client certificate is optional on HTTPS and MQTTS, and one that
    the client CA did not sign ends the handshake on both."""
    certs = dev_certs(tmp_path, "dev-1")
    stranger = dev_certs(tmp_path, "stranger", name="other-ca")
    assert (certs / "ca.key").stat().st_mode & 0o777 == 0o600
    tls_port = free_port()
    stack = _tls_stack(tmp_path, certs, tls_port, "--client-ca", str(certs / "ca.pem"))
    try:
        assert stack.http.get(stack.base + "/healthz").status_code == 200  # no certificate
        ours = ssl.create_default_context(cafile=certs / "ca.pem")
        ours.load_cert_chain(certs / "dev-1.pem", certs / "dev-1.key")
        assert httpx.get(stack.base + "/healthz", verify=ours).status_code == 200
        theirs = ssl.create_default_context(cafile=certs / "ca.pem")
        theirs.load_cert_chain(stranger / "stranger.pem", stranger / "stranger.key")
        with pytest.raises(httpx.HTTPError):
            httpx.get(stack.base + "/healthz", verify=theirs, timeout=5)

        wait_for(lambda: port_open(tls_port), what="the MQTTS listener")
        device = stack.device(stack.fleet())
        stack.mqtt_port = tls_port
        topic = f"devices/{device.id}/t"
        cafile = ("--cafile", str(certs / "ca.pem"))
        plain = mosquitto_pub(stack, device.id, device.token(), topic, *cafile)
        assert plain.returncode == 0, plain.stderr
        mine = ("--cert", str(certs / "dev-1.pem"), "--key", str(certs / "dev-1.key"))
        done = mosquitto_pub(stack, device.id, device.token(), topic, *cafile, *mine)
        assert done.returncode == 0, done.stderr
        other = ("--cert", str(stranger / "stranger.pem"), "--key", str(stranger / "stranger.key"))
        refused = mosquitto_pub(stack, device.id, device.token(), topic, *cafile, *other)
        # The handshake ends it (TLS 1.3: after the client's Finished, so mosquitto_pub
        # says "connection lost"), before any CONNACK: not 0, nor MQTT's 4 or 5.
        assert refused.returncode not in (0, 4, 5), refused.stderr
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("command", "flag"),
    [("up", "--client-ca"), ("up", "--https-port"), ("api", "--https-port")],
)
def test_a_client_ca_or_https_port_without_a_tls_pair_is_refused_in_one_line(
    tmp_path: Path, command: str, flag: str
) -> None:
    certs = dev_certs(tmp_path)
    value = str(certs / "ca.pem") if flag == "--client-ca" else str(free_port())
    where = ["--http-port", str(free_port()), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [str(BIN / "credbroker"), command, flag, value, *where],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith(f"error: {flag} needs")
