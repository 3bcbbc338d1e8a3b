"""Client assertions, RFC 7523 section 3 (private_key_jwt, OpenID Connect Core 9).

The algorithm is the registered key's, never the header's: an Ed25519 key verifies
only EdDSA (by that name or RFC 9864's `Ed25519`) and a P-256 key only ES256 (RFC 8725
section 2.1); a header naming another is told so.

Lifetime: `exp` at most `max_lifetime` (3600 s) ahead of now and of `iat` (RFC 7523
section 3 items 4 to 6 leave the bound to the server). One hour is what common clients
send by default (authlib's `PrivateKeyJWT`: `exp = iat + 3600`); the replay cache keeps
each jti until its `exp` (item 7), so that bound is also how long a jti is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from credbroker import jwk, jws
from credbroker.claims import is_device_id
from provisioning.errors import InvalidClient
from provisioning.grantstore import GrantStore
from provisioning.models.bounds import storable


@dataclass(frozen=True)
class AssertionPolicy:
    audiences: frozenset[str]  # the issuer and the token endpoint URL
    max_lifetime: int
    leeway: int


@lru_cache(maxsize=32)  # a grant reads its assertion three times: one parse
def _parsed(assertion: str) -> jws.Parsed:
    """The parsed assertion, shared by the callers of one grant: read, never changed."""
    return jws.parse(assertion)


def claimed_device(assertion: str) -> str | None:
    """The unverified `iss`, only to pick keys and count failures per client."""
    try:
        iss = _parsed(assertion).payload.get("iss")
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
    iat = claims.get("iat")
    if iat is not None and exp - iat > policy.max_lifetime:
        raise InvalidClient(f"assertion lives more than {policy.max_lifetime} s (exp - iat)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256 or not storable(jti):
        raise InvalidClient("assertion jti is required")


def verify_assertion(
    *, store: GrantStore, assertion: str, device_id: str, policy: AssertionPolicy, now: int
) -> str:
    """Check signature, claims and single use; return the proven key's thumbprint."""
    try:
        parsed = _parsed(assertion)
    except jws.JWSError as exc:
        raise InvalidClient("malformed client assertion") from exc
    alg, kid = parsed.header.get("alg"), parsed.header.get("kid")
    keys = [k for k in store.credential_keys(device_id, now) if kid is None or kid == k[0]]
    proven = None
    for key_id, key_alg, key_jwk in keys:
        if alg not in jws.ALG_NAMES.get(key_alg, ()):
            continue
        try:
            public = jwk.from_jwk_cached(key_jwk)
            jws.verify_signature(alg, public, parsed.signing_input, parsed.signature)
        except (jws.JWSError, jwk.JWKError):
            continue
        proven = key_id
        break
    if proven is None:
        if keys and not any(alg in jws.ALG_NAMES.get(k[1], ()) for k in keys):
            which = "this key" if kid is not None else "this device's keys"
            raise InvalidClient(f"unsupported algorithm {str(alg)[:32]!r} for {which}")
        raise InvalidClient("client assertion signature does not verify with a device key")
    claims = parsed.payload
    _check_claims(claims, device_id, policy, now)
    # RFC 7523 section 3 item 7: a jti is accepted once, kept until the assertion expires.
    if not store.consume_jti(f"{device_id}\n{claims['jti']}", int(claims["exp"]) + policy.leeway):
        raise InvalidClient("client assertion was already used (replay)")
    return proven
