"""Certificates for the tests of fleet CAs: the proof of possession of a CA's key, and
a CA's registration with it (README, Fleet CAs)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stack import Stack


def verification_certificate(certs: Path, code: str, *, signer: Path | None = None) -> str:
    """What proves possession of the CA key of CERTS: a certificate it signed (or, with
    SIGNER, another key did) whose subject CN is the verification code."""
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((signer or certs / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    proof = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, code)]))
        .issuer_name(ca.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return proof.public_bytes(serialization.Encoding.PEM).decode()


def register_ca(stack: Stack, fleet: str, certs: Path) -> str:
    """Register the CA of CERTS on FLEET with its proof of possession; its id."""
    path = f"/v1/fleets/{fleet}/cas"
    certificate = (certs / "ca.pem").read_text()
    asked = stack.http.post(
        stack.base + path, json={"certificate": certificate}, headers=stack.admin
    )
    assert asked.status_code == 400, asked.text
    assert asked.headers["content-type"].startswith("application/problem+json")
    code = asked.json()["verification_code"]
    proof = verification_certificate(certs, code)
    body = {"certificate": certificate, "verification_certificate": proof}
    registered = stack.http.post(stack.base + path, json=body, headers=stack.admin)
    assert registered.status_code == 201, registered.text
    return str(registered.json()["id"])
