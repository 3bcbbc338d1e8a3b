"""The operator's commands and endpoints with no dead ends (issue 12, section 3), as an
operator meets them: the `credbroker` command next to a real `credbroker up`, and
admin key revocation across the two API processes of the scaled shape."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.points import connack
from tests.e2e.scaled import scaled_shape
from tests.stack import BIN, Client, Stack, free_port, start_stack, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # As for a user: the stack makes its key and saves it where the commands look.
    started = start_stack(Path(tmp_path_factory.mktemp("operator")), seed_admin=False)
    yield started
    started.stop()


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def _one_line_error(done: subprocess.CompletedProcess[str], *says: str) -> str:
    assert done.returncode != 0, done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    for text in says:
        assert text in done.stderr, done.stderr
    return done.stderr


def _table(output: str) -> list[dict[str, str]]:
    """An aligned table read back by its header's column starts."""
    header, *rows = output.rstrip("\n").splitlines()
    names = header.split("  ")
    names = [n.strip() for n in names if n.strip()]
    starts = [header.index(n) for n in names]
    bounds = [*starts[1:], None]
    for row in rows:  # every cell starts where its header does
        for start in starts[1:]:
            assert row[start - 2 : start] in ("  ", ""), (row, start)
    return [
        {n: row[s:e].strip() for n, s, e in zip(names, starts, bounds, strict=True)} for row in rows
    ]


def _fleet(stack: Stack) -> str:
    name = "f-" + uuid.uuid4().hex[:8]
    _ok(stack.cli("fleet", "create", name, "--publish", "devices/{device_id}/#"))
    return name


def _device(stack: Stack, fleet: str, tmp_path: Path) -> tuple[str, Path]:
    device_id = "d-" + uuid.uuid4().hex[:8]
    keys = tmp_path / device_id
    _ok(stack.cli("keygen", "--out", str(keys)))
    public = str(keys / "device.pub")
    _ok(stack.cli("device", "create", "--fleet", fleet, "--id", device_id, "--public-key", public))
    return device_id, keys


def test_fleet_list_show_update(stack: Stack) -> None:
    fleet = _fleet(stack)
    listed = json.loads(_ok(stack.cli("fleet", "list", "--json")))
    [mine] = [f for f in listed if f["name"] == fleet]
    assert mine["acl"] == {"publish": ["devices/{device_id}/#"], "subscribe": []}
    rows = {r["NAME"]: r for r in _table(_ok(stack.cli("fleet", "list")))}
    assert rows[fleet]["TOKEN TTL"] == "900" and rows[fleet]["PUBLISH"] == "devices/{device_id}/#"

    updated = stack.cli(
        "fleet", "update", fleet, "--subscribe", "cmd/{device_id}", "--token-ttl", "60"
    )
    assert json.loads(_ok(updated))["token_ttl"] == 60
    shown = json.loads(_ok(stack.cli("fleet", "show", fleet, "--json")))
    assert shown["acl"] == {"publish": ["devices/{device_id}/#"], "subscribe": ["cmd/{device_id}"]}
    fields = dict(
        line.split(None, 1) for line in _ok(stack.cli("fleet", "show", fleet)).splitlines()
    )
    assert fields["NAME"] == fleet and fields["SUBSCRIBE"] == "cmd/{device_id}"

    _one_line_error(stack.cli("fleet", "show", "no-such-fleet"), "404", "no-such-fleet")
    _one_line_error(stack.cli("fleet", "update", fleet), "nothing to change")
    _one_line_error(stack.cli("fleet", "update", fleet, "--token-ttl", "0"), "422", "token_ttl")


