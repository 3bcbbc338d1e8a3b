"""Certificate login (README, Certificates as device credentials): the decision on a
CONNECT with a verified client certificate and no password, against an in-memory trust
store; tests/e2e/test_mtls.py runs it on a real stack with mosquitto_pub and paho."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from credbroker import certificates
from credbroker.decision import Authenticator, Grant, Kind, Refusal
from credbroker.verifier import CertificateHolder, DeviceState, Verifier, VerifyPolicy
from tests.core.test_verifier import ISSUER, NOW, MemoryStore

START = datetime.datetime.fromtimestamp(NOW - 86_400, datetime.UTC)
END = datetime.datetime.fromtimestamp(NOW + 30 * 86_400, datetime.UTC)


def _certificate(
    cn: str,
    *,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    is_ca: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer, signer = (ca[0].subject, ca[1]) if ca else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(END)
    )
    if is_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    return builder.sign(signer, hashes.SHA256()), key


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class Login:
    def __init__(self) -> None:
        self.ca = _certificate("fleet CA", is_ca=True)
        self.by_ca = _certificate("dev-1", ca=self.ca)[0]
        self.own = _certificate("whatever")[0]  # registered on dev-1 as a credential key
        self.holder = CertificateHolder(
            fleet="f",
            kid="dev-1#1",
            registered=frozenset({certificates.thumbprint(_der(self.own))}),
            cas=(_pem(self.ca[0]),),
            pub=("devices/dev-1/#",),
            sub=("fleets/f/up/+",),
        )
        self.store = MemoryStore(
            keys={"dev-1#1": ec.generate_private_key(ec.SECP256R1()).public_key()},
            devices={"dev-1": DeviceState("active", 0)},
            holders={"dev-1": self.holder},
        )
        verifier = Verifier(VerifyPolicy(issuer=ISSUER), self.store, clock=lambda: NOW)
        self.auth = Authenticator(verifier, 30)

    def connect(
        self,
        certificate: x509.Certificate | None,
        *,
        client_id: str = "dev-1",
        username: str = "dev-1",
        password: str | None = None,
    ) -> Grant | Refusal:
        der = _der(certificate) if certificate is not None else None
        return self.auth.authenticate(
            client_id=client_id,
            username=username,
            password=password,
            address=None,
            certificate=certificates.thumbprint(der) if der else None,
            client_certificate=der,
        )


@pytest.fixture
def login() -> Login:
    return Login()


def test_a_registered_or_ca_issued_certificate_is_a_login(login: Login) -> None:
    for certificate in (login.own, login.by_ca):
        grant = login.connect(certificate)
        assert isinstance(grant, Grant), grant
        assert grant.device_id == "dev-1" and grant.kid == "dev-1#1" and grant.iat == NOW
        assert grant.jti == "x5t-" + certificates.thumbprint(_der(certificate))
        assert grant.exp == END.timestamp()  # cut at the certificate's notAfter
        assert grant.may_publish("devices/dev-1/t") and not grant.may_publish("devices/dev-2/t")
        assert grant.may_subscribe("fleets/f/up/+")
        assert login.auth.standing(grant) is None


def _refused(decision: Grant | Refusal) -> tuple[Kind, str]:
    assert isinstance(decision, Refusal), decision
    return decision.kind, decision.reason.value


def test_what_is_not_a_certificate_login(login: Login) -> None:
    other_ca = _certificate("other CA", is_ca=True)
    for certificate in (_certificate("dev-1")[0], _certificate("dev-1", ca=other_ca)[0]):
        assert _refused(login.connect(certificate)) == (Kind.BAD_CREDENTIALS, "certificate_refused")
    named_other = _certificate("dev-2", ca=login.ca)[0]
    assert _refused(login.connect(named_other))[1] == "certificate_refused"
    assert _refused(login.connect(login.own, username="dev-2"))[1] == "identity_mismatch"
    assert _refused(login.connect(None))[1] == "missing_credentials"
    # A password makes it a token login, whatever the certificate.
    assert _refused(login.connect(login.own, password="not-a-token"))[1] == "malformed"
    login.store.holders.clear()  # a fleet without certificate_login
    assert _refused(login.connect(login.own))[1] == "certificate_refused"


def test_a_disabled_or_revoked_device_is_not_authorized(login: Login) -> None:
    for status, reason in (("disabled", "device_disabled"), ("revoked", "device_revoked")):
        login.store.devices["dev-1"] = DeviceState(status, 0)
        assert _refused(login.connect(login.own)) == (Kind.NOT_AUTHORIZED, reason)
    login.store.down = True
    assert _refused(login.connect(login.own)) == (Kind.UNAVAILABLE, "unavailable")


def test_the_grant_follows_the_device_and_its_certificate(login: Login) -> None:
    own, by_ca = login.connect(login.own), login.connect(login.by_ca)
    assert isinstance(own, Grant) and isinstance(by_ca, Grant)
    login.store.devices["dev-1"] = DeviceState("active", NOW + 1)  # a logout
    assert _refused(login.auth.standing(own) or own) == (Kind.NOT_AUTHORIZED, "revoked")
    login.store.devices["dev-1"] = DeviceState("active", 0)
    login.store.holders["dev-1"] = replace(login.holder, registered=frozenset(), cas=())
    for grant in (own, by_ca):  # its key removed, its CA removed
        refusal = login.auth.standing(grant)
        assert refusal is not None and refusal.reason.value == "certificate_refused"
