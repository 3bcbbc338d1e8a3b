"""Compact JWS (RFC 7515) parsing, signing and verification, kept lean.

Only what credbroker needs: ES256 (RFC 7518 section 3.4) and EdDSA with Ed25519
(RFC 8037), also by its fully-specified name `Ed25519` (RFC 9864 section 2.2). The
algorithm always comes from the caller, never from the header (RFC 8725 section 2.1);
the header is only read for `kid` and `typ`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

# RSA keys verify only (device credential keys for RS256, README, Token formats).
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
MAX_TOKEN_CHARS = 8192
# The `alg` names a key of each kind verifies, by its `jwk.algorithm_for` name: RFC 9864
# deprecates the polymorphic "EdDSA" for "Ed25519", and clients send either.
ALG_NAMES: dict[str, tuple[str, ...]] = {
    "EdDSA": ("EdDSA", "Ed25519"),
    "ES256": ("ES256",),
    "RS256": ("RS256",),
}
_EDDSA = ALG_NAMES["EdDSA"]


@cache
def _kind(key_type: type) -> str | None:
    """The kind of a key class, found once: "ec" or "ed25519" (public keys), "ec-private"
    or "ed25519-private", else None. `isinstance` against cryptography's key ABCs costs
    about 2 us a call (`ABCMeta.__instancecheck__`): 5% of a verification."""
    for kind, abc in (
        ("ec", ec.EllipticCurvePublicKey),
        ("ed25519", ed25519.Ed25519PublicKey),
        ("ec-private", ec.EllipticCurvePrivateKey),
        ("ed25519-private", ed25519.Ed25519PrivateKey),
        ("rsa", rsa.RSAPublicKey),
    ):
        if issubclass(key_type, abc):
            return kind
    return None


def _is_p256(key: object) -> bool:
    """A P-256 key, public or private (one class holds every curve: `curve` tells)."""
    return bool(key.curve.name == "secp256r1")  # type: ignore[attr-defined]


class JWSError(Exception):
    """The compact serialization is malformed or its signature does not verify."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Parsed:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Strict base64url without padding (RFC 7515 section 2): any other character is an
    error. The one decoder of the project, on every CONNECT: `a2b_base64`'s strict mode
    checks the alphabet once `-_` are mapped, so what it must not see is the standard
    alphabet's own `+/` or padding."""
    if len(segment) % 4 == 1 or "+" in segment or "/" in segment or "=" in segment:
        raise JWSError("malformed")
    try:
        return binascii.a2b_base64(
            segment.replace("-", "+").replace("_", "/") + "=" * (-len(segment) % 4),
            strict_mode=True,
        )
    except (binascii.Error, ValueError) as exc:  # ValueError: not ASCII
        raise JWSError("malformed") from exc


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except orjson.JSONDecodeError as exc:
        raise JWSError("malformed") from exc
    if not isinstance(value, dict):
        raise JWSError("malformed")
    return value


def parse(token: str) -> Parsed:
    """Split and decode a compact JWS without checking its signature."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise JWSError("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise JWSError("malformed")
    header_b64, payload_b64, sig_b64 = parts
    header = _json_object(header_b64)
    if "crit" in header:
        raise JWSError("unsupported_header")  # RFC 7515 section 4.1.11: we know no extension
    return Parsed(
        header=header,
        payload=_json_object(payload_b64),
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=b64url_decode(sig_b64),
    )


def verify_es256(key: PublicKey, signing_input: bytes, signature: bytes) -> None:
    """ES256 (RFC 7518 section 3.4): the signature is r || s, 32 bytes each."""
    if len(signature) != 64 or _kind(type(key)) != "ec":
        raise JWSError("bad_signature")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        cast(ec.EllipticCurvePublicKey, key).verify(der, signing_input, _ECDSA_SHA256)
    except InvalidSignature as exc:
        raise JWSError("bad_signature") from exc


def verify_signature(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> None:
    """Check `signature` for the pinned `alg`; the key type must fit the algorithm."""
    try:
        kind = _kind(type(key))
        if alg == "ES256" and kind == "ec":
            if not _is_p256(key):
                raise JWSError("bad_signature")
            verify_es256(key, signing_input, signature)
        elif alg in _EDDSA and kind == "ed25519":
            cast(ed25519.Ed25519PublicKey, key).verify(signature, signing_input)
        elif alg == "RS256" and kind == "rsa":  # RFC 7518 section 3.3
            rsa_key = cast(rsa.RSAPublicKey, key)
            rsa_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise JWSError("bad_signature")
    except InvalidSignature as exc:
        raise JWSError("bad_signature") from exc


def sign(header: dict[str, Any], payload: dict[str, Any], key: PrivateKey) -> str:
    """Sign with ES256 (P-256 key) or EdDSA/Ed25519 (Ed25519 key); `header["alg"]` must
    agree."""
    signing_input = (
        b64url_encode(orjson.dumps(header)) + "." + b64url_encode(orjson.dumps(payload))
    ).encode("ascii")
    kind = _kind(type(key))
    if kind == "ec-private" and header.get("alg") == "ES256":
        r, s = decode_dss_signature(
            cast(ec.EllipticCurvePrivateKey, key).sign(signing_input, _ECDSA_SHA256)
        )
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif kind == "ed25519-private" and header.get("alg") in _EDDSA:
        signature = cast(ed25519.Ed25519PrivateKey, key).sign(signing_input)
    else:
        raise JWSError("unsupported_key")
    return signing_input.decode("ascii") + "." + b64url_encode(signature)
