"""`scripts/deps`: the test suite's system dependencies, said before pytest starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = {"mosquitto_pub": "mosquitto-clients", "docker-compose": "docker-compose"}


def _deps(path: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "CREDBROKER_TEST_POSTGRES"}
    return subprocess.run(
        [str(ROOT / "scripts" / "deps")],
        capture_output=True,
        text=True,
        env=clean | {"PATH": path} | env,
        timeout=60,
        check=False,
    )


def test_this_machine_has_them() -> None:
    done = _deps(os.environ["PATH"])
    assert done.returncode == 0, done.stderr


def test_missing_commands_are_named_with_their_packages(tmp_path: Path) -> None:
    # The machine's commands, but for the hidden ones.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep)[::-1]:
        for entry in Path(directory).glob("*") if Path(directory).is_dir() else []:
            if entry.name not in HIDDEN:
                (bin_dir / entry.name).unlink(missing_ok=True)
                (bin_dir / entry.name).symlink_to(entry)
    done = _deps(str(bin_dir))
    assert done.returncode == 1
    for command, package in HIDDEN.items():
        assert f"{package}: {command}" in done.stderr
    assert "apt-get install -y mosquitto-clients docker-compose" in done.stderr
    assert "scripts/deps --install" in done.stderr


def test_an_unreachable_postgres_is_said_with_what_to_do() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}"
    done = _deps(os.environ["PATH"], CREDBROKER_TEST_POSTGRES=url)
    assert done.returncode == 1
    assert f"PostgreSQL: no server at {url}" in done.stderr
    assert "CREDBROKER_TEST_POSTGRES" in done.stderr
