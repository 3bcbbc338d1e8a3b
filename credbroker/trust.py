"""The verifier's trust store on the database: signing keys, device state and the jti
deny list, cached in memory; and the changes of standing that make those caches stale.

Plain SQL through SQLAlchemy Core (no SQLModel: the standalone broker runs without it).
Every cached answer has a bound in time (`STANDING_TTL`) and is dropped at once by
`apply` when its device's standing changes: in-process announcements and the revocation
log (read by `read_log` every second) both end there. Brokers also keep the deny list in
memory, fed by the log. The API reads device state and the deny list fresh
(`device_ttl=0`, `deny_list_in_memory=False`): introspection sees a revocation at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from credbroker.claims import expand_filters, kid_for, parse_kid
from credbroker.database import Sql
from credbroker.jwk import JWKError, from_jwk_cached
from credbroker.jws import PublicKey
from credbroker.verifier import CertificateHolder, DeviceState, Signer, StoreUnavailable

STANDING_TTL = 30.0  # a cached key or device state is read again at least this often
NEGATIVE_TTL = 5.0
MAX_ENTRIES = 100_000
MAX_LEEWAY = 300  # the settings' bound: a deny-listed jti is dropped this long after exp
_FOREVER = 2**62

# Read on every verification that misses a cache (the API's, which keeps none): plain SQL.
_KEY = Sql("SELECT public_der, verify_until FROM signing_keys WHERE kid = ?")
_DEVICE = Sql("""
    SELECT d.status, d.tokens_valid_after, f.proof_of_possession
    FROM devices AS d JOIN fleets AS f ON f.name = d.fleet WHERE d.device_id = ?""")
_JTI = Sql("SELECT id FROM revocations WHERE jti = ? LIMIT 1")
_REFERENCE = Sql("SELECT claims, kid FROM reference_tokens WHERE token_hash = ?")
_SIGNER = Sql("""
    SELECT d.signing_key_version, d.acl_publish, d.acl_subscribe,
           f.name, f.acl_publish, f.acl_subscribe, f.audience, f.iot_core_client_ids
    FROM devices AS d JOIN fleets AS f ON f.name = d.fleet
    WHERE d.device_id = ? AND f.token_format = 'device-signed'""")
_PROOF_KEY = Sql("""
    SELECT alg, jwk, expires_at FROM credential_keys
    WHERE device_id = ? AND kid = ? AND (expires_at IS NULL OR expires_at > ?)""")
_CREDENTIAL_KEYS = Sql("""
    SELECT alg, jwk FROM credential_keys
    WHERE device_id = ? AND (expires_at IS NULL OR expires_at > ?)""")
_HOLDER = Sql("""
    SELECT d.signing_key_version, d.acl_publish, d.acl_subscribe,
           f.name, f.acl_publish, f.acl_subscribe
    FROM devices AS d JOIN fleets AS f ON f.name = d.fleet
    WHERE d.device_id = ? AND f.certificate_login""")
# Its CAs an operator registered: credbroker's own CA vouches only for the certificates
# on record (`_ISSUED`), as at the token endpoint.
_FLEET_CAS = Sql("SELECT certificate FROM fleet_cas WHERE fleet = ? AND NOT managed ORDER BY id")
_ISSUED = Sql("""
    SELECT x5t FROM device_certificates
    WHERE device_id = ? AND revoked_at IS NULL AND not_after > ?""")
# A fleet entry (a fleet-wide logout, or a re-check of its certificate logins) stands for
# every device of its fleet: one row each.
_LOG = text(
    "SELECT r.id, COALESCE(d.device_id, r.device_id), r.jti, r.expires_at FROM revocations AS r "
    "LEFT JOIN devices AS d ON r.fleet IS NOT NULL AND d.fleet = r.fleet "
    "WHERE (r.id > :after OR r.id IN :gaps) "
    "AND (r.jti IS NULL OR r.expires_at IS NULL OR r.expires_at > :now) ORDER BY r.id"
).bindparams(bindparam("gaps", expanding=True))
# Ids come from a sequence when a row is inserted, but rows become visible when their
# transaction commits: on PostgreSQL, entry 10 may appear after 11 was read. Ids skipped
# by the cursor are asked for again, until they appear or this long has passed.
GAP_WAIT = 60.0
MAX_GAPS = 10_000
_LAST = text("SELECT MAX(id) FROM revocations")
_LIVE_JTIS = text(
    "SELECT device_id, jti, expires_at FROM revocations "
    "WHERE jti IS NOT NULL AND id <= :upto AND expires_at > :now"
)


def _json(value: Any) -> Any:
    """A JSON column as read: text on SQLite, already decoded by psycopg."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _acl(
    device_id: str, own_pub: Any, own_sub: Any, fleet: str, fleet_pub: Any, fleet_sub: Any
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(fleet, pub, sub): the device's own ACL if it has one, else its fleet's, filled in
    (as `provisioning.tokens.acl_claim` does for a token's claim)."""
    own_pub, own_sub = _json(own_pub), _json(own_sub)
    own = own_pub is not None or own_sub is not None
    pub = (own_pub or []) if own else _json(fleet_pub)
    sub = (own_sub or []) if own else _json(fleet_sub)
    ids = {"device_id": device_id, "fleet": fleet}
    return fleet, tuple(expand_filters(pub, **ids)), tuple(expand_filters(sub, **ids))


@dataclass(frozen=True, slots=True)
class Change:
    """A change of standing, as the revocation log keeps it: one token revoked (`jti`,
    deny-listed until `expires_at`), or the device's standing changed (`jti` None:
    disabled, enabled, revoked, deleted, signing keys rotated): read it again."""

    device_id: str
    jti: str | None = None
    expires_at: int | None = None


Listener = Callable[[list[Change]], None]


class CachedTrustStore:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float] = time.time,
        *,
        device_ttl: float = STANDING_TTL,
        deny_list_in_memory: bool = True,
        connect: Callable[[], AbstractContextManager[Connection]] | None = None,
    ) -> None:
        self._engine = engine
        # Where the reads of a verification go (the API hands in its batch's connection
        # while a batch of grants holds the only one, `provisioning.groupcommit`).
        self._connect = connect or engine.connect
        self._clock = clock
        self._device_ttl = device_ttl
        self._deny_list_in_memory = deny_list_in_memory
        # kid -> (key and verify_until, or None if unknown; read again after this time)
        self._keys: dict[str, tuple[tuple[PublicKey, int | None] | None, float]] = {}
        self._devices: dict[str, tuple[DeviceState | None, float]] = {}
        # (device, jkt) -> ((alg, key, expires_at) or None, read again after this time)
        self._proof_keys: dict[
            tuple[str, str], tuple[tuple[str, PublicKey, int | None] | None, float]
        ] = {}
        self._holders: dict[str, tuple[CertificateHolder | None, float]] = {}
        self._denied: dict[str, float] = {}  # jti -> the revoked token's exp
        self._last_entry: int | None = None
        self._gaps: dict[int, float] = {}  # ids the cursor passed unseen -> when first missed

    def signing_key(self, kid: str) -> PublicKey | None:
        entry, live = self._key(kid)
        return entry[0] if entry and live else None

    def retired_key(self, kid: str) -> PublicKey | None:
        entry, live = self._key(kid)
        return entry[0] if entry and not live else None

    def _key(self, kid: str) -> tuple[tuple[PublicKey, int | None] | None, bool]:
        """The cached (key, verify_until) of `kid`, and whether it verifies now."""
        now = self._clock()
        cached = self._keys.get(kid)
        if cached is None or cached[1] <= now:
            if parse_kid(kid) is None:
                return None, False
            if len(self._keys) > MAX_ENTRIES:  # attacker-chosen kids must not grow memory
                self._keys.clear()
            entry = self._load_key(kid)
            cached = (entry, now + (STANDING_TTL if entry else NEGATIVE_TTL))
            self._keys[kid] = cached
        entry = cached[0]
        return entry, entry is not None and (entry[1] is None or entry[1] > now)

    def device_state(self, device_id: str) -> DeviceState | None:
        now = self._clock()
        cached = self._devices.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        row = self._query(_DEVICE, device_id)
        state = None if row is None else DeviceState(row[0], row[1], bool(row[2]))
        if self._device_ttl > 0:
            if len(self._devices) > MAX_ENTRIES:
                self._devices.clear()
            self._devices[device_id] = (state, now + self._device_ttl)
        return state

    def is_jti_revoked(self, jti: str) -> bool:
        if self._deny_list_in_memory:
            if self._last_entry is None:  # fail closed until the log has been read once
                raise StoreUnavailable("the revocation log has not been read yet")
            return jti in self._denied
        return self._query(_JTI, jti) is not None

    def reference(self, token_hash: str) -> tuple[dict[str, Any], str] | None:
        """Read fresh: brokers and hooks keep what they verified per session, and a
        revoked reference token is refused through the deny list like a JWT."""
        row = self._query(_REFERENCE, token_hash)
        if row is None:
            return None
        return _json(row[0]), row[1]

    def signer(self, device_id: str) -> Signer | None:
        """Read fresh, as `reference`: a session keeps its grant, and a device's keys,
        standing and fleet are then whatever they are now."""
        try:
            with self._connect() as conn:
                row = _SIGNER.run(conn, (device_id,))
                rows = _CREDENTIAL_KEYS.all(conn, (device_id, int(self._clock())))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        if row is None:
            return None
        version, *acl, audience, long_ids = row
        fleet, pub, sub = _acl(device_id, *acl)
        keys = []
        for alg, jwk in rows:
            with contextlib.suppress(JWKError):
                keys.append((alg, from_jwk_cached(_json(jwk))))
        return Signer(
            keys=tuple(keys),
            audience=audience or fleet,
            iot_core_client_ids=bool(long_ids),
            fleet=fleet,
            kid=kid_for(device_id, version),
            pub=pub,
            sub=sub,
        )

    def certificate_holder(self, device_id: str) -> CertificateHolder | None:
        """Cached as device state is (`device_ttl`), and dropped with it by `apply`: a
        removed credential key or a disabled device is a change of standing."""
        now = self._clock()
        cached = self._holders.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        holder = self._load_holder(device_id, int(now))
        if self._device_ttl > 0:
            if len(self._holders) > MAX_ENTRIES:
                self._holders.clear()
            self._holders[device_id] = (holder, now + self._device_ttl)
        return holder

    def _load_holder(self, device_id: str, now: int) -> CertificateHolder | None:
        try:
            with self._connect() as conn:
                row = _HOLDER.run(conn, (device_id,))
                if row is None:
                    return None
                keys = _CREDENTIAL_KEYS.all(conn, (device_id, now))
                issued = _ISSUED.all(conn, (device_id, now))
                cas = _FLEET_CAS.all(conn, (row[3],))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        fleet, pub, sub = _acl(device_id, *row[1:])
        jwks = [_json(jwk) for _, jwk in keys]
        return CertificateHolder(
            fleet=fleet,
            kid=kid_for(device_id, row[0]),
            registered=frozenset(j["x5t#S256"] for j in jwks if isinstance(j.get("x5t#S256"), str))
            | frozenset(x5t for (x5t,) in issued),
            cas=tuple(pem for (pem,) in cas),
            pub=pub,
            sub=sub,
        )

    def proof_required(self, device_id: str) -> bool:
        """From the device's cached state: a fleet that starts requiring proofs is seen
        by brokers within `STANDING_TTL`, by the API (which caches none) at once."""
        state = self.device_state(device_id)
        return state is not None and state.proof_required

    def proof_key(self, device_id: str, jkt: str) -> tuple[str, PublicKey] | None:
        """Cached as device state is (`device_ttl`); removing a key is a change of its
        device's standing, so `apply` drops it at once. Its expiry is checked on use."""
        now = self._clock()
        cached = self._proof_keys.get((device_id, jkt))
        if cached is None or cached[1] <= now:
            row = self._query(_PROOF_KEY, device_id, jkt, int(now))
            entry = None
            if row is not None:
                with contextlib.suppress(JWKError):
                    entry = (row[0], from_jwk_cached(_json(row[1])), row[2])
            cached = (entry, now + self._device_ttl)
            if self._device_ttl > 0:
                if len(self._proof_keys) > MAX_ENTRIES:
                    self._proof_keys.clear()
                self._proof_keys[(device_id, jkt)] = cached
        entry = cached[0]
        if entry is None or (entry[2] is not None and entry[2] <= now):
            return None
        return entry[0], entry[1]

    def apply(self, changes: Iterable[Change]) -> None:
        """Forget what changes of standing made stale: device state, signing keys."""
        devices = set()
        for change in changes:
            if change.jti is None:
                devices.add(change.device_id)
                self._devices.pop(change.device_id, None)
                self._holders.pop(change.device_id, None)
            elif self._deny_list_in_memory:
                exp = change.expires_at
                self._denied[change.jti] = _FOREVER if exp is None else exp
        if devices:
            for kid in [k for k in self._keys if k.rpartition("#")[0] in devices]:
                del self._keys[kid]
            for pair in [p for p in self._proof_keys if p[0] in devices]:
                del self._proof_keys[pair]
        now = self._clock()
        for jti in [j for j, exp in self._denied.items() if exp + MAX_LEEWAY < now]:
            del self._denied[jti]  # that token has expired: the verifier refuses it anyway

    def catch_up(self) -> None:
        """Start following the log from its end, with the live deny list in memory: a
        new process's caches are empty, so only revoked tokens matter from the past."""
        try:
            with self._engine.connect() as conn:
                last = conn.execute(_LAST).scalar() or 0
                rows = conn.execute(_LIVE_JTIS, {"upto": last, "now": int(self._clock())})
                live = [Change(device_id, jti, exp) for device_id, jti, exp in rows]
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        self._last_entry = last
        self.apply(live)

    def read_log(self) -> list[Change]:
        """Entries of the revocation log since the last read, not yet applied: safe in a
        worker thread, since it touches no cache (apply them where the caches are read)."""
        if self._last_entry is None:
            self.catch_up()
        last = self._last_entry or 0
        now = self._clock()
        params = {"after": last, "gaps": list(self._gaps), "now": int(now)}
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(_LOG, params).all()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc)) from exc
        for row_id, *_ in rows:
            self._gaps.pop(row_id, None)
            if row_id > last:
                self._gaps.update(dict.fromkeys(range(last + 1, row_id), now))
                last = row_id
        self._last_entry = last
        for row_id in [i for i, since in self._gaps.items() if since + GAP_WAIT < now]:
            del self._gaps[row_id]  # a rolled-back insert, or an expired token entry
        while len(self._gaps) > MAX_GAPS:
            del self._gaps[next(iter(self._gaps))]
        return [Change(device_id, jti, exp) for _, device_id, jti, exp in rows]

    def _load_key(self, kid: str) -> tuple[PublicKey, int | None] | None:
        row = self._query(_KEY, kid)
        if row is None:
            return None
        key = serialization.load_der_public_key(row[0])
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            return None
        return key, row[1]

    def _query(self, sql: Sql, *params: object) -> tuple[Any, ...] | None:
        try:
            with self._connect() as conn:
                return sql.run(conn, params)
        except SQLAlchemyError as exc:  # the driver's errors too (`Sql.execute`)
            raise StoreUnavailable(str(exc)) from exc
