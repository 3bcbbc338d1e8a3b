"""A path's floor (DESIGN.md, issue 11): what a request of that path cannot avoid, measured
in the same run: the bare endpoint's time per request plus the raw `cryptography` time of
the signatures the path must check and make.

    floor time = 1 / bare rate + sum of the path's raw signature operations
    ratio      = path rate / (1 / floor time)
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

REPS = 5
SECONDS = 0.3
MESSAGE = os.urandom(300)  # about the signing input of an assertion or an access token


def _seconds_per_call(fn: Callable[[], object]) -> float:
    def once() -> float:
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SECONDS:
            for _ in range(20):
                fn()
            count += 20
        return elapsed / count

    return statistics.median(once() for _ in range(REPS))


def crypto_costs() -> dict[str, float]:
    """Seconds per raw operation: Ed25519 and P-256 verify, P-256 sign."""
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    ecdsa = ec.ECDSA(hashes.SHA256())
    ed_sig, p256_sig = ed.sign(MESSAGE), p256.sign(MESSAGE, ecdsa)
    ed_pub, p256_pub = ed.public_key(), p256.public_key()
    return {
        "ed25519 verify": _seconds_per_call(lambda: ed_pub.verify(ed_sig, MESSAGE)),
        "p256 verify": _seconds_per_call(lambda: p256_pub.verify(p256_sig, MESSAGE, ecdsa)),
        "p256 sign": _seconds_per_call(lambda: p256.sign(MESSAGE, ecdsa)),
    }


def floor_rate(bare_rps: float, costs: dict[str, float], *operations: str) -> float:
    """Requests per second of a path whose only work over the bare endpoint is `operations`."""
    return 1.0 / (1.0 / bare_rps + sum(costs[op] for op in operations))


def describe(costs: dict[str, float]) -> str:
    """`costs` for a human: microseconds per operation."""
    return ", ".join(f"{name} {seconds * 1e6:.0f} us" for name, seconds in costs.items())


BATCH = 16  # grants per transaction: as many as the benchmarks' concurrent connections


def store_costs(batch: int = BATCH) -> dict[str, float]:
    """Seconds per grant of the raw SQLite work a grant (or a hook CONNECT) cannot avoid:
    its statements (the same SQL as `provisioning/grantstore.py`) on the `sqlite3`
    module, `batch` grants per transaction and commit (WAL, synchronous=NORMAL, as the
    API runs it), on the schema of the migrations. Reading the device and its keys is
    included (a grant must check the device's standing where every process sees it);
    the signing key is not (cached).

    The issue's floor (bare endpoint + cryptography) leaves this out; a grant that is
    answered only once committed cannot, so `floor_rate` reports both."""
    import sqlite3

    from provisioning import grantstore as g

    db = sqlite3.connect(_seeded_database(), isolation_level=None)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    hashes: list[str] = []

    def grant(i: int, now: int) -> None:
        db.execute(g._CLIENT.qmark, ("floor-1",)).fetchone()
        db.execute(g._KEYS.qmark, ("floor-1", now)).fetchall()
        db.execute(g._INSERT_USED.qmark, (os.urandom(16).hex(), now + 60))
        family, digest = os.urandom(16).hex(), os.urandom(32).hex()
        # id, device_id, jkt, x5t, created_at, expires_at, last_used_at, address,
        # user_agent, dpop_jkt
        family_row = (
            *(family, "floor-1", "jkt", None, now, now + 86400, now),
            *("127.0.0.1", "floor", None),
        )
        db.execute(g._INSERT_FAMILY.qmark, family_row)
        db.execute(g._INSERT_REFRESH.qmark, (digest, family, "floor-1", now, "jti", now + 600))
        db.execute(g._INSERT_AUDIT.qmark, (now, "token.issue", "floor-1", '{"jti":"x"}'))
        hashes.append(digest)

    def refresh(i: int, now: int) -> None:
        digest = hashes.pop()
        state = db.execute(g._REFRESH_STATE.qmark, (digest,)).fetchone()
        db.execute(g._MARK_USED.qmark, (now, digest))
        db.execute(g._CLIENT.qmark, (state[0],)).fetchone()
        new = os.urandom(32).hex()
        db.execute(g._INSERT_REFRESH.qmark, (new, state[1], state[0], now, "jti", now + 600))
        db.execute(g._INSERT_AUDIT.qmark, (now, "token.refresh", "floor-1", '{"jti":"x"}'))

    def hook_connect(i: int, now: int) -> None:
        """A hook CONNECT: the device's state and the deny list read, the grant saved."""
        db.execute(
            "SELECT status, tokens_valid_after FROM devices WHERE device_id = ?", ("floor-1",)
        )
        db.execute("SELECT id FROM revocations WHERE jti = ? LIMIT 1", (os.urandom(16).hex(),))
        row = (f"floor-{i % 50}", "floor-1", "jti", "floor-1#1", now, now + 600, "[]", "[]")
        db.execute(g._UPSERT_HOOK_GRANT.qmark, (*row, now, None))  # since, username

    def per_grant(work_of: Callable[[int, int], None], grants: int) -> float:
        now, start = int(time.time()), time.perf_counter()
        for first in range(0, grants, batch):
            db.execute("BEGIN IMMEDIATE")
            for i in range(first, first + batch):
                work_of(i, now)
            db.execute("COMMIT")
        return (time.perf_counter() - start) / grants

    grants = batch * 400
    costs = {}
    for _ in range(2):  # the second round, on a database that already holds some
        costs = {"sqlite grant": per_grant(grant, grants)}
        costs["sqlite refresh"] = per_grant(refresh, grants)
        costs["sqlite hook connect"] = per_grant(hook_connect, grants)
    db.close()
    return costs


def _seeded_database() -> str:
    """A migrated SQLite database holding the fleet "floor" and its device "floor-1"."""
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from device_sdk import generate_key, public_pem
    from provisioning.app import create_app
    from provisioning.settings import Settings

    admin = "adm_floor_" + "x" * 40
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="cb-floor-")), admin_key=admin)
    with TestClient(create_app(settings)) as http:
        headers = {"Authorization": f"Bearer {admin}"}
        acl = {"publish": ["d/{device_id}/#"], "subscribe": ["d/{device_id}/cmd"]}
        http.post("/v1/fleets", headers=headers, json={"name": "floor", "acl": acl})
        device = {
            "device_id": "floor-1",
            "fleet": "floor",
            "public_key": public_pem(generate_key()),
        }
        http.post("/v1/devices", headers=headers, json=device).raise_for_status()
    return settings.effective_database_url.split("///", 1)[1]
