"""Errors of the device SDK.

DeviceSDKError
├── TokenError          the token endpoint refused or could not be reached
│   └── DeviceRevoked   refused for good (revoked, disabled, unknown): stop trying
├── ConnectError        the broker refused or could not be reached
├── SubscriptionRefused the broker refused a topic filter (SUBACK 0x80)
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


class SubscriptionRefused(DeviceSDKError):
    """The broker refused to subscribe to `topic_filter` (MQTT 3.1.1 SUBACK 0x80).

    credbroker refuses a filter that its token's `acl.sub` does not contain (MQTT 3.1.1
    section 4.7 containment), a `$` filter such as `$SYS/#`, and any SUBSCRIBE after the
    token expired.
    """

    def __init__(self, topic_filter: str) -> None:
        super().__init__(f"subscription to {topic_filter!r} refused by the broker")
        self.topic_filter = topic_filter
