"""Memory per idle MQTT session: the embedded broker (`credbroker up`) vs stock amqtt 0.12.1
(anonymous, no plugins) in the same run.

Each session is a raw MQTT 3.1.1 connection (keep-alive 600 s) that subscribes to one
filter and stays idle. RSS (VmRSS of the server process) is read after a warm-up of 50
sessions and again after `--sessions` more, once the servers are quiet; the growth over
the sessions is the cost of one. Also printed: the embedded process's whole RSS with the
sessions connected.

    .venv/bin/python benchmarks/memory.py [--sessions 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import signal
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

import anonymous_amqtt  # benchmarks/, the script's directory

from tests.broker.wire import SUBSCRIBE, encode, packet
from tests.stack import Stack, connect_packet, free_port, port_open, start_stack, wait_for

HERE = Path(__file__).parent
WARM_UP = 50


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss(pid: int) -> int:
    """RSS once it has stopped moving (the server has processed what it was sent)."""
    last = rss_kib(pid)
    while True:
        time.sleep(1.0)
        now = rss_kib(pid)
        if abs(now - last) < 64:
            return now
        last = now


def subscribe_packet(topic_filter: str) -> bytes:
    """SUBSCRIBE, packet id 1, one filter at QoS 1 (MQTT 3.1.1 section 3.8)."""
    return packet(SUBSCRIBE, 0b0010, struct.pack("!H", 1) + encode(topic_filter) + b"\x01")


async def open_sessions(
    port: int, credentials: list[tuple[str, str | None, str]]
) -> list[asyncio.StreamWriter]:
    """One connection per credential, CONNECT and SUBSCRIBE answered; kept open."""
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(32)

    async def one(client_id: str, password: str | None, topic_filter: str) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            secret = password.encode() if password else None
            writer.write(connect_packet(client_id, password=secret, keepalive=600))
            connack = await reader.readexactly(4)
            if connack[3] != 0:
                raise RuntimeError(f"{client_id}: CONNACK {connack[3]}")
            writer.write(subscribe_packet(topic_filter))
            suback = await reader.readexactly(5)
            if suback[4] == 0x80:
                raise RuntimeError(f"{client_id}: SUBACK refused")
            writers.append(writer)

    await asyncio.gather(*(one(*c) for c in credentials))
    return writers


def grow(pid: int, port: int, credentials: list[tuple[str, str | None, str]]) -> tuple[int, int]:
    """RSS after the warm-up sessions and after the rest, in KiB; sessions stay open."""

    async def run() -> tuple[int, int]:
        kept = await open_sessions(port, credentials[:WARM_UP])
        before = await asyncio.to_thread(settled_rss, pid)
        kept += await open_sessions(port, credentials[WARM_UP:])
        after = await asyncio.to_thread(settled_rss, pid)
        for writer in kept:
            writer.close()
        return before, after

    return asyncio.run(run())


def our_credentials(stack: Stack, count: int) -> list[tuple[str, str | None, str]]:
    fleet = stack.fleet(ttl=3600)

    def one(_: int) -> tuple[str, str | None, str]:
        device = stack.device(fleet)
        return device.id, device.token(), f"devices/{device.id}/cmd/#"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    total = WARM_UP + args.sessions
    work = Path(tempfile.mkdtemp(prefix="cb-memory-"))
    anon_port = free_port()
    anon = anonymous_amqtt.start(anon_port)
    stack = start_stack(work)
    try:
        wait_for(lambda: port_open(anon_port), 30, "the anonymous broker")
        assert stack.process is not None
        ours = grow(stack.process.pid, stack.mqtt_port, our_credentials(stack, total))
        whole = rss_kib(stack.process.pid)
        stock = grow(
            anon.pid,
            anon_port,
            [(f"c{i}", None, f"devices/c{i}/cmd/#") for i in range(total)],
        )
    finally:
        os.killpg(anon.pid, signal.SIGTERM)
        stack.stop()
    per_ours = (ours[1] - ours[0]) / args.sessions
    per_stock = (stock[1] - stock[0]) / args.sessions
    print(f"{args.sessions} idle sessions, each subscribed to one filter")
    print(f"credbroker up (embedded broker): {per_ours:6.1f} KiB per session")
    print(f"stock amqtt 0.12.1, anonymous:   {per_stock:6.1f} KiB per session")
    print(f"ratio {per_ours / per_stock:.2f}x of stock")
    print(f"credbroker up, whole process with the sessions: {whole / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
