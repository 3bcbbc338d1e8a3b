"""The verifier's trust store on the database, with a small cache of public keys.

Public signing keys are immutable per kid, so they are cached (and forgotten on
rotation or deletion); a miss is remembered briefly (negative cache) so a flood of
unknown kids costs no queries. Device state and the deny list are read fresh: in this
process they change through the API, and a stale answer would keep a revoked token alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from credbroker.claims import parse_kid
from credbroker.jws import PublicKey
from credbroker.verifier import DeviceState, StoreUnavailable
from provisioning.models import Device, Revocation, SigningKey

NEGATIVE_TTL = 5.0
_MAX_ENTRIES = 100_000


class DatabaseTrustStore:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._keys: dict[str, tuple[PublicKey, int | None]] = {}
        self._missing: dict[str, float] = {}

    def signing_key(self, kid: str) -> PublicKey | None:
        now = self._clock()
        cached = self._keys.get(kid)
        if cached is None:
            if self._missing.get(kid, 0.0) > now or parse_kid(kid) is None:
                return None
            cached = self._load_key(kid)
            if cached is None:
                if len(self._missing) > _MAX_ENTRIES:
                    self._missing.clear()
                self._missing[kid] = now + NEGATIVE_TTL
                return None
        key, verify_until = cached
        return key if verify_until is None or verify_until > now else None

    def _load_key(self, kid: str) -> tuple[PublicKey, int | None] | None:
        query = select(SigningKey.public_der, SigningKey.verify_until).where(  # type: ignore[call-overload]
            SigningKey.kid == kid
        )
        try:
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        if row is None:
            return None
        key = serialization.load_der_public_key(row[0])
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            return None  # the verifier's ES256 path trusts that keys are P-256
        entry = (key, row[1])
        if len(self._keys) > _MAX_ENTRIES:
            self._keys.clear()
        self._keys[kid] = entry
        return entry

    def forget(self, device_id: str) -> None:
        """Drop cached keys of a device after rotation or deletion."""
        for kid in [k for k in self._keys if k.rpartition("#")[0] == device_id]:
            del self._keys[kid]
        self._missing.clear()

    def device_state(self, device_id: str) -> DeviceState | None:
        query = select(Device.status, Device.tokens_valid_after).where(  # type: ignore[call-overload]
            Device.device_id == device_id
        )
        try:
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return None if row is None else DeviceState(status=row[0], tokens_valid_after=row[1])

    def is_jti_revoked(self, jti: str) -> bool:
        query = select(Revocation.id).where(Revocation.jti == jti).limit(1)  # type: ignore[call-overload]
        try:
            with self._engine.connect() as conn:
                return conn.execute(query).first() is not None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
