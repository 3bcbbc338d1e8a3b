"""Making and hashing secrets: fast SHA-256 for 256-bit random tokens, argon2 for
client secrets (which a person may have chosen or shortened)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_argon2 = PasswordHasher()
# A fixed hash to verify against when there is no device, so timing says nothing.
_DUMMY_HASH = _argon2.hash(secrets.token_urlsafe(16))


def new_token(prefix: str) -> str:
    """A 256-bit random token; the prefix tells a leaked secret's kind at a glance."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_secret(secret: str) -> str:
    return _argon2.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Constant work whether or not a hash exists."""
    try:
        return _argon2.verify(stored_hash or _DUMMY_HASH, secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
