"""SQLModel tables and API schemas, one module per concept.

Schema families follow the FastAPI template: `XBase` -> `XCreate` / `XPublic` /
`X(table=True)`. Secrets (hashes, encrypted private keys) live only on table models.
"""

from provisioning.models.admin import AdminKey
from provisioning.models.audit import AuditEvent
from provisioning.models.cas import DeviceCertificate, FleetCa
from provisioning.models.console import ConsoleSession
from provisioning.models.devices import CredentialKey, Device, SigningKey
from provisioning.models.fleets import Fleet
from provisioning.models.hooks import HookGrant
from provisioning.models.presence import BrokerConnection, BrokerHeartbeat
from provisioning.models.tokens import (
    EnrollmentToken,
    ReferenceToken,
    RefreshFamily,
    RefreshToken,
    Revocation,
    UsedAssertion,
)

__all__ = [
    "AdminKey",
    "AuditEvent",
    "BrokerConnection",
    "BrokerHeartbeat",
    "ConsoleSession",
    "CredentialKey",
    "Device",
    "DeviceCertificate",
    "EnrollmentToken",
    "Fleet",
    "FleetCa",
    "HookGrant",
    "ReferenceToken",
    "RefreshFamily",
    "RefreshToken",
    "Revocation",
    "SigningKey",
    "UsedAssertion",
]
