"""Errors of the broker package.

BrokerAuthError
├── ConnectRefused      a CONNECT answered with a refusing CONNACK (carries the code)
└── BrokerStoreError    the key or revocation store cannot be read
"""

from __future__ import annotations


class BrokerAuthError(Exception):
    """Base of the broker package's errors."""


class ConnectRefused(BrokerAuthError):
    def __init__(self, return_code: int, reason: str) -> None:
        super().__init__(f"CONNACK {return_code}: {reason}")
        self.return_code = return_code
        self.reason = reason


class BrokerStoreError(BrokerAuthError):
    pass
