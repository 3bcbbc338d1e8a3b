"""Engines for the database every process shares (SQLAlchemy only: the standalone
broker runs without SQLModel)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, StatementError


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
    statement = f"BEGIN {mode}"
    try:
        connection.connection.driver_connection.execute(statement)
    except connection.dialect.loaded_dbapi.Error as exc:  # locked for longer than busy_timeout
        raise driver_error(exc, statement, connection.dialect) from exc


def driver_error(exc: Exception, statement: str, dialect: Dialect) -> StatementError:
    """The driver's own error as SQLAlchemy's (`OperationalError`, `IntegrityError`...),
    the one tree that callers and the application's handlers know (a database that
    cannot answer is a 503, not a 500). Parameters stay out of its message."""
    return DBAPIError.instance(
        statement, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
    )


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

    def execute(self, cursor: Any, dialect: Dialect, params: Sequence[Any]) -> Any:
        """Run the statement on a DB-API `cursor` of `dialect`'s driver; its errors are
        raised as SQLAlchemy's (`driver_error`). Returns the cursor."""
        statement = self.text(dialect.paramstyle)
        try:
            cursor.execute(statement, params)
        except dialect.loaded_dbapi.Error as exc:
            raise driver_error(exc, statement, dialect) from exc
        return cursor

    def run(self, conn: Connection, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row of the statement on `conn`'s driver connection."""
        cursor = conn.connection.cursor()
        try:
            row = self.execute(cursor, conn.dialect, params).fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def all(self, conn: Connection, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Every row of the statement on `conn`'s driver connection."""
        cursor = conn.connection.cursor()
        try:
            rows = self.execute(cursor, conn.dialect, params).fetchall()
        finally:
            cursor.close()
        return [tuple(row) for row in rows]


POOL_SIZE = 20  # connections each process keeps to a server database
POOL_OVERFLOW = 10  # more for a burst of admin requests and hook reads


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
    # A server database: POOL_SIZE connections kept, as many as the grants a process runs
    # at once (`Services.grant`). Overflow connections are opened for a burst and closed
    # when handed back: a PostgreSQL connection costs a backend process and milliseconds,
    # which the old 10 kept for 16 concurrent grants paid on most requests.
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
