"""The kinds of token this server issues, as one registry: introspection (RFC 7662) and
revocation (RFC 7009) ask it what a presented token is, instead of guessing its format
(a dot, a prefix). A new kind is a class with `find` and one line in `KINDS`; a new
format of access token is not a kind: the verifier tells formats apart (README, Token
formats), so `AccessTokens` finds JWTs and reference tokens alike. (Device-signed tokens
name their device only through the MQTT client id, which introspection is not given:
they are not found, so inactive.)

    KINDS: access token (the verifier), refresh token (its hash in the database)
    find(token) -> Found: whose it is, whether it is active, what introspection shows,
                          and how to revoke it (with whatever dies with it)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

from credbroker.verifier import TokenRejected
from provisioning import hashing
from provisioning.models import Device, RefreshFamily, RefreshToken
from provisioning.services import Services
from provisioning.store import audit, revocations

Revoke = Callable[[Session, str], None]  # (session of the revoking transaction, actor)


@dataclass(frozen=True)
class Found:
    device_id: str
    active: bool
    members: dict[str, Any]  # RFC 7662 section 2.2, when active
    revoke: Revoke
    dpop_bound: bool = False  # a refresh token of a family bound to a DPoP key


class TokenKind(Protocol):
    def find(self, services: Services, token: str) -> Found | None:
        """The token if it is one of this kind that this server issued; None if not."""
        ...


class AccessTokens:
    """Access tokens of every format: the one verifier decides; a refused one is nothing
    to revoke (a reference token dies through the deny list, as a JWT does)."""

    def find(self, services: Services, token: str) -> Found | None:
        try:
            claims = services.verifier.verify(token)
        except TokenRejected:
            return None
        device_id, jti, now = claims["sub"], claims["jti"], services.now()

        def revoke(session: Session, actor: str) -> None:
            revocations.revoke_jti(
                session=session, device_id=device_id, jti=jti, exp=claims["exp"], now=now
            )
            audit.record(
                session=session,
                now=now,
                action="token.revoke",
                device_id=device_id,
                actor=actor,
                jti=jti,
            )

        members = {"active": True, "token_type": "Bearer", "username": device_id, **claims}
        return Found(device_id, True, members, revoke)


class RefreshTokens:
    """Opaque 256-bit tokens, stored as SHA-256. A used one is inactive but can still be
    revoked: its family dies (RFC 9700 section 4.14 would kill it on reuse anyway)."""

    def find(self, services: Services, token: str) -> Found | None:
        now = services.now()
        with services.transaction() as session:
            row = session.get(RefreshToken, hashing.token_hash(token))
            family = session.get(RefreshFamily, row.family_id) if row else None
            if row is None or family is None or family.revoked_at is not None:
                return None
            device = session.get(Device, row.device_id)
            active = (
                row.used_at is None
                and family.expires_at > now
                and device is not None
                and device.status == "active"
            )
            family_id, bound = family.id, family.dpop_jkt is not None

        def revoke(session: Session, actor: str) -> None:
            live = session.get(RefreshFamily, family_id)
            if live is not None and live.revoked_at is None:
                revocations.revoke_family(
                    session=session, family=live, now=now, reason="revoked", actor=actor
                )

        members = {
            "active": True,
            "token_type": "refresh_token",
            "client_id": row.device_id,
            "sub": row.device_id,
            "iat": row.created_at,
            "exp": family.expires_at,
        }
        return Found(row.device_id, active, members, revoke, dpop_bound=bound)


# Access tokens first: a JWT is told apart by the verifier with no database read, and a
# refresh token (also `cbr_`) costs one read of `reference_tokens` before its own.
KINDS: tuple[TokenKind, ...] = (AccessTokens(), RefreshTokens())


def find(services: Services, token: str) -> Found | None:
    for kind in KINDS:
        found = kind.find(services, token)
        if found is not None:
            return found
    return None
