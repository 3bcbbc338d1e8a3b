"""The master key and AES-256-GCM sealing of signing keys (kid as associated data)."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from provisioning.errors import ProvisioningError

NONCE_BYTES = 12


class MasterKeyError(ProvisioningError):
    title = "Master key unusable"


def _decode(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError("CREDBROKER_MASTER_KEY is not base64") from exc
    if len(key) != 32:
        raise MasterKeyError("the master key must be 32 bytes (base64 of 32 bytes)")
    return key


def load_or_create(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else `master.key` in the data directory, made once (0600)."""
    if configured:
        return _decode(configured)
    path = data_dir / "master.key"
    if path.exists():
        return _decode(path.read_text())
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    encoded = base64.b64encode(secrets.token_bytes(32)).decode()
    # O_EXCL: two processes starting at once never overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(encoded + "\n")
    return _decode(encoded)


class Sealer:
    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(master_key)

    def seal(self, plaintext: bytes, *, aad: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad.encode())

    def open(self, sealed: bytes, *, aad: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad.encode())
        except InvalidTag as exc:
            raise MasterKeyError("a signing key does not open under this master key") from exc
