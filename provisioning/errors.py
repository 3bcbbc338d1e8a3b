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
    ├── InvalidClient    401     WWW-Authenticate added by the endpoint (RFC 6749 5.2)
    ├── InvalidGrant     400
    ├── UnauthorizedClient 400
    ├── UnsupportedGrantType 400
    ├── InvalidDpopProof 400     a bad DPoP proof (RFC 9449 section 5)
    ├── InvalidToken     401     an admin key as a bearer token (RFC 6750 section 3.1)
    ├── InsufficientScope 401    the same, lacking the scope (RFC 7662 section 2.3: 401)
    └── TooManyAttempts  429     a failure under a penalty, with Retry-After

Every path under `/oauth2/` answers RFC 6749 JSON, framework errors included
(`provisioning.http`).
"""

from __future__ import annotations

from typing import Any, Self


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
    """Rendered as RFC 6749 section 5.2 error JSON, not problem+json.

    `device_id` and `audit_detail` name whom a refusal concerns when the credential
    presented is known though refused (a refresh token of a known family): for the
    audit log only, never for the response.
    """

    status_code, error, title = 400, "invalid_request", "Invalid request"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers)
        self.device_id: str | None = None
        self.audit_detail: dict[str, Any] = {}

    def concerning(self, device_id: str, **detail: Any) -> Self:
        self.device_id, self.audit_detail = device_id, detail
        return self


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


class InvalidDpopProof(OAuthError):
    """RFC 9449 section 5 (and 4.3): a DPoP proof that fails a check."""

    error, title = "invalid_dpop_proof", "Invalid DPoP proof"


class InvalidToken(OAuthError):
    """An admin key that is unknown or revoked, sent as a bearer token (RFC 6750 3.1)."""

    status_code, error, title = 401, "invalid_token", "Invalid admin API key"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": bearer_challenge(self.error)})


class InsufficientScope(OAuthError):
    """An admin key without the scope: 401, not RFC 6750's 403, because RFC 7662 section
    2.3 answers a bearer token that "does not contain sufficient privileges" with 401."""

    status_code, error, title = 401, "insufficient_scope", "Admin API key lacks the scope"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": bearer_challenge(self.error)})


REALM = "credbroker"


def bearer_challenge(error: str | None = None) -> str:
    """RFC 6750 section 3: no error code when the request had no credentials."""
    return f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")


def challenge(authorization: str | None, schemes: tuple[str, ...]) -> str:
    """RFC 6749 section 5.2: a 401 `invalid_client` names the HTTP authentication scheme
    the client tried, if the endpoint takes it, else the first one it takes."""
    tried = (authorization or "").partition(" ")[0].lower()
    scheme = next((s for s in schemes if s.lower() == tried), schemes[0])
    if scheme == "Basic":
        return f'Basic realm="{REALM}", charset="UTF-8"'  # RFC 7617 section 2.1
    return bearer_challenge()


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
