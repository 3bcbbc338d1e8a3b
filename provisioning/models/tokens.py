"""Server-side token state: refresh families, replay cache, revocations, enrollment."""

from typing import Any

from sqlmodel import JSON, Field, SQLModel


class RefreshFamily(SQLModel, table=True):
    """All refresh tokens descending from one grant; dies whole on reuse (RFC 9700 4.14)."""

    __tablename__ = "refresh_families"

    id: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(foreign_key="devices.device_id", index=True, max_length=128)
    jkt: str = Field(max_length=64)  # the credential key that was proven at the grant
    # The client certificate of an mTLS grant (RFC 8705): its refreshes need it too.
    x5t: str | None = Field(default=None, max_length=64)
    created_at: int
    expires_at: int  # absolute lifetime of the family
    revoked_at: int | None = None
    # Where it came from (the grant that made it) and was last used (its last refresh).
    last_used_at: int | None = None
    address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=200)  # capped; never logged
    # RFC 9449 section 5: granted with a DPoP proof, each refresh needs one by this key.
    dpop_jkt: str | None = Field(default=None, max_length=64)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)  # SHA-256 hex of the token
    family_id: str = Field(foreign_key="refresh_families.id", index=True, max_length=64)
    device_id: str = Field(max_length=128)
    created_at: int
    used_at: int | None = None
    access_jti: str = Field(max_length=64)  # the access token issued beside it
    access_exp: int


class ReferenceToken(SQLModel, table=True):
    """An opaque access token (fleet `token_format: "reference"`): only its SHA-256 is
    kept, beside the claims a JWT would have carried and the signing kid whose standing
    its grants follow. Pruned once expired, as used assertions are."""

    __tablename__ = "reference_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)  # SHA-256 hex of the token
    device_id: str = Field(index=True, max_length=128)
    jti: str = Field(max_length=64)
    kid: str = Field(max_length=140)
    claims: dict[str, Any] = Field(sa_type=JSON)
    expires_at: int = Field(index=True)


class UsedAssertion(SQLModel, table=True):
    """RFC 7523 section 3: each client assertion jti is accepted once until it expires."""

    __tablename__ = "used_assertions"

    key: str = Field(primary_key=True, max_length=400)  # "{device_id}\n{jti}"
    expires_at: int = Field(index=True)


class Revocation(SQLModel, table=True):
    """The revocation log: deny-listed jtis, device-wide and fleet-wide cut-offs, in order."""

    __tablename__ = "revocations"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # "token", "device" or "fleet"
    device_id: str = Field(index=True, max_length=128)  # "" for "fleet"
    fleet: str | None = Field(default=None, max_length=64)  # for "fleet": every device of it
    jti: str | None = Field(default=None, index=True, max_length=64)
    expires_at: int | None = None  # for "token": when the deny entry may be dropped
    created_at: int


class EnrollmentToken(SQLModel, table=True):
    __tablename__ = "enrollment_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(foreign_key="devices.device_id", index=True, max_length=128)
    expires_at: int
    used_at: int | None = None


class FamilyPublic(SQLModel):
    """One session: a refresh family, from the grant that made it."""

    id: str
    created_at: int
    last_used_at: int  # its last refresh (or its grant)
    expires_at: int
    address: str | None  # of the grant that made it, then of its last refresh
    user_agent: str | None  # of the grant that made it (at most 200 characters)
    access_tokens_outstanding: int  # issued in it and not yet expired
    dpop_jkt: str | None = None  # the key its refreshes need a DPoP proof by (RFC 9449)


class ConnectionPublic(SQLModel):
    """One live MQTT connection of the device."""

    broker: str  # "embedded", a standalone broker's id, or "hooks"
    client_id: str
    address: str
    since: int
    protocol: str
    family: str | None  # the family whose access token it presented, if any
    expires_at: int  # when the broker ends it (token exp plus leeway)


class SessionsPublic(SQLModel):
    families: list[FamilyPublic]
    connections: list[ConnectionPublic]
