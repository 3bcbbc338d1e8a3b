"""Public keys as JWK (RFC 7517/7518/8037) and their RFC 7638 thumbprints.

Only the kinds of device credential key: Ed25519 (`OKP`), P-256 (`EC`), and RSA of
at least 2048 bits (`RSA`, for RS256 device-signed tokens, README, Token formats).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from credbroker.jws import JWSError, PublicKey, b64url_decode, b64url_encode

MIN_RSA_BITS = 2048


class JWKError(ValueError):
    """Not an Ed25519, P-256 or RSA public key in a form we accept."""


def _uint(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _rsa_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    if key.key_size < MIN_RSA_BITS:
        raise JWKError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    numbers = key.public_numbers()
    return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}


def to_jwk(key: PublicKey) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        return _rsa_jwk(key)
    raise JWKError("only Ed25519, P-256 and RSA keys are accepted")


def _member(jwk: dict[str, Any], name: str) -> bytes:
    """A base64url member (RFC 7518 section 6.2.1.2, RFC 8037 section 2)."""
    value = jwk.get(name)
    if not isinstance(value, str):
        raise JWKError(f"{name!r} must be a base64url string")
    try:
        return b64url_decode(value)
    except JWSError as exc:
        raise JWKError(f"{name!r} is not base64url") from exc


def from_jwk(jwk: dict[str, Any]) -> PublicKey:
    if "d" in jwk:
        raise JWKError("this is a private key: only the public half may leave the device")
    try:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(_member(jwk, "x"))
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            x, y = _member(jwk, "x"), _member(jwk, "y")
            if len(x) != 32 or len(y) != 32:
                raise JWKError("P-256 coordinates are 32 bytes")
            point = b"\x04" + x + y
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if jwk.get("kty") == "RSA":
            n = int.from_bytes(_member(jwk, "n"), "big")
            e = int.from_bytes(_member(jwk, "e"), "big")
            key = rsa.RSAPublicNumbers(e, n).public_key()
            _rsa_jwk(key)  # rejects short keys
            return key
    except ValueError as exc:  # JWKError too: one "malformed JWK" message
        raise JWKError(f"malformed JWK: {exc}") from exc
    raise JWKError("only Ed25519 (OKP), P-256 (EC) and RSA JWKs are accepted")


def from_jwk_cached(jwk: dict[str, Any]) -> PublicKey:
    """`from_jwk`, remembering the keys of recent calls: loading a P-256 point checks
    that it is on the curve, about 10 us on every grant of a device that has one."""
    try:
        return _from_items(tuple(sorted(jwk.items())))
    except TypeError:  # a member that is not a string: no key, and not hashable
        return from_jwk(jwk)


@lru_cache(maxsize=4096)
def _from_items(items: tuple[tuple[str, Any], ...]) -> PublicKey:
    return from_jwk(dict(items))


def from_pem(pem: str) -> PublicKey:
    if "PRIVATE KEY" in pem:
        raise JWKError("this is a private key: only the public half may leave the device")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise JWKError("not a PEM public key") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise JWKError("only Ed25519, P-256 and RSA keys are accepted")
    to_jwk(key)  # rejects other curves and short RSA keys
    return key


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    required: tuple[str, ...] = {
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }.get(jwk["kty"], ("crv", "kty", "x", "y"))
    canonical = orjson.dumps({name: jwk[name] for name in required})
    return b64url_encode(hashlib.sha256(canonical).digest())


def algorithm_for(key: PublicKey) -> str:
    """The one algorithm a key is used with (pinned: never read from a token)."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    return "EdDSA" if isinstance(key, ed25519.Ed25519PublicKey) else "ES256"
