"""DPoP proofs (RFC 9449 section 4) signed with the device key: sent on every token
request when the server advertises the key's algorithm, they bind the refresh token to
the key, so a copy of the state file without the key cannot refresh."""

from __future__ import annotations

import base64
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from device_sdk._keys import DevicePrivateKey

PROOF_TYP = "dpop+jwt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def algorithm(key: DevicePrivateKey) -> str:
    return "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"


def public_jwk(key: DevicePrivateKey) -> dict[str, str]:
    """The public half as a JWK (RFC 7518 section 6.2, RFC 8037 section 2)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    numbers: ec.EllipticCurvePublicNumbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def dpop_proof(key: DevicePrivateKey, *, htm: str, htu: str, now: float | None = None) -> str:
    """A single-use proof for one request.

    Args:
        key: the device's private key; its public half goes in the `jwk` header.
        htm: the request's method.
        htu: the request's URL, as the server names it (its metadata's token_endpoint).
        now: seconds since the epoch, already corrected for clock skew.
    """
    claims = {
        "jti": uuid.uuid4().hex,
        "htm": htm,
        "htu": htu,
        "iat": int(time.time() if now is None else now),
    }
    headers = {"typ": PROOF_TYP, "jwk": public_jwk(key)}
    return jwt.encode(claims, key, algorithm=algorithm(key), headers=headers)
