"""Admin API keys: random, shown once, stored as SHA-256, with scopes, an optional
expiry, and when each was last used (to the minute)."""

from typing import Literal

import pydantic
from pydantic import BaseModel
from sqlmodel import JSON, Field, SQLModel

from provisioning.models.bounds import LABEL_PATTERN, STRICT_BODY, STRICT_QUERY

Scope = Literal["devices:read", "devices:write", "tokens:revoke", "audit:read", "broker:hook"]
ALL_SCOPES: tuple[Scope, ...] = (
    "devices:read",
    "devices:write",
    "tokens:revoke",
    "audit:read",
    "broker:hook",
)
MAX_EXPIRES_IN = 10 * 365 * 86400  # ten years; with `now`, still within an INTEGER column


class AdminKeyCreate(BaseModel):
    model_config = STRICT_BODY

    name: str = pydantic.Field(default="", max_length=128, pattern=LABEL_PATTERN)
    scopes: list[Scope] = pydantic.Field(min_length=1)
    expires_in: int | None = pydantic.Field(default=None, ge=1, le=MAX_EXPIRES_IN)  # seconds


class AdminKeyBase(SQLModel):
    name: str = Field(max_length=128)
    scopes: list[str] = Field(sa_type=JSON)
    created_at: int
    expires_at: int | None = None
    last_used_at: int | None = None  # updated at most once a minute (`LAST_USED_EVERY`)


class AdminKeyPublic(AdminKeyBase):
    id: str


class AdminKeyFilter(BaseModel):
    """The query of `GET /v1/admin-keys`."""

    model_config = STRICT_QUERY

    cursor: str | None = pydantic.Field(default=None, max_length=200)
    limit: int = pydantic.Field(default=100, ge=1, le=1000)


class AdminKeyPage(BaseModel):
    items: list[AdminKeyPublic]
    next_cursor: str | None


class AdminKeyCreated(AdminKeyPublic):
    key: str


class AdminKey(AdminKeyBase, table=True):
    __tablename__ = "admin_keys"

    id: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(unique=True, max_length=64)
    revoked_at: int | None = None

    def public(self) -> AdminKeyPublic:
        return AdminKeyPublic.model_validate(self)
