"""/oauth2/token throughput (private_key_jwt with Ed25519 and ES256 device keys, refresh)
vs a bare FastAPI POST and vs each grant's floor (floor.py).

Starts `credbroker up` and `benchmarks/bare_app.py` under the same uvicorn settings on
free loopback ports, provisions devices, prepares single-use request bodies, and drives
each endpoint with wrk (one thread, pinned to the other core when `taskset` exists).
Prints req/s, errors, and ratios against the bare endpoint and against the floor of the
same run: a private_key_jwt grant checks one assertion signature (Ed25519 or P-256) and
signs one ES256 access token; a refresh grant signs one (its refresh token is opaque).

    .venv/bin/python benchmarks/token_endpoint.py [--seconds 8] [--connections 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
from floor import (  # benchmarks/, the script's directory
    crypto_costs,
    describe,
    floor_rate,
    store_costs,
)

from device_sdk import assertion_form, generate_key, public_pem
from device_sdk._keys import DevicePrivateKey

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
ADMIN = "adm_benchmark_" + "x" * 40
DEVICES = 50
REFRESH_BODIES = 12000  # each is single use: wrk must not come round to the first again


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def start(
    cmd: list[str], env: dict[str, str], url: str, cpu: int | None = 0
) -> subprocess.Popen[bytes]:
    """`cmd` in a session of its own, pinned to `cpu` (None: anywhere), once `url` answers."""
    proc = subprocess.Popen(
        [*(pinned(cpu) if cpu is not None else []), *cmd],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{cmd} did not start")


def bare_command(port: int, workers: int = 1) -> list[str]:
    """bare_app.py under uvicorn, as the API is served (uvloop, httptools, no logs)."""
    return [
        str(BIN / "uvicorn"),
        "--app-dir",
        str(HERE),
        "bare_app:app",
        "--port",
        str(port),
        *(["--workers", str(workers)] if workers > 1 else []),
        "--log-level",
        "warning",
        "--no-access-log",
        "--no-date-header",
        "--no-server-header",
    ]


def wrk(
    url: str, bodies: Path, seconds: int, connections: int, authorization: str | None = None
) -> tuple[float, int]:
    out = subprocess.run(
        [
            *pinned(1),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(HERE / "wrk_bodies.lua"),
            url,
            "--",
            str(bodies),
            *([authorization] if authorization else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(errors.group(1)) if errors else 0


def provision(base: str, alg: str = "ed25519") -> list[tuple[str, DevicePrivateKey]]:
    """`DEVICES` devices with `alg` keys in the fleet "bench" (made by the first call)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    fleet = httpx.post(
        base + "/v1/fleets",
        headers=admin,
        json={
            "name": "bench",
            "acl": {
                "publish": ["devices/{device_id}/#"],
                "subscribe": ["devices/{device_id}/cmd/#"],
            },
        },
    )
    if fleet.status_code != 409:
        fleet.raise_for_status()
    devices = []
    for i in range(DEVICES):
        key, device_id = generate_key(alg), f"bench-{alg}-{i}"  # type: ignore[arg-type]
        httpx.post(
            base + "/v1/devices",
            headers=admin,
            json={"device_id": device_id, "fleet": "bench", "public_key": public_pem(key)},
        ).raise_for_status()
        devices.append((device_id, key))
    return devices


def assertion_bodies(devices: list, count: int, token_url: str, path: Path) -> None:  # type: ignore[type-arg]
    with path.open("w") as out:
        for i in range(count):
            device_id, key = devices[i % len(devices)]
            form = assertion_form(key, device_id=device_id, audience=token_url)
            out.write(urllib.parse.urlencode(form) + "\n")


