"""The revocation feed: brokers poll it to learn changes of standing made anywhere."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from provisioning.api.deps import BrokerHook, ServicesDep
from provisioning.models.bounds import INT32_MAX, STRICT_QUERY
from provisioning.store import revocations

router = APIRouter(tags=["revocation"])


class FeedQuery(BaseModel):
    model_config = STRICT_QUERY

    after: int = Field(default=0, ge=0, le=INT32_MAX)  # ids are INTEGER columns
    limit: int = Field(default=500, ge=1, le=1000)


class RevocationEntry(BaseModel):
    id: int
    kind: Literal["token", "device", "fleet"]  # one access token (jti), a device, a fleet
    device_id: str  # "" for "fleet"
    fleet: str | None = None  # for "fleet": the standing of every device of it changed
    jti: str | None
    expires_at: int | None
    created_at: int


class RevocationPage(BaseModel):
    items: list[RevocationEntry]
    next: int  # pass back as `after`


@router.get("/v1/revocations")
def revocation_feed(
    services: ServicesDep,
    _: BrokerHook,
    query: Annotated[FeedQuery, Query()],
) -> RevocationPage:
    """Changes of standing after the cursor `after`, oldest first. A `device` entry
    means: the device's standing changed at `created_at` (disabled, enabled, revoked,
    deleted, signing keys rotated): forget what you cached about it and ask again. A
    `token` entry deny-lists one jti until `expires_at`. A `fleet` entry is a device
    entry for every device of `fleet` (a fleet-wide logout: tokens issued before
    `created_at` + 1 are dead)."""
    with services.transaction() as session:
        entries, cursor = revocations.feed(
            session=session, after=query.after, limit=query.limit, now=services.now()
        )
        items = [RevocationEntry.model_validate(e, from_attributes=True) for e in entries]
    return RevocationPage(items=items, next=cursor)
