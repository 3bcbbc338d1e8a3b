"""Grants of connections accepted through the broker hooks, shared by API processes."""

from __future__ import annotations

from typing import Any

from sqlmodel import JSON, Column, Field, SQLModel


class HookGrant(SQLModel, table=True):
    """What a client id may do, from the token of its latest accepted CONNECT.

    Publish and subscribe hooks carry no token: an API process that did not answer the
    CONNECT finds the grant here. Rows die with the token (`exp`) and on revocation."""

    __tablename__ = "hook_grants"

    client_id: str = Field(primary_key=True, max_length=128)
    device_id: str = Field(index=True, max_length=128)
    jti: str = Field(max_length=64)
    kid: str = Field(max_length=160)  # the signing key, and `iat`: to check standing again
    iat: float
    exp: float
    pub: list[Any] = Field(sa_column=Column(JSON, nullable=False))
    sub: list[Any] = Field(sa_column=Column(JSON, nullable=False))
    since: int | None = None  # when a hook accepted the CONNECT (shown with the sessions)
    # The CONNECT's username when it was not the device id (a device-signed token's).
    username: str | None = Field(default=None, max_length=128)
