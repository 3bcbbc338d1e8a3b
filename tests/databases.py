"""Databases for the API suite: SQLite in a temporary directory, or a PostgreSQL
database of the test's own on the machine's server (127.0.0.1:5432, trust auth),
dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_SERVER = os.environ.get("CREDBROKER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def postgres_database(server: str = PG_SERVER) -> Iterator[str]:
    """A new, empty database on `server`; its SQLAlchemy URL. Dropped afterwards,
    connections or not (the benchmarks use it too)."""
    name = "credbroker_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
