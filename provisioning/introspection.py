"""Token introspection (RFC 7662) and revocation (RFC 7009), for both token kinds."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from credbroker.verifier import TokenRejected
from provisioning import hashing
from provisioning.models import Device, RefreshFamily, RefreshToken
from provisioning.services import Services
from provisioning.store import audit, revocations

INACTIVE: dict[str, Any] = {"active": False}


def _refresh_row(session: Session, token: str) -> tuple[RefreshToken, RefreshFamily] | None:
    row = session.get(RefreshToken, hashing.token_hash(token))
    family = session.get(RefreshFamily, row.family_id) if row else None
    return (row, family) if row and family else None


def introspect(services: Services, token: str) -> dict[str, Any]:
    if "." in token:
        try:
            claims = services.verifier.verify(token)
        except TokenRejected:
            return INACTIVE
        return {"active": True, "token_type": "Bearer", "username": claims["sub"], **claims}
    now = services.now()
    with services.transaction() as session:
        found = _refresh_row(session, token)
        if found is None:
            return INACTIVE
        row, family = found
        device = session.get(Device, row.device_id)
        if (
            row.used_at is not None
            or family.revoked_at is not None
            or family.expires_at <= now
            or device is None
            or device.status != "active"
        ):
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": row.device_id,
            "sub": row.device_id,
            "iat": row.created_at,
            "exp": family.expires_at,
        }


def revoke(services: Services, token: str, actor: str) -> None:
    """RFC 7009 section 2.2: unknown or invalid tokens are not an error."""
    now = services.now()
    if "." in token:
        try:
            claims = services.verifier.verify(token)
        except TokenRejected:
            return
        with services.transaction() as session:
            revocations.revoke_jti(
                session=session,
                device_id=claims["sub"],
                jti=claims["jti"],
                exp=claims["exp"],
                now=now,
            )
            audit.record(
                session=session,
                now=now,
                action="token.revoke",
                device_id=claims["sub"],
                actor=actor,
                jti=claims["jti"],
            )
        return
    with services.transaction() as session:
        found = _refresh_row(session, token)
        if found is None or found[1].revoked_at is not None:
            return
        revocations.revoke_family(session=session, family=found[1], now=now, reason="revoked")
