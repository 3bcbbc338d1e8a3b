"""MQTT 5.0 on the embedded broker (issue 15), as ratios against its 3.1.1 in the same run.

- publish throughput, QoS 0 and 1: broker.py's load (mosquitto_pub -l to mosquitto_sub
  -C N, the same payloads and count), publisher and subscriber both `-V mqttv5`, against
  both `-V mqttv311`. Target: >= 0.9x.
- CONNECT rate (raw asyncio clients, CONNECT, CONNACK, DISCONNECT): 5.0 with
  Authentication Method `credbroker-token` (the token as Authentication Data), 5.0 with
  username/password, against 3.1.1 with username/password; 16 at a time and one at a time.
- re-authentication rate (MQTT 5.0 section 4.12): AUTH 0x19 to AUTH 0x00 round trips on
  live 5.0 sessions, one session one AUTH at a time and 16 sessions at a time, against the
  CONNECT rates at the same concurrency. The tokens are fetched before the clock starts
  (the token endpoint is not measured): `--tokens` of them per device, each AUTH carrying
  the next one, so never the token the session holds.

Every packet is encoded before its round, so the clients' time is socket I/O only; rounds
interleave the protocols so that a slow moment of the shared machine hits all alike, and
each figure is the median of its rounds. Beside each rate, the broker's own CPU time per
message, CONNECT or AUTH (`cpu us`, all of `credbroker up`'s threads) and its ratio to
the baseline's (`cost`): less noisy than a rate on a shared machine, and what a 5.0
connection adds at its edge (broker/v5.py) shows there first.

    .venv/bin/python benchmarks/mqtt_v5.py [--quick] [--messages 10000] [--connects 1000]
        [--renewals 1000] [--rounds 5] [--tokens 50]

(Not named mqtt5.py: the benchmarks' directory is on sys.path, where that name would
shadow the `mqtt5` codec that broker/v5.py imports.)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from asyncio import StreamReader, StreamWriter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from statistics import median
from types import ModuleType

import mqtt5

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.stack import Device, Stack, connect_packet, start_stack

HERE = Path(__file__).parent
METHOD = "credbroker-token"  # DESIGN.md, MQTT 5
V311, V5_PASSWORD, V5_TOKEN = "3.1.1 password", "5.0 password", "5.0 credbroker-token"
REAUTH = "5.0 AUTH 0x19"


def _broker_benchmark() -> ModuleType:
    """benchmarks/broker.py, loaded by its path: on sys.path its name is the package's."""
    spec = importlib.util.spec_from_file_location("broker_benchmark", HERE / "broker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# broker.py's publisher and subscriber (mosquitto_pub -l, mosquitto_sub -C N): msg/s
pubsub: Callable[[int, int, int, tuple[str, str], tuple[str, str], str], float]
pubsub = _broker_benchmark().pubsub


@contextmanager
def mosquitto_speaks(version: str) -> Iterator[None]:
    """mosquitto_pub and mosquitto_sub default to protocol `version` (mqttv5, mqttv311)
    by their config files (mosquitto_pub(1), FILES) under a private XDG_CONFIG_HOME, so
    that broker.py's `pubsub` serves both protocols as it is."""
    home = Path(tempfile.mkdtemp(prefix="cb-mqtt5-bench-"))
    for client in ("mosquitto_pub", "mosquitto_sub"):
        (home / client).write_text(f"-V {version}\n")
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = before


def connect_token(device_id: str, token: str) -> bytes:
    """A 5.0 CONNECT by re-authentication's rules: username = device id, no password,
    the token as Authentication Data."""
    packet = mqtt5.ConnectPacket(
        device_id,
        username=device_id,
        clean_start=True,
        keep_alive=30,
        authentication_method=METHOD,
        authentication_data=token.encode(),
    )
    return bytes(packet.write())


def connects(credentials: Sequence[tuple[str, str]]) -> dict[str, list[bytes]]:
    """Each kind of CONNECT, once per credential."""
    return {
        V311: [connect_packet(d, password=t.encode()) for d, t in credentials],
        V5_PASSWORD: [connect_packet(d, password=t.encode(), level=5) for d, t in credentials],
        V5_TOKEN: [connect_token(d, t) for d, t in credentials],
    }


def renewal(token: str) -> bytes:
    packet = mqtt5.AuthPacket(
        reason_code=mqtt5.AuthReasonCode.RE_AUTHENTICATE,
        authentication_method=METHOD,
        authentication_data=token.encode(),
    )
    return bytes(packet.write())


async def answer(reader: StreamReader) -> tuple[int, bytes]:
    """The next packet's type and body (the broker's answers here are under 128 bytes)."""
    first, length = await reader.readexactly(2)
    assert length < 128, "a remaining length of more than one byte"
    return first >> 4, await reader.readexactly(length)


async def granted(reader: StreamReader) -> None:
    kind, body = await answer(reader)
    assert kind == 2 and body[1] == 0, body  # CONNACK, return code or reason 0


async def connect_rate(port: int, packets: Sequence[bytes], total: int, at_once: int) -> float:
    """CONNECT, CONNACK, DISCONNECT cycles per second, `at_once` connections at a time
    (DISCONNECT `e0 00` is the same in 3.1.1 and, as reason 0x00, in 5.0)."""
    remaining = iter(range(total))

    async def worker() -> None:
        for i in remaining:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(packets[i % len(packets)])
            await granted(reader)
            writer.write(b"\xe0\x00")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(at_once)))
    return total / (time.perf_counter() - started)


