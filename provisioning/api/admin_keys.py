"""Admin API keys: create (shown once), list (never the secret), revoke.

Managing keys needs `devices:write`, as creating one always has; and a key acts only
within its own scopes: it grants, and revokes, only keys whose scopes it holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from provisioning.api.deps import DevicesWrite, ServicesDep
from provisioning.models.admin import AdminKeyCreate, AdminKeyCreated, AdminKeyFilter, AdminKeyPage
from provisioning.store import admin

router = APIRouter(prefix="/v1/admin-keys", tags=["admin"])


@router.post("", status_code=201)
def create_admin_key(
    body: AdminKeyCreate, services: ServicesDep, actor: DevicesWrite
) -> AdminKeyCreated:
    """A new admin API key, shown once; it can hold only scopes the caller holds, and
    expires `expires_in` seconds from now if given."""
    with services.transaction() as session:
        row, key = admin.create(
            session=session, admin_key_create=body, now=services.now(), actor=actor
        )
        return AdminKeyCreated(**row.public().model_dump(), key=key)


@router.get("")
def list_admin_keys(
    services: ServicesDep, _: DevicesWrite, query: Annotated[AdminKeyFilter, Query()]
) -> AdminKeyPage:
    """Admin API keys not revoked (expired ones too), by id, `limit` at a time; pass
    `next_cursor` back for the next page. Never the key itself."""
    with services.transaction() as session:
        rows, next_cursor = admin.list_keys(session=session, cursor=query.cursor, limit=query.limit)
        return AdminKeyPage(items=[r.public() for r in rows], next_cursor=next_cursor)


@router.delete("/{key_id}", status_code=204)
def revoke_admin_key(key_id: str, services: ServicesDep, actor: DevicesWrite) -> Response:
    """Revoke an admin API key: refused from its next request on, in every process.
    The last key holding every scope cannot be revoked (409)."""
    with services.transaction() as session:
        admin.revoke(session=session, key_id=key_id, now=services.now(), actor=actor)
    # The hook paths take a key on trust for a few seconds: forget them here at once
    # (other processes do within a second, `app.forget_revoked_keys`).
    services.hooks.forget_keys()
    return Response(status_code=204)
