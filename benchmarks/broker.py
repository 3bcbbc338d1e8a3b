"""Broker figures, as ratios against stock amqtt (anonymous, no plugins) in the same run.

- publish throughput, QoS 0 and 1, one publisher (mosquitto_pub -l) to one subscriber
  (mosquitto_sub -C N): our authenticated broker vs the anonymous baseline;
- CONNECT rate (raw asyncio clients, 16 at a time; with a token vs anonymous);
- revocation-to-disconnect latency p50/p99 for live paho sessions, in-process broker.

    .venv/bin/python benchmarks/broker.py [--messages 20000] [--connects 2000]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

import anonymous_amqtt  # benchmarks/, the script's directory

from tests.stack import (
    Client,
    Stack,
    connect_packet,
    free_port,
    port_open,
    start_stack,
    wait_for,
)

HERE = Path(__file__).parent


async def connect_rate(port: int, credentials: list[tuple[str, str | None]], total: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            client_id, password = credentials[queue.get_nowait() % len(credentials)]
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


def pubsub(
    port: int,
    n: int,
    qos: int,
    pub: tuple[str, str | None],
    sub: tuple[str, str | None],
    topic: str,
) -> float:
    def auth(cred: tuple[str, str | None]) -> list[str]:
        return ["-i", cred[0]] + (["-u", cred[0], "-P", cred[1]] if cred[1] else [])

    receiver = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-t", topic, "-q", str(qos), "-C", str(n), *auth(sub)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1)  # let the subscription settle before the clock starts
    started = time.perf_counter()
    sender = subprocess.Popen(
        [
            "mosquitto_pub",
            "-p",
            str(port),
            "-t",
            topic,
            "-q",
            str(qos),
            "-l",
            "-M",
            "100",
            *auth(pub),
        ],
        stdin=subprocess.PIPE,
    )
    assert sender.stdin is not None
    sender.stdin.write(b"".join(b"m%08d\n" % i for i in range(n)))
    sender.stdin.flush()
    receiver.wait(600)
    elapsed = time.perf_counter() - started
    sender.stdin.close()
    sender.wait(60)
    return n / elapsed


def revocation_latency(stack: Stack, count: int) -> list[float]:
    fleet = stack.fleet()
    latencies = []
    for _ in range(count):
        device = stack.device(fleet)
        client = Client(stack, device.id, device.token())
        assert client.connected.wait(10)
        started = time.monotonic()
        device.api("POST", ":revoke")
        assert client.disconnected.wait(10)
        latencies.append((client.disconnected_at or 0) - started)
        client.paho.loop_stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--revocations", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cb-broker-bench-"))
    anon_port = free_port()
    anon = anonymous_amqtt.start(anon_port)
    stack = start_stack(work)
    try:
        wait_for(lambda: port_open(anon_port), 30, "the anonymous broker")
        fleet = stack.fleet(ttl=3600)
        devices = [stack.device(fleet) for _ in range(16)]
        creds = [(d.id, d.token()) for d in devices]
        topic = f"fleets/{fleet}/up/{devices[0].id}"
        rows = []
        for qos in (0, 1):
            ours = pubsub(stack.mqtt_port, args.messages, qos, creds[0], creds[1], topic)
            base = pubsub(anon_port, args.messages, qos, ("p", None), ("s", None), topic)
            rows.append((f"publish QoS {qos} msg/s", ours, base))
        ours_c = asyncio.run(connect_rate(stack.mqtt_port, list(creds), args.connects))
        base_c = asyncio.run(
            connect_rate(anon_port, [(f"c{i}", None) for i in range(16)], args.connects)
        )
        rows.append(("CONNECT/s (16 at a time)", ours_c, base_c))
        latencies = sorted(revocation_latency(stack, args.revocations))
    finally:
        os.killpg(anon.pid, signal.SIGTERM)
        stack.stop()
    print(f"{'':28s} {'credbroker':>11s} {'anon amqtt':>11s}  ratio")
    for name, ours, base in rows:
        print(f"{name:28s} {ours:11,.0f} {base:11,.0f}  {ours / base:.2f}x")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"revocation to disconnect: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms over {len(latencies)} sessions"
    )


if __name__ == "__main__":
    threading.excepthook = lambda a: None
    main()
