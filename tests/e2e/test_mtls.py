"""Certificates as device credentials and certificate-bound tokens (RFC 8705), against a
real `credbroker up` with `--client-ca`: httpx presents client certificates to the token
endpoint, mosquitto_pub to MQTTS; certificates from `credbroker certs` and the
`cryptography` x509 API, no mocks."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from device_sdk import DeviceClient
from tests.certs import register_ca, verification_certificate
from tests.databases import postgres_database
from tests.stack import Stack, dev_certs, free_port, mosquitto_pub, port_open, start_stack, wait_for


def _x5t(pem: Path) -> str:
    der = x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _self_signed(out: Path, name: str, *, days: int = 30) -> Path:
    """A device's own certificate: its key signs it (RFC 8705 section 2.2)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=max(1, 1 - days)))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    (out / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out / f"{name}.pem"


LOGIN_CERTS = ("login-1", "login-2", "login-3", "login-4", "login-5", "login-6", "login-7")


class _Mtls:
    """A stack whose HTTPS and MQTTS listeners accept client certificates of CERTS' CA
    and of the self-signed device `solo` (both in the --client-ca bundle)."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.certs = dev_certs(tmp, "dev-1", "dev-2", "by-ca-1", "by-ca-2", "by-ca-3")
        self.other = dev_certs(tmp, "jit-1", name="other-ca")  # a second CA
        # A third, for certificate logins (a CA is registered on one fleet at most).
        self.login = dev_certs(tmp, *LOGIN_CERTS, name="login-ca")
        self.removed = dev_certs(tmp, "login-8", name="removed-ca")  # and one to remove
        self.solo = _self_signed(self.certs, "solo")
        bundle = tmp / "client-ca.pem"
        cas = [where / "ca.pem" for where in (self.certs, self.other, self.login, self.removed)]
        trusted = (*cas, self.solo)
        bundle.write_bytes(b"".join(path.read_bytes() for path in trusted))
        self.tls_port = free_port()
        pair = ["--tls-cert", str(self.certs / "server.pem")]
        pair += ["--tls-key", str(self.certs / "server.key"), "--client-ca", str(bundle)]
        self.stack: Stack = start_stack(
            tmp, "--mqtts-port", str(self.tls_port), *pair, ca=self.certs / "ca.pem", **env
        )
        self.plain_mqtt = self.stack.mqtt_port
        self.fleet = self.stack.fleet()

    def context(self, name: str | None, certs: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.certs / "ca.pem")
        if name is not None:
            where = certs or self.certs
            context.load_cert_chain(where / f"{name}.pem", where / f"{name}.key")
        return context

    def register(self, device_id: str, name: str) -> httpx.Response:
        """A device whose credential is the certificate NAME."""
        body = {"device_id": device_id, "fleet": self.fleet}
        body["public_key"] = (self.certs / f"{name}.pem").read_text()
        return self.stack.http.post(
            self.stack.base + "/v1/devices", json=body, headers=self.stack.admin
        )

    def token(self, device_id: str, name: str | None, certs: Path | None = None) -> httpx.Response:
        data = {"grant_type": "client_credentials", "client_id": device_id}
        verify = self.context(name, certs)
        return httpx.post(self.stack.base + "/oauth2/token", data=data, verify=verify, timeout=10)

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        return self.stack.http.request(
            method, self.stack.base + path, headers=self.stack.admin, **kw
        )

    def publish(self, device_id: str, token: str, name: str | None, *, plain: bool = False) -> int:
        """mosquitto_pub's exit code: on MQTTS with the certificate NAME (or none), or on
        plain MQTT."""
        tls = ["--cafile", str(self.certs / "ca.pem")]
        if name is not None:
            tls += ["--cert", str(self.certs / f"{name}.pem")]
            tls += ["--key", str(self.certs / f"{name}.key")]
        self.stack.mqtt_port = self.plain_mqtt if plain else self.tls_port
        topic = f"devices/{device_id}/t"
        return mosquitto_pub(
            self.stack, device_id, token, topic, *([] if plain else tls)
        ).returncode


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mtls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Mtls]:
    """The embedded stack on SQLite, and on PostgreSQL (its grants pipelined: the
    certificate queries and a just-in-time device go through the same unit of work)."""
    with contextlib.ExitStack() as stack:
        env = {}
        if request.param == "postgres":
            env["CREDBROKER_DATABASE_URL"] = stack.enter_context(postgres_database())
        started = _Mtls(tmp_path_factory.mktemp("mtls"), **env)
        stack.callback(started.stack.stop)
        wait_for(lambda: port_open(started.tls_port), what="the MQTTS listener")
        yield started


def test_metadata_lists_the_mtls_methods_and_bound_tokens(mtls: _Mtls) -> None:
    stack = mtls.stack
    metadata = stack.http.get(stack.base + "/.well-known/oauth-authorization-server").json()
    methods = metadata["token_endpoint_auth_methods_supported"]
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(methods)
    assert metadata["tls_client_certificate_bound_access_tokens"] is True


def test_a_registered_ca_certificate_gets_tokens_bound_to_it(mtls: _Mtls) -> None:
    """tls_client_auth: the token's cnf carries the certificate's x5t#S256 and works on
    MQTTS with that certificate only; its refresh needs the certificate too."""
    created = mtls.register("dev-1", "dev-1")
    assert created.status_code == 201, created.text
    assert created.json()["credential_keys"][0]["jwk"]["x5t#S256"] == _x5t(mtls.certs / "dev-1.pem")

    answer = mtls.token("dev-1", "dev-1")
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"]["x5t#S256"] == _x5t(mtls.certs / "dev-1.pem")
    assert claims["cnf"]["jkt"] == created.json()["credential_keys"][0]["kid"]

    assert mtls.publish("dev-1", token, "dev-1") == 0
    assert mtls.publish("dev-1", token, "dev-2") == 4  # another certificate of the same CA
    assert mtls.publish("dev-1", token, None) == 4  # MQTTS without a certificate
    assert mtls.publish("dev-1", token, None, plain=True) == 4  # plain MQTT

    refresh = answer.json()["refresh_token"]
    copied = httpx.post(
        mtls.stack.base + "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        verify=mtls.context(None),
    )
    assert copied.status_code == 400 and copied.json()["error"] == "invalid_grant"
    renewed = httpx.post(
        mtls.stack.base + "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        verify=mtls.context("dev-1"),
    )
    assert renewed.status_code == 200, renewed.text  # the copy did not kill the family
    again = jwt.decode(renewed.json()["access_token"], options={"verify_signature": False})
    assert again["cnf"]["x5t#S256"] == claims["cnf"]["x5t#S256"]


def test_a_self_signed_certificate_registered_on_its_device_gets_tokens(mtls: _Mtls) -> None:
    assert mtls.register("solo", "solo").status_code == 201
    answer = mtls.token("solo", "solo")
    assert answer.status_code == 200, answer.text
    audit = mtls.stack.http.get(
        mtls.stack.base + "/v1/audit",
        params={"device_id": "solo", "action": "token.issue"},
        headers=mtls.stack.admin,
    ).json()
    assert [event["detail"]["method"] for event in audit["items"]] == [
        "self_signed_tls_client_auth"
    ]
    assert mtls.publish("solo", answer.json()["access_token"], "solo") == 0


def test_certificates_that_are_not_the_devices_are_refused(mtls: _Mtls) -> None:
    assert mtls.register("dev-3", "dev-2").status_code == 201  # dev-3 holds dev-2's
    for device_id, name in (("dev-3", "dev-1"), ("dev-3", None), ("nobody", "dev-2")):
        refused = mtls.token(device_id, name)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "invalid_client"
        assert "WWW-Authenticate" in refused.headers
    # A disabled device's certificate gets nothing either.
    disabled = mtls.stack.http.patch(
        mtls.stack.base + "/v1/devices/dev-3", json={"status": "disabled"}, headers=mtls.stack.admin
    )
    assert disabled.status_code == 200
    refused = mtls.token("dev-3", "dev-2")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_an_expired_certificate_is_not_a_credential(mtls: _Mtls, tmp_path: Path) -> None:
    expired = _self_signed(tmp_path, "old", days=-1)
    body = {"device_id": "old", "fleet": mtls.fleet, "public_key": expired.read_text()}
    answer = mtls.stack.http.post(
        mtls.stack.base + "/v1/devices", json=body, headers=mtls.stack.admin
    )
    assert answer.status_code == 400, answer.text
    assert "expired" in answer.json()["detail"]


def test_the_sdk_authenticates_with_its_certificate_and_connects_over_mqtts(
    mtls: _Mtls,
) -> None:
    assert mtls.register("sdk-1", "dev-1").status_code == 201
    connected = threading.Event()
    client = DeviceClient(
        api_url=mtls.stack.base,
        device_id="sdk-1",
        private_key=None,
        mqtt_host="127.0.0.1",
        mqtt_port=mtls.tls_port,
        tls=mtls.context("dev-1"),
        on_state=lambda state, details: state == "connected" and connected.set(),
    )
    try:
        client.connect(timeout=20)
        assert connected.wait(10)
        client.publish("devices/sdk-1/t", b"certificate-bound").wait_for_publish(10)
    finally:
        client.close()


def test_a_ca_is_registered_only_with_proof_of_possession_of_its_key(mtls: _Mtls) -> None:
    fleet = mtls.stack.fleet()
    path = f"/v1/fleets/{fleet}/cas"
    certificate = (mtls.certs / "ca.pem").read_text()
    code = mtls.api("POST", path, json={"certificate": certificate}).json()["verification_code"]
    stranger = mtls.certs / "dev-1.key"  # any other key
    for proof in (
        verification_certificate(mtls.certs, code, signer=stranger),
        verification_certificate(mtls.certs, "not-the-code"),
        "not a certificate",
    ):
        body = {"certificate": certificate, "verification_certificate": proof}
        refused = mtls.api("POST", path, json=body)
        assert refused.status_code == 400, refused.text
    leaf = mtls.api("POST", path, json={"certificate": (mtls.certs / "dev-1.pem").read_text()})
    assert leaf.status_code == 400 and "CA" in leaf.json()["detail"]
    assert mtls.api("GET", path).json() == []

    ca_id = register_ca(mtls.stack, fleet, mtls.certs)
    assert [ca["id"] for ca in mtls.api("GET", path).json()] == [ca_id]
    again = {"certificate": certificate}
    again["verification_certificate"] = verification_certificate(mtls.certs, code)
    assert mtls.api("POST", path, json=again).status_code == 409
    assert mtls.api("DELETE", f"{path}/{ca_id}").status_code == 204
    assert mtls.api("GET", path).json() == []


def test_a_certificate_of_the_fleets_ca_names_its_device_by_subject_cn(mtls: _Mtls) -> None:
    fleet = mtls.stack.fleet()
    register_ca(mtls.stack, fleet, mtls.certs)
    for device_id in ("by-ca-1", "by-ca-2"):
        body = {"device_id": device_id, "fleet": fleet}
        assert mtls.api("POST", "/v1/devices", json=body).status_code == 201
    answer = mtls.token("by-ca-1", "by-ca-1")  # registered on no device: its CA vouches
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"]["x5t#S256"] == _x5t(mtls.certs / "by-ca-1.pem")
    assert mtls.publish("by-ca-1", answer.json()["access_token"], "by-ca-1") == 0

    wrong_name = mtls.token("by-ca-2", "by-ca-1")  # the CN names another device
    assert wrong_name.status_code == 401 and wrong_name.json()["error"] == "invalid_client"
    unknown = mtls.token("by-ca-3", "by-ca-3")  # no such device, no auto_register
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    other_ca = mtls.token("by-ca-2", "jit-1", mtls.other)  # a CA the fleet did not register
    assert other_ca.status_code == 401 and other_ca.json()["error"] == "invalid_client"

    assert mtls.api("POST", "/v1/devices/by-ca-2:revoke").status_code == 200
    revoked = mtls.token("by-ca-2", "by-ca-2")
    assert revoked.status_code == 401 and revoked.json()["error"] == "invalid_client"


def test_auto_register_creates_the_device_of_a_first_certificate(mtls: _Mtls) -> None:
    fleet = mtls.stack.fleet()
    assert mtls.api("PATCH", f"/v1/fleets/{fleet}", json={"auto_register": True}).is_success
    register_ca(mtls.stack, fleet, mtls.other)
    answer = mtls.token("jit-1", "jit-1", mtls.other)
    assert answer.status_code == 200, answer.text
    device = mtls.api("GET", "/v1/devices/jit-1").json()
    assert device["fleet"] == fleet and device["status"] == "active"
    assert device["credential_keys"][0]["jwk"]["x5t#S256"] == _x5t(mtls.other / "jit-1.pem")
    events = mtls.api(
        "GET", "/v1/audit", params={"device_id": "jit-1", "action": "device.create"}
    ).json()["items"]
    assert [event["actor"] for event in events] == ["auto_register"]
    assert mtls.token("jit-1", "jit-1", mtls.other).status_code == 200  # and again


def _csr(out: Path, name: str) -> str:
    """A device's key (kept in OUT) and its PKCS#10 request: the key stays here."""
    key = ec.generate_private_key(ec.SECP256R1())
    (out / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever the device says")])
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_a_device_gets_a_certificate_of_its_fleets_own_ca_from_a_csr(
    mtls: _Mtls, tmp_path: Path
) -> None:
    """The CSR flow: enrollment token (single use) or the device's own certificate; the
    certificate works for mTLS and MQTTS at once (the listeners trust the new CA), and
    dies with the device (and is then on the CRL)."""
    fleet = mtls.stack.fleet()
    created = mtls.api("POST", "/v1/devices", json={"device_id": "csr-1", "fleet": fleet})
    assert created.status_code == 201, created.text
    enrollment = created.json()["enrollment_token"]
    path = "/v1/devices/csr-1/certificates"
    csr = _csr(tmp_path, "csr-1")
    answer = httpx.post(
        mtls.stack.base + path,
        json={"csr": csr, "enrollment_token": enrollment},
        verify=mtls.context(None),
    )
    assert answer.status_code == 201, answer.text
    issued = answer.json()
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert certificate.subject.rfc4514_string() == "CN=csr-1"
    (tmp_path / "csr-1.pem").write_text(issued["certificate"])
    assert issued["x5t#S256"] == _x5t(tmp_path / "csr-1.pem")
    [ca] = mtls.api("GET", f"/v1/fleets/{fleet}/cas").json()
    assert ca["managed"] is True and ca["certificate"] == issued["ca_certificate"]
    again = httpx.post(
        mtls.stack.base + path,
        json={"csr": csr, "enrollment_token": enrollment},
        verify=mtls.context(None),
    )
    assert again.status_code == 400  # single use

    token = mtls.token("csr-1", "csr-1", tmp_path)
    assert token.status_code == 200, token.text
    access = token.json()["access_token"]
    mtls.stack.mqtt_port = mtls.tls_port
    tls = ["--cafile", str(mtls.certs / "ca.pem"), "--cert", str(tmp_path / "csr-1.pem")]
    tls += ["--key", str(tmp_path / "csr-1.key")]
    done = mosquitto_pub(mtls.stack, "csr-1", access, "devices/csr-1/t", *tls)
    assert done.returncode == 0, done.stderr

    # Renewal over mTLS with the certificate; another device's, or an access token (a
    # stolen one must not become a certificate), is refused.
    renewed = httpx.post(
        mtls.stack.base + path,
        json={"csr": _csr(tmp_path, "csr-1b")},
        verify=mtls.context("csr-1", tmp_path),
    )
    assert renewed.status_code == 201, renewed.text
    for verify, headers in (
        (mtls.context("dev-1"), {}),
        (mtls.context(None), {"Authorization": f"Bearer {access}"}),
    ):
        refused = httpx.post(
            mtls.stack.base + path,
            json={"csr": _csr(tmp_path, "csr-1c")},
            headers=headers,
            verify=verify,
        )
        assert refused.status_code == 401, refused.text
    events = mtls.api(
        "GET", "/v1/audit", params={"device_id": "csr-1", "action": "certificate.issue"}
    ).json()["items"]
    outcomes = [(event["outcome"], event["actor"]) for event in events]
    assert outcomes == [
        ("ok", "enrollment"),
        ("refused", None),  # the enrollment token again
        ("ok", "client:csr-1"),
        ("refused", None),
        ("refused", None),
    ]
    garbage = mtls.api("POST", path, json={"csr": "-----BEGIN CERTIFICATE REQUEST-----\nx\n"})
    assert garbage.status_code == 400

    assert mtls.api("POST", "/v1/devices/csr-1:revoke").status_code == 200
    refused = mtls.token("csr-1", "csr-1", tmp_path)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    crl = httpx.get(
        f"{mtls.stack.base}/v1/fleets/{fleet}/cas/{ca['id']}/crl", verify=mtls.context(None)
    )
    assert crl.status_code == 200 and crl.headers["content-type"] == "application/pkix-crl"
    revocations = x509.load_der_x509_crl(crl.content)
    issuer = x509.load_pem_x509_certificate(ca["certificate"].encode())
    assert revocations.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    assert revocations.get_revoked_certificate_by_serial_number(certificate.serial_number)


def test_an_expired_client_certificate_ends_the_handshake(mtls: _Mtls, tmp_path: Path) -> None:
    """Of a CA the listeners trust: TLS refuses it before any request or CONNECT."""
    ca = x509.load_pem_x509_certificate((mtls.certs / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((mtls.certs / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "old.pem").write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "old.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(httpx.HTTPError):
        mtls.token("dev-1", "old", tmp_path)
    mtls.stack.mqtt_port = mtls.tls_port
    tls = ["--cafile", str(mtls.certs / "ca.pem"), "--cert", str(tmp_path / "old.pem")]
    done = mosquitto_pub(
        mtls.stack, "dev-1", "x", "devices/dev-1/t", *tls, "--key", str(tmp_path / "old.key")
    )
    assert done.returncode not in (0, 4, 5), done.stderr  # no CONNACK: the handshake ended


def test_a_key_registered_with_its_certificates_thumbprint_authenticates_by_mtls(
    mtls: _Mtls,
) -> None:
    """A certificate registered by thumbprint only: the key's JWK with `x5t#S256`."""
    certificate = x509.load_pem_x509_certificate((mtls.certs / "dev-2.pem").read_bytes())
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    numbers = public.public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y)}
    jwk["x5t#S256"] = _x5t(mtls.certs / "dev-2.pem")
    body = {"device_id": "thumb-1", "fleet": mtls.fleet, "public_key": jwk}
    assert mtls.api("POST", "/v1/devices", json=body).status_code == 201
    assert mtls.token("thumb-1", "dev-2").status_code == 200
    body = {"device_id": "thumb-2", "fleet": mtls.fleet, "public_key": {**jwk, "x5t#S256": "x"}}
    assert mtls.api("POST", "/v1/devices", json=body).status_code == 400


# -- certificate login: MQTTS with a client certificate and no password -----------------


def _login(
    mtls: _Mtls,
    client_id: str,
    name: str | None,
    *,
    username: str | None = None,
    topic: str | None = None,
    message: str = "x",
    plain: bool = False,
    certs: Path | None = None,
) -> int:
    """mosquitto_pub's exit code for a CONNECT with no password (username = client id
    unless given) on MQTTS with the certificate NAME of the login CA (or none), or on
    plain MQTT, then one publish."""
    port = mtls.plain_mqtt if plain else mtls.tls_port
    args = ["-h", "127.0.0.1", "-p", str(port), "-V", "mqttv311", "-q", "1"]
    args += ["-i", client_id, "-u", username or client_id, "-m", message]
    args += ["-t", topic or f"devices/{client_id}/t"]
    if not plain:
        args += ["--cafile", str(mtls.certs / "ca.pem")]
    if name is not None:
        where = certs or mtls.login
        args += ["--cert", str(where / f"{name}.pem"), "--key", str(where / f"{name}.key")]
    done = subprocess.run(
        ["mosquitto_pub", *args], capture_output=True, text=True, timeout=30, check=False
    )
    return done.returncode


class _Listener:
    """A paho client that logs in with the certificate NAME of the login CA and no
    password, and collects what it receives."""

    def __init__(self, mtls: _Mtls, device_id: str, name: str, certs: Path | None = None) -> None:
        self.connected, self.subscribed = threading.Event(), threading.Event()
        self.disconnected, self.received = threading.Event(), threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311
        )
        context = ssl.create_default_context(cafile=mtls.certs / "ca.pem")
        where = certs or mtls.login
        context.load_cert_chain(where / f"{name}.pem", where / f"{name}.key")
        self.paho.tls_set_context(context)
        self.paho.username_pw_set(device_id)  # and no password
        self.paho.on_connect = lambda c, u, f, rc, p: rc.is_failure or self.connected.set()
        self.paho.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.paho.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.paho.on_message = self._on_message
        self.paho.reconnect_delay_set(60, 60)  # a cut session stays cut while we look
        self.paho.connect("127.0.0.1", mtls.tls_port, keepalive=30)
        self.paho.loop_start()

    def _on_message(self, c: Any, u: Any, message: Any) -> None:
        self.messages.append((message.topic, bytes(message.payload)))
        self.received.set()

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture(scope="module")
def login_fleet(mtls: _Mtls) -> str:
    """A fleet with certificate_login and the login CA (which one fleet holds at most)."""
    fleet = mtls.stack.fleet()
    changed = mtls.api("PATCH", f"/v1/fleets/{fleet}", json={"certificate_login": True})
    assert changed.status_code == 200 and changed.json()["certificate_login"] is True
    register_ca(mtls.stack, fleet, mtls.login)
    return fleet


def _device(
    mtls: _Mtls, device_id: str, fleet: str, certificate: str | None = None
) -> dict[str, Any]:
    body = {"device_id": device_id, "fleet": fleet}
    if certificate is not None:
        body["public_key"] = (mtls.login / f"{certificate}.pem").read_text()
    created = mtls.api("POST", "/v1/devices", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_a_certificate_logs_in_without_a_password_and_gets_the_fleet_acl(
    mtls: _Mtls, login_fleet: str
) -> None:
    """A CA's certificate naming the device by CN, and a certificate registered on a
    device as its credential key: both connect with no password, publish within the
    fleet's ACL and receive; revoking the device cuts the live session."""
    fleet = login_fleet
    _device(mtls, "login-2", fleet)  # no key: its CA vouches for login-2
    _device(mtls, "cl-reg", fleet, certificate="login-1")  # CN login-1, registered here
    listener = _Listener(mtls, "login-2", "login-2")
    try:
        assert listener.connected.wait(10), "no CONNACK 0 for a certificate login"
        listener.paho.subscribe(f"fleets/{fleet}/up/+", qos=1)
        assert listener.subscribed.wait(10)
        topic = f"fleets/{fleet}/up/cl-reg"
        assert _login(mtls, "cl-reg", "login-1", topic=topic, message="by certificate") == 0
        assert listener.received.wait(10), "the publish did not arrive"
        assert listener.messages == [(topic, b"by certificate")]

        registered = _Listener(mtls, "cl-reg", "login-1")
        try:
            assert registered.connected.wait(10)
            logout = mtls.api("POST", "/v1/devices/cl-reg/tokens:revoke")
            assert logout.status_code == 200, logout.text
            assert registered.disconnected.wait(10), "a logout did not cut the session"
        finally:
            registered.close()

        assert mtls.api("POST", "/v1/devices/login-2:revoke").status_code == 200
        assert listener.disconnected.wait(10), "revoking the device did not cut the session"
        assert _login(mtls, "login-2", "login-2") == 5
    finally:
        listener.close()


def test_removing_the_certificates_key_cuts_its_session(mtls: _Mtls, login_fleet: str) -> None:
    created = _device(mtls, "cl-key", login_fleet, certificate="login-6")  # CN login-6
    listener = _Listener(mtls, "cl-key", "login-6")
    try:
        assert listener.connected.wait(10), "no CONNACK 0 for a registered certificate"
        kid = created["credential_keys"][0]["kid"]
        assert mtls.api("DELETE", f"/v1/devices/cl-key/keys/{kid}").status_code == 204
        assert listener.disconnected.wait(10), "removing the key did not cut the session"
    finally:
        listener.close()
    assert _login(mtls, "cl-key", "login-6") == 4


def test_turning_certificate_login_off_cuts_its_sessions(mtls: _Mtls) -> None:
    fleet = mtls.stack.fleet()
    assert mtls.api("PATCH", f"/v1/fleets/{fleet}", json={"certificate_login": True}).is_success
    _device(mtls, "cl-flag", fleet, certificate="login-7")
    listener = _Listener(mtls, "cl-flag", "login-7")
    try:
        assert listener.connected.wait(10), "no CONNACK 0 for a registered certificate"
        off = mtls.api("PATCH", f"/v1/fleets/{fleet}", json={"certificate_login": False})
        assert off.status_code == 200, off.text
        assert listener.disconnected.wait(10), "turning the flag off did not cut the session"
    finally:
        listener.close()
    assert _login(mtls, "cl-flag", "login-7") == 4


def test_removing_the_fleets_ca_cuts_the_sessions_of_its_certificates(mtls: _Mtls) -> None:
    fleet = mtls.stack.fleet()
    assert mtls.api("PATCH", f"/v1/fleets/{fleet}", json={"certificate_login": True}).is_success
    ca_id = register_ca(mtls.stack, fleet, mtls.removed)
    _device(mtls, "login-8", fleet)
    listener = _Listener(mtls, "login-8", "login-8", mtls.removed)
    try:
        assert listener.connected.wait(10), "no CONNACK 0 for a CA's certificate"
        assert mtls.api("DELETE", f"/v1/fleets/{fleet}/cas/{ca_id}").status_code == 204
        assert listener.disconnected.wait(10), "removing the CA did not cut the session"
    finally:
        listener.close()


def test_certificate_logins_the_fleet_or_the_certificate_does_not_allow(
    mtls: _Mtls, login_fleet: str
) -> None:
    fleet = login_fleet
    _device(mtls, "login-3", fleet)
    assert _login(mtls, "login-3", "login-3") == 0
    assert _login(mtls, "login-3", "login-4") == 4  # the CN names another device
    assert _login(mtls, "login-3", None) == 4  # MQTTS without a certificate
    assert _login(mtls, "login-3", "login-3", username="someone-else") == 4
    disabled = mtls.api("PATCH", "/v1/devices/login-3", json={"status": "disabled"})
    assert disabled.status_code == 200
    assert _login(mtls, "login-3", "login-3") == 5
    events = mtls.api(
        "GET", "/v1/audit", params={"device_id": "login-3", "action": "mqtt.connect"}
    ).json()["items"]
    reasons = {event["detail"].get("reason") for event in events if event["outcome"] == "refused"}
    assert reasons == {"certificate_refused", "missing_credentials", "device_disabled"}, events

    _device(mtls, "login-4", mtls.fleet)  # a fleet without certificate_login
    _device(mtls, "cl-off", mtls.fleet, certificate="login-5")
    assert _login(mtls, "login-4", "login-4") == 4
    assert _login(mtls, "cl-off", "login-5") == 4
    assert _login(mtls, "login-5", "login-5") == 4  # no such device

    assert _login(mtls, "cl-off", None, plain=True) == 4  # plain MQTT: as ever


def test_certificate_login_is_a_fleet_field_of_the_api_and_the_cli(
    mtls: _Mtls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(mtls.certs / "ca.pem"))  # the API's, on HTTPS
    stack, key = mtls.stack, ("--admin-key", mtls.stack.admin_key)
    assert mtls.api("GET", f"/v1/fleets/{mtls.fleet}").json()["certificate_login"] is False
    created = stack.cli("fleet", "create", "f-cli-login", "--certificate-login", *key)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["certificate_login"] is True
    updated = stack.cli("fleet", "update", "f-cli-login", "--no-certificate-login", *key)
    assert updated.returncode == 0, updated.stderr
    assert mtls.api("GET", "/v1/fleets/f-cli-login").json()["certificate_login"] is False


def test_a_certificate_of_the_fleets_own_ca_logs_in_only_while_on_record(
    mtls: _Mtls, tmp_path: Path
) -> None:
    """A device id deleted and made again does not inherit the certificates credbroker
    issued to the device that had it, at MQTT logins as at the token endpoint."""
    fleet = mtls.stack.fleet()
    assert mtls.api("PATCH", f"/v1/fleets/{fleet}", json={"certificate_login": True}).is_success
    body = {"device_id": "own-1", "fleet": fleet}
    enrollment = mtls.api("POST", "/v1/devices", json=body).json()["enrollment_token"]
    answer = mtls.api(
        "POST",
        "/v1/devices/own-1/certificates",
        json={"csr": _csr(tmp_path, "own-1"), "enrollment_token": enrollment},
    )
    assert answer.status_code == 201, answer.text
    (tmp_path / "own-1.pem").write_text(answer.json()["certificate"])
    assert _login(mtls, "own-1", "own-1", certs=tmp_path) == 0
    assert mtls.api("DELETE", "/v1/devices/own-1").status_code == 204
    assert mtls.api("POST", "/v1/devices", json=body).status_code == 201
    assert _login(mtls, "own-1", "own-1", certs=tmp_path) == 4
    assert mtls.token("own-1", "own-1", tmp_path).status_code == 401
