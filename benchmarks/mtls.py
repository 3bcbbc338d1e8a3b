"""Certificates as device credentials (README, RFC 8705) against their floors, in one run.

1. `/oauth2/token` with `grant_type=client_credentials&client_id=D` over HTTPS with D's
   registered client certificate (tls_client_auth), over keep-alive connections: the TLS
   handshake, and so the certificate's verification, is once per connection, not per
   request. Its floor (floor.py): the bare endpoint (bare_app.py) under uvicorn with the
   same TLS and client-certificate settings (`--ssl-cert-reqs 1` against the same CA),
   plus one raw ES256 sign (the access token). For context, the ES256 private_key_jwt
   grant over the same HTTPS server (one P-256 verify and one sign over the bare).
   wrk presents no client certificate, so these three are driven by the client here
   (uvloop, raw HTTP/1.1, 16 keep-alive connections, pinned to the other core); wrk over
   HTTPS without a certificate cross-checks the bare endpoint and private_key_jwt.
   With `ab` (Apache's; it keeps no connection to uvicorn alive), the same grant and the
   bare endpoint with a new connection, and so a full handshake, per request.
2. CONNECT over MQTTS with the matching client certificate: a certificate-bound token
   (its cnf x5t#S256 checked against the connection's certificate) against a plain
   token of a key device over the same listener with a certificate too (raw asyncio
   clients, 16 at a time, a full handshake each; rounds interleaved).

    .venv/bin/python benchmarks/mtls.py [--seconds 2] [--rounds 3] [--connects 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx
import uvloop
from floor import crypto_costs, describe, floor_rate, store_costs
from token_endpoint import BIN, bare_command, free_port, pinned, wrk

sys.path.insert(0, str(Path(__file__).parent.parent))

from device_sdk import assertion_form, generate_key, public_pem
from device_sdk._keys import DevicePrivateKey
from tests.stack import connect_packet

ADMIN = "adm_benchmark_" + "x" * 40
CONNECTIONS = 16
CERTIFIED = 16  # devices whose credential is a certificate, one per connection


def start(cmd: list[str], url: str, http: httpx.Client) -> subprocess.Popen[bytes]:
    """`cmd` pinned to core 0, in a session of its own, once `url` answers over `http`."""
    proc = subprocess.Popen(
        [*pinned(0), *cmd],
        env={**os.environ, "CREDBROKER_ADMIN_KEY": ADMIN},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            http.get(url, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{cmd} did not start")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request, its whole response, the next."""

    def __init__(self, run: _Run) -> None:
        self.run, self.buffer = run, b""
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's: not a subclass

    def send(self) -> None:
        request, transport = self.run.next_request(), self.transport
        assert transport is not None
        if request is None:
            transport.close()
        else:
            transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = int(re.search(rb"content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            if len(self.buffer) < end + 4 + length:
                return
            self.run.answered(int(head[9:12]))
            self.buffer = self.buffer[end + 4 + length :]
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    """Requests from `bodies` (each once, in order) until `seconds` have passed."""

    def __init__(self, host: str, path: str, bodies: Iterator[bytes], seconds: float) -> None:
        self.prefix = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
        ).encode()
        self.bodies, self.seconds = bodies, seconds
        self.ok = self.errors = 0
        self.deadline = 0.0

    def next_request(self) -> bytes | None:
        if time.perf_counter() >= self.deadline:
            return None
        body = next(self.bodies, None)
        if body is None:
            return None
        return self.prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def answered(self, status: int) -> None:
        if status == 200:
            self.ok += 1
        else:
            self.errors += 1


async def _drive(
    url: str, bodies: Iterator[bytes], seconds: float, tls: ssl.SSLContext
) -> tuple[float, int]:
    parts = urllib.parse.urlsplit(url)
    run = _Run(parts.netloc, parts.path, bodies, seconds)
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(CONNECTIONS):  # handshakes first: the clock counts requests only
        _, protocol = await loop.create_connection(
            lambda: _Connection(run), parts.hostname or "", parts.port or 443, ssl=tls
        )
        connections.append(protocol)
    started = time.perf_counter()
    run.deadline = started + seconds
    for connection in connections:
        connection.send()
    await asyncio.gather(*(c.closed for c in connections))
    elapsed = time.perf_counter() - started
    return (run.ok + run.errors) / elapsed, run.errors


def keep_alive(
    url: str, bodies: Iterator[bytes], seconds: float, tls: ssl.SSLContext
) -> tuple[float, int]:
    """Requests per second over 16 keep-alive connections, and the non-200 answers."""
    return uvloop.run(_drive(url, bodies, seconds, tls))


def ab(url: str, body: Path, seconds: int, client_pem: Path) -> tuple[float, int]:
    """ab with the client certificate, a new connection (full handshake) per request."""
    out = subprocess.run(
        [*pinned(1), "ab", "-c", str(CONNECTIONS), "-t", str(seconds), "-n", "10000000",
         "-p", str(body), "-T", "application/x-www-form-urlencoded", "-E", str(client_pem),
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return rps, int(errors.group(1)) if errors else 0


def repeat(body: bytes) -> Iterator[bytes]:
    while True:
        yield body


async def _connect_rate(
    port: int, credentials: list[tuple[str, str, ssl.SSLContext]], total: int
) -> float:
    """CONNECT over TLS, CONNACK, DISCONNECT cycles per second, 16 at a time."""
    remaining = iter(range(total))

    async def worker() -> None:
        for i in remaining:
            client_id, password, tls = credentials[i % len(credentials)]
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            writer.write(connect_packet(client_id, password=password.encode()))
            connack = await reader.readexactly(4)
            assert connack[3] == 0, connack
            writer.write(b"\xe0\x00")
            await writer.drain()
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return total / (time.perf_counter() - started)


class _Certs:
    """`credbroker certs` in WORK: the CA, the server's pair, one client pair per name."""

    def __init__(self, work: Path, names: list[str]) -> None:
        self.dir, self.names = work / "certs", names
        subprocess.run(
            [str(BIN / "credbroker"), "certs", "--out", str(self.dir),
             *(arg for name in names for arg in ("--client", name))],
            check=True, capture_output=True,
        )  # fmt: skip
        self.ca = self.dir / "ca.pem"
        self.server = ["--tls-cert", str(self.dir / "server.pem")]
        self.server += ["--tls-key", str(self.dir / "server.key")]

    def context(self, name: str | None) -> ssl.SSLContext:
        """Trusting the CA; presenting the client certificate NAME (or none)."""
        tls = ssl.create_default_context(cafile=self.ca)
        if name is not None:
            tls.load_cert_chain(self.dir / f"{name}.pem", self.dir / f"{name}.key")
        return tls

    def pem(self, name: str) -> bytes:
        return (self.dir / f"{name}.pem").read_bytes()


Credentials = list[tuple[str, str, ssl.SSLContext]]
Keyed = list[tuple[str, DevicePrivateKey]]


def provision(http: httpx.Client, base: str, certs: _Certs) -> Keyed:
    """Fleets "certified" (a device per certificate) and "keyed" (50 ES256 devices)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for fleet in ("certified", "keyed"):
        acl = {"publish": ["devices/{device_id}/#"], "subscribe": []}
        body = {"name": fleet, "token_ttl": 3600, "acl": acl}
        http.post(base + "/v1/fleets", headers=admin, json=body).raise_for_status()
    for name in certs.names:
        body = {"device_id": name, "fleet": "certified", "public_key": certs.pem(name).decode()}
        http.post(base + "/v1/devices", headers=admin, json=body).raise_for_status()
    keyed = []
    for i in range(50):
        key, device_id = generate_key("es256"), f"es256-{i}"
        body = {"device_id": device_id, "fleet": "keyed", "public_key": public_pem(key)}
        http.post(base + "/v1/devices", headers=admin, json=body).raise_for_status()
        keyed.append((device_id, key))
    return keyed


def mqtts_credentials(
    http: httpx.Client, token_url: str, certs: _Certs, keyed: Keyed
) -> tuple[Credentials, Credentials]:
    """Certificate-bound tokens of the certificates' devices, and plain tokens of key
    devices that connect with a certificate too (the same handshake)."""
    bound, plain = [], []
    for i, name in enumerate(certs.names):
        with httpx.Client(verify=certs.context(name)) as own:
            form = {"grant_type": "client_credentials", "client_id": name}
            answer = own.post(token_url, data=form)
            answer.raise_for_status()
        bound.append((name, answer.json()["access_token"], certs.context(name)))
        device_id, key = keyed[i]
        form = assertion_form(key, device_id=device_id, audience=token_url)
        answer = http.post(token_url, data=form)
        answer.raise_for_status()
        plain.append((device_id, answer.json()["access_token"], certs.context(name)))
    return bound, plain


def assertions(keyed: Keyed, count: int, token_url: str) -> list[bytes]:
    """`count` single-use private_key_jwt request bodies."""
    forms = (
        assertion_form(key, device_id=device_id, audience=token_url)
        for device_id, key in (keyed[i % len(keyed)] for i in range(count))
    )
    return [urllib.parse.urlencode(form).encode() for form in forms]


Rates = dict[str, tuple[float, int]]


def measure(
    args: argparse.Namespace, work: Path, certs: _Certs, ports: tuple[int, int, int, int]
) -> tuple[Rates, Rates, dict[str, list[float]]]:
    """Both servers started, provisioned, driven; stopped."""
    port, mqtt_port, mqtts_port, bare_port = ports
    base, bare_url = f"https://127.0.0.1:{port}", f"https://127.0.0.1:{bare_port}/bare"
    token_url = base + "/oauth2/token"
    http = httpx.Client(verify=certs.context(None))
    ours = start(
        [str(BIN / "credbroker"), "up", "--host", "127.0.0.1", "--http-port", str(port),
         "--mqtt-port", str(mqtt_port), "--mqtts-port", str(mqtts_port), *certs.server,
         "--client-ca", str(certs.ca), "--data-dir", str(work / "data")],
        base + "/healthz", http,
    )  # fmt: skip
    bare = start(
        [*bare_command(bare_port), "--ssl-certfile", str(certs.dir / "server.pem"),
         "--ssl-keyfile", str(certs.dir / "server.key"), "--ssl-ca-certs", str(certs.ca),
         "--ssl-cert-reqs", str(int(ssl.CERT_OPTIONAL))],
        bare_url.replace("/bare", "/docs"), http,
    )  # fmt: skip
    try:
        keyed = provision(http, base, certs)
        bound, plain = mqtts_credentials(http, token_url, certs, keyed)
        grant = b"grant_type=client_credentials&client_id=cert-0"
        grant_file, pem = work / "grant.txt", work / "c0.pem"
        grant_file.write_bytes(grant)  # ab sends the file whole, wrk each line
        pem.write_bytes(certs.pem("cert-0") + (certs.dir / "cert-0.key").read_bytes())
        seconds, rounds = args.seconds, args.rounds
        count = seconds * args.max_rps
        es256_files = []
        for i in range(rounds):  # wrk starts each run at the first line: a file a round
            es256_files.append(work / f"es256-{i}.txt")
            es256_files[i].write_bytes(b"\n".join(assertions(keyed, count, token_url)) + b"\n")
        keyed_bodies = iter(assertions(keyed, count * rounds, token_url))  # single use
        os.sched_setaffinity(0, {1})  # the clients here: the servers are on core 0
        certified, anonymous = certs.context("cert-0"), certs.context(None)
        paths: dict[str, Callable[[int], tuple[float, int]]] = {
            BARE: lambda _: wrk(bare_url, grant_file, seconds, CONNECTIONS),
            "bare, with the certificate *": lambda _: keep_alive(
                bare_url, repeat(grant), seconds, certified
            ),
            "mTLS client_credentials *": lambda _: keep_alive(
                token_url, repeat(grant), seconds, certified
            ),
            "private_key_jwt ES256 *": lambda _: keep_alive(
                token_url, keyed_bodies, seconds, anonymous
            ),
            "private_key_jwt ES256": lambda i: wrk(token_url, es256_files[i], seconds, CONNECTIONS),
        }
        new_connections: dict[str, Callable[[int], tuple[float, int]]] = {
            BARE: lambda _: ab(bare_url, grant_file, seconds, pem),
            "mTLS client_credentials": lambda _: ab(token_url, grant_file, seconds, pem),
        }
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in paths}
        fresh_runs: dict[str, list[tuple[float, int]]] = {name: [] for name in new_connections}
        for i in range(rounds):  # interleaved: a slow moment of the machine hits all alike
            for name, path in paths.items():
                runs[name].append(path(i))
            for name, path in new_connections.items():
                fresh_runs[name].append(path(i))
        results, fresh = median(runs), median(fresh_runs)
        connects: dict[str, list[float]] = {"plain token": [], "certificate-bound token": []}
        for _ in range(args.rounds):
            for name, credentials in (("plain token", plain), ("certificate-bound token", bound)):
                rate = asyncio.run(_connect_rate(mqtts_port, credentials, args.connects))
                connects[name].append(rate)
    finally:
        for proc in (ours, bare):
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:  # a TLS connection left open: its shutdown
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        http.close()
    return results, fresh, connects


BARE = "bare HTTPS POST"


def median(runs: dict[str, list[tuple[float, int]]]) -> Rates:
    """Each path's median rate over the rounds, and its non-2xx answers in all."""
    return {
        name: (statistics.median(rps for rps, _ in each), sum(errors for _, errors in each))
        for name, each in runs.items()
    }


# The signatures each path makes and checks (floor.py's names).
OPERATIONS: dict[str, tuple[str, ...]] = {
    BARE: (),
    "bare, with the certificate": (),
    "mTLS client_credentials": ("p256 sign",),
    "private_key_jwt ES256": ("p256 verify", "p256 sign"),
}


def table(title: str, rows: Rates, costs: dict[str, float], store: dict[str, float]) -> None:
    """req/s, non-2xx, and ratios to the bare endpoint, the floor, the floor + db."""
    print(title)
    print(
        f"{'':30s} {'req/s':>7s} {'non-2xx':>7s} {'vs bare':>7s} {'floor/s':>7s}"
        f" {'vs floor':>8s} {'+db /s':>7s} {'vs +db':>6s}"
    )
    bare_rps = rows[BARE][0]
    for name, (rps, errors) in rows.items():
        operations = OPERATIONS[name.removesuffix(" *")]
        floor = floor_rate(bare_rps, costs, *operations)
        db = ("sqlite grant",) if operations else ()
        with_db = floor_rate(bare_rps, {**costs, **store}, *operations, *db)
        print(
            f"{name:30s} {rps:7,.0f} {errors:7d} {rps / bare_rps:6.2f}x {floor:7,.0f}"
            f" {rps / floor:7.2f}x {with_db:7,.0f} {rps / with_db:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=2, help="a run of each path, each round")
    parser.add_argument("--connects", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-rps", type=int, default=4000, help="assertions to make per second")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cb-mtls-bench-"))
    try:
        certs = _Certs(work, [f"cert-{i}" for i in range(CERTIFIED)])
        ports = (free_port(), free_port(), free_port(), free_port())
        results, fresh, connects = measure(args, work, certs, ports)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    costs = crypto_costs()
    store = store_costs(CONNECTIONS)
    print(f"HTTPS, one uvicorn worker each (uvloop, httptools), {CONNECTIONS} connections")
    print(f"raw cryptography: {describe(costs)}")
    print(f"raw SQLite statements and commit, {CONNECTIONS} a transaction: {describe(store)}")
    print("floor: bare HTTPS + cryptography (the issue's); +db: and the raw SQLite grant")
    table(
        "keep-alive (handshakes before the clock); the bare endpoint by wrk, without a client"
        " certificate (one costs the server nothing per request on a kept connection);"
        " * this script's client, with one where it says so, the mTLS grant's certificate:",
        results,
        costs,
        store,
    )
    mtls = results["mTLS client_credentials *"][0]
    jwt = results["private_key_jwt ES256 *"][0]
    print(f"mTLS grant vs private_key_jwt ES256, same server, same client: {mtls / jwt:.2f}x")
    table(
        "a new connection per request (ab, a full handshake with the certificate each):",
        fresh,
        costs,
        store,
    )
    plain_rate = statistics.median(connects["plain token"])
    print(f"{'MQTTS CONNECT/s (16 at a time)':30s} {'median':>8s}  vs plain  rounds")
    for name, values in connects.items():
        median = statistics.median(values)
        each = " ".join(f"{v:,.0f}" for v in values)
        print(f"{name:30s} {median:8,.0f}  {median / plain_rate:.2f}x     {each}")


if __name__ == "__main__":
    main()