async def reauth_rate(
    port: int, sessions: Sequence[tuple[bytes, list[bytes]]], each: int, cpu: Callable[[], float]
) -> tuple[float, float]:
    """AUTH 0x19 to AUTH 0x00 round trips per second, `each` per session, one at a time
    in each, the sessions (a CONNECT and its AUTHs) at once; and the `cpu` microseconds an
    AUTH. Connecting is in neither."""
    opened: list[tuple[StreamReader, StreamWriter]] = []
    for connect, _ in sessions:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(connect)
        await granted(reader)
        opened.append((reader, writer))

    async def renew(reader: StreamReader, writer: StreamWriter, auths: list[bytes]) -> None:
        for i in range(each):
            writer.write(auths[i % len(auths)])
            kind, body = await answer(reader)
            assert kind == 15 and body[0] == 0, (kind, body)  # AUTH 0x00, success

    spent, started = cpu(), time.perf_counter()
    await asyncio.gather(
        *(renew(r, w, auths) for (r, w), (_, auths) in zip(opened, sessions, strict=True))
    )
    elapsed, spent = time.perf_counter() - started, cpu() - spent
    for _, writer in opened:
        writer.write(b"\xe0\x00")
        writer.close()
    total = len(sessions) * each
    return total / elapsed, spent / total * 1e6


def renewing_sessions(devices: Sequence[Device], tokens: int) -> list[tuple[bytes, list[bytes]]]:
    """Per device: its CONNECT with one token, and AUTHs with `tokens` others."""
    out = []
    for device in devices:
        connect = connect_token(device.id, device.token())
        out.append((connect, [renewal(device.token()) for _ in range(tokens)]))
    return out


Figures = dict[str, list[tuple[float, float]]]  # per name: (rate, broker CPU us) a round


