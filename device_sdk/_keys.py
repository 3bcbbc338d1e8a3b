"""Device key pairs: generated on the device, the private half never leaves it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

DevicePrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
KeyAlgorithm = Literal["ed25519", "es256"]

PRIVATE_KEY_FILE = "device.key"
PUBLIC_KEY_FILE = "device.pub"


def generate_key(alg: KeyAlgorithm = "ed25519") -> DevicePrivateKey:
    """A new device key: Ed25519 (default) or ECDSA P-256."""
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key algorithm {alg!r}")


def public_pem(key: DevicePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def save_key_pair(key: DevicePrivateKey, directory: str | Path) -> tuple[Path, Path]:
    """Write `device.key` (PKCS#8 PEM, mode 0600) and `device.pub` into `directory`.

    Args:
        key: the private key to save.
        directory: created if missing.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the first byte: no window in which others can read it.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(private_path, 0o600)
    public_path.write_text(public_pem(key))
    return private_path, public_path


def load_private_key(path: str | Path) -> DevicePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ECDSA device keys must be P-256")
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("device keys are Ed25519 or P-256")
    return key
