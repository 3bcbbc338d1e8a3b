"""Live connections of standalone brokers (`broker.presence`), for the sessions view."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class BrokerHeartbeat(SQLModel, table=True):
    """A standalone broker is alive while it beats (once a second)."""

    __tablename__ = "broker_heartbeats"

    broker_id: str = Field(primary_key=True, max_length=64)
    seen_at: int


class BrokerConnection(SQLModel, table=True):
    """One live MQTT connection of a standalone broker, replaced whole per broker."""

    __tablename__ = "broker_connections"

    broker_id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(primary_key=True, max_length=128)
    device_id: str = Field(index=True, max_length=128)
    address: str = Field(max_length=64)
    since: int
    protocol: str = Field(max_length=8)
    jti: str = Field(max_length=64)  # the access token it presented: its family
    expires_at: int
