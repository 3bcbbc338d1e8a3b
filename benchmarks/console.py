"""Console pages at scale (issue 13): server time of the overview, the device list (first
page, a prefix, a fleet and status, the next page), a device's page and the audit log
(first page, by device, by action) with 100,000 devices and 1,000,000 audit events,
against the bare endpoint (`GET /healthz`) of the same server in the same run.

Seeds a fresh database through the app's own migrations (SQLite in a temporary
directory; `--postgres`: a scratch database on the machine's server, dropped at the
end) with bulk inserts (executemany on SQLite, COPY on PostgreSQL): 10 fleets, devices
mostly active, some disabled or revoked, one credential key each; audit events of the
actions and detail keys the code writes (token.issue and token.refresh from the grant
store, refused token requests from `attempts`, the broker's mqtt.connect refusals with
their verifier reasons, ACL refusals and kicks, revocations and disablings), spread
over a week and in time order, with the last hour dense (per-minute charts). Then
starts `credbroker api` on it, signs in to the console with the admin key (a same-origin
form POST; the session cookie is kept) and requests each page `--requests` times, one
at a time, after a few warm-ups.

"Server time" here is the wall time of a request on loopback from an open keep-alive
connection to the last byte of the answer: the server's time plus a loopback round
trip and httpx's parsing, which the bare endpoint's figure shows (it has both, and no
page behind it).

    .venv/bin/python benchmarks/console.py [--postgres] [--requests 30]
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from token_endpoint import ADMIN, BIN, free_port, start  # noqa: E402 - benchmarks/

from credbroker.jwk import thumbprint, to_jwk  # noqa: E402
from device_sdk import generate_key  # noqa: E402
from provisioning.db import create_db_engine, migrate  # noqa: E402
from provisioning.models import Fleet  # noqa: E402
from provisioning.store.paging import encode_cursor  # noqa: E402
from tests.databases import postgres_database  # noqa: E402

FLEETS = [f"fleet-{n:02d}" for n in range(10)]
DAY = 86400
BATCH = 20_000
TARGET_MS = 300.0

# Refused CONNECTs by the verifier's reason (credbroker.verifier.Reason), mostly expiry.
REASONS = ["expired"] * 8 + ["bad_signature", "device_disabled", "device_revoked", "unknown_kid"]
REVOCATIONS = ["device.revoke", "token.revoke", "refresh.family_revoke", "device.disable"]
Event = tuple[str, str, str | None, dict[str, Any]]  # action, outcome, actor, detail


def _address(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _issue(rng: random.Random, device: str) -> Event:  # grants.py, through the grant store
    return "token.issue", "ok", None, {"jti": secrets.token_hex(8), "method": "private_key_jwt"}


def _refresh(rng: random.Random, device: str) -> Event:
    detail = {"jti": secrets.token_hex(8), "family": secrets.token_hex(8)}
    return "token.refresh", "ok", None, detail


def _bad_assertion(rng: random.Random, device: str) -> Event:  # attempts.py
    detail = {"error": "invalid_client", "reason": "assertion signature does not verify"}
    return "token.client_credentials", "refused", None, {**detail, "address": _address(rng)}


def _dead_refresh(rng: random.Random, device: str) -> Event:
    detail = {"error": "invalid_grant", "reason": "refresh token expired"}
    return "token.refresh_token", "refused", None, {**detail, "address": _address(rng)}


def _connect(rng: random.Random, device: str) -> Event:  # broker/server.py, _refuse
    reason = rng.choice(REASONS)
    code = 4 if reason in ("expired", "bad_signature", "unknown_kid") else 5
    detail = {"reason": reason, "code": code, "address": _address(rng)}
    return "mqtt.connect", "refused", "broker", detail


def _publish(rng: random.Random, device: str) -> Event:
    detail = {"topic": f"devices/{device}x/telemetry", "count": 1}
    return "mqtt.publish", "refused", "broker", detail


def _subscribe(rng: random.Random, device: str) -> Event:
    return "mqtt.subscribe", "refused", "broker", {"topic": "devices/#"}


def _kick(rng: random.Random, device: str) -> Event:
    return "mqtt.kick", "ok", "broker", {"reason": "device_disabled"}


def _revocation(rng: random.Random, device: str) -> Event:
    action = rng.choice(REVOCATIONS)
    detail: dict[str, Any] = {
        "device.revoke": {},
        "token.revoke": {"jti": secrets.token_hex(8)},
        "refresh.family_revoke": {"reason": "refresh token reused", "family": "f1"},
        "device.disable": {"previous": "active"},
    }[action]
    return action, "ok", "env", detail


# How often each happens, in events per thousand.
EVENTS = {
    _issue: 420,
    _refresh: 440,
    _bad_assertion: 40,
    _dead_refresh: 10,
    _connect: 60,
    _publish: 15,
    _subscribe: 8,
    _kick: 3,
    _revocation: 4,
}
MAKERS, WEIGHTS = list(EVENTS), list(EVENTS.values())


def _devices(count: int, now: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for n in range(count):
        status = rng.choices(("active", "disabled", "revoked"), (90, 7, 3))[0]
        created = now - 30 * DAY + n
        yield (
            f"d{n:06d}",
            FLEETS[n % len(FLEETS)],
            status,
            f'{{"site": "plant-{n % 37}"}}',
            None,
            None,
            "private_key_jwt",
            None,
            0,
            0,
            created,
            created,
        )


def _keys(count: int, now: int) -> Iterator[tuple[Any, ...]]:
    jwks = [to_jwk(generate_key().public_key()) for _ in range(16)]
    for n in range(count):
        jwk = jwks[n % len(jwks)]
        yield (f"d{n:06d}", thumbprint(jwk), "ES256", orjson.dumps(jwk).decode(), None, now)


def _events(count: int, devices: int, now: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """In time order, as they are written: a tenth in the last hour, the rest over 7 days."""
    recent = count // 10
    times = sorted(
        [now - 7 * DAY + rng.random() * (7 * DAY - 3600) for _ in range(count - recent)]
        + [now - 3600 + rng.random() * 3600 for _ in range(recent)]
    )
    for at in times:
        device = f"d{rng.randrange(devices):06d}"
        action, outcome, actor, detail = rng.choices(MAKERS, WEIGHTS)[0](rng, device)
        yield (at, action, outcome, device, actor, orjson.dumps(detail).decode())


DEVICE_COLUMNS = (
    "device_id, fleet, status, meta, acl_publish, acl_subscribe, auth_method, "
    "client_secret_hash, signing_key_version, tokens_valid_after, created_at, updated_at"
)
KEY_COLUMNS = "device_id, kid, alg, jwk, expires_at, created_at"
EVENT_COLUMNS = "at, action, outcome, device_id, actor, detail"


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _load(url: str, table: str, columns: str, rows: Iterator[tuple[Any, ...]]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany in one transaction on SQLite."""
    engine = create_db_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns.split(",")))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - our own names
            for batch in _batches(rows):
                cursor.executemany(sql, batch)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def seed(url: str, *, devices: int, events: int, now: int) -> None:
    engine = create_db_engine(url)
    migrate(engine)
    fleets = [
        Fleet(
            name=name,
            token_ttl=3600,
            allow_client_secret=False,
            created_at=now - 60 * DAY,
            acl_publish=["devices/{device_id}/#"],
            acl_subscribe=["devices/{device_id}/cmd/#"],
        ).model_dump()
        for name in FLEETS
    ]
    with engine.begin() as conn:
        conn.execute(insert(Fleet), fleets)
    engine.dispose()
    rng = random.Random(13)  # reproducible: a benchmark's data, not a secret
    _load(url, "devices", DEVICE_COLUMNS, _devices(devices, now, rng))
    _load(url, "credential_keys", KEY_COLUMNS, _keys(devices, now))
    _load(url, "audit_events", EVENT_COLUMNS, _events(events, devices, now, rng))
    # What a database in service has: statistics, and on PostgreSQL the visibility map
    # autovacuum keeps (without it no index-only scan is planned after a bulk load).
    engine = create_db_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()


