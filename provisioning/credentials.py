"""Device credential keys: parsing what operators send, and the keys a device may prove."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from sqlmodel import Session, col, select

from credbroker import certificates
from credbroker import jwk as jwk_
from credbroker.claims import CERTIFICATE_CONFIRMATION
from credbroker.jws import PublicKey
from provisioning.errors import InvalidKey
from provisioning.models import CredentialKey

MAX_KEYS_PER_DEVICE = 16
# The JWK member naming a key's certificate (RFC 7517 section 4.9), as in cnf.
CERTIFICATE_MEMBER = CERTIFICATE_CONFIRMATION
_X5T = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class ParsedKey:
    key: PublicKey
    jwk: dict[str, str]
    kid: str  # RFC 7638 thumbprint, also the `cnf.jkt` of tokens proven with this key
    alg: str
    not_after: int | None = None  # a certificate's end: the key's too


def parse_public_key(value: str | dict[str, Any]) -> ParsedKey:
    """A PEM (SubjectPublicKeyInfo) or JWK public key (Ed25519, P-256 or RSA), or a PEM
    certificate of one: then the key is that certificate's, its JWK carries the
    certificate's `x5t#S256` (RFC 7517 section 4.9) for mTLS client authentication
    (RFC 8705), and it expires with the certificate."""
    if isinstance(value, str) and value.lstrip().startswith(certificates.PEM_MARKER):
        return _parse_certificate(value)
    try:
        key = jwk_.from_jwk(value) if isinstance(value, dict) else jwk_.from_pem(value)
        as_jwk = jwk_.to_jwk(key)
    except jwk_.JWKError as exc:
        raise InvalidKey(str(exc)) from exc
    if isinstance(value, dict) and CERTIFICATE_MEMBER in value:
        # A certificate registered by its thumbprint only (RFC 8705 section 2.2).
        x5t = value[CERTIFICATE_MEMBER]
        if not (isinstance(x5t, str) and _X5T.fullmatch(x5t)):
            raise InvalidKey("x5t#S256 must be a SHA-256 thumbprint in base64url (43 chars)")
        as_jwk[CERTIFICATE_MEMBER] = x5t
    return ParsedKey(key, as_jwk, jwk_.thumbprint(as_jwk), jwk_.algorithm_for(key))


def _parse_certificate(pem: str) -> ParsedKey:
    try:
        certificate = certificates.load_pem(pem)
        try:
            key = certificate.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InvalidKey("the certificate's key is not one credbroker reads") from exc
        if not isinstance(key, PublicKey):
            raise InvalidKey("only Ed25519, P-256 and RSA keys are accepted")
        as_jwk = jwk_.to_jwk(key)  # rejects other curves and short RSA keys
    except (certificates.CertificateError, jwk_.JWKError) as exc:
        raise InvalidKey(str(exc)) from exc
    as_jwk[CERTIFICATE_MEMBER] = certificates.x5t(certificate)
    not_after = int(certificate.not_valid_after_utc.timestamp())
    return ParsedKey(key, as_jwk, jwk_.thumbprint(as_jwk), jwk_.algorithm_for(key), not_after)


def all_keys(*, session: Session, device_id: str) -> list[CredentialKey]:
    query = select(CredentialKey).where(CredentialKey.device_id == device_id)
    return list(session.exec(query.order_by(col(CredentialKey.id))))
