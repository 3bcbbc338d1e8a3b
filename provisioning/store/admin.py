"""Admin API keys: bootstrap, authentication, creation, listing, revocation.

Every request reads its key from the database (no cache in this module), so a revoked
or expired key is refused on its next request in every process. `last_used_at` is
written at most once every `LAST_USED_EVERY` seconds per key: a write on every admin
request would be one more row write per transaction on the hot admin paths.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, select

from provisioning import hashing
from provisioning.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from provisioning.models import AdminKey
from provisioning.models.admin import ALL_SCOPES, AdminKeyCreate
from provisioning.models.bounds import INT32_MAX
from provisioning.store import audit, paging

MIN_KEY_CHARS = 32
LAST_USED_EVERY = 60  # seconds: `last_used_at` is to the minute
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class Admin:
    id: str
    scopes: frozenset[str]
    expires_at: int | None = None


def authenticate(
    *, session: Session, authorization: str | None, scopes: tuple[str, ...], now: int
) -> Admin:
    """The admin behind a Bearer key holding at least one of `scopes`."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("an admin API key is required: Authorization: Bearer <key>")
    row = session.exec(
        select(AdminKey).where(AdminKey.key_hash == hashing.token_hash(key.strip()))
    ).first()
    if row is None or not is_live(row, now):
        raise Unauthorized("unknown, revoked or expired admin API key")
    if not set(scopes) & set(row.scopes):
        raise Forbidden(f"this admin API key lacks the scope: {' or '.join(scopes)}")
    if row.last_used_at is None or row.last_used_at + LAST_USED_EVERY <= now:
        row.last_used_at = now
        session.add(row)
    return Admin(row.id, frozenset(row.scopes), row.expires_at)


def is_live(row: AdminKey, now: int) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def seed(
    *,
    session: Session,
    key: str,
    now: int,
    name: str = "CREDBROKER_ADMIN_KEY",
    scopes: tuple[str, ...] = ALL_SCOPES,
) -> bool:
    """Store `key` from the environment (CREDBROKER_ADMIN_KEY: every scope;
    CREDBROKER_HOOK_KEY: `broker:hook` only); False if already there."""
    if len(key) < MIN_KEY_CHARS:
        raise BadRequest(f"{name} must be at least {MIN_KEY_CHARS} characters")
    digest = hashing.token_hash(key)
    if session.exec(select(AdminKey).where(AdminKey.key_hash == digest)).first() is not None:
        return False
    env_id = "env" if name == "CREDBROKER_ADMIN_KEY" else "env-hook"
    key_id = env_id if session.get(AdminKey, env_id) is None else _new_id()
    session.add(
        AdminKey(id=key_id, key_hash=digest, name=name, scopes=list(scopes), created_at=now)
    )
    audit.record(session=session, now=now, action="admin_key.seed", actor="env")
    return True


def any_active(*, session: Session, now: int) -> bool:
    return bool(_live_keys(session=session, now=now, limit=1))


def _live_keys(
    *, session: Session, now: int, limit: int | None = None, for_update: bool = False
) -> list[AdminKey]:
    query = (
        select(AdminKey)
        .where(col(AdminKey.revoked_at).is_(None))
        .where(col(AdminKey.expires_at).is_(None) | (col(AdminKey.expires_at) > now))
        .order_by(col(AdminKey.id))
        .limit(limit)
    )
    return list(session.exec(query.with_for_update() if for_update else query))


def create(
    *, session: Session, admin_key_create: AdminKeyCreate, now: int, actor: Admin | None
) -> tuple[AdminKey, str]:
    """A new key; an admin may only hand out scopes it holds itself."""
    if actor is not None and not set(admin_key_create.scopes) <= actor.scopes:
        raise Forbidden("an admin API key can only grant scopes it holds")
    expires_in = admin_key_create.expires_in
    if expires_in is not None and now + expires_in > INT32_MAX:
        raise BadRequest("expires_in reaches past 2038-01-19, the latest time stored")
    key = hashing.new_token("cba")
    row = AdminKey(
        id=_new_id(),
        key_hash=hashing.token_hash(key),
        name=admin_key_create.name,
        scopes=sorted(set(admin_key_create.scopes)),
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
    )
    session.add(row)
    audit.record(
        session=session,
        now=now,
        action="admin_key.create",
        actor=actor.id if actor else "cli",
        key_id=row.id,
        scopes=row.scopes,
        expires_at=row.expires_at,
    )
    return row, key


def list_keys(
    *, session: Session, cursor: str | None, limit: int
) -> tuple[list[AdminKey], str | None]:
    """Keys not revoked, expired ones included (their `expires_at` says so), by id."""
    return paging.page(
        session=session,
        query=select(AdminKey).where(col(AdminKey.revoked_at).is_(None)),
        key=AdminKey.id,
        cursor=cursor,
        limit=limit,
        valid=lambda value: KEY_ID_PATTERN.fullmatch(value) is not None,
    )


def revoke(*, session: Session, key_id: str, now: int, actor: Admin) -> None:
    """Revoke a key: refused on its next request, in every process.

    As at creation, an admin acts only within its own scopes: it may revoke a key whose
    scopes it holds all of (itself included), so a narrower key cannot lock out a wider
    one. The last live key holding every scope stays: without one, nobody could grant
    every scope again. Live keys are read `FOR UPDATE` (PostgreSQL), so that two
    revocations at once cannot both see the other's key as the one that remains; SQLite
    transactions here begin IMMEDIATE and are serial anyway."""
    row = session.get(AdminKey, key_id) if KEY_ID_PATTERN.fullmatch(key_id) else None
    if row is None or row.revoked_at is not None:
        raise NotFound(f"no admin API key {key_id!r}")
    if not set(row.scopes) <= actor.scopes:
        raise Forbidden("an admin API key can only revoke keys whose scopes it holds")
    if set(row.scopes) >= set(ALL_SCOPES) and is_live(row, now):
        live = _live_keys(session=session, now=now, for_update=True)
        if not any(k.id != row.id and set(k.scopes) >= set(ALL_SCOPES) for k in live):
            raise Conflict(
                f"{key_id!r} is the last admin API key with every scope; create another first"
            )
    row.revoked_at = now
    session.add(row)
    audit.record(session=session, now=now, action="admin_key.revoke", actor=actor.id, key_id=row.id)


def revoked_since(*, session: Session, since: int) -> bool:
    """Whether any key was revoked at or after `since`."""
    query = select(AdminKey.id).where(col(AdminKey.revoked_at) >= since).limit(1)
    return session.exec(query).first() is not None


def _new_id() -> str:
    return "ak_" + secrets.token_hex(8)
