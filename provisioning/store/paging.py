"""Keyset paging for lists (`GET /v1/devices`, `/v1/fleets`, `/v1/admin-keys`): rows in
the order of a unique text key, `limit` at a time; the cursor is the last key shown,
base64url, so a page stays stable under concurrent inserts and deletes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from credbroker.jws import JWSError, b64url_decode, b64url_encode
from provisioning.errors import BadRequest

T = TypeVar("T")


def encode_cursor(key: str) -> str:
    return b64url_encode(key.encode())


def decode_cursor(cursor: str, valid: Callable[[str], bool]) -> str:
    try:
        value = b64url_decode(cursor).decode()
    except (JWSError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed cursor") from exc
    if not valid(value):
        raise BadRequest("malformed cursor")
    return value


def page(
    *,
    session: Session,
    query: SelectOfScalar[T],
    key: Any,
    cursor: str | None,
    limit: int,
    valid: Callable[[str], bool],
) -> tuple[list[T], str | None]:
    """One page of `query` ordered by the column `key`, and the cursor of the next."""
    if cursor:
        query = query.where(col(key) > decode_cursor(cursor, valid))
    rows = list(session.exec(query.order_by(col(key)).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(getattr(rows[limit - 1], key.key))
