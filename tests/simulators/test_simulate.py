"""`credbroker simulate` as an operator runs it, judged by its JSON report."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack import BIN, Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("sim")), CREDBROKER_LEEWAY="1")
    yield started
    started.stop()


def _simulate(stack: Stack, out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done, report = _run(stack, out, *args)
    return done.returncode, report


def _run(
    stack: Stack, out: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The run, its terminal output (on a wide terminal: no wrapping) and its JSON."""
    report = out / "report.json"
    done = subprocess.run(
        [
            str(BIN / "credbroker"),
            "simulate",
            "--api",
            stack.base,
            "--mqtt",
            f"127.0.0.1:{stack.mqtt_port}",
            "--admin-key",
            stack.admin_key,
            "--leeway",
            "1",
            "--json",
            str(report),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert report.exists(), done.stdout + done.stderr
    return done, json.loads(report.read_text())


def _line(shown: str, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}  +(.+?)\s*$", shown, re.MULTILINE)
    assert found is not None, f"no {name!r} line in:\n{shown}"
    return found.group(1)


def test_the_terminal_report_is_readable_lines_and_the_json_stays_json(
    stack: Stack, tmp_path: Path
) -> None:
    done, report = _run(
        stack, tmp_path, "--scenario", "mixed", "--devices", "10", "--duration", "6",
        "--token-ttl", "3", "--revoke-share", "0.2",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shown = done.stdout
    assert "{" not in shown and "'" not in shown and "Counter(" not in shown, shown
    assert _line(shown, "devices") == "10"
    connects = report["connects"]
    refused = sum(connects["refused"].values())
    assert _line(shown, "connects").startswith(f"{connects['ok']} ok, {refused} refused")
    for reason, count in connects["refused"].items():
        assert f"{reason}: {count}" in _line(shown, "connects")
    messages = report["messages"]
    assert _line(shown, "messages") == (
        f"{messages['sent']} sent, {messages['delivered']} delivered, "
        f"{messages['lost']} lost, {messages['duplicates']} duplicates"
    )
    spread = report["refresh_spread"]
    assert _line(shown, "refreshes") == (
        f"{report['refreshes']}, from {spread['first_s']} s to {spread['last_s']} s, "
        f"busiest second {spread['busiest_second']}"
    )
    revocation = report["revocation"]
    assert revocation["revoked"] == 2
    assert _line(shown, "revocation").startswith(
        f"{revocation['revoked']} revoked, {revocation['disconnected']} cut"
    )
    tried = sum(a["tried"] for a in report["attacks"].values())
    assert _line(shown, "attacks") == f"{tried} tried, {tried} stopped"
    assert re.search(r"^reused refresh token +HTTP 400 invalid_grant +1 +1 +HTTP 400", shown, re.M)
    # --json is the machines' copy, as before: the same figures, as JSON.
    assert isinstance(connects["refused"], dict) and report["ok"] is True


def test_telemetry_with_refreshes_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    code, report = _simulate(
        stack,
        tmp_path,
        "--scenario",
        "telemetry",
        "--devices",
        "40",
        "--duration",
        "12",
        "--token-ttl",
        "4",
        "--rate",
        "2",
    )
    assert code == 0, report
    assert report["devices"] == 40
    messages = report["messages"]
    assert messages["sent"] > 40 * 12  # about 2/s each, publishing from the first CONNACK
    assert messages["delivered"] == messages["sent"] and messages["lost"] == 0
    assert messages["commands_delivered"] == messages["commands_sent"] == 8  # 4 devices x 2
    # 4 s tokens over 12 s: every device refreshed (reconnected with a new token) twice.
    assert report["refreshes"] >= 40 * 2
    assert report["connects"]["ok"] >= 40 * 3
    # Each refresh reconnects to the same persistent session at once (issue 16).
    assert report["connects"]["sessions_lost"] == 0
    assert report["honest_devices_stopped"] == {}
    assert report["latency_ms"]["token"]["p99"] is not None
    assert report["ok"] is True


def test_every_attack_is_refused_as_documented(stack: Stack, tmp_path: Path) -> None:
    code, report = _simulate(
        stack, tmp_path, "--scenario", "attacks", "--devices", "10", "--duration", "5"
    )
    assert code == 0, report
    attacks = report["attacks"]
    assert set(attacks) == {
        "expired token",
        "tampered token",
        "alg none",
        "HS256 with the public key",
        "stolen token on another client id",
        "publish outside the ACL",
        "subscribe outside the ACL",
        "$SYS subscribe",
        "replayed client assertion",
        "reused refresh token",
        "brute-force passwords",
        "key-bound token without a proof",
        "replayed proof of possession",
        "proof made for another token",
        "proof signed by another key",
    }
    for name, attack in attacks.items():
        assert attack["tried"] >= 1, name
        assert attack["stopped"] == attack["tried"], (name, attack["answers"])
    assert report["attacks_through"] == 0
    assert report["messages"]["lost"] == 0


def test_revocation_cuts_and_stops_the_revoked_share(stack: Stack, tmp_path: Path) -> None:
    code, report = _simulate(
        stack,
        tmp_path,
        "--scenario",
        "revocation",
        "--devices",
        "30",
        "--duration",
        "6",
        "--revoke-share",
        "0.2",
    )
    assert code == 0, report
    revocation = report["revocation"]
    assert revocation["revoked"] == 6
    assert revocation["stopped"] == 6
    assert revocation["disconnected"] == 6
    assert report["messages"]["lost"] == 0


def test_a_bad_scenario_is_a_usage_error(stack: Stack, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "credbroker"), "simulate", "--embedded", "--scenario", "chaos"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--scenario" in done.stderr


def test_the_help_lists_every_scenario_of_the_table() -> None:
    from simulators.scenarios import SCENARIOS

    done = subprocess.run(
        [str(BIN / "credbroker"), "simulate", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    for scenario in SCENARIOS.values():
        assert f"{scenario.name}: {scenario.about}" in " ".join(done.stdout.split())


def test_a_refresh_storm_on_mqtt_5_re_authenticates_without_a_reconnect(
    stack: Stack, tmp_path: Path
) -> None:
    """Every token expires together; each 5.0 device refreshes by AUTH in its session."""
    code, report = _simulate(
        stack, tmp_path, "--scenario", "refresh-storm", "--protocol", "5",
        "--devices", "10", "--duration", "9", "--token-ttl", "3", "--rate", "2",
    )  # fmt: skip
    assert code == 0, report
    assert report["protocols"] == {
        "5": {"devices": 10, "reconnects": 0, "reauthentications": report["reauthentications"]}
    }
    assert report["reauthentications"] >= 10 * 2  # 3 s tokens over 9 s: twice each
    assert report["reauthentications"] == report["refreshes"]
    assert report["connects"]["reconnects"] == 0
    assert report["connects"]["ok"] == 10
    messages = report["messages"]
    assert messages["lost"] == 0 and messages["delivered"] == messages["sent"] > 10 * 9


def test_a_mixed_fleet_refreshes_each_half_its_own_way(stack: Stack, tmp_path: Path) -> None:
    done, report = _run(
        stack, tmp_path, "--scenario", "telemetry", "--protocol", "mixed",
        "--devices", "10", "--duration", "8", "--token-ttl", "3", "--revoke-share", "0",
    )  # fmt: skip
    assert done.returncode == 0, report
    three, five = report["protocols"]["3.1.1"], report["protocols"]["5"]
    assert three["devices"] == five["devices"] == 5
    assert three["reconnects"] >= 5 and three["reauthentications"] == 0  # 3.1.1 reconnects
    assert five["reconnects"] == 0 and five["reauthentications"] >= 5
    assert report["messages"]["lost"] == 0
    assert _line(done.stdout, "reconnects") == str(report["connects"]["reconnects"])
    assert _line(done.stdout, "reauthentications") == str(report["reauthentications"])
    assert "MQTT 5: 5 devices, 0 reconnects" in _line(done.stdout, "by protocol")


def test_a_bad_protocol_is_a_usage_error() -> None:
    done = subprocess.run(
        [str(BIN / "credbroker"), "simulate", "--embedded", "--protocol", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--protocol" in done.stderr


def test_revoked_5_0_devices_are_cut_and_stop(stack: Stack, tmp_path: Path) -> None:
    """DISCONNECT 0x87: the Policy renews once, the token endpoint refuses, it stops."""
    code, report = _simulate(
        stack, tmp_path, "--scenario", "revocation", "--protocol", "5",
        "--devices", "20", "--duration", "6", "--revoke-share", "0.2",
    )  # fmt: skip
    assert code == 0, report
    revocation = report["revocation"]
    assert revocation["revoked"] == revocation["stopped"] == revocation["disconnected"] == 4
    assert report["connects"]["refused"] == {}  # they stopped before another CONNECT
    assert report["messages"]["lost"] == 0
