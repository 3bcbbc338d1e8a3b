"""Storage: migrations applied at start keep data; keys sealed at rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import inspect

from provisioning.db import create_db_engine, migrate
from tests.support import make_api


def test_restart_on_an_existing_database_keeps_everything(tmp_path: Path) -> None:
    first = make_api(tmp_path)
    fleet = first.fleet()["name"]
    device = first.device(fleet)
    token = device.tokens()["access_token"]
    # A second process start on the same data directory: migrations are a no-op,
    # the master key file is reused, and earlier tokens still verify.
    second = make_api(tmp_path)
    second.admin_key = first.admin_key
    assert second.client.get(f"/v1/devices/{device.id}", headers=second.admin).status_code == 200
    assert second.introspect(token)["active"] is True


def test_migrations_reach_head_and_are_idempotent(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {
        "devices",
        "fleets",
        "signing_keys",
        "refresh_tokens",
        "audit_events",
        "alembic_version",
    } <= tables
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_secrets_are_only_stored_hashed_or_sealed(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    fleet = api.fleet(allow_client_secret=True)["name"]
    secret = api.client.post(
        "/v1/devices", json={"device_id": "s1", "fleet": fleet}, headers=api.admin
    ).json()["client_secret"]
    tokens = api.device(fleet).tokens()
    conn = sqlite3.connect(tmp_path / "data" / "credbroker.db")
    dump = "\n".join(conn.iterdump())
    conn.close()
    for value in (secret, tokens["refresh_token"], api.admin_key):
        assert value not in dump
    assert "$argon2" in dump  # the client secret's slow hash
    assert "BEGIN PRIVATE KEY" not in dump
    assert (tmp_path / "data" / "master.key").stat().st_mode & 0o777 == 0o600


def test_migrations_create_exactly_the_models_schema(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import provisioning.models  # noqa: F401 - registers every table

    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
