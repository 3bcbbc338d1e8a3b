"""Tokens signed with a device's real signing key but with chosen claims: what an
attacker could only do with the server's keys, so each claim check is tested alone."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization

from credbroker import jws
from provisioning.masterkey import Sealer, load_or_create
from tests.stack import Stack


def server_signed(
    stack: Stack, device_id: str, header: dict[str, Any] | None = None, **claims: Any
) -> str:
    conn = sqlite3.connect(stack.data_dir / "credbroker.db")
    kid, sealed = conn.execute(
        "SELECT kid, private_enc FROM signing_keys WHERE device_id = ? ORDER BY version DESC",
        (device_id,),
    ).fetchone()
    conn.close()
    sealer = Sealer(load_or_create(None, stack.data_dir))
    key = serialization.load_der_private_key(sealer.open(sealed, aad=kid), password=None)
    now = int(time.time())
    body = {
        "iss": stack.base,
        "sub": device_id,
        "client_id": device_id,
        "aud": "mqtt",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "fleet": "f",
        "acl": {"pub": [f"devices/{device_id}/#"], "sub": [f"devices/{device_id}/#"]},
        **claims,
    }
    return jws.sign({"alg": "ES256", "typ": "at+jwt", "kid": kid, **(header or {})}, body, key)  # type: ignore[arg-type]
