"""A fleet's CA certificates (the certificates they issue name the fleet's devices by
their subject CN: RFC 8705 tls_client_auth, README "Fleet CAs"), and the device
certificates credbroker signs as a fleet's own CA."""

import pydantic
from pydantic import BaseModel
from sqlmodel import Field, LargeBinary, SQLModel

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
    managed: bool = False  # credbroker's own CA for the fleet, which signs device CSRs


class FleetCaPublic(FleetCaBase):
    certificate: str


class FleetCa(FleetCaBase, table=True):
    __tablename__ = "fleet_cas"

    certificate: str = Field(max_length=MAX_PEM_CHARS)  # PEM
    # A managed CA's private key (PKCS#8 DER), sealed under the master key like signing
    # keys; None for a CA an operator registered (its key never comes here).
    sealed_key: bytes | None = Field(default=None, sa_type=LargeBinary)


class CertificateRequest(BaseModel):
    """`POST /v1/devices/{id}/certificates`: a PKCS#10 CSR, and an enrollment token of
    the device unless the request carries an admin key or the device's access token."""

    model_config = STRICT_BODY

    csr: str = pydantic.Field(max_length=MAX_PEM_CHARS)
    enrollment_token: str | None = pydantic.Field(default=None, max_length=200)


class CertificateIssued(BaseModel):
    certificate: str  # PEM, subject CN = the device id
    ca_certificate: str  # PEM of the fleet's CA that signed it
    serial_number: str  # hex
    not_after: int
    x5t_s256: str = pydantic.Field(serialization_alias="x5t#S256")


class DeviceCertificate(SQLModel, table=True):
    """A certificate credbroker issued: only the ones on record, not revoked, of a
    device that is active, authenticate (README, Certificates)."""

    __tablename__ = "device_certificates"

    serial: str = Field(primary_key=True, max_length=40)  # hex
    # Not a foreign key: a deleted device's certificates stay listed on the CRL.
    device_id: str = Field(index=True, max_length=128)
    ca_id: str = Field(index=True, max_length=64)
    x5t: str = Field(max_length=64)
    not_after: int
    created_at: int
    revoked_at: int | None = None
