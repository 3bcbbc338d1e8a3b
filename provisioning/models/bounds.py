"""Bounds on numbers and text from requests: what the database and orjson can hold.

Python's `json` reads integers of any size, NaN and Infinity (which RFC 8259 section 6
does not allow) and lone UTF-16 surrogates ("\\ud800", RFC 8259 section 8.2). orjson
writes integers of 64 bits at most and no surrogates; PostgreSQL's `json` type refuses
NaN, and its INTEGER columns (every timestamp and row id of migration 0001) hold 32 bits.
PostgreSQL's text columns refuse NUL. A value past these is a 422 at the schema (or a
lookup that finds nothing), never a 500 from the driver.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

INT32_MAX = 2**31 - 1  # PostgreSQL INTEGER
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # orjson, SQLite, PostgreSQL BIGINT
MAX_JSON_DEPTH = 32  # metadata are labels; orjson itself stops at 255 levels

LABEL_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # free text for people: no control characters
# A Unix time stored in an INTEGER column: at most 2038-01-19T03:14:07Z.
UnixTime = Annotated[int, Field(ge=0, le=INT32_MAX)]


def storable(text: str) -> bool:
    """Text a database column can hold: no NUL (PostgreSQL refuses it), valid UTF-8."""
    return "\x00" not in text and _encodable(text)


def _check_scalar(value: Any) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("integers must fit in 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    if isinstance(value, str) and not _encodable(value):
        raise ValueError("strings must be valid Unicode (no lone surrogates)")


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_json(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object that orjson writes and every database stores as it was sent.

    Walked with a stack, not recursion: the depth check must not itself overflow."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"at most {MAX_JSON_DEPTH} levels of nesting")
            if isinstance(item, dict):
                for key in item:
                    _check_scalar(key)
                item = list(item.values())
            stack.extend((child, depth + 1) for child in item)
        else:
            _check_scalar(item)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]


# The config of every JSON request body of /v1: unknown members refused, and no coercion
# (strict mode), so a body means what its schema says: `"atomic": 0` is not a boolean and
# `"token_ttl": "900"` not an integer. Broker hooks keep their brokers' own formats.
STRICT_BODY = ConfigDict(extra="forbid", strict=True)
# The config of every set of query parameters of a list: a parameter the endpoint does
# not know is a 422 naming it, not a filter silently ignored (`/v1/audit?device=x`).
STRICT_QUERY = ConfigDict(extra="forbid")