def broker_cpu(stack: Stack) -> float:
    """CPU seconds `credbroker up` has used, all its threads (Linux, proc(5): utime +
    stime, in clock ticks of 10 ms: 1,000 operations of a round resolve 10 us each)."""
    assert stack.process is not None
    fields = Path(f"/proc/{stack.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(stack: Stack, count: int, run: Callable[[], float]) -> tuple[float, float]:
    """`run`'s rate, and the broker's CPU microseconds per each of its `count` operations."""
    before = broker_cpu(stack)
    rate = run()
    return rate, (broker_cpu(stack) - before) / count * 1e6


def measure(stack: Stack, args: argparse.Namespace) -> tuple[Figures, dict[int, Figures]]:
    fleet = stack.fleet(ttl=3600)
    devices = [stack.device(fleet) for _ in range(16)]
    creds = [(d.id, d.token()) for d in devices]
    packets = connects(creds)
    one = renewing_sessions(devices[:1], args.tokens)
    many = renewing_sessions(devices, args.tokens)
    topic = f"fleets/{fleet}/up/{devices[0].id}"
    port, n = stack.mqtt_port, args.connects
    publish: Figures = {}
    connect: dict[int, Figures] = {16: {}, 1: {}}
    for round_ in range(args.rounds):
        turn = 1 if round_ % 2 == 0 else -1  # every other round the other way: none goes first
        for qos in (0, 1):
            for version, name in (("mqttv311", "3.1.1"), ("mqttv5", "5.0"))[::turn]:
                with mosquitto_speaks(version):
                    load = partial(pubsub, port, args.messages, qos, creds[0], creds[1], topic)
                    got = sample(stack, args.messages, load)
                publish.setdefault(f"QoS {qos} {name}", []).append(got)
        for at_once, figures in connect.items():
            for name, kind in list(packets.items())[::turn]:
                got = sample(stack, n, partial(asyncio.run, connect_rate(port, kind, n, at_once)))
                figures.setdefault(name, []).append(got)
            sessions = many if at_once > 1 else one
            each = max(1, args.renewals // len(sessions))
            got = asyncio.run(reauth_rate(port, sessions, each, partial(broker_cpu, stack)))
            figures.setdefault(REAUTH, []).append(got)
    return publish, connect


def report(publish: Figures, connect: dict[int, Figures]) -> None:
    """Medians over the rounds. A ratio is the median of the rounds' own ratios (each
    against the baseline measured next to it, so a slow moment of the machine cancels):
    `vs` for the rate, `cost` for the broker's CPU time per message, CONNECT or AUTH
    (`cpu us`; under 1: cheaper)."""
    head = f"{'median':>8s} {'vs':>6s} {'cpu us':>7s} {'cost':>6s}  rounds"
    print(f"{'publish msg/s (target >= 0.9x)':32s} {head}")
    for qos in (0, 1):
        rows({k: v for k, v in publish.items() if k.startswith(f"QoS {qos} ")}, f"QoS {qos} 3.1.1")
    for at_once, figures in connect.items():
        print(f"{f'per second, {at_once} at a time':32s} {head}")
        rows(figures, V311)
        rate, cpu = ratios(figures[REAUTH], figures[V5_TOKEN])
        print(f"{'  AUTH vs 5.0 token CONNECT':32s} {'':8s} {rate:5.2f}x {'':7s} {cpu:5.2f}x")


def rows(figures: Figures, base: str) -> None:
    for name, samples in figures.items():
        rate, cpu = ratios(samples, figures[base])
        each = " ".join(f"{r:,.0f}" for r, _ in samples)
        print(
            f"{name:32s} {median(r for r, _ in samples):8,.0f} {rate:5.2f}x"
            f" {median(c for _, c in samples):7.0f} {cpu:5.2f}x  {each}"
        )


def ratios(
    samples: list[tuple[float, float]], base: list[tuple[float, float]]
) -> tuple[float, float]:
    """The medians of the rounds' ratios of rates and of CPU times."""
    pairs = list(zip(samples, base, strict=True))
    return median(s[0] / b[0] for s, b in pairs), median(s[1] / b[1] for s, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short run: one small round")
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--renewals", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=50, help="distinct tokens per device")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.connects, args.renewals, args.rounds, args.tokens = (
            2000, 300, 300, 1, 10,
        )  # fmt: skip
    stack = start_stack(Path(tempfile.mkdtemp(prefix="cb-mqtt5-bench-")))
    try:
        publish, connect = measure(stack, args)
    finally:
        stack.stop()
    report(publish, connect)


if __name__ == "__main__":
    main()