def refresh_bodies(devices: list, count: int, base: str, path: Path) -> None:  # type: ignore[type-arg]
    token_url = base + "/oauth2/token"
    http = httpx.Client()  # one pool: a new client per request costs an SSL context

    def one(i: int) -> str:
        device_id, key = devices[i % len(devices)]
        form = assertion_form(key, device_id=device_id, audience=token_url)
        response = http.post(token_url, data=form)
        if response.status_code != 200:
            raise RuntimeError(f"token request failed: {response.status_code} {response.text}")
        refresh = response.json()["refresh_token"]
        return urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh})

    with http, concurrent.futures.ThreadPoolExecutor(4) as pool:
        lines = list(pool.map(one, range(count)))
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-rps", type=int, default=4000, help="bodies to prepare per second")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    count = args.seconds * args.max_rps
    env = {**os.environ, "CREDBROKER_ADMIN_KEY": ADMIN}
    port, bare_port, mqtt_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    ours = start(
        [
            str(BIN / "credbroker"),
            "up",
            "--http-port",
            str(port),
            "--mqtt-port",
            str(mqtt_port),
            "--data-dir",
            str(work / "data"),
        ],
        env,
        base + "/healthz",
    )
    bare = start(bare_command(bare_port), env, f"http://127.0.0.1:{bare_port}/docs")
    try:
        devices = provision(base)
        es256_devices = provision(base, "es256")
        refresh_bodies(devices, min(count, REFRESH_BODIES), base, work / "refresh.txt")
        # Assertions live an hour, but are single use: made last, just before their run.
        assertion_bodies(devices, count, base + "/oauth2/token", work / "assertions.txt")
        assertion_bodies(es256_devices, count, base + "/oauth2/token", work / "es256.txt")
        bare_body = work / "bare.txt"
        bare_body.write_text((work / "assertions.txt").read_text().splitlines()[0] + "\n")
        results = {
            "bare FastAPI POST": wrk(
                f"http://127.0.0.1:{bare_port}/bare", bare_body, args.seconds, args.connections
            ),
            "private_key_jwt Ed25519": wrk(
                base + "/oauth2/token", work / "assertions.txt", args.seconds, args.connections
            ),
            "private_key_jwt ES256": wrk(
                base + "/oauth2/token", work / "es256.txt", args.seconds, args.connections
            ),
            "refresh_token grant": wrk(
                base + "/oauth2/token",
                work / "refresh.txt",
                min(args.seconds, REFRESH_BODIES // args.max_rps or 1),
                args.connections,
            ),
        }
    finally:
        for proc in (ours, bare):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        shutil.rmtree(work, ignore_errors=True)
    costs = crypto_costs()
    store = store_costs(args.connections)
    print(f"wrk -t1 -c{args.connections}, one uvicorn worker each (uvloop, httptools)")
    print(f"raw cryptography: {describe(costs)}")
    print(f"raw SQLite statements and commit, {args.connections} a transaction: {describe(store)}")
    print("floor: bare + cryptography (the issue's); +db: and the raw SQLite work")
    print_table(results, costs, results["bare FastAPI POST"][0], store)


# The signatures each path checks and makes, and its raw SQLite work (floor.py).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "bare FastAPI POST": (),
    "private_key_jwt Ed25519": ("ed25519 verify", "p256 sign"),
    "private_key_jwt ES256": ("p256 verify", "p256 sign"),
    "refresh_token grant": ("p256 sign",),
}
STORED = {"bare FastAPI POST": (), "refresh_token grant": ("sqlite refresh",)}


def print_table(
    results: dict[str, tuple[float, int]],
    costs: dict[str, float],
    bare_rps: float,
    store: dict[str, float] | None = None,
) -> None:
    """One row per endpoint: req/s, non-2xx answers, ratio to bare and to its floor, and
    with `store` (the raw SQLite costs) to the floor with the database's work too."""
    extra = f" {'+db /s':>7s} {'vs +db':>6s}" if store else ""
    print(
        f"{'':24s} {'req/s':>7s} {'non-2xx':>7s} {'vs bare':>7s} {'floor/s':>7s} {'vs floor':>8s}"
        + extra
    )
    for name, (rps, errors) in results.items():
        floor = floor_rate(bare_rps, costs, *OPERATIONS[name])
        row = f"{name:24s} {rps:7,.0f} {errors:7d} {rps / bare_rps:6.2f}x {floor:7,.0f}"
        row += f" {rps / floor:7.2f}x"
        if store:
            db = STORED.get(name, ("sqlite grant",))
            with_db = floor_rate(bare_rps, {**costs, **store}, *OPERATIONS[name], *db)
            row += f" {with_db:7,.0f} {rps / with_db:5.2f}x"
        print(row)


if __name__ == "__main__":
    main()
