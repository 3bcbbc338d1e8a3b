"""A fleet-wide logout in an incident: `POST /v1/fleets/{name}/tokens:revoke` against
N connected devices on the embedded stack (`credbroker up`), timed from the request to
each connection's cut (the broker closes the socket: MQTT 3.1.1 has no server
DISCONNECT) and to the last. Devices are raw asyncio MQTT connections, one CONNECT each,
so that the client side costs next to nothing.

    .venv/bin/python benchmarks/fleet_logout.py [--devices 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from device_sdk import assertion_form, generate_key, public_pem  # noqa: E402
from simulators.embedded import embedded_stack  # noqa: E402
from tests.stack import connect_packet  # noqa: E402

BATCH = 500


async def _connect(
    port: int, device_id: str, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(connect_packet(device_id, password=token.encode(), keepalive=600))
    await writer.drain()
    connack = await reader.readexactly(4)
    if connack[3] != 0:
        raise RuntimeError(f"{device_id}: CONNACK {connack[3]}")
    return reader, writer  # a writer that is collected closes its connection


async def _cut(reader: asyncio.StreamReader) -> float:
    await reader.read()  # EOF: the broker closed the connection
    return time.monotonic()


async def run(devices: int) -> None:
    with embedded_stack() as target:
        admin = {"Authorization": f"Bearer {target.admin_key}"}
        async with httpx.AsyncClient(base_url=target.api, headers=admin, timeout=60) as http:
            fleet = "incident"
            acl = {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]}
            body = {"name": fleet, "token_ttl": 3600, "acl": acl}
            (await http.post("/v1/fleets", json=body)).raise_for_status()
            keys = {f"d-{n:05d}": generate_key() for n in range(devices)}
            ids = list(keys)
            for start in range(0, devices, BATCH):
                rows = [
                    {"device_id": d, "fleet": fleet, "public_key": public_pem(keys[d])}
                    for d in ids[start : start + BATCH]
                ]
                (await http.post("/v1/devices:batch", json={"devices": rows})).raise_for_status()
            endpoint = target.api + "/oauth2/token"
            tokens: dict[str, str] = {}
            async with httpx.AsyncClient(base_url=target.api, timeout=60) as device:
                for d in ids:
                    form = assertion_form(keys[d], device_id=d, audience=endpoint)
                    answer = await device.post("/oauth2/token", data=form)
                    answer.raise_for_status()
                    tokens[d] = answer.json()["access_token"]
            readers = []
            for start in range(0, devices, 100):
                readers += await asyncio.gather(
                    *(_connect(target.mqtt_port, d, tokens[d]) for d in ids[start : start + 100])
                )
            cuts = [asyncio.ensure_future(_cut(r)) for r, _ in readers]
            await asyncio.sleep(0.5)  # every session registered and idle
            began = time.monotonic()
            (await http.post(f"/v1/fleets/{fleet}/tokens:revoke")).raise_for_status()
            answered = time.monotonic() - began
            ends = await asyncio.wait_for(asyncio.gather(*cuts), timeout=30)
    delays = sorted((t - began) * 1000 for t in ends)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"{devices} connected devices, one fleet logout:")
    print(f"  request answered in {answered * 1000:.0f} ms")
    print(
        f"  request to disconnect: p50 {statistics.median(delays):.0f} ms, "
        f"p99 {p99:.0f} ms, last {delays[-1]:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    asyncio.run(run(parser.parse_args().devices))


if __name__ == "__main__":
    main()
