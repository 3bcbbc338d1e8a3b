"""Grants of hook-accepted connections in the database, for every API process.

A row is a cache like any other: whoever loads one checks its standing again before
using it (`HookAuthority`), so a row left behind by a race cannot outlive a revocation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlmodel import Session, col

from credbroker.decision import Grant
from provisioning.grantstore import GrantStore
from provisioning.models import HookGrant
from provisioning.models.bounds import storable

if TYPE_CHECKING:  # groupcommit -> standing -> this module (for `forget`)
    from provisioning.groupcommit import GroupCommit


class DatabaseGrants:
    def __init__(self, commits: GroupCommit, clock: Callable[[], float]) -> None:
        self.commits, self.clock = commits, clock

    def save(self, client_id: str, grant: Grant, username: str | None = None) -> None:
        """An upsert in plain SQL (`grantstore`): on every uncached hook CONNECT, where
        the ORM's merge (a read, then an insert or update) was half of the request."""
        with self.commits.unit() as unit:
            store = GrantStore(unit.conn, unit.changes)
            try:
                store.save_hook_grant(client_id, grant, self.clock(), username)
            finally:
                store.close()

    def load(self, client_id: str) -> tuple[Grant, str | None] | None:
        """The grant of the client id's latest accepted CONNECT, and its username if it
        was not the device id."""
        if not storable(client_id):
            return None  # never saved: a grant's client id is its device id
        with self.commits.session() as session:
            row = session.get(HookGrant, client_id)
        if row is None or row.exp <= self.clock():
            return None
        grant = Grant(
            device_id=row.device_id,
            jti=row.jti,
            kid=row.kid,
            iat=row.iat,
            exp=row.exp,
            pub=tuple(row.pub),
            sub=tuple(row.sub),
        )
        return grant, row.username


def forget_all(*, session: Session, device_ids: list[str]) -> None:
    """A fleet-wide logout: the hook grants of all these devices are gone."""
    if device_ids:
        session.execute(delete(HookGrant).where(col(HookGrant.device_id).in_(device_ids)))


def forget(*, session: Session, device_id: str, jti: str | None = None) -> None:
    """A revocation: the device's hook grants (or one token's) are gone for every process."""
    statement = delete(HookGrant).where(HookGrant.device_id == device_id)  # type: ignore[arg-type]
    if jti is not None:
        statement = statement.where(HookGrant.jti == jti)  # type: ignore[arg-type]
    session.execute(statement)
