"""Admin API keys: bootstrap, authentication, creation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, select

from provisioning import hashing
from provisioning.errors import BadRequest, Forbidden, Unauthorized
from provisioning.models import AdminKey
from provisioning.models.admin import ALL_SCOPES, AdminKeyCreate
from provisioning.store import audit

MIN_KEY_CHARS = 32


@dataclass(frozen=True)
class Admin:
    id: str
    scopes: frozenset[str]


def authenticate(*, session: Session, authorization: str | None, scopes: tuple[str, ...]) -> Admin:
    """The admin behind a Bearer key holding at least one of `scopes`."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("an admin API key is required: Authorization: Bearer <key>")
    row = session.exec(
        select(AdminKey).where(AdminKey.key_hash == hashing.token_hash(key.strip()))
    ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked admin API key")
    if not set(scopes) & set(row.scopes):
        raise Forbidden(f"this admin API key lacks the scope: {' or '.join(scopes)}")
    return Admin(row.id, frozenset(row.scopes))


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


def any_active(*, session: Session) -> bool:
    query = select(AdminKey.id).where(col(AdminKey.revoked_at).is_(None)).limit(1)
    return session.exec(query).first() is not None


def create(
    *, session: Session, admin_key_create: AdminKeyCreate, now: int, actor: Admin | None
) -> tuple[AdminKey, str]:
    """A new key; an admin may only hand out scopes it holds itself."""
    if actor is not None and not set(admin_key_create.scopes) <= actor.scopes:
        raise Forbidden("an admin API key can only grant scopes it holds")
    key = hashing.new_token("cba")
    row = AdminKey(
        id=_new_id(),
        key_hash=hashing.token_hash(key),
        name=admin_key_create.name,
        scopes=sorted(set(admin_key_create.scopes)),
        created_at=now,
    )
    session.add(row)
    audit.record(
        session=session,
        now=now,
        action="admin_key.create",
        actor=actor.id if actor else "cli",
        key_id=row.id,
        scopes=row.scopes,
    )
    return row, key


def _new_id() -> str:
    return "ak_" + secrets.token_hex(8)
