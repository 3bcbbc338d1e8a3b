"""Fleet CAs: registered with proof of possession of the CA's key, as AWS IoT and Azure
DPS ask, and the certificates they issue checked as device credentials.

The proof is a verification certificate that the CA's key signed and whose subject CN
is the verification code: a MAC, under a key derived from the master key, of the fleet
and the CA certificate's thumbprint. Only this server can make a code, each is good for
one fleet and one CA, and nothing is stored until the proof is in.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from credbroker import certificates
from credbroker.jws import b64url_encode


class VerificationCodes:
    def __init__(self, master_key: bytes) -> None:
        info = b"credbroker fleet CA verification codes"
        self._key = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(master_key)

    def code(self, fleet: str, ca_id: str) -> str:
        mac = hmac.new(self._key, f"{fleet}\0{ca_id}".encode(), hashlib.sha256).digest()
        return b64url_encode(mac[:20])  # 160 bits: a CN of 27 characters


def ca_id(certificate: x509.Certificate) -> str:
    """A CA's id: its certificate's `x5t#S256`."""
    return certificates.x5t(certificate)


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except (x509.ExtensionNotFound, ValueError):  # none, or extensions that do not parse
        return False
    return constraints.value.ca
