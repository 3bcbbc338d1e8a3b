"""A fleet's CA certificates: the certificates they issue name the fleet's devices by
their subject CN (RFC 8705 tls_client_auth, README "Fleet CAs")."""

import pydantic
from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from provisioning.models.bounds import STRICT_BODY

MAX_PEM_CHARS = 16 * 1024


class FleetCaCreate(BaseModel):
    """A CA certificate, and the proof that whoever registers it holds its key: a
    certificate it signed whose subject CN is the verification code (the 400 answer to
    a registration without one gives the code)."""

    model_config = STRICT_BODY

    certificate: str = pydantic.Field(max_length=MAX_PEM_CHARS)
    verification_certificate: str | None = pydantic.Field(default=None, max_length=MAX_PEM_CHARS)


class FleetCaBase(SQLModel):
    id: str = Field(primary_key=True, max_length=64)  # x5t#S256 of the CA certificate
    fleet: str = Field(foreign_key="fleets.name", index=True, max_length=64)
    subject: str = Field(index=True, max_length=1024)  # RFC 4514, matched to issuers
    not_after: int
    created_at: int


class FleetCaPublic(FleetCaBase):
    certificate: str


class FleetCa(FleetCaBase, table=True):
    __tablename__ = "fleet_cas"

    certificate: str = Field(max_length=MAX_PEM_CHARS)  # PEM
