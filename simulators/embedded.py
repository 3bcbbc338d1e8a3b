"""`credbroker simulate --embedded`: the embedded stack on free ports, for one run.

It runs as a child process (`credbroker up` in a temporary data directory): the fleet
and the stack then use a core each, where one process would share one through the GIL.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from simulators.run import Target

LEEWAY = 2  # seconds: expired-token attacks need not wait out the default 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_stack(startup_timeout: float = 60.0) -> Iterator[Target]:
    http_port, mqtt_port = _free_port(), _free_port()
    admin_key = "adm_" + secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix="credbroker-sim-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
        env |= {"CREDBROKER_ADMIN_KEY": admin_key, "CREDBROKER_LEEWAY": str(LEEWAY)}
        log = Path(tmp) / "stack.log"
        command = [
            sys.executable,
            "-c",
            "from credbroker.cli import main; main()",
            "up",
            "--host=127.0.0.1",
            f"--http-port={http_port}",
            f"--mqtt-port={mqtt_port}",
            f"--data-dir={Path(tmp) / 'data'}",
        ]
        with log.open("wb") as out:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        api = f"http://127.0.0.1:{http_port}"
        try:
            _wait_healthy(api, child, log, startup_timeout)
            yield Target(api, "127.0.0.1", mqtt_port, admin_key, leeway=LEEWAY)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)


def _wait_healthy(api: str, child: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("the embedded stack exited:\n" + log.read_text())
        try:
            if httpx.get(api + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the embedded stack was not healthy within {timeout} s")