def sign_in(http: httpx.Client, base: str) -> None:
    answer = http.post("/console/sign-in", data={"key": ADMIN}, headers={"Origin": base})
    if answer.status_code != 303 or answer.headers["location"] != "/console":
        raise RuntimeError(f"sign-in refused: {answer.status_code} {answer.text[:200]}")


def next_page(http: httpx.Client, path: str) -> str | None:
    """The device list's "Next page" link, as a browser would follow it."""
    found = re.search(r'href="(/console/devices\?[^"]*cursor=[^"]*)"', http.get(path).text)
    return html.unescape(found.group(1)) if found else None


def timed(http: httpx.Client, path: str, requests: int) -> list[float]:
    for _ in range(3):
        http.get(path).raise_for_status()
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = http.get(path)
        times.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
    return times


def percentile(times: Sequence[float], p: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def pages(http: httpx.Client, devices: int) -> dict[str, str | None]:
    middle = f"d{devices // 2:06d}"
    revoked_in = f"/console/devices?fleet={FLEETS[3]}&status=revoked"
    return {
        "overview /console": "/console",
        "devices, first page": "/console/devices",
        "devices ?prefix= (100 match)": f"/console/devices?prefix={middle[:5]}",
        "devices ?prefix= (none)": "/console/devices?prefix=zz",
        "devices ?fleet=&status=revoked": revoked_in,
        "devices, next page (link)": next_page(http, "/console/devices"),
        "devices ?fleet=&status=, next": next_page(http, revoked_in),
        "devices, cursor at half": f"/console/devices?cursor={encode_cursor(middle)}",
        "device page": f"/console/devices/{middle}",
        "audit, first page": "/console/audit",
        "audit ?device_id=": f"/console/audit?device_id={middle}&window=",
        "audit ?action=mqtt.": "/console/audit?action=mqtt.",
        "audit ?action=&outcome=refused": "/console/audit?action=mqtt.connect&outcome=refused",
        "audit ?action=device.revoke, 24 h": "/console/audit?action=device.revoke&window=1440",
        "audit ?action=device.revoke, all": "/console/audit?action=device.revoke&window=",
    }


@contextmanager
def database(postgres: bool, work: Path) -> Iterator[str]:
    if postgres:
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{work / 'data' / 'credbroker.db'}"


def run(args: argparse.Namespace, work: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    now = int(time.time())
    with database(args.postgres, work) as url:
        (work / "data").mkdir(mode=0o700)
        began = time.monotonic()
        seed(url, devices=args.devices, events=args.events, now=now)
        seeded = time.monotonic() - began
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
        env.update(
            CREDBROKER_DATABASE_URL=url,
            CREDBROKER_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            CREDBROKER_ADMIN_KEY=ADMIN,
        )
        command = [str(BIN / "credbroker"), "api", "--http-port", str(port)]
        server = start([*command, "--data-dir", str(work / "data")], env, base + "/healthz", None)
        try:
            with httpx.Client(base_url=base, timeout=60) as http:
                sign_in(http, base)
                results = {"bare GET /healthz": timed(http, "/healthz", args.requests)}
                for name, path in pages(http, args.devices).items():
                    if path is not None:  # None: no next page (a small --devices)
                        results[name] = timed(http, path, args.requests)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{kind}: {args.devices:,} devices in {len(FLEETS)} fleets, {args.events:,} audit "
        f"events (seeded in {seeded:.0f} s); credbroker api, 1 worker"
    )
    print(f"wall time per request on loopback, {args.requests} sequential requests each")
    bare = statistics.median(results["bare GET /healthz"])
    print(f"{'page':38} {'p50 ms':>8} {'p95 ms':>8} {'p50 vs bare':>12}  under {TARGET_MS:.0f} ms")
    for name, times in results.items():
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        met = "yes" if p95 < TARGET_MS else "NO"
        print(f"{name:38} {p50:8.1f} {p95:8.1f} {p50 / bare:11.1f}x  {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cb-bench-console-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
