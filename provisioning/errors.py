"""Errors of the provisioning API, as data (authlib's style): one handler renders them.

ProvisioningError                problem+json (RFC 9457)
├── BadRequest           400
│   └── InvalidKey       400     a public key that is not Ed25519 or P-256 PEM/JWK
├── Unauthorized         401
├── Forbidden            403
├── NotFound             404
├── Conflict             409
├── PayloadTooLarge      413
├── UnsupportedMediaType 415
└── OAuthError                   RFC 6749 section 5.2 JSON {"error", "error_description"}
    ├── InvalidRequest   400
    ├── InvalidClient    401
    ├── InvalidGrant     400
    ├── UnauthorizedClient 400
    ├── UnsupportedGrantType 400
    └── TooManyAttempts  429     a failure under a penalty, with Retry-After
"""

from __future__ import annotations

from typing import Any


class ProvisioningError(Exception):
    status_code = 500
    error = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra: dict[str, Any] = {}  # more members for the problem+json body


class BadRequest(ProvisioningError):
    status_code, error, title = 400, "invalid_request", "Bad request"


class InvalidKey(BadRequest):
    error, title = "invalid_key", "Invalid public key"


class Unauthorized(ProvisioningError):
    status_code, error, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ProvisioningError):
    status_code, error, title = 403, "forbidden", "Forbidden"


class NotFound(ProvisioningError):
    status_code, error, title = 404, "not_found", "Not found"


class Conflict(ProvisioningError):
    status_code, error, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ProvisioningError):
    status_code, error, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(ProvisioningError):
    status_code, error, title = 415, "unsupported_media_type", "Unsupported media type"


class OAuthError(ProvisioningError):
    """Rendered as RFC 6749 section 5.2 error JSON, not problem+json."""

    status_code, error, title = 400, "invalid_request", "Invalid request"


class InvalidRequest(OAuthError):
    pass


class InvalidClient(OAuthError):
    status_code, error, title = 401, "invalid_client", "Client authentication failed"


class InvalidGrant(OAuthError):
    error, title = "invalid_grant", "Invalid grant"


class InactiveClient(InvalidClient):
    """A device that may not have tokens (revoked, disabled). Not a guess: it does not
    count against the caller's address, where many honest devices may share a NAT."""


class DeadGrant(InvalidGrant):
    """A real refresh token that can no longer be used (family revoked or expired,
    device inactive). Not a guess either."""


class UnauthorizedClient(OAuthError):
    error, title = "unauthorized_client", "Client not allowed to use this grant"


class UnsupportedGrantType(OAuthError):
    error, title = "unsupported_grant_type", "Unsupported grant type"


class TooManyAttempts(OAuthError):
    """A failure under a penalty: 429 with `Retry-After`, and the RFC 6749 section 5.2
    error of what failed (`invalid_client`, `invalid_grant`)."""

    status_code, error, title = 429, "invalid_client", "Too many failed attempts"

    def __init__(self, retry_after: int, error: str = "invalid_client") -> None:
        super().__init__(
            f"too many failed attempts; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.error = error
