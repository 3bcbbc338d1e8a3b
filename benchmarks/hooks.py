"""Broker hook decisions per second vs a bare FastAPI POST and vs each hook's floor
(floor.py) in the same run, and RabbitMQ's CONNECT rate through the hooks with and
without its `cache` backend. A CONNECT hook's floor is the bare endpoint plus one raw
P-256 verify (the access token); a cached publish check's is the bare endpoint.

- CONNECT: `/v1/hooks/rabbitmq/user` with a different token each time (a verification,
  and the grant saved for the other API processes);
- cached publish check: `/v1/hooks/rabbitmq/topic` for a connected client id;
- RabbitMQ: sequential MQTT CONNECT/DISCONNECT cycles of one device through a node of
  our own (Debian's 3.10), `http` backend alone, then `cache` in front of it.

    .venv/bin/python benchmarks/hooks.py [--seconds 8] [--connections 16] [--connects 300]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from floor import crypto_costs, describe, floor_rate, store_costs  # noqa: E402
from token_endpoint import ADMIN, BIN, HERE, free_port, provision, start, wrk  # noqa: E402

from device_sdk import assertion_form  # noqa: E402
from tests.e2e.rabbitmq import start_rabbit  # noqa: E402

AUTH = f"Bearer {ADMIN}"


def tokens(base: str, devices: list, count: int) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """`count` distinct access tokens, (device id, token) each, from four threads."""
    url = base + "/oauth2/token"

    def one(i: int) -> tuple[str, str]:
        device_id, key = devices[i % len(devices)]
        form = assertion_form(key, device_id=device_id, audience=url)
        return device_id, http.post(url, data=form).json()["access_token"]

    with httpx.Client() as http, concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def connect_cycles(port: int, device_id: str, token: str, count: int) -> float:
    """Sequential CONNECT, CONNACK, DISCONNECT: cycles per second."""
    began = time.perf_counter()
    for _ in range(count):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
        client.username_pw_set(device_id, token)
        client.connect("127.0.0.1", port)
        while not client.is_connected():
            client.loop(0.01)
        client.disconnect()
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--tokens", type=int, default=30000, help="distinct tokens for CONNECT (one a request)"
    )
    parser.add_argument("--connects", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cb-hooks-"))
    env = {**os.environ, "CREDBROKER_ADMIN_KEY": ADMIN}
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    ours = start(
        [str(BIN / "credbroker"), "api", "--http-port", str(port), "--data-dir", str(work)],
        env,
        base + "/healthz",
    )
    bare = start(
        [str(BIN / "uvicorn"), "--app-dir", str(HERE), "bare_app:app", "--port", str(bare_port),
         "--log-level", "warning", "--no-access-log", "--no-date-header", "--no-server-header"],
        env,
        f"http://127.0.0.1:{bare_port}/docs",
    )  # fmt: skip
    try:
        devices = provision(base)
        made = tokens(base, devices, args.tokens)
        connects = work / "connects.txt"
        connects.write_text(
            "".join(
                urllib.parse.urlencode({"username": d, "password": t, "client_id": d}) + "\n"
                for d, t in made
            )
        )
        device_id, token = made[0]
        httpx.post(
            base + "/v1/hooks/rabbitmq/user",
            data={"username": device_id, "password": token, "client_id": device_id},
            headers={"Authorization": AUTH},
        ).raise_for_status()
        topic = work / "topic.txt"
        topic.write_text(
            urllib.parse.urlencode(
                {"username": device_id, "permission": "write",
                 "routing_key": f"devices.{device_id}.temp", "variable_map.client_id": device_id}
            ) + "\n"
        )  # fmt: skip
        bare_rps, _ = wrk(
            f"http://127.0.0.1:{bare_port}/bare", topic, args.seconds, args.connections
        )
        results = {
            "CONNECT (verify + shared grant)": wrk(
                base + "/v1/hooks/rabbitmq/user", connects, args.seconds, args.connections, AUTH
            ),
            "cached publish check": wrk(
                base + "/v1/hooks/rabbitmq/topic", topic, args.seconds, args.connections, AUTH
            ),
        }
        costs = crypto_costs()
        store = store_costs(args.connections)
        floors = {
            "CONNECT (verify + shared grant)": floor_rate(bare_rps, costs, "p256 verify"),
            "cached publish check": bare_rps,
        }
        with_db = floor_rate(bare_rps, {**costs, **store}, "p256 verify", "sqlite hook connect")
        print(f"raw cryptography: {describe(costs)}; raw SQLite: {describe(store)}")
        print(f"bare FastAPI POST: {bare_rps:,.0f} req/s (baseline)")
        for name, (rps, errors) in results.items():
            print(
                f"{name}: {rps:,.0f} req/s, {errors} non-2xx, {rps / bare_rps:.2f}x bare, "
                f"{rps / floors[name]:.2f}x its floor ({floors[name]:,.0f}/s)"
            )
        connect_rps = results["CONNECT (verify + shared grant)"][0]
        if connect_rps * args.seconds > args.tokens:  # wrk came round to the first again
            reused = 1 - args.tokens / (connect_rps * args.seconds)
            print(f"CONNECT: {reused:.0%} of the requests repeated a login (cached): --tokens")
        print(
            f"CONNECT vs its floor with the raw SQLite work (reads, upsert; {args.connections}"
            f" a commit): {connect_rps / with_db:.2f}x ({with_db:,.0f}/s)"
        )
        for label, cache in (("http backend", None), ("cache + http (30 s)", 30000)):
            node = start_rabbit(
                work / f"rabbit-{cache}", api=base, hook_key=ADMIN, cache_ttl_ms=cache
            )
            try:
                rate = connect_cycles(node.mqtt_port, device_id, token, args.connects)
            finally:
                node.stop()
            print(f"RabbitMQ CONNECT cycles, {label}: {rate:,.0f}/s")
    finally:
        for proc in (ours, bare):
            os.killpg(proc.pid, 15)


if __name__ == "__main__":
    main()
