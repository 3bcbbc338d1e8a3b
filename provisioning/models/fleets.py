"""Fleets: a group of devices sharing an ACL template and a token lifetime."""

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, field_validator
from sqlmodel import JSON, Field, SQLModel

from credbroker.claims import DEFAULT_TOKEN_TTL, FLEET_NAME_PATTERN, MAX_TOKEN_TTL, PLACEHOLDERS
from credbroker.topics import is_valid_filter
from provisioning.models.bounds import STRICT_BODY, STRICT_QUERY

MAX_ACL_ENTRIES = 64
# README, Token formats: what the token endpoint issues, or (device-signed) what devices
# sign themselves and send as their MQTT password.
TokenFormat = Literal["jwt", "reference", "device-signed"]
AUDIENCE_PATTERN = r"^[\x21-\x7e]{1,255}$"


def check_filters(filters: list[str]) -> list[str]:
    """ACL templates must be valid MQTT filters once placeholders are filled in."""
    if len(filters) > MAX_ACL_ENTRIES:
        raise ValueError(f"at most {MAX_ACL_ENTRIES} filters")
    for template in filters:
        filled = template
        for placeholder in PLACEHOLDERS:
            filled = filled.replace(placeholder, "x")
        if "{" in filled or "}" in filled:
            raise ValueError(f"unknown placeholder in {template!r}")
        if len(template) > 512 or not is_valid_filter(filled):
            raise ValueError(f"not a valid MQTT topic filter: {template!r}")
    return filters


class AclTemplate(BaseModel):
    model_config = STRICT_BODY

    publish: list[str] = []
    subscribe: list[str] = []

    _check = field_validator("publish", "subscribe")(check_filters)


class FleetCreate(BaseModel):
    model_config = STRICT_BODY

    name: str = pydantic.Field(pattern=f"^{FLEET_NAME_PATTERN}$")
    acl: AclTemplate = AclTemplate()
    token_ttl: int = pydantic.Field(default=DEFAULT_TOKEN_TTL, ge=1, le=MAX_TOKEN_TTL)
    allow_client_secret: bool = False
    token_format: TokenFormat = "jwt"  # noqa: S105 - a format name
    audience: str | None = pydantic.Field(default=None, pattern=AUDIENCE_PATTERN)
    iot_core_client_ids: bool = False
    auto_register: bool = False
    proof_of_possession: bool = False
    certificate_login: bool = False


class FleetUpdate(BaseModel):
    model_config = STRICT_BODY

    acl: AclTemplate | None = None
    token_ttl: int | None = pydantic.Field(default=None, ge=1, le=MAX_TOKEN_TTL)
    allow_client_secret: bool | None = None
    token_format: TokenFormat | None = None
    audience: str | None = pydantic.Field(default=None, pattern=AUDIENCE_PATTERN)
    iot_core_client_ids: bool | None = None
    auto_register: bool | None = None
    proof_of_possession: bool | None = None
    certificate_login: bool | None = None


class FleetBase(SQLModel):
    name: str = Field(max_length=64)
    token_ttl: int
    allow_client_secret: bool
    created_at: int
    token_format: str = Field(default="jwt", max_length=16)
    # What device-signed tokens must carry as `aud` (Cloud IoT Core: the project id);
    # None: the fleet's name.
    audience: str | None = Field(default=None, max_length=255)
    iot_core_client_ids: bool = False
    # A first token request with a certificate of one of the fleet's CAs creates its
    # device (just-in-time registration, README "Fleet CAs").
    auto_register: bool = False
    # README, Proof of possession on MQTT: the MQTT password must carry a fresh proof
    # signed by the token's `cnf.jkt` key; a token alone gets CONNACK 4.
    proof_of_possession: bool = False
    # README, Certificates as device credentials: on MQTTS, a verified client
    # certificate of the device and no password is a login (credbroker.certlogin).
    certificate_login: bool = False


class FleetPublic(FleetBase):
    acl: AclTemplate


class FleetFilter(BaseModel):
    """The query of `GET /v1/fleets`."""

    model_config = STRICT_QUERY

    cursor: str | None = pydantic.Field(default=None, max_length=200)
    limit: int = pydantic.Field(default=100, ge=1, le=1000)


class FleetPage(BaseModel):
    items: list[FleetPublic]
    next_cursor: str | None


class Fleet(FleetBase, table=True):
    __tablename__ = "fleets"

    name: str = Field(primary_key=True, max_length=64)
    acl_publish: list[str] = Field(default_factory=list, sa_type=JSON)
    acl_subscribe: list[str] = Field(default_factory=list, sa_type=JSON)

    def public(self) -> FleetPublic:
        acl = AclTemplate(publish=self.acl_publish, subscribe=self.acl_subscribe)
        return FleetPublic.model_validate(self, update={"acl": acl})


def acl_columns(acl: AclTemplate) -> dict[str, Any]:
    return {"acl_publish": list(acl.publish), "acl_subscribe": list(acl.subscribe)}
