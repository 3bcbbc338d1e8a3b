"""The access token contract shared by the issuer, the brokers and the SDK.

Standard library only: the broker and the device SDK import this without FastAPI or
SQLModel. Claim names follow RFC 9068 (JWT profile for OAuth 2.0 access tokens) plus
credbroker's own `fleet` and `acl`.
"""

from __future__ import annotations

import re
from typing import NotRequired, TypedDict

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a media type (RFC 9068 section 2.1)
SIGNING_ALG = "ES256"
DEFAULT_AUDIENCE = "mqtt"
# Opaque (reference) access tokens: `cbr_` and 43 base64url characters (256 bits), the
# prefix for secret scanners; refresh tokens share it, and live in another table.
REFERENCE_PREFIX = "cbr"
DEFAULT_TOKEN_TTL = 900
MAX_TOKEN_TTL = 86_400

# Brokers map topics to routing keys, so ids never carry `.`, `#`, `*`, `+` or `/`.
DEVICE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_:-]{0,127}"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
FLEET_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
FLEET_NAME_RE = re.compile(FLEET_NAME_PATTERN)

PLACEHOLDERS = ("{device_id}", "{fleet}")


class TopicAcl(TypedDict):
    pub: list[str]
    sub: list[str]


# RFC 8705 section 3.1: the SHA-256 thumbprint of the client certificate a token is bound to.
CERTIFICATE_CONFIRMATION = "x5t#S256"
Confirmation = TypedDict("Confirmation", {"jkt": str, "x5t#S256": NotRequired[str]})


class AccessClaims(TypedDict):
    iss: str
    sub: str
    client_id: str
    aud: str | list[str]
    iat: int
    nbf: int
    exp: int
    jti: str
    fleet: str
    acl: TopicAcl
    cnf: Confirmation


def is_device_id(value: str) -> bool:
    return DEVICE_ID_RE.fullmatch(value) is not None


def is_fleet_name(value: str) -> bool:
    return FLEET_NAME_RE.fullmatch(value) is not None


def kid_for(device_id: str, version: int) -> str:
    """The signing key id: `{device_id}#{version}` (DESIGN.md, Keys)."""
    return f"{device_id}#{version}"


def parse_kid(kid: str) -> tuple[str, int] | None:
    """Split a signing key id into device id and version, or None if malformed."""
    device_id, sep, version = kid.rpartition("#")
    if not sep or not version.isdigit() or len(version) > 9 or not is_device_id(device_id):
        return None
    return device_id, int(version)


def device_of_client_id(client_id: str) -> tuple[str, bool]:
    """The device id an MQTT client id names, and whether it used Cloud IoT Core's long
    form `projects/P/locations/L/registries/R/devices/D` (then `D`)."""
    parts = client_id.split("/")
    if len(parts) == 8 and parts[0::2] == ["projects", "locations", "registries", "devices"]:
        return parts[7], True
    return client_id, False


def expand_filters(templates: list[str], *, device_id: str, fleet: str) -> list[str]:
    """Replace the ACL placeholders; ids never hold topic wildcards, so this is safe."""
    return [t.replace("{device_id}", device_id).replace("{fleet}", fleet) for t in templates]
