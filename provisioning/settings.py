"""Server settings, from `CREDBROKER_*` environment variables."""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from credbroker.settings import CommonSettings

DAY = 86_400


class Settings(CommonSettings):
    """The API's settings: the common ones (database, issuer, audience, leeway) and
    what only the API needs."""

    master_key: SecretStr | None = None
    admin_key: SecretStr | None = None
    hook_key: SecretStr | None = None  # seeded with the broker:hook scope only
    # Comma-separated networks (e.g. "10.0.5.0/24") whose calls to /v1/hooks need no key:
    # for brokers that cannot present one (mosquitto-go-auth). Empty: keys only.
    hooks_trusted_networks: str = ""
    # RFC 7523 assertions: exp at most this far ahead of now and of iat; each jti is kept
    # this long at most. An hour: what authlib and most clients send by default.
    assertion_max_lifetime: int = Field(default=3600, ge=1, le=86_400)
    refresh_family_lifetime: int = 30 * DAY
    enrollment_token_ttl: int = 7 * DAY
    # Seconds a connection has to deliver a request (line, headers and body) once it opens
    # or sends the first byte of a request; then 408 and closed (slowloris).
    http_header_timeout: float = Field(default=10.0, gt=0, le=3600)
    max_body_bytes: int = 256 * 1024
    max_metadata_bytes: int = 4096
    max_batch: int = 1000
    failed_auth_limit: int = Field(default=10, ge=1)
    failed_auth_limit_address: int = Field(default=200, ge=1)
    failed_auth_window: int = Field(default=60, ge=1)
    log_level: str = "warning"
    # The API's certificate and key (PEM): with both the issuer is https:// (RFC 8414
    # section 2) and HTTPS is served on https_port beside plain HTTP on http_port, or
    # without https_port on http_port in place of plain HTTP. Plain HTTP is for development.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    https_port: int | None = None
    # CA certificates (PEM) of client certificates: a client may present one, verified
    # against these (a certificate that does not verify ends the handshake).
    tls_client_ca: Path | None = None
    # What a device certificate signed by credbroker as its fleet's CA lasts: short, a
    # device renews it with a new CSR (README, Certificates).
    device_certificate_lifetime: int = Field(default=7 * DAY, ge=300, le=366 * DAY)

    @property
    def https(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def issuer_port(self) -> int:
        return self.https_port if self.https and self.https_port is not None else self.http_port

    @field_validator("hooks_trusted_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        _networks(value)  # ValueError names the bad one, at start
        return value

    @functools.cached_property
    def trusted_hook_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Parsed once: hook calls without a key consult it on every request."""
        return _networks(self.hooks_trusted_networks)


def _networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n.strip(), strict=False) for n in value.split(",") if n.strip()]


def get_settings() -> Settings:
    return Settings()
