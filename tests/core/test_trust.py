"""The trust store's revocation log follower, on the databases it runs on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from credbroker.trust import CachedTrustStore
from provisioning.db import create_db_engine, migrate
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
