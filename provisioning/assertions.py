"""Client assertions, RFC 7523 section 3 (private_key_jwt, OpenID Connect Core 9).

The algorithm is the registered key's, never the header's: an Ed25519 key verifies
only EdDSA and a P-256 key only ES256 (RFC 8725 section 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from credbroker import jws
from credbroker.claims import is_device_id
from provisioning import credentials
from provisioning.errors import InvalidClient
from provisioning.models import UsedAssertion


@dataclass(frozen=True)
class AssertionPolicy:
    audiences: frozenset[str]  # the issuer and the token endpoint URL
    max_lifetime: int
    leeway: int


def claimed_device(assertion: str) -> str | None:
    """The unverified `iss`, only to pick keys and count failures per client."""
    try:
        iss = jws.parse(assertion).payload.get("iss")
    except jws.JWSError:
        return None
    return iss if isinstance(iss, str) and is_device_id(iss) else None


def _check_claims(
    claims: dict[str, Any], device_id: str, policy: AssertionPolicy, now: int
) -> None:
    if claims.get("iss") != device_id or claims.get("sub") != device_id:
        raise InvalidClient("assertion iss and sub must both be the device id")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in policy.audiences for a in auds):
        raise InvalidClient("assertion aud must be the issuer or the token endpoint")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidClient("assertion exp is required")
    if exp <= now - policy.leeway:
        raise InvalidClient("assertion expired")
    if exp > now + policy.max_lifetime + policy.leeway:
        raise InvalidClient(f"assertion exp is more than {policy.max_lifetime} s ahead")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value > now + policy.leeway
        ):
            raise InvalidClient(f"assertion {name} is in the future or malformed")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidClient("assertion jti is required")


def verify_assertion(
    *, session: Session, assertion: str, device_id: str, policy: AssertionPolicy, now: int
) -> str:
    """Check signature, claims and single use; return the proven key's thumbprint."""
    try:
        parsed = jws.parse(assertion)
    except jws.JWSError as exc:
        raise InvalidClient("malformed client assertion") from exc
    alg = parsed.header.get("alg")
    kid = parsed.header.get("kid")
    keys = [
        k
        for k in credentials.usable_keys(session=session, device_id=device_id, now=now)
        if k.alg == alg and (kid is None or kid == k.kid)
    ]
    proven = None
    for key in keys:
        try:
            public = credentials.parse_public_key(key.jwk).key
            jws.verify_signature(key.alg, public, parsed.signing_input, parsed.signature)
        except jws.JWSError:
            continue
        proven = key.kid
        break
    if proven is None:
        raise InvalidClient("client assertion signature does not verify with a device key")
    _check_claims(parsed.payload, device_id, policy, now)
    _consume_jti(session, device_id, parsed.payload["jti"], int(parsed.payload["exp"]), policy, now)
    return proven


def _consume_jti(
    session: Session, device_id: str, jti: str, exp: int, policy: AssertionPolicy, now: int
) -> None:
    """RFC 7523 section 3 item 7: a jti is accepted once, kept until the assertion expires."""
    key = f"{device_id}\n{jti}"
    replay = InvalidClient("client assertion was already used (replay)")
    if session.get(UsedAssertion, key) is not None:
        raise replay
    session.add(UsedAssertion(key=key, expires_at=exp + policy.leeway))
    try:
        session.flush()  # a concurrent twin loses here; the request's transaction rolls back
    except IntegrityError as exc:
        raise replay from exc
