"""Token formats (README, Token formats): what a reference token costs against a JWT, in
the same run on one embedded stack.

- CONNECT rate on the embedded broker (raw asyncio clients, 16 at a time): JWT, reference
  token (one database read per CONNECT), device-signed ES256 token; rounds interleaved so
  that a slow moment of the shared machine hits every format alike. Target: reference
  >= 0.8x of JWT.
- `/oauth2/introspect` requests per second (httpx, 8 threads with a connection each):
  JWT, reference token, and a bare FastAPI POST (bare_app.py) as the baseline.

    .venv/bin/python benchmarks/formats.py [--connects 1000] [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.stack import (
    BIN,
    Stack,
    connect_packet,
    free_port,
    start_stack,
    wait_for,
)

HERE = Path(__file__).parent
Credentials = list[tuple[str, str]]


async def connect_rate(
    port: int, credentials: Sequence[tuple[str, str | None]], total: int
) -> float:
    """CONNECT, CONNACK, DISCONNECT cycles per second, 16 connections at a time (a None
    password: an anonymous CONNECT, for stock amqtt)."""
    remaining = iter(range(total))

    async def worker() -> None:
        for i in remaining:
            client_id, password = credentials[i % len(credentials)]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                connect_packet(client_id, password=password.encode() if password else None)
            )
            connack = await reader.readexactly(4)
            assert connack[3] == 0, connack
            writer.write(b"\xe0\x00")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    return total / (time.perf_counter() - started)


def fleet(stack: Stack, **fields: object) -> str:
    name = "f-" + uuid.uuid4().hex[:8]
    body = {"name": name, "token_ttl": 3600, "acl": {"publish": ["devices/{device_id}/#"]}}
    response = stack.http.post(
        stack.base + "/v1/fleets", json={**body, **fields}, headers=stack.admin
    )
    response.raise_for_status()
    return name


def issued(stack: Stack, name: str) -> Credentials:
    devices = [stack.device(name) for _ in range(16)]
    return [(d.id, d.token()) for d in devices]


def device_signed(stack: Stack) -> Credentials:
    name = fleet(stack, token_format="device-signed", audience="bench")  # noqa: S106
    out = []
    for _ in range(16):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        device_id = "d-" + uuid.uuid4().hex[:10]
        stack.http.post(
            stack.base + "/v1/devices",
            headers=stack.admin,
            json={"device_id": device_id, "fleet": name, "public_key": pem.decode()},
        ).raise_for_status()
        now = int(time.time())
        token = jwt.encode({"iat": now, "exp": now + 3600, "aud": "bench"}, key, "ES256")
        out.append((device_id, token))
    return out


def post_rate(url: str, data: dict[str, str], headers: dict[str, str], seconds: float) -> float:
    """POSTs per second from 8 threads, each on its own keep-alive connection."""
    counts = [0] * 8
    deadline = time.monotonic() + seconds

    def run(slot: int) -> None:
        with httpx.Client() as http:
            while time.monotonic() < deadline:
                http.post(url, data=data, headers=headers).raise_for_status()
                counts[slot] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    stack = start_stack(Path(tempfile.mkdtemp(prefix="cb-formats-bench-")))
    bare_port = free_port()
    bare = subprocess.Popen(
        [str(BIN / "uvicorn"), "--app-dir", str(HERE), "bare_app:app", "--port", str(bare_port),
         "--log-level", "warning", "--no-access-log"],
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{bare_port}/docs"), 30, "the bare app")
        formats = {
            "jwt": issued(stack, fleet(stack)),
            "reference": issued(stack, fleet(stack, token_format="reference")),  # noqa: S106
            "device-signed": device_signed(stack),
        }
        rates: dict[str, list[float]] = {name: [] for name in formats}
        for _ in range(args.rounds):
            for name, creds in formats.items():
                rates[name].append(asyncio.run(connect_rate(stack.mqtt_port, creds, args.connects)))
        introspect = stack.base + "/oauth2/introspect"
        served = {
            "bare POST": post_rate(
                f"http://127.0.0.1:{bare_port}/bare", {"token": "x"}, {}, args.seconds
            ),
            "introspect JWT": post_rate(
                introspect, {"token": formats["jwt"][0][1]}, stack.admin, args.seconds
            ),
            "introspect reference": post_rate(
                introspect, {"token": formats["reference"][0][1]}, stack.admin, args.seconds
            ),
        }
    finally:
        os.killpg(bare.pid, signal.SIGTERM)
        stack.stop()
    jwt_rate = statistics.median(rates["jwt"])
    print(f"{'CONNECT/s (16 at a time)':28s} {'median':>8s}  vs JWT  rounds")
    for name, values in rates.items():
        median = statistics.median(values)
        each = " ".join(f"{v:,.0f}" for v in values)
        print(f"{name:28s} {median:8,.0f}  {median / jwt_rate:.2f}x   {each}")
    print(f"{'requests/s (8 threads)':28s} {'rate':>8s}  vs bare")
    for name, rate in served.items():
        print(f"{name:28s} {rate:8,.0f}  {rate / served['bare POST']:.2f}x")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
