"""DPoP proofs at the token endpoint (RFC 9449): checked as section 4.3 lists, each
failure an `invalid_dpop_proof` (section 5).

A proof is optional. A refresh family granted with one is bound to the proof's key
(its RFC 7638 thumbprint, `jkt`): each of its refreshes needs a proof by that key
(section 5), so a copy of the device's refresh token is no use without the key.
Access tokens stay Bearer tokens (MQTT brokers cannot check a proof): section 5 lets
the server bind the refresh token alone.

No `DPoP-Nonce` (section 8): freshness is `iat` within `WINDOW` and a single-use `jti`,
kept in the assertions' replay cache (`used_assertions`) until the proof is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from credbroker import jwk, jws
from provisioning.errors import InvalidDpopProof
from provisioning.grantstore import GrantStore
from provisioning.models.bounds import storable

PROOF_TYP = "dpop+jwt"
# Asymmetric only, never `none` or HS* (section 4.3 item 5): the algorithms of device
# credential keys (credbroker.jws), so that a device signs proofs with its own key.
ALGS = [name for names in jws.ALG_NAMES.values() for name in names]
WINDOW = 60  # seconds a proof is accepted after its `iat` (section 11.1), plus the leeway
MAX_JTI = 256
# Members of private or symmetric JWKs (RFC 7518 section 6): a proof carries a public key.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str  # RFC 7638 thumbprint of the key that signed the proof


@dataclass(frozen=True, slots=True)
class ProofPolicy:
    htu: str  # the token endpoint URL, as the issuer names it (the metadata's)
    leeway: int


def normalized_uri(uri: str) -> str:
    """RFC 9449 section 4.3 item 9: without query and fragment, with RFC 3986 section
    6.2.2.1 and 6.2.3 normalization (case of scheme and host, default port)."""
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise ValueError("no userinfo in a token endpoint URL")
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def verify(
    store: GrantStore, headers: Sequence[str], *, method: str, policy: ProofPolicy, now: int
) -> Proof | None:
    """The proof of the request's `DPoP` headers (None if it sent none), checked and
    its jti spent; `InvalidDpopProof` otherwise."""
    if not headers:
        return None
    if len(headers) != 1:  # item 1: "not more than one DPoP HTTP request header field"
        raise InvalidDpopProof("send one DPoP header")
    try:
        parsed = jws.parse(headers[0].strip())
    except jws.JWSError as exc:  # item 2
        raise InvalidDpopProof("DPoP proof is not a JWS") from exc
    jkt = _check_signature(parsed)
    _check_claims(parsed.payload, method, policy, now)
    # Section 11.1: each jti once, for as long as its proof is acceptable.
    key = f"dpop#{jkt}\n{parsed.payload['jti']}"  # `#` is in no device id: no assertion's
    if not store.consume_jti(key, int(parsed.payload["iat"]) + WINDOW + policy.leeway):
        raise InvalidDpopProof("DPoP proof was already used (replay)")
    return Proof(jkt)


def _check_signature(parsed: jws.Parsed) -> str:
    """Items 3 to 7: typ, an asymmetric alg, a public `jwk` that verifies the signature.
    The thumbprint of that key."""
    header = parsed.header
    if header.get("typ") != PROOF_TYP:  # item 4
        raise InvalidDpopProof(f"DPoP proof typ must be {PROOF_TYP}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGS:  # item 5
        raise InvalidDpopProof(f"DPoP proof alg must be one of {', '.join(ALGS)}")
    public_jwk = header.get("jwk")
    if not isinstance(public_jwk, dict):
        raise InvalidDpopProof("DPoP proof header needs the public key as jwk")
    if _PRIVATE_MEMBERS & public_jwk.keys():  # item 7
        raise InvalidDpopProof("DPoP proof jwk must not contain a private key")
    try:
        public = jwk.from_jwk(public_jwk)
        jws.verify_signature(alg, public, parsed.signing_input, parsed.signature)  # item 6
    except jwk.JWKError as exc:
        raise InvalidDpopProof("DPoP proof jwk is not a key we accept") from exc
    except jws.JWSError as exc:
        raise InvalidDpopProof("DPoP proof signature does not verify with its jwk") from exc
    return jwk.thumbprint(jwk.to_jwk(public))


def _check_claims(claims: dict[str, Any], method: str, policy: ProofPolicy, now: int) -> None:
    """Items 3, 8, 9 and 11, and a jti the replay cache can hold."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI or not storable(jti):
        raise InvalidDpopProof("DPoP proof jti is required")
    if claims.get("htm") != method:  # item 8
        raise InvalidDpopProof(f"DPoP proof htm must be {method}")
    htu = claims.get("htu")
    if not isinstance(htu, str) or not _same_uri(htu, policy.htu):  # item 9
        raise InvalidDpopProof(f"DPoP proof htu must be {policy.htu}")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise InvalidDpopProof("DPoP proof iat is required")
    if not now - WINDOW - policy.leeway <= iat <= now + policy.leeway:  # item 11
        raise InvalidDpopProof("DPoP proof iat is not recent")


def _same_uri(presented: str, expected: str) -> bool:
    try:
        return normalized_uri(presented) == normalized_uri(expected)
    except ValueError:  # a port that is not a number, say
        return False