def test_fleet_delete_refused_with_devices_and_cascade_cuts_them(
    stack: Stack, tmp_path: Path
) -> None:
    fleet = _fleet(stack)
    device_id, keys = _device(stack, fleet, tmp_path)
    tokens = json.loads(
        _ok(stack.cli("token", "get", "--device", device_id, "--key", str(keys / "device.key")))
    )
    session = Client(stack, device_id, tokens["access_token"])
    assert session.connected.wait(10), session.connect_rc
    session.paho.reconnect_delay_set(60, 60)  # a cut session stays cut: the test looks

    _one_line_error(stack.cli("fleet", "delete", fleet), "409", "cascade")
    assert not session.disconnected.is_set()
    assert _ok(stack.cli("fleet", "delete", fleet, "--cascade")).strip() == f"deleted fleet {fleet}"
    assert session.disconnected.wait(2), "the live session of a deleted device was not cut"
    session.paho.loop_stop()
    introspected = stack.cli("token", "introspect", tokens["access_token"])
    assert json.loads(_ok(introspected)) == {"active": False}
    assert connack(stack.mqtt_port, device_id, tokens["access_token"]) in (4, 5)
    _one_line_error(stack.cli("device", "show", device_id), "404")
    assert fleet not in [f["name"] for f in json.loads(_ok(stack.cli("fleet", "list", "--json")))]
    events = json.loads(_ok(stack.cli("audit", "--action", "fleet.delete", "--json")))
    assert [e["detail"] for e in events if e["detail"]["fleet"] == fleet] == [
        {"fleet": fleet, "cascade": True, "devices": 1}
    ]


def test_device_keys_and_signing_key_rotation(stack: Stack, tmp_path: Path) -> None:
    fleet = _fleet(stack)
    device_id, first = _device(stack, fleet, tmp_path)
    second = tmp_path / "second"
    _ok(stack.cli("keygen", "--out", str(second)))
    added = json.loads(
        _ok(
            stack.cli(
                "device", "keys", "add", device_id, "--public-key", str(second / "device.pub")
            )
        )
    )
    shown = json.loads(_ok(stack.cli("device", "show", device_id, "--json")))
    assert added["kid"] in [k["kid"] for k in shown["credential_keys"]]
    [row] = _table(_ok(stack.cli("device", "list", "--fleet", fleet)))
    assert row["DEVICE"] == device_id and row["KEYS"] == "2" and row["STATUS"] == "active"

    old_kid = next(k["kid"] for k in shown["credential_keys"] if k["kid"] != added["kid"])
    removed = stack.cli("device", "keys", "remove", device_id, old_kid)
    assert old_kid in _ok(removed)
    refused = stack.cli("token", "get", "--device", device_id, "--key", str(first / "device.key"))
    _one_line_error(refused, "401", "invalid_client")
    token = json.loads(
        _ok(stack.cli("token", "get", "--device", device_id, "--key", str(second / "device.key")))
    )
    _one_line_error(stack.cli("device", "keys", "remove", device_id, old_kid), "404")

    rotated = json.loads(_ok(stack.cli("device", "rotate-signing-key", device_id)))
    assert rotated == {"kid": f"{device_id}#2", "version": 2}
    assert json.loads(_ok(stack.cli("token", "introspect", token["access_token"])))["active"]
    rotated = json.loads(_ok(stack.cli("device", "rotate-signing-key", device_id, "--immediate")))
    assert rotated["version"] == 3
    wait_for(
        lambda: (
            not json.loads(_ok(stack.cli("token", "introspect", token["access_token"])))["active"]
        ),
        timeout=5,
        what="a token of the retired signing key to be inactive",
    )


def test_admin_key_create_list_revoke(stack: Stack) -> None:
    made = stack.cli(
        "admin-key",
        "create",
        "--scope",
        "devices:read",
        "--name",
        "ci reader",
        "--expires-in",
        "3600",
    )
    created = json.loads(_ok(made))
    listing = _ok(stack.cli("admin-key", "list"))
    listed_json = _ok(stack.cli("admin-key", "list", "--json"))
    assert created["key"] not in listing + listed_json
    rows = {r["ID"]: r for r in _table(listing)}
    assert rows[created["id"]]["NAME"] == "ci reader" and rows[created["id"]]["LAST USED"] == "-"
    assert rows[created["id"]]["EXPIRES"].endswith("Z")
    [entry] = [k for k in json.loads(listed_json) if k["id"] == created["id"]]
    assert entry["expires_at"] == created["expires_at"] and "key" not in entry

    reader = {"Authorization": f"Bearer {created['key']}"}
    assert stack.http.get(stack.base + "/v1/devices", headers=reader).status_code == 200
    assert created["id"] in _ok(stack.cli("admin-key", "revoke", created["id"]))
    assert stack.http.get(stack.base + "/v1/devices", headers=reader).status_code == 401
    assert created["id"] not in _ok(stack.cli("admin-key", "list"))

    [bootstrap] = [k for k in json.loads(listed_json) if k["name"] == "bootstrap"]
    _one_line_error(stack.cli("admin-key", "revoke", bootstrap["id"]), "409", "every scope")
    _one_line_error(stack.cli("admin-key", "create", "--scope", "root"), "422", "scopes")
    as_reader = stack.cli("admin-key", "list", "--admin-key", created["key"])
    _one_line_error(as_reader, "401")


