"""README's walk-through, as a new user runs it: real `credbroker up`, the CLI, uvicorn."""

from __future__ import annotations

import json
import os
import signal
import stat

import httpx

from tests.stack import Stack


def _ok(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else {}


def test_readme_walkthrough(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    admin_key_file = stack.data_dir / "admin.key"
    assert stat.S_IMODE(admin_key_file.stat().st_mode) == 0o600
    assert admin_key_file.read_text().strip() in stack.log.read_text()  # printed once at start

    keys = tmp_path / "keys"
    assert stack.cli("keygen", "--out", str(keys)).returncode == 0
    assert stat.S_IMODE((keys / "device.key").stat().st_mode) == 0o600
    _ok(
        stack.cli(
            "fleet",
            "create",
            "sensors",
            "--publish",
            "devices/{device_id}/#",
            "--subscribe",
            "devices/{device_id}/cmd/#",
        )
    )
    device = _ok(
        stack.cli(
            "device",
            "create",
            "--fleet",
            "sensors",
            "--id",
            "dev-1",
            "--public-key",
            str(keys / "device.pub"),
        )
    )
    assert device["device_id"] == "dev-1" and device["status"] == "active"
    tokens = _ok(stack.cli("token", "get", "--device", "dev-1", "--key", str(keys / "device.key")))
    refreshed = _ok(stack.cli("token", "refresh", tokens["refresh_token"]))
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    access = refreshed["access_token"]
    assert _ok(stack.cli("token", "introspect", access))["active"] is True
    _ok(stack.cli("token", "revoke", access))
    assert _ok(stack.cli("token", "introspect", access)) == {"active": False}
    listed = _ok(stack.cli("device", "list", "--fleet", "sensors"))
    assert [d["device_id"] for d in listed] == ["dev-1"]
    disabled = _ok(stack.cli("device", "disable", "dev-1"))
    assert disabled["status"] == "disabled"
    revoked = _ok(stack.cli("device", "revoke", "dev-1"))
    assert revoked["status"] == "revoked"
    refused = stack.cli("token", "get", "--device", "dev-1", "--key", str(keys / "device.key"))
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
