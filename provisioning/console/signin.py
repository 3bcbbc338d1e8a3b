"""Console sign-in: an admin key, typed once, is exchanged for a session cookie.

The cookie's value is a 256-bit random token stored only as its SHA-256 (as admin keys
are); the row names the admin key, so the key's scopes, expiry and revocation decide on
every request, and revoking the key ends its console sessions. A session ends after
`IDLE` seconds without a request, and `LIFETIME` seconds after sign-in in any case.
Each session has its own CSRF token (the synchronizer token pattern), compared in
constant time on every state-changing request.

    sign_in(key)      -> Opened(cookie, signed)   or Unauthorized / Forbidden
    resume(cookie)    -> Signed                   or None (signed out, idle, expired)
    sign_out(cookie)
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, delete, select

from provisioning import hashing
from provisioning.models import AdminKey, ConsoleSession
from provisioning.store import admin, audit
from provisioning.store.admin import Admin

COOKIE = "credbroker_console"
IDLE = 15 * 60  # seconds without a request before a session ends
LIFETIME = 12 * 3600  # seconds after sign-in, whatever the activity
SEEN_EVERY = 60  # `seen_at` is written at most once a minute per session
# A key with none of these (a broker's `broker:hook` key) has nothing to do here.
OPERATOR_SCOPES = ("devices:read", "devices:write", "tokens:revoke", "audit:read")


@dataclass(frozen=True)
class Signed:
    """Who is signed in: the admin key's id and scopes, and the session's CSRF token."""

    admin: Admin
    csrf_token: str

    def may(self, scope: str) -> bool:
        return scope in self.admin.scopes

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.csrf_token.encode()
        )


@dataclass(frozen=True)
class Opened:
    cookie: str
    signed: Signed


def sign_in(*, session: Session, key: str, now: int, address: str) -> Opened:
    """A new console session for a live operator's admin key, audited; raises
    `Unauthorized` for an unknown, revoked or expired key, `Forbidden` for a key with
    no operator scope."""
    found = admin.authenticate(
        session=session, authorization=f"Bearer {key}", scopes=OPERATOR_SCOPES, now=now
    )
    cookie = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id_hash=hashing.token_hash(cookie),
            admin_key_id=found.id,
            csrf_token=csrf_token,
            created_at=now,
            seen_at=now,
            expires_at=now + LIFETIME,
        )
    )
    audit.record(
        session=session, now=now, action="console.sign_in", actor=found.id, address=address
    )
    return Opened(cookie, Signed(found, csrf_token))


def resume(*, session: Session, cookie: str | None, now: int) -> Signed | None:
    """The signed-in admin behind a session cookie, if the session and its key live."""
    if not cookie:
        return None
    row = session.exec(
        select(ConsoleSession, AdminKey)
        .join(AdminKey, col(AdminKey.id) == ConsoleSession.admin_key_id)
        .where(ConsoleSession.id_hash == hashing.token_hash(cookie))
    ).first()
    if row is None:
        return None
    console, key = row
    if console.seen_at + IDLE <= now or console.expires_at <= now or not admin.is_live(key, now):
        session.delete(console)
        return None
    if console.seen_at + SEEN_EVERY <= now:
        console.seen_at = now
        session.add(console)
    return Signed(Admin(key.id, frozenset(key.scopes), key.expires_at), console.csrf_token)


def sign_out(*, session: Session, cookie: str | None, now: int) -> None:
    signed = resume(session=session, cookie=cookie, now=now)
    if cookie is None or signed is None:
        return
    gone = delete(ConsoleSession).where(col(ConsoleSession.id_hash) == hashing.token_hash(cookie))
    session.exec(gone)
    audit.record(session=session, now=now, action="console.sign_out", actor=signed.admin.id)


def prune(*, session: Session, now: int) -> None:
    """Forget sessions past their absolute end or idle past the timeout."""
    session.exec(
        delete(ConsoleSession).where(
            (col(ConsoleSession.expires_at) <= now) | (col(ConsoleSession.seen_at) <= now - IDLE)
        )
    )
