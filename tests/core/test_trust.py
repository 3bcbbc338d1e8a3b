"""The trust store's revocation log follower, on the databases it runs on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from credbroker.trust import CachedTrustStore, Change
from provisioning.db import create_db_engine, migrate
from provisioning.models import CredentialKey, Device, Fleet, FleetCa
from tests.databases import postgres_database

_ENTRY = text(
    "INSERT INTO revocations (kind, device_id, created_at) VALUES ('device', :device, :now)"
)


@contextmanager
def _postgres() -> Iterator[Engine]:
    with postgres_database() as url:
        engine = create_db_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        with _postgres() as engine:
            yield engine
        return
    engine = create_db_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_an_entry_committed_after_a_later_one_is_still_read() -> None:
    """PostgreSQL hands out ids at insert and shows rows at commit: a cursor on the
    highest id read would skip a slow transaction's entry (and never cut its session).
    (SQLite has one writer at a time: its entries commit in id order.)"""
    with _postgres() as engine:
        _follow_a_slow_transaction(engine)


def _follow_a_slow_transaction(engine: Engine) -> None:
    trust = CachedTrustStore(engine)
    trust.catch_up()
    with engine.connect() as slow:
        slow_transaction = slow.begin()
        slow.execute(_ENTRY, {"device": "slow", "now": int(time.time())})
        with engine.begin() as quick:
            quick.execute(_ENTRY, {"device": "quick", "now": int(time.time())})
        assert [c.device_id for c in trust.read_log()] == ["quick"]
        slow_transaction.commit()
    assert [c.device_id for c in trust.read_log()] == ["slow"]
    assert trust.read_log() == []


def test_a_new_follower_starts_at_the_end_with_the_live_deny_list(engine: Engine) -> None:
    now = int(time.time())
    with engine.begin() as conn:
        conn.execute(_ENTRY, {"device": "old", "now": now})
        conn.execute(
            text(
                "INSERT INTO revocations (kind, device_id, jti, expires_at, created_at) VALUES "
                "('token', 'd', 'live-jti', :later, :now), ('token', 'd', 'dead-jti', :gone, :now)"
            ),
            {"later": now + 600, "gone": now - 600, "now": now},
        )
    trust = CachedTrustStore(engine)
    trust.catch_up()
    assert trust.read_log() == []  # the past is not replayed to empty caches
    assert trust.is_jti_revoked("live-jti") and not trust.is_jti_revoked("dead-jti")


def test_a_certificate_holder_is_read_cached_and_dropped_with_its_device(engine: Engine) -> None:
    """`certificate_holder`: only for a fleet with `certificate_login`; the device's own
    ACL over its fleet's, filled in; its credential keys' x5t#S256 and its fleet's CAs."""
    now = int(time.time())
    with Session(engine) as session:
        for name, allowed in (("on", True), ("off", False)):
            session.add(
                Fleet(
                    name=name,
                    token_ttl=600,
                    allow_client_secret=False,
                    created_at=now,
                    certificate_login=allowed,
                    acl_publish=["fleets/{fleet}/{device_id}"],
                    acl_subscribe=["fleets/{fleet}/+"],
                )
            )
        session.flush()
        for device_id, fleet, own in (
            ("d1", "on", None),
            ("d2", "on", ["own/{device_id}"]),
            ("d3", "off", None),
        ):
            session.add(
                Device(
                    device_id=device_id,
                    fleet=fleet,
                    acl_publish=own,
                    created_at=now,
                    updated_at=now,
                )
            )
        session.flush()
        jwk = {"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "x5t#S256": "thumb"}
        session.add(
            CredentialKey(
                device_id="d1", kid="k", alg="ES256", jwk=jwk, expires_at=None, created_at=now
            )
        )
        pem = "-----BEGIN CERTIFICATE-----\n...\n"
        session.add(
            FleetCa(
                id="ca",
                fleet="on",
                subject="CN=ca",
                not_after=now + 60,
                created_at=now,
                certificate=pem,
            )
        )
        session.commit()
    trust = CachedTrustStore(engine)
    holder = trust.certificate_holder("d1")
    assert holder is not None
    assert (holder.fleet, holder.kid, holder.registered, holder.cas) == (
        "on",
        "d1#0",
        {"thumb"},
        (pem,),
    )
    assert (holder.pub, holder.sub) == (("fleets/on/d1",), ("fleets/on/+",))
    own = trust.certificate_holder("d2")
    assert own is not None and (own.pub, own.sub, own.registered) == (("own/d2",), (), frozenset())
    assert trust.certificate_holder("d3") is None and trust.certificate_holder("nobody") is None

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM credential_keys WHERE device_id = 'd1'"))
    assert trust.certificate_holder("d1") == holder  # cached
    trust.apply([Change("d1")])
    fresh = trust.certificate_holder("d1")
    assert fresh is not None and fresh.registered == frozenset()
