"""Engines for the database every process shares (SQLAlchemy only: the standalone
broker runs without SQLModel)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy's recipe for working SAVEPOINTs on pysqlite: take transaction control
    # away from the driver and emit BEGIN ourselves (see `_sqlite_begin`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe under WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Request transactions take the write lock up front (IMMEDIATE): a deferred one that
    # reads, then writes, gets SQLITE_BUSY at once under concurrency instead of waiting.
    # On the driver's connection: through `exec_driver_sql` this cost more than a grant's
    # statements (an execution context and its events for a fixed string).
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.connection.driver_connection.execute(f"BEGIN {mode}")


class Sql:
    """One statement of a hot path, run as plain SQL on the DB-API cursor (SQLAlchemy
    Core spends about 0.1 ms of Python on a statement, more than SQLite spends running
    it), with the parameter markers of both families of drivers: `?` (sqlite3) and `%s`
    (psycopg). The SQL is the common subset of SQLite and PostgreSQL."""

    __slots__ = ("format", "qmark")

    def __init__(self, text: str) -> None:
        self.qmark = " ".join(text.split())
        self.format = self.qmark.replace("?", "%s")

    def text(self, paramstyle: str) -> str:
        """The statement for a driver of `paramstyle` (PEP 249)."""
        return self.qmark if paramstyle == "qmark" else self.format

    def run(self, conn: Connection, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row of the statement on `conn`'s driver connection."""
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.text(conn.dialect.paramstyle), params)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            # Hashes and sealed keys live here: readable by this user only.
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            Path(path).touch(mode=0o600, exist_ok=True)
        # One connection, handed from thread to thread: SQLite has one writer anyway,
        # and waiting on the pool is a condition variable, where waiting on SQLite's
        # busy handler is a sleep of up to 100 ms per retry.
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, pool_size=1, max_overflow=0
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
