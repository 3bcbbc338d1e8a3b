"""Errors of the device SDK.

DeviceSDKError
├── TokenError          the token endpoint refused or could not be reached
│   └── DeviceRevoked   refused for good (revoked, disabled, unknown): stop trying
└── ConnectError        the broker refused or could not be reached
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


class DeviceRevoked(TokenError):
    pass


class ConnectError(DeviceSDKError):
    def __init__(self, message: str, *, return_code: int | None = None) -> None:
        super().__init__(message)
        self.return_code = return_code
