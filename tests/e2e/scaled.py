"""The scaled shape on PostgreSQL: two stateless `credbroker api` processes and a
standalone `credbroker broker` on one database of the test's own."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.databases import postgres_database
from tests.stack import BIN, free_port, port_open, wait_for

ISSUER = "http://credbroker.test"


@dataclass
class Scaled:
    apis: list[str]
    broker_port: int
    admin: dict[str, str]
    issuer: str = ISSUER


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "credbroker"), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def scaled_shape(tmp: Path, **extra_env: str) -> Iterator[Scaled]:
    admin_key = "adm_" + secrets.token_hex(24)
    processes: list[subprocess.Popen[bytes]] = []
    with postgres_database() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
        env.update(
            CREDBROKER_DATABASE_URL=url,
            CREDBROKER_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            CREDBROKER_ADMIN_KEY=admin_key,
            CREDBROKER_ISSUER=ISSUER,
            **extra_env,
        )
        apis = []
        try:
            for n in range(2):  # one after the other: the first applies the migrations
                port = free_port()
                args = ["api", "--http-port", str(port), "--data-dir", str(tmp / f"api{n}")]
                processes.append(_spawn(args, env, tmp / f"api{n}.log"))
                base = f"http://127.0.0.1:{port}"
                wait_for(lambda b=base: _healthy(b), timeout=60, what=f"API process {n}")
                apis.append(base)
            broker_port = free_port()
            processes.append(
                _spawn(["broker", "--mqtt-port", str(broker_port)], env, tmp / "broker.log")
            )
            wait_for(lambda: port_open(broker_port), timeout=60, what="the standalone broker")
            yield Scaled(apis, broker_port, {"Authorization": f"Bearer {admin_key}"})
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(20)
