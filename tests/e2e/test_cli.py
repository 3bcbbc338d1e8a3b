"""The `credbroker` command as a newcomer meets it: real processes, real files, real ports."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from credbroker.cli import app as cli_app
from tests.databases import postgres_database
from tests.stack import BIN, free_port, start_stack, wait_for


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "credbroker"), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else _env(),
        timeout=60,
        check=False,
    )


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


@pytest.fixture
def scaled_env() -> Iterator[dict[str, str]]:
    """The scaled shape's settings: a database of the test's own, a configured master key
    (so nothing but the admin key would be written to the data directory)."""
    with postgres_database() as url:
        yield _env(
            CREDBROKER_DATABASE_URL=url,
            CREDBROKER_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        )


@pytest.mark.parametrize("command", ["api", "up"])
def test_a_missing_data_dir_is_made_and_the_admin_key_shown_once(
    tmp_path: Path, scaled_env: dict[str, str], command: str
) -> None:
    data_dir = tmp_path / "not" / "there" / "yet"
    port = free_port()
    args = [command, "--http-port", str(port), "--data-dir", str(data_dir)]
    if command == "up":
        args += ["--mqtt-port", str(free_port())]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "credbroker"), *args],
            env=scaled_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.poll() is not None or _healthy(base), 60, "the API")
        assert server.poll() is None, log.read_text()
        key = (data_dir / "admin.key").read_text().strip()
        assert log.read_text().count(key) == 1  # shown, once
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "admin.key").stat().st_mode) == 0o600
        listed = httpx.get(base + "/v1/devices", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200, listed.text
    finally:
        _stop(server)
    assert "Traceback" not in log.read_text()


def test_keygen_refuses_to_overwrite_a_key_pair_without_force(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    assert _cli("keygen", "--out", str(out)).returncode == 0
    before = {name: (out / name).read_bytes() for name in ("device.key", "device.pub")}

    again = _cli("keygen", "--out", str(out))
    assert again.returncode != 0
    assert len(again.stderr.strip().splitlines()) == 1 and "--force" in again.stderr
    assert {name: (out / name).read_bytes() for name in before} == before

    (out / "device.key").unlink()  # half a pair is a pair too: the public key stays
    assert _cli("keygen", "--out", str(out)).returncode != 0
    assert (out / "device.pub").read_bytes() == before["device.pub"]

    forced = _cli("keygen", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "device.pub").read_bytes() != before["device.pub"]
    assert stat.S_IMODE((out / "device.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("command", "taken"),
    [("up", "--http-port"), ("up", "--mqtt-port"), ("api", "--http-port")],
)
def test_a_taken_port_is_one_line_and_no_banner(tmp_path: Path, command: str, taken: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        ports = {"--http-port": str(free_port())}
        if command == "up":
            ports["--mqtt-port"] = str(free_port())
        ports[taken] = port
        args = [arg for pair in ports.items() for arg in pair]
        done = _cli(command, *args, "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "address already in use" in done.stderr.lower() and taken in done.stderr
    assert "Traceback" not in done.stderr and "credbroker:" not in done.stderr
    assert "admin API key" not in done.stderr + done.stdout  # nothing made, nothing shown


def test_missing_or_bad_key_files_are_one_line_errors(tmp_path: Path) -> None:
    # Said before any request: no API runs, and none is reached.
    env = _env(CREDBROKER_API=f"http://127.0.0.1:{free_port()}", CREDBROKER_ADMIN_KEY="adm_x")
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    missing = tmp_path / "missing.pem"
    runs = [
        (["device", "create", "--fleet", "f", "--public-key", str(missing)], "No such file"),
        (["device", "create", "--fleet", "f", "--public-key", str(tmp_path)], "directory"),
        (["token", "get", "--device", "d", "--key", str(missing)], "No such file"),
        (["token", "get", "--device", "d", "--key", str(tmp_path)], "directory"),
        (["token", "get", "--device", "d", "--key", str(not_a_key)], "not a device private key"),
    ]
    for args, says in runs:
        done = _cli(*args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith("error: ") and args[-1] in done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("second", ["up", "api"])
def test_a_second_server_on_one_data_dir_is_refused(tmp_path: Path, second: str) -> None:
    first = start_stack(tmp_path)
    try:
        args = [second, "--http-port", str(free_port()), "--data-dir", str(first.data_dir)]
        if second == "up":
            args += ["--mqtt-port", str(free_port())]
        done = _cli(*args)
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert str(first.data_dir) in done.stderr and "in use" in done.stderr
        assert "admin API key" not in done.stderr
        assert first.http.get(first.base + "/healthz").status_code == 200  # untouched
    finally:
        first.stop()
    # The lock dies with its process: the directory is free again.
    again = start_stack(tmp_path)
    again.stop()


def test_no_admin_key_says_where_it_looked_in_one_line(tmp_path: Path) -> None:
    env = _env(CREDBROKER_API=f"http://127.0.0.1:{free_port()}")
    done = _cli("device", "list", "--data-dir", str(tmp_path / "nowhere"), env=env)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(tmp_path / "nowhere" / "admin.key") in done.stderr
    assert "CREDBROKER_DATA_DIR" in done.stderr


def _commands() -> Iterator[tuple[str, Any]]:
    """Every command of `credbroker`, by its path ("device create"), as typer built it."""
    stack: list[tuple[str, Any]] = [("", typer.main.get_command(cli_app))]
    while stack:
        path, command = stack.pop()
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            stack += [(f"{path} {name}".strip(), sub) for name, sub in command.commands.items()]
        else:
            yield path, command


def test_version() -> None:
    done = _cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"credbroker {version('credbroker')}"


def test_no_flag_shows_a_value_hint_in_help() -> None:
    for path in ["", *(p for p, _ in _commands())]:
        done = _cli(*path.split(), "--help")
        assert done.returncode == 0, (path, done.stderr)
        assert "<bool>" not in done.stdout, (path, done.stdout)


def test_no_environment_variable_has_two_meanings() -> None:
    meanings: dict[str, set[tuple[str, str]]] = {}
    for path, command in _commands():
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            for envvar in filter(None, envvars):
                help_text = getattr(param, "help", None) or ""
                meanings.setdefault(envvar, set()).add((param.opts[0], help_text))
                assert envvar.startswith("CREDBROKER_"), (path, envvar)
    assert "CREDBROKER_OUT" not in meanings  # keygen's keys and certs' certificates
    shared = {envvar: seen for envvar, seen in meanings.items() if len(seen) > 1}
    assert shared == {}
