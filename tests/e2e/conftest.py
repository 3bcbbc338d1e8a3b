"""`credbroker up` as a real process on free loopback ports."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    base: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            "CREDBROKER_API": self.base,
            "CREDBROKER_DATA_DIR": str(self.data_dir),
            **(env or {}),
        }
        full_env.pop("CREDBROKER_ADMIN_KEY", None)
        return subprocess.run(
            [str(BIN / "credbroker"), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
            check=False,
        )


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("credbroker up exited:\n" + log.read_text())
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a readiness probe, not waiting for an outcome
    raise RuntimeError("credbroker up did not become healthy:\n" + log.read_text())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    port, mqtt = free_port(), free_port()
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "credbroker"),
                "up",
                "--host",
                "127.0.0.1",
                "--http-port",
                str(port),
                "--mqtt-port",
                str(mqtt),
                "--data-dir",
                str(data),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, log)
        yield Stack(base, data, process, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)


def random_admin_key() -> str:
    return "adm_" + secrets.token_hex(24)
