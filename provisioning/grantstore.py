"""Data access for the token endpoint's hot path: plain SQL on the DB-API cursor.

A grant is a handful of statements in one transaction. SQLAlchemy Core spent about
0.1 ms of Python on each (an execution context, events, a result proxy), more than
SQLite spent running it: here each statement is a constant string run on the driver's
own cursor, on the connection of the grant's transaction (which SQLAlchemy still begins,
commits and rolls back), with the few column types converted by hand. The SQL is the
common subset of SQLite and PostgreSQL, written with `?` markers and given `%s` ones for
drivers of the `format` family (psycopg). Admin endpoints, where clarity beats
microseconds, use the ORM store modules; `tests/provisioning` runs both databases.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, delete
from sqlalchemy.exc import IntegrityError

from credbroker.database import Sql, driver_error
from credbroker.decision import Grant
from credbroker.trust import MAX_LEEWAY, Change
from provisioning.models import ReferenceToken, UsedAssertion

_used = UsedAssertion.__table__  # type: ignore[attr-defined]
_PRUNE_USED = delete(_used).where(_used.c.expires_at < bindparam("now"))
_references = ReferenceToken.__table__  # type: ignore[attr-defined]
# A reference token is refused once expired (plus the leeway); its row goes after that.
_PRUNE_REFERENCES = delete(_references).where(
    _references.c.expires_at < bindparam("now") - MAX_LEEWAY
)


_CLIENT = Sql("""
    SELECT d.device_id, d.status, d.auth_method, d.client_secret_hash,
           d.signing_key_version, d.acl_publish, d.acl_subscribe,
           f.name, f.acl_publish, f.acl_subscribe, f.token_ttl, f.allow_client_secret,
           d.tokens_valid_after, f.token_format
    FROM devices AS d JOIN fleets AS f ON f.name = d.fleet
    WHERE d.device_id = ?""")
_KEYS = Sql("""
    SELECT kid, alg, jwk FROM credential_keys
    WHERE device_id = ? AND (expires_at IS NULL OR expires_at > ?)""")
_FLEET_CAS = Sql("""
    SELECT c.id, c.certificate, c.fleet, f.auto_register, c.managed
    FROM fleet_cas AS c JOIN fleets AS f ON f.name = c.fleet
    WHERE c.subject = ?""")
_ISSUED = Sql("""
    SELECT device_id FROM device_certificates
    WHERE serial = ? AND ca_id = ? AND revoked_at IS NULL""")
_SEALED = Sql("SELECT private_enc FROM signing_keys WHERE kid = ?")
_REFRESH_STATE = Sql("""
    SELECT r.device_id, r.family_id, f.jkt, r.used_at, f.expires_at, f.revoked_at, f.x5t,
           f.dpop_jkt
    FROM refresh_tokens AS r JOIN refresh_families AS f ON f.id = r.family_id
    WHERE r.token_hash = ?""")
_MARK_USED = Sql("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
_INSERT_USED = Sql("INSERT INTO used_assertions (key, expires_at) VALUES (?, ?)")
_INSERT_FAMILY = Sql("""
    INSERT INTO refresh_families
        (id, device_id, jkt, x5t, created_at, expires_at, revoked_at, last_used_at,
         address, user_agent, dpop_jkt)
    VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)""")
_TOUCH_FAMILY = Sql("UPDATE refresh_families SET last_used_at = ?, address = ? WHERE id = ?")
_INSERT_REFRESH = Sql("""
    INSERT INTO refresh_tokens
        (token_hash, family_id, device_id, created_at, used_at, access_jti, access_exp)
    VALUES (?, ?, ?, ?, NULL, ?, ?)""")
_INSERT_REFERENCE = Sql("""
    INSERT INTO reference_tokens (token_hash, device_id, jti, kid, claims, expires_at)
    VALUES (?, ?, ?, ?, ?, ?)""")
_INSERT_AUDIT = Sql("""
    INSERT INTO audit_events (at, action, outcome, device_id, actor, detail)
    VALUES (?, ?, 'ok', ?, NULL, ?)""")

_UPSERT_HOOK_GRANT = Sql("""
    INSERT INTO hook_grants (client_id, device_id, jti, kid, iat, exp, pub, sub, since,
                             username)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (client_id) DO UPDATE SET
        device_id = excluded.device_id, jti = excluded.jti, kid = excluded.kid,
        iat = excluded.iat, exp = excluded.exp, pub = excluded.pub, sub = excluded.sub,
        since = excluded.since, username = excluded.username""")


def _json(value: Any) -> Any:
    """A JSON column as read: text on SQLite, already decoded by psycopg."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _key_rows(rows: Sequence[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(kid, alg, _json(jwk)) for kid, alg, jwk in rows]


