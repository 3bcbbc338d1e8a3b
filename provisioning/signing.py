"""Per-device ES256 signing keys: made, sealed, rotated, and loaded for signing.

`kid = "{device_id}#{version}"`. The private half is stored only sealed with AES-256-GCM
under the master key, the kid as associated data, so a sealed key cannot be moved to
another device's row. Rotation makes version n+1; version n keeps verifying until every
token it signed has expired (`verify_until`), or at once with `immediate`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, col, select

from credbroker import jwk
from credbroker.claims import MAX_TOKEN_TTL, SIGNING_ALG, kid_for
from credbroker.trust import Change
from provisioning.masterkey import Sealer
from provisioning.models import Device, SigningKey

_CACHE_SIZE = 4096


class Keyring:
    """Seals new keys and opens stored ones, keeping recently used ones loaded."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer
        self.sealer = sealer  # also seals fleet CA keys (provisioning.store.certificates)
        self._loaded: OrderedDict[str, ec.EllipticCurvePrivateKey] = OrderedDict()

    def new_key(self, *, session: Session, device: Device, now: int) -> SigningKey:
        device.signing_key_version += 1
        kid = kid_for(device.device_id, device.signing_key_version)
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        row = SigningKey(
            kid=kid,
            device_id=device.device_id,
            version=device.signing_key_version,
            public_der=private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            private_enc=self._sealer.seal(der, aad=kid),
            created_at=now,
        )
        session.add(device)
        session.add(row)
        return row

    def rotate(
        self, *, session: Session, device: Device, now: int, leeway: int, immediate: bool
    ) -> SigningKey:
        """Retire the live keys: at once, or once the tokens they signed have expired."""
        for old in live_keys(session=session, device_id=device.device_id, now=now):
            old.verify_until = now if immediate else now + MAX_TOKEN_TTL + leeway
            session.add(old)
        return self.new_key(session=session, device=device, now=now)

    def private_key(
        self, kid: str, load_sealed: Callable[[str], bytes | None]
    ) -> ec.EllipticCurvePrivateKey:
        """The opened private key for `kid`; `load_sealed` fetches it on a cache miss."""
        key = self._loaded.get(kid)
        if key is not None:
            self._loaded.move_to_end(kid)
            return key
        sealed = load_sealed(kid)
        if sealed is None:
            raise LookupError(f"signing key {kid} is missing")
        loaded = serialization.load_der_private_key(
            self._sealer.open(sealed, aad=kid), password=None
        )
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise LookupError(f"signing key {kid} is not P-256")
        self._loaded[kid] = loaded
        if len(self._loaded) > _CACHE_SIZE:
            self._loaded.popitem(last=False)
        return loaded

    def changed(self, changes: list[Change]) -> None:
        """A deleted device may come back under the same id, with new keys of the same
        kids: opened keys of devices whose standing changed are opened again."""
        devices = {c.device_id for c in changes if c.jti is None}
        for kid in [k for k in self._loaded if k.rpartition("#")[0] in devices]:
            del self._loaded[kid]


def public_jwk(row: SigningKey) -> dict[str, str]:
    """The public half as a JWK for JWKS documents (RFC 7517 section 5)."""
    public = serialization.load_der_public_key(row.public_der)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise LookupError(f"signing key {row.kid} is not P-256")
    return {**jwk.to_jwk(public), "kid": row.kid, "alg": SIGNING_ALG, "use": "sig"}


def live_keys(*, session: Session, device_id: str, now: int) -> list[SigningKey]:
    query = (
        select(SigningKey)
        .where(SigningKey.device_id == device_id)
        .where((col(SigningKey.verify_until).is_(None)) | (col(SigningKey.verify_until) > now))
        .order_by(col(SigningKey.version))
    )
    return list(session.exec(query))
