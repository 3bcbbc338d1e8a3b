"""Proofs of possession for MQTT (README, Proof of possession on MQTT): the password
becomes `<access token>~<proof>`, the proof signed by the device key the token is
bound to (its `cnf.jkt`), fresh for every CONNECT."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from device_sdk._keys import DevicePrivateKey

SEPARATOR = "~"
PROOF_TYP = "pop+jwt"
DEFAULT_AUDIENCE = "mqtt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_audience(access_token: str) -> str:
    """The `aud` a JWT access token names (read, not verified: the broker verifies),
    else "mqtt" (a reference token is opaque)."""
    try:
        payload = access_token.split(".")[1]
        aud = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["aud"]
    except (IndexError, KeyError, TypeError, ValueError):
        return DEFAULT_AUDIENCE
    if isinstance(aud, list) and aud and isinstance(aud[0], str):
        return aud[0]
    return aud if isinstance(aud, str) else DEFAULT_AUDIENCE


def proof_of_possession(
    key: DevicePrivateKey, *, access_token: str, audience: str, now: float | None = None
) -> str:
    """A single-use proof that this device holds `key`, for one CONNECT with `access_token`.

    Args:
        key: the device's private key (the one its token was granted for).
        access_token: the token the proof goes with (its SHA-256 is `ath`, RFC 9449).
        audience: the broker's audience, the token's own `aud` by default.
        now: seconds since the epoch, already corrected for clock skew.
    """
    claims = {
        "ath": _b64(hashlib.sha256(access_token.encode("ascii")).digest()),
        "aud": audience,
        "iat": int(time.time() if now is None else now),
        "jti": uuid.uuid4().hex,
    }
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": PROOF_TYP})


def password_with_proof(
    key: DevicePrivateKey,
    access_token: str,
    *,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """The MQTT password of a proof-of-possession fleet: `<token>~<proof>`."""
    proof = proof_of_possession(
        key,
        access_token=access_token,
        audience=audience or token_audience(access_token),
        now=now,
    )
    return access_token + SEPARATOR + proof
