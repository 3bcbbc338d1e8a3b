"""Client assertions (RFC 7523 section 3) signed with the device key."""

from __future__ import annotations

import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from device_sdk._keys import DevicePrivateKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60


def client_assertion(
    key: DevicePrivateKey, *, device_id: str, audience: str, now: float | None = None
) -> str:
    """A single-use assertion: iss = sub = device id, short-lived, unique jti.

    Args:
        key: the device's private key.
        device_id: the device's id.
        audience: the token endpoint URL (or the issuer).
        now: seconds since the epoch, already corrected for clock skew.
    """
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": device_id,
        "sub": device_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    return jwt.encode(claims, key, algorithm=alg)


def assertion_form(
    key: DevicePrivateKey, *, device_id: str, audience: str, now: float | None = None
) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, device_id=device_id, audience=audience, now=now),
    }