def prune_used_assertions(engine: Engine, now: int) -> int:
    """Forget assertion jtis whose assertions have expired: a replay of one is refused
    for its `exp` anyway. This keeps the replay cache at what the assertion lifetime
    bounds (assertions of the last hour), where it would grow with every grant. Expired
    reference tokens go too, for the same reason."""
    with engine.begin() as conn:
        pruned = conn.execute(_PRUNE_USED, {"now": now}).rowcount
        return pruned + conn.execute(_PRUNE_REFERENCES, {"now": now}).rowcount


@dataclass(frozen=True, slots=True)
class Client:
    """A device with what its fleet contributes to its tokens."""

    device_id: str
    status: str
    auth_method: str
    client_secret_hash: str | None
    signing_key_version: int
    own_publish: list[str] | None
    own_subscribe: list[str] | None
    fleet: str
    fleet_publish: list[str]
    fleet_subscribe: list[str]
    token_ttl: int
    allow_client_secret: bool
    tokens_valid_after: int  # a logout's cut-off: tokens issued from now on are dated here
    token_format: str = "jwt"  # noqa: S105 - a format name


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a grant came from, kept with the refresh family it makes or uses (shown by
    `GET /v1/devices/{id}/sessions`; never logged)."""

    address: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, address: str | None, user_agent: str | None) -> Origin:
        return cls(
            (address or None) and address[:MAX_ADDRESS],
            (user_agent or None) and user_agent[:MAX_USER_AGENT],
        )


MAX_ADDRESS = 64
MAX_USER_AGENT = 200
NOWHERE = Origin()


@dataclass(frozen=True, slots=True)
class FleetCaRow:
    id: str  # x5t#S256 of the CA certificate
    certificate: str  # PEM
    fleet: str
    auto_register: bool  # the fleet's
    managed: bool  # credbroker's own CA: only the certificates on record count


@dataclass(frozen=True, slots=True)
class RefreshState:
    device_id: str
    family_id: str
    jkt: str
    used_at: int | None
    family_expires_at: int
    family_revoked_at: int | None
    x5t: str  # the family's client certificate (RFC 8705); "" if it has none
    dpop_jkt: str | None  # the family is bound to this DPoP key (RFC 9449 section 5)


class GrantStore:
    """Statements of one grant, on the connection of its transaction.

    On PostgreSQL every statement is a round trip, and on a grant's thread each one a
    hand-off of the GIL; there, psycopg's pipeline mode sends what can go together: the
    client with its credential keys (and the transaction's BEGIN), and the writes whose
    answer the grant does not need (family, refresh token, audit event), held back until
    `flush`. Writes whose answer decides (the assertion's jti, a refresh token's use) run
    at once. SQLite, in process, runs each statement when called."""

    def __init__(self, conn: Connection, changes: list[Change], origin: Origin = NOWHERE) -> None:
        self.origin = origin
        self.conn = conn
        self.changes = changes  # of standing, announced after the commit
        self._cursor = conn.connection.cursor()
        self._dialect = conn.dialect
        self._pipelined = conn.dialect.name == "postgresql"
        self._held: list[tuple[Sql, Sequence[Any]]] = []
        self._keys: dict[tuple[str, int], list[tuple[str, str, dict[str, Any]]]] = {}

    def save_hook_grant(
        self, client_id: str, grant: Grant, since: float, username: str | None = None
    ) -> None:
        """The grant of a hook-accepted CONNECT, for every API process (one row per
        client id: its latest), with its username if it was not the device id."""
        pub, sub = orjson.dumps(list(grant.pub)).decode(), orjson.dumps(list(grant.sub)).decode()
        row = (
            client_id,
            grant.device_id,
            grant.jti,
            grant.kid,
            grant.iat,
            grant.exp,
            pub,
            sub,
            int(since),
            username,
        )
        self._run(_UPSERT_HOOK_GRANT, row)

    def close(self) -> None:
        """Release the cursor (before the transaction ends: psycopg keeps a result)."""
        self._cursor.close()

    def _run(self, sql: Sql, params: Sequence[Any]) -> Any:
        return sql.execute(self._cursor, self._dialect, params)

    def _write(self, sql: Sql, params: Sequence[Any]) -> None:
        """A write whose answer the grant does not need: held back for `flush` where
        statements are pipelined, else run now."""
        if self._pipelined:
            self._held.append((sql, params))
        else:
            self._run(sql, params)

    def flush(self) -> None:
        """Send the held-back writes, all in one round trip; before the commit."""
        held, self._held = self._held, []
        if held:
            with self._pipeline("the grant's writes"):
                for sql, params in held:
                    self._run(sql, params)

    @contextmanager
    def _pipeline(self, what: str) -> Iterator[None]:
        """psycopg's pipeline mode; an error of a statement in it is raised when the
        pipeline syncs, here, as SQLAlchemy's (`credbroker.database.driver_error`)."""
        driver = self.conn.connection.driver_connection
        try:
            with driver.pipeline():  # type: ignore[union-attr]
                yield
        except self._dialect.loaded_dbapi.Error as exc:
            raise driver_error(exc, what, self._dialect) from exc

    def client(self, device_id: str, *, keys_at: int | None = None) -> Client | None:
        """The device and its fleet's part of its tokens; with `keys_at`, its credential
        keys not expired then are read in the same round trip (`credential_keys`)."""
        if keys_at is not None and self._pipelined:
            keys = self.conn.connection.cursor()
            try:
                with self._pipeline("the client and its keys"):
                    self._run(_CLIENT, (device_id,))
                    _KEYS.execute(keys, self._dialect, (device_id, keys_at))
                row = self._cursor.fetchone()
                self._keys[device_id, keys_at] = _key_rows(keys.fetchall())
            finally:
                keys.close()
        else:
            row = self._run(_CLIENT, (device_id,)).fetchone()
        if row is None:
            return None
        return Client(
            device_id=row[0],
            status=row[1],
            auth_method=row[2],
            client_secret_hash=row[3],
            signing_key_version=row[4],
            own_publish=_json(row[5]),
            own_subscribe=_json(row[6]),
            fleet=row[7],
            fleet_publish=_json(row[8]),
            fleet_subscribe=_json(row[9]),
            token_ttl=row[10],
            allow_client_secret=bool(row[11]),
            tokens_valid_after=row[12],
            token_format=row[13],
        )

    def credential_keys(self, device_id: str, now: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(kid, alg, jwk) of the keys that have not expired."""
        read = self._keys.get((device_id, now))
        return (
            read if read is not None else _key_rows(self._run(_KEYS, (device_id, now)).fetchall())
        )

    def consume_jti(self, key: str, expires_at: int) -> bool:
        """False if this assertion jti was seen before (RFC 7523 section 3, item 7).

        The primary key decides, so two concurrent requests cannot both win. After a
        False the caller refuses the grant and its transaction rolls back.
        """
        try:
            self._run(_INSERT_USED, (key, expires_at))
        except IntegrityError:
            return False
        return True

    def fleet_cas(self, subject: str) -> list[FleetCaRow]:
        """The CAs with this subject (RFC 4514)."""
        rows = self._run(_FLEET_CAS, (subject,)).fetchall()
        return [
            FleetCaRow(i, pem, fleet, bool(auto), bool(own)) for i, pem, fleet, auto, own in rows
        ]

    def issued_to(self, serial: str, ca_id: str) -> str | None:
        """The device a certificate credbroker issued names, unless it was revoked."""
        row = self._run(_ISSUED, (serial, ca_id)).fetchone()
        return None if row is None else str(row[0])

    def sealed_signing_key(self, kid: str) -> bytes | None:
        row = self._run(_SEALED, (kid,)).fetchone()
        return None if row is None else bytes(row[0])

    def new_family(
        self,
        *,
        family_id: str,
        device_id: str,
        jkt: str,
        now: int,
        expires_at: int,
        x5t: str = "",
        dpop_jkt: str | None = None,
    ) -> None:
        origin = self.origin
        row = (family_id, device_id, jkt, x5t or None, now, expires_at, now)
        self._write(_INSERT_FAMILY, (*row, origin.address, origin.user_agent, dpop_jkt))

    def touch_family(self, *, family_id: str, now: int) -> None:
        """A refresh: the family was last used now, from this address."""
        self._write(_TOUCH_FAMILY, (now, self.origin.address, family_id))

    def add_refresh(
        self,
        *,
        token_hash: str,
        family_id: str,
        device_id: str,
        now: int,
        access_jti: str,
        access_exp: int,
    ) -> None:
        self._write(
            _INSERT_REFRESH, (token_hash, family_id, device_id, now, access_jti, access_exp)
        )

    def add_reference(
        self, *, token_hash: str, device_id: str, jti: str, kid: str, claims: Any, exp: int
    ) -> None:
        claims_json = orjson.dumps(claims).decode()
        self._write(_INSERT_REFERENCE, (token_hash, device_id, jti, kid, claims_json, exp))

    def refresh_state(self, token_hash: str) -> RefreshState | None:
        row = self._run(_REFRESH_STATE, (token_hash,)).fetchone()
        if row is None:
            return None
        device_id, family_id, jkt, used_at, expires_at, revoked_at, x5t, dpop_jkt = row
        return RefreshState(
            device_id, family_id, jkt, used_at, expires_at, revoked_at, x5t or "", dpop_jkt
        )

    def mark_used(self, token_hash: str, now: int) -> bool:
        """Use a refresh token once; False if a concurrent request got there first."""
        return int(self._run(_MARK_USED, (now, token_hash)).rowcount) == 1

    def audit(self, *, now: float, action: str, device_id: str | None, **detail: Any) -> None:
        self._write(_INSERT_AUDIT, (now, action, device_id, orjson.dumps(detail).decode()))
