"""Admin API keys: random, shown once, stored as SHA-256, with scopes."""

from typing import Literal

import pydantic
from pydantic import BaseModel
from sqlmodel import JSON, Field, SQLModel

from provisioning.models.bounds import LABEL_PATTERN, STRICT_BODY

Scope = Literal["devices:read", "devices:write", "tokens:revoke", "audit:read", "broker:hook"]
ALL_SCOPES: tuple[Scope, ...] = (
    "devices:read",
    "devices:write",
    "tokens:revoke",
    "audit:read",
    "broker:hook",
)


class AdminKeyCreate(BaseModel):
    model_config = STRICT_BODY

    name: str = pydantic.Field(default="", max_length=128, pattern=LABEL_PATTERN)
    scopes: list[Scope] = pydantic.Field(min_length=1)


class AdminKeyBase(SQLModel):
    name: str = Field(max_length=128)
    scopes: list[str] = Field(sa_type=JSON)
    created_at: int


class AdminKeyPublic(AdminKeyBase):
    id: str


class AdminKeyCreated(AdminKeyPublic):
    key: str


class AdminKey(AdminKeyBase, table=True):
    __tablename__ = "admin_keys"

    id: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(unique=True, max_length=64)
    revoked_at: int | None = None

    def public(self) -> AdminKeyPublic:
        return AdminKeyPublic.model_validate(self)
