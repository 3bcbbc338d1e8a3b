"""What one idle MQTT session allocates in the broker, by traceback (tracemalloc).

A `CredBroker` runs in this process with an authenticator that grants every CONNECT (no
database, no tokens: the session is what is measured, not verification); a child
process opens the sessions as memory.py does (CONNECT, SUBSCRIBE to one filter, idle),
so that only the broker's allocations are traced. Printed: the growth per session over
`--sessions` sessions, then the largest allocation sites, grouped by traceback.

    .venv/bin/python benchmarks/session_profile.py [--sessions 300] [--depth 8] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import linecache
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from prometheus_client import CollectorRegistry

from broker.factory import Listeners, quiet_logs
from broker.metrics import BrokerStats
from broker.server import CredBroker
from credbroker.decision import Grant
from tests.stack import free_port

WARM_UP = 20


class GrantAll:
    """Every CONNECT is let in, with a grant that may subscribe and publish anywhere."""

    leeway = 0

    def authenticate(self, *, client_id: str | None, **_: Any) -> Grant:
        now = time.time()
        return Grant(client_id or "", "jti", "kid", now, now + 3600, ("#",), ("#",))

    def standing(self, _: Grant) -> None:
        return None


class NoTrust:
    def catch_up(self) -> None: ...

    def apply(self, _: object) -> None: ...


async def open_sessions(port: int, prefix: str, count: int) -> asyncio.subprocess.Process:
    """`count` idle sessions, held open by a child process until its stdin closes."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--clients",
        f"{port}:{prefix}:{count}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    if (await child.stdout.readline()).strip() != b"ok":
        raise RuntimeError("the client process failed")
    return child


async def clients(spec: str) -> None:
    import memory  # benchmarks/, this script's directory

    port, prefix, count = spec.split(":")
    credentials: list[tuple[str, str | None, str]] = [
        (f"{prefix}{i}", "x", f"devices/{prefix}{i}/cmd/#") for i in range(int(count))
    ]
    writers = await memory.open_sessions(int(port), credentials)
    print("ok", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the profiler is done
    for writer in writers:
        writer.close()


def settled_snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),  # lazy imports
        ]
    )


async def profile(sessions: int, depth: int, top: int) -> None:
    quiet_logs()
    port = free_port()
    broker = CredBroker(
        Listeners(mqtt_port=port).config(),
        authenticator=GrantAll(),  # type: ignore[arg-type]
        trust=NoTrust(),  # type: ignore[arg-type]
        audit=lambda **_: None,
        stats=BrokerStats(CollectorRegistry()),
        poll_interval=None,
    )
    await broker.start()
    children = [await open_sessions(port, "w", WARM_UP)]  # first-use allocations
    await asyncio.sleep(0.5)
    tracemalloc.start(depth)
    before = settled_snapshot()
    children.append(await open_sessions(port, "s", sessions))
    await asyncio.sleep(0.5)  # the last SUBACKs' tasks finish
    stats = settled_snapshot().compare_to(before, "traceback")
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in stats)
    print(f"{sessions} idle sessions: {total / sessions / 1024:.2f} KiB per session traced")
    for stat in stats[:top]:
        print(f"\n{stat.size_diff / sessions:6.0f} B  {stat.count_diff / sessions:4.1f} blocks")
        for frame in stat.traceback:
            name = frame.filename.split("site-packages/")[-1].split("python3.11/")[-1]
            line = linecache.getline(frame.filename, frame.lineno).strip()[:80]
            print(f"    {name}:{frame.lineno}  {line}")
    for child in children:
        assert child.stdin is not None
        child.stdin.close()
        await child.wait()
    await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--depth", type=int, default=8, help="frames per traceback")
    parser.add_argument("--top", type=int, default=25, help="allocation sites shown")
    parser.add_argument("--clients", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.clients:
        asyncio.run(clients(args.clients))
    else:
        asyncio.run(profile(args.sessions, args.depth, args.top))


if __name__ == "__main__":
    main()
