"""credbroker as a fleet's own CA: its key pair, the short-lived device certificates it
signs from PKCS#10 requests, and its CRL (RFC 5280). The CA key is sealed under the
master key like signing keys (AES-256-GCM, the CA's id as associated data); the device's
private key never leaves the device: only its CSR comes here."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from credbroker import jwk
from credbroker.jws import PublicKey
from provisioning.errors import BadRequest

CA_VALIDITY = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(minutes=1)  # devices whose clock runs a little behind
CRL_VALIDITY = datetime.timedelta(hours=1)  # a CRL is made on request: next one soon


def _at(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, fleet: str, now: int) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(f"credbroker fleet {fleet} CA")
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_at(now) - BACKDATE)
            .not_valid_after(_at(now) + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, certificate_pem: str, key_der: bytes) -> Authority:
        key = serialization.load_der_private_key(key_der, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)  # noqa: S101 - we made it
        return cls(x509.load_pem_x509_certificate(certificate_pem.encode()), key)

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, csr_pem: str, *, device_id: str, now: int, lifetime: int) -> x509.Certificate:
        """A client certificate for DEVICE_ID (its subject CN, whatever the request's
        subject says) over the CSR's key, once the CSR's own signature verifies."""
        csr = read_csr(csr_pem)
        try:
            public = csr.public_key()
            if not isinstance(public, PublicKey):
                raise jwk.JWKError("unsupported key type")
            jwk.to_jwk(public)  # other curves and short RSA keys are refused here
        except (jwk.JWKError, ValueError, UnsupportedAlgorithm) as exc:
            raise BadRequest("the CSR's key must be P-256, Ed25519 or RSA of 2048 bits") from exc
        issuer_key = self.key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(_name(device_id))
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_at(now) - BACKDATE)
            .not_valid_after(min(_at(now + lifetime), self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def crl(self, revoked: list[tuple[int, int, bool]], now: int) -> bytes:
        """The CRL (DER) of (serial, when, held): revoked, or on hold (a disabled
        device, which may come back: RFC 5280 certificateHold)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(_at(now))
            .next_update(_at(now) + CRL_VALIDITY)
        )
        for serial, when, held in revoked:
            reason = x509.ReasonFlags.certificate_hold if held else x509.ReasonFlags.unspecified
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_at(when))
                .add_extension(x509.CRLReason(reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def read_csr(pem: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadRequest("csr is not a PEM PKCS#10 certificate request we can read") from exc
    if not valid:
        raise BadRequest("the CSR's signature does not verify: it proves no key")
    return csr
