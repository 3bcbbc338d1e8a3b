"""Device credential keys: parsing what operators send, and the keys a device may prove."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from credbroker import jwk as jwk_
from credbroker.jws import PublicKey
from provisioning.errors import InvalidKey
from provisioning.models import CredentialKey

MAX_KEYS_PER_DEVICE = 16


@dataclass(frozen=True)
class ParsedKey:
    key: PublicKey
    jwk: dict[str, str]
    kid: str  # RFC 7638 thumbprint, also the `cnf.jkt` of tokens proven with this key
    alg: str


def parse_public_key(value: str | dict[str, Any]) -> ParsedKey:
    """A PEM (SubjectPublicKeyInfo) or JWK public key, Ed25519 or P-256 only."""
    try:
        key = jwk_.from_jwk(value) if isinstance(value, dict) else jwk_.from_pem(value)
        as_jwk = jwk_.to_jwk(key)
    except jwk_.JWKError as exc:
        raise InvalidKey(str(exc)) from exc
    return ParsedKey(key, as_jwk, jwk_.thumbprint(as_jwk), jwk_.algorithm_for(key))


def all_keys(*, session: Session, device_id: str) -> list[CredentialKey]:
    query = select(CredentialKey).where(CredentialKey.device_id == device_id)
    return list(session.exec(query.order_by(col(CredentialKey.id))))
