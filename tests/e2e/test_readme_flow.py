"""README's walk-through, as a new user runs it: real `credbroker up`, the CLI, uvicorn."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import httpx

from tests.stack import BIN, Stack

ROOT = Path(__file__).resolve().parents[2]


def _walkthrough() -> str:
    """README's walk-through block, as a user copies it."""
    section = (ROOT / "README.md").read_text().split("## Walk-through", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_readme_walkthrough(stack: Stack, tmp_path: Path) -> None:
    admin_key_file = stack.data_dir / "admin.key"
    assert stat.S_IMODE(admin_key_file.stat().st_mode) == 0o600
    assert admin_key_file.read_text().strip() in stack.log.read_text()  # printed once at start

    # A checkout as README's user has it: .venv, and the running stack's credbroker-data.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(BIN.parent)
    (checkout / "credbroker-data").symlink_to(stack.data_dir)
    before = sorted(os.listdir(checkout))
    scratch = tmp_path / "scratch"  # where mktemp makes its directory
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    # The one difference from README: the test's stack is not on port 8000.
    env.update(CREDBROKER_API=stack.base, TMPDIR=str(scratch))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _walkthrough()],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert '"active": true' in done.stdout and '"active": false' in done.stdout
    assert '"status": "revoked"' in done.stdout

    assert sorted(os.listdir(checkout)) == before  # no keys, tokens.json, refreshed.json
    [work] = scratch.iterdir()
    assert {p.name for p in work.iterdir()} == {"keys", "tokens.json", "refreshed.json"}
    key = work / "keys" / "dev-1" / "device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    refreshed = json.loads((work / "refreshed.json").read_text())
    assert (
        refreshed["refresh_token"]
        != json.loads((work / "tokens.json").read_text())["refresh_token"]
    )
    listed = json.loads(stack.cli("device", "list", "--fleet", "sensors", "--json").stdout)
    assert [(d["device_id"], d["status"]) for d in listed] == [("dev-1", "revoked")]
    refused = stack.cli("token", "get", "--device", "dev-1", "--key", str(key))
    assert refused.returncode == 1 and "invalid_client" in refused.stderr


def test_real_uvicorn_sends_date_and_no_store(stack: Stack) -> None:
    response = httpx.post(stack.base + "/oauth2/token", data={"grant_type": "nope"})
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert len(response.headers.get_list("date")) == 1
    assert httpx.get(stack.base + "/healthz").json()["status"] == "ok"


def test_sigterm_stops_cleanly(stack: Stack) -> None:
    assert stack.process is not None
    os.killpg(stack.process.pid, signal.SIGTERM)
    assert stack.process.wait(20) == 0
    assert "Traceback" not in stack.log.read_text()
