"""X.509 client certificates as device credentials (RFC 8705).

A certificate is named by its `x5t#S256` thumbprint, the base64url SHA-256 of its DER
(RFC 8705 section 3.1): what a certificate-bound token's `cnf` carries and what a
connection's certificate must match. Imports neither FastAPI nor SQLModel: the brokers
use it too.

Which device a certificate is (`names_device`), the one rule of the token endpoint's
`tls_client_auth` and of the brokers' certificate login: its `x5t#S256` is the one of a
credential key of the device, or a CA of the device's fleet issued it to the device
(subject CN = device id) and both are valid now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from credbroker.jws import b64url_encode

PEM_MARKER = "-----BEGIN CERTIFICATE-----"
T = TypeVar("T")


class CertificateError(ValueError):
    """Not a certificate we can read."""


def thumbprint(der: bytes) -> str:
    """`x5t#S256` of a DER certificate."""
    return b64url_encode(hashlib.sha256(der).digest())


def x5t(certificate: x509.Certificate) -> str:
    """`x5t#S256` of a parsed certificate."""
    return thumbprint(certificate.public_bytes(serialization.Encoding.DER))


def load_pem(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CertificateError("not a PEM certificate") from exc


def load_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateError("not a DER certificate") from exc


def is_self_signed(certificate: x509.Certificate) -> bool:
    """Issued by its own key (RFC 8705 section 2.2), not by a CA."""
    return issued_by(certificate, certificate)


def common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if len(names) == 1 else None
    return value if isinstance(value, str) else None


def valid_at(certificate: x509.Certificate, now: float) -> bool:
    start = certificate.not_valid_before_utc.timestamp()
    return start <= now < certificate.not_valid_after_utc.timestamp()


def issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether CA's key signed CERTIFICATE (and CA names itself its issuer)."""
    if certificate.issuer != ca.subject:
        return False
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def issuing_ca(certificate: x509.Certificate, cas: Iterable[tuple[str, T]], now: float) -> T | None:
    """What goes with the CA (PEM, what) that issued a certificate, both valid now."""
    if not valid_at(certificate, now):
        return None
    for pem, what in cas:
        ca = load_pem(pem)
        if valid_at(ca, now) and issued_by(certificate, ca):
            return what
    return None


def names_device(
    certificate: x509.Certificate,
    device_id: str,
    *,
    registered: Collection[str],
    cas: Iterable[str],
    now: float,
) -> bool:
    """Whether a verified client certificate is the device's: `registered` holds the
    `x5t#S256` of the device's credential keys, `cas` the PEM of its fleet's CAs."""
    if x5t(certificate) in registered:
        return True
    if common_name(certificate) != device_id:
        return False
    return issuing_ca(certificate, ((pem, True) for pem in cas), now) is not None
