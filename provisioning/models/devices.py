"""Devices, their credential public keys and their per-device signing keys.

Credential keys are a schema family (`CredentialKeyBase`). Devices are not: what a
create takes (an optional id, `metadata`, one `acl`) and what the table keeps (`meta`,
since SQLModel reserves `metadata`; the ACL as two columns; status as text) differ in
name, type or optionality field by field, and `to_public` maps them."""

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, field_validator
from sqlmodel import JSON, Field, Index, LargeBinary, SQLModel, UniqueConstraint

from credbroker.claims import DEVICE_ID_PATTERN, FLEET_NAME_PATTERN
from provisioning.models.bounds import STRICT_BODY, STRICT_QUERY, JsonObject, UnixTime
from provisioning.models.fleets import AclTemplate, check_filters

DeviceStatus = Literal["active", "disabled", "revoked"]
AuthMethod = Literal["private_key_jwt", "client_secret"]
PublicKeyInput = str | dict[str, Any]


class DeviceAcl(BaseModel):
    """A device's own ACL, replacing its fleet's (service clients, backends)."""

    model_config = STRICT_BODY

    publish: list[str] = []
    subscribe: list[str] = []

    _check = field_validator("publish", "subscribe")(check_filters)


class DeviceCreate(BaseModel):
    model_config = STRICT_BODY

    device_id: str | None = pydantic.Field(default=None, pattern=f"^{DEVICE_ID_PATTERN}$")
    fleet: str = pydantic.Field(pattern=f"^{FLEET_NAME_PATTERN}$")
    public_key: PublicKeyInput | None = None
    key_expires_at: UnixTime | None = None
    metadata: JsonObject = {}
    acl: DeviceAcl | None = None
    auth_method: AuthMethod | None = None


class DeviceUpdate(BaseModel):
    model_config = STRICT_BODY

    status: Literal["active", "disabled"] | None = None
    metadata: JsonObject | None = None
    acl: DeviceAcl | None = None


class CredentialKeyCreate(BaseModel):
    model_config = STRICT_BODY

    public_key: PublicKeyInput
    expires_at: UnixTime | None = None


class CredentialKeyBase(SQLModel):
    kid: str = Field(max_length=64)
    alg: str = Field(max_length=16)
    jwk: dict[str, Any] = Field(sa_type=JSON)
    expires_at: int | None
    created_at: int


class CredentialKeyPublic(CredentialKeyBase):
    pass


class DevicePublic(BaseModel):
    device_id: str
    fleet: str
    status: DeviceStatus
    metadata: dict[str, Any]
    acl: AclTemplate | None
    auth_method: AuthMethod
    signing_key_version: int
    tokens_valid_after: int
    created_at: int
    updated_at: int
    credential_keys: list[CredentialKeyPublic] = []


class DeviceCreated(DevicePublic):
    """Returned once at creation: carries the secret that is never shown again."""

    client_secret: str | None = None
    enrollment_token: str | None = None


class DeviceFilter(BaseModel):
    """The query of `GET /v1/devices`."""

    model_config = STRICT_QUERY

    fleet: str | None = pydantic.Field(default=None, pattern=f"^{FLEET_NAME_PATTERN}$")
    status: DeviceStatus | None = None
    cursor: str | None = pydantic.Field(default=None, max_length=200)
    limit: int = pydantic.Field(default=100, ge=1, le=1000)


class DevicePage(BaseModel):
    items: list[DevicePublic]
    next_cursor: str | None


class Device(SQLModel, table=True):
    __tablename__ = "devices"
    # The console's counts by fleet and status, from the index alone (migration 0009);
    # fleet leads, so it also serves the foreign key and fleet filters.
    __table_args__ = (Index("ix_devices_fleet_status", "fleet", "status", "device_id"),)

    device_id: str = Field(primary_key=True, max_length=128)
    fleet: str = Field(foreign_key="fleets.name", max_length=64)
    status: str = Field(default="active", index=True, max_length=16)
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    acl_publish: list[str] | None = Field(default=None, sa_type=JSON)
    acl_subscribe: list[str] | None = Field(default=None, sa_type=JSON)
    auth_method: str = Field(default="private_key_jwt", max_length=32)
    client_secret_hash: str | None = Field(default=None, max_length=256)
    signing_key_version: int = 0
    tokens_valid_after: int = 0
    created_at: int
    updated_at: int


class CredentialKey(CredentialKeyBase, table=True):
    """A device's own public key; `kid` is its RFC 7638 thumbprint."""

    __tablename__ = "credential_keys"
    __table_args__ = (UniqueConstraint("device_id", "kid"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="devices.device_id", index=True, max_length=128)

    def public(self) -> CredentialKeyPublic:
        return CredentialKeyPublic.model_validate(self)


class SigningKey(SQLModel, table=True):
    """The server's ES256 key for one device; the private half only encrypted."""

    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, max_length=160)
    device_id: str = Field(foreign_key="devices.device_id", index=True, max_length=128)
    version: int
    public_der: bytes = Field(sa_type=LargeBinary)
    private_enc: bytes = Field(sa_type=LargeBinary)  # AES-256-GCM, kid as associated data
    created_at: int
    verify_until: int | None = None  # set on rotation: last exp it signed, plus leeway
