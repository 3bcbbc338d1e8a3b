"""Group commit: the token requests of one turn of the event loop share one transaction.

On the embedded database a grant's commit and begin cost more than its statements (the
WAL frames of four tables and their indexes). Requests that `run` queues in the same
turn of the event loop are run together, one after the other, in one callback of the
loop: one transaction, each request in a savepoint of its own (`unit`), one commit.
Each is answered only after the commit that holds it, so a crash at any point loses
only what was never answered; if the commit fails, every request of the batch fails
with it and none is answered with tokens. The changes of standing the batch made are
announced once, after its commit.

The batch runs inside one callback, so nothing else on the loop can want the
connection it holds (SQLite has one, and waiting for it on the loop would never end);
what runs in the batch reaches the database only through this module: `unit` for the
grant's statements, `session` for the ORM, `connection` for reads. Outside a batch, and
in threads (remote databases, client secrets), each is a transaction (or connection)
of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from credbroker.trust import Change
from provisioning.db import committed, transaction
from provisioning.standing import PENDING, Bus

T = TypeVar("T")


@dataclass
class Unit:
    """Where a grant's statements go, and the changes of standing it records."""

    conn: Connection
    changes: list[Change] = field(default_factory=list)


@dataclass
class _Batch:
    conn: Connection
    changes: list[Change] = field(default_factory=list)
    savepoints: int = 0


_current: ContextVar[_Batch | None] = ContextVar("credbroker_batch", default=None)


class GroupCommit:
    def __init__(self, engine: Engine, bus: Bus) -> None:
        self._reads = engine
        self._engine = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._bus = bus
        self._queued: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in the next batch; its result once the batch has committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._run_batch)
        self._queued.append((work, future))
        return await future

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """A savepoint of the running batch, or a transaction of its own: committed (or
        released) when the block ends, rolled back if it raises."""
        batch = _current.get()
        if batch is None:
            with self._engine.begin() as conn:
                unit = Unit(conn)
                yield unit
            self._bus.publish(unit.changes)
            return
        batch.savepoints += 1
        name = f"grant_{batch.savepoints}"
        cursor = batch.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"SAVEPOINT {name}")
        unit = Unit(batch.conn)
        try:
            yield unit
        except BaseException:
            cursor.execute(f"ROLLBACK TO {name}")
            cursor.execute(f"RELEASE {name}")
            raise
        else:
            cursor.execute(f"RELEASE {name}")
            batch.changes.extend(unit.changes)
        finally:
            cursor.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session in a savepoint of the running batch, or in a transaction of
        its own (`db.transaction`); the changes of standing it records are announced
        once what holds them has committed (`provisioning.standing`)."""
        changes: list[Change] = []
        batch = _current.get()
        if batch is None:
            with transaction(self._reads) as session:
                session.info[PENDING] = changes
                yield session
            self._bus.publish(changes)
            return
        joined = Session(
            batch.conn,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
            info={PENDING: changes},
        )
        with committed(joined) as session:
            yield session
        batch.changes.extend(changes)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """For reads: the running batch's connection, else one of the engine's."""
        batch = _current.get()
        if batch is not None:
            yield batch.conn
            return
        with self._reads.connect() as conn:
            yield conn

    def _run_batch(self) -> None:
        queued, self._queued = self._queued, []
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            with self._engine.begin() as conn:
                batch = _Batch(conn)
                token = _current.set(batch)
                try:
                    for work, future in queued:
                        try:
                            outcomes.append((future, True, work()))
                        except Exception as exc:  # this request's answer; the rest go on
                            outcomes.append((future, False, exc))
                finally:
                    _current.reset(token)
        except BaseException as exc:  # no commit: nothing of the batch stands
            for _, future in queued:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not isinstance(exc, Exception):
                raise
            return
        self._bus.publish(batch.changes)
        for future, ok, value in outcomes:
            if future.done():  # its request was cancelled; its writes stand, unanswered
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