def test_audit_lists_filters_and_follows(stack: Stack, tmp_path: Path) -> None:
    fleet = _fleet(stack)
    device_id, _ = _device(stack, fleet, tmp_path)
    events = json.loads(_ok(stack.cli("audit", "--device", device_id, "--json")))
    assert {e["device_id"] for e in events} == {device_id}
    assert "device.create" in [e["action"] for e in events]
    rows = _table(_ok(stack.cli("audit", "--device", device_id, "--action", "device.create")))
    assert [(r["ACTION"], r["DEVICE"]) for r in rows] == [("device.create", device_id)]

    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    env.update(CREDBROKER_API=stack.base, CREDBROKER_DATA_DIR=str(stack.data_dir))
    follower = subprocess.Popen(
        [str(BIN / "credbroker"), "audit", "--follow", "--device", device_id, "--json",
         "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout or []])
    reader.start()

    def until(action: str) -> list[str]:
        seen = [json.loads(lines.get(timeout=30))["action"]]
        while seen[-1] != action:
            seen.append(json.loads(lines.get(timeout=30))["action"])
        return seen

    try:
        assert until("device.create") == [e["action"] for e in events]  # what was there
        _ok(stack.cli("device", "disable", device_id))
        assert until("device.disable") == ["device.disable"]  # what came, once
        follower.send_signal(signal.SIGINT)
        assert follower.wait(20) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        reader.join(10)
    assert follower.stderr is not None and follower.stderr.read() == ""
    follower.stderr.close()
    assert follower.stdout is not None
    follower.stdout.close()


def test_an_unreachable_api_is_one_line(stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (["fleet", "list"], ["admin-key", "list"], ["audit"], ["device", "list"]):
        done = stack.cli(*args, "--api", dead)
        assert done.returncode == 2
        _one_line_error(done, "cannot reach")


def _created_key(base: str, admin: dict[str, str], *scopes: str) -> dict[str, Any]:
    made = httpx.post(base + "/v1/admin-keys", json={"scopes": list(scopes)}, headers=admin)
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_a_revoked_key_is_refused_by_every_api_process(tmp_path: Path) -> None:
    with scaled_shape(tmp_path) as shape, httpx.Client() as http:
        first, second = shape.apis
        admin = _created_key(first, shape.admin, "devices:read")
        hook = _created_key(first, shape.admin, "broker:hook")
        as_admin = {"Authorization": f"Bearer {admin['key']}"}
        as_hook = {"Authorization": f"Bearer {hook['key']}"}
        body = {"clientid": "c", "username": "c", "topic": "t", "action": "publish"}

        def hook_answer() -> int:
            return http.post(
                second + "/v1/hooks/emqx/authz", json=body, headers=as_hook
            ).status_code

        assert http.get(second + "/v1/devices", headers=as_admin).status_code == 200
        assert hook_answer() == 200  # the second process now takes the hook key on trust
        for key in (admin, hook):
            gone = http.delete(f"{first}/v1/admin-keys/{key['id']}", headers=shape.admin)
            assert gone.status_code == 204, gone.text
        # The admin API reads keys fresh: refused on the very next request.
        assert http.get(second + "/v1/devices", headers=as_admin).status_code == 401
        # The hook paths' key cache hears of it with the revocation log, within a second.
        wait_for(lambda: hook_answer() == 401, timeout=3, what="the second process's hooks")
