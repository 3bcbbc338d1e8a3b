"""The verifier's trust store on the database: signing keys, device state and the jti
deny list, cached in memory.

Plain SQL (no SQLModel: the broker runs without it). Brokers cache device state for
`device_ttl` and keep the deny list in memory, fed by the revocation log (`read_log`,
every second) and, in the embedded shape, by the API at once (`apply`). The API itself
reads device state and the deny list fresh (`device_ttl=0`, `deny_list_in_memory=False`):
a stale answer there would keep a revoked token alive in introspection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from credbroker.claims import parse_kid
from credbroker.jws import PublicKey
from credbroker.verifier import DeviceState, StoreUnavailable

DEVICE_TTL = 30.0  # device state is re-read at most this often even without events
NEGATIVE_TTL = 5.0
MAX_ENTRIES = 100_000

_KEY = text("SELECT public_der, verify_until FROM signing_keys WHERE kid = :kid")
_DEVICE = text("SELECT status, tokens_valid_after FROM devices WHERE device_id = :id")
_JTI = text("SELECT id FROM revocations WHERE jti = :jti LIMIT 1")
_DENIED = text(
    "SELECT id, kind, device_id, jti FROM revocations WHERE id > :after AND "
    "(jti IS NULL OR expires_at IS NULL OR expires_at > :now) ORDER BY id"
)


@dataclass(frozen=True, slots=True)
class Revoked:
    """One entry of the revocation log: a device-wide change, or a single token."""

    device_id: str
    jti: str | None


class CachedTrustStore:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float] = time.time,
        *,
        device_ttl: float = DEVICE_TTL,
        deny_list_in_memory: bool = True,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._device_ttl = device_ttl
        self._deny_list_in_memory = deny_list_in_memory
        self._keys: dict[str, tuple[PublicKey, int | None] | None] = {}
        self._key_checked: dict[str, float] = {}
        self._devices: dict[str, tuple[DeviceState | None, float]] = {}
        self._denied: set[str] = set()
        self._last_revocation = 0

    def signing_key(self, kid: str) -> PublicKey | None:
        now = self._clock()
        if kid not in self._keys or (
            self._keys[kid] is None and self._key_checked[kid] + NEGATIVE_TTL < now
        ):
            if parse_kid(kid) is None:
                return None
            if len(self._keys) > MAX_ENTRIES:  # attacker-chosen kids must not grow memory
                self._keys.clear()
                self._key_checked.clear()
            self._keys[kid] = self._load_key(kid)
            self._key_checked[kid] = now
        entry = self._keys[kid]
        if entry is None:
            return None
        key, verify_until = entry
        return key if verify_until is None or verify_until > now else None

    def device_state(self, device_id: str) -> DeviceState | None:
        now = self._clock()
        cached = self._devices.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        row = self._query(_DEVICE, id=device_id)
        state = None if row is None else DeviceState(status=row[0], tokens_valid_after=row[1])
        if self._device_ttl > 0:
            if len(self._devices) > MAX_ENTRIES:
                self._devices.clear()
            self._devices[device_id] = (state, now + self._device_ttl)
        return state

    def is_jti_revoked(self, jti: str) -> bool:
        if self._deny_list_in_memory:
            return jti in self._denied
        return self._query(_JTI, jti=jti) is not None

    def apply(self, revoked: Revoked) -> None:
        """Forget what a revocation made stale: the device's state and its keys."""
        self._devices.pop(revoked.device_id, None)
        for kid in [k for k in self._keys if k.rpartition("#")[0] == revoked.device_id]:
            del self._keys[kid]
        if revoked.jti:
            self._denied.add(revoked.jti)

    def read_log(self) -> list[Revoked]:
        """New entries of the revocation log, not yet applied: safe in a worker thread,
        since it touches no cache (apply them on the thread that reads the caches)."""
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    _DENIED, {"after": self._last_revocation, "now": int(self._clock())}
                ).all()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        found = []
        for row_id, _kind, device_id, jti in rows:
            self._last_revocation = max(self._last_revocation, row_id)
            found.append(Revoked(device_id, jti))
        return found

    def _load_key(self, kid: str) -> tuple[PublicKey, int | None] | None:
        row = self._query(_KEY, kid=kid)
        if row is None:
            return None
        key = serialization.load_der_public_key(row[0])
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            return None
        return key, row[1]

    def _query(self, statement: object, **params: object) -> tuple[Any, ...] | None:
        try:
            with self._engine.connect() as conn:
                row = conn.execute(statement, params).first()  # type: ignore[call-overload]
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return None if row is None else tuple(row)
