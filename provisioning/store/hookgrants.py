"""Grants of hook-accepted connections in the database, for every API process.

A row is a cache like any other: whoever loads one checks its standing again before
using it (`HookAuthority`), so a row left behind by a race cannot outlive a revocation.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from credbroker.decision import Grant
from provisioning.models import HookGrant
from provisioning.models.bounds import storable


class DatabaseGrants:
    def __init__(
        self, transaction: Callable[[], AbstractContextManager[Session]], clock: Callable[[], float]
    ) -> None:
        self.transaction, self.clock = transaction, clock  # `GroupCommit.session`

    def save(self, client_id: str, grant: Grant) -> None:
        row = HookGrant(
            client_id=client_id,
            device_id=grant.device_id,
            jti=grant.jti,
            kid=grant.kid,
            iat=grant.iat,
            exp=grant.exp,
            pub=list(grant.pub),
            sub=list(grant.sub),
        )
        try:
            with self.transaction() as session:
                session.merge(row)
        except IntegrityError:
            pass  # another process saved this client id's grant at the same moment

    def load(self, client_id: str) -> Grant | None:
        if not storable(client_id):
            return None  # never saved: a grant's client id is its device id
        with self.transaction() as session:
            row = session.get(HookGrant, client_id)
        if row is None or row.exp <= self.clock():
            return None
        return Grant(
            device_id=row.device_id,
            jti=row.jti,
            kid=row.kid,
            iat=row.iat,
            exp=row.exp,
            pub=tuple(row.pub),
            sub=tuple(row.sub),
        )


def forget(*, session: Session, device_id: str, jti: str | None = None) -> None:
    """A revocation: the device's hook grants (or one token's) are gone for every process."""
    statement = delete(HookGrant).where(HookGrant.device_id == device_id)  # type: ignore[arg-type]
    if jti is not None:
        statement = statement.where(HookGrant.jti == jti)  # type: ignore[arg-type]
    session.execute(statement)
