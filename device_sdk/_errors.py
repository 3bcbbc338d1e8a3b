"""Errors of the device SDK.

DeviceSDKError
├── TokenError          the token endpoint refused or could not be reached
│   └── DeviceRevoked   refused for good (revoked, disabled, unknown): stop trying
├── ConnectError        the broker refused or could not be reached
└── EnrollmentError     the enrollment token was refused
"""

from __future__ import annotations


class DeviceSDKError(Exception):
    """Base of the SDK's errors."""


class TokenError(DeviceSDKError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying later: unreachable, overloaded or rate limited."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


class DeviceRevoked(TokenError):
    pass


class ConnectError(DeviceSDKError):
    def __init__(self, message: str, *, return_code: int | None = None) -> None:
        super().__init__(message)
        self.return_code = return_code


class EnrollmentError(DeviceSDKError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
