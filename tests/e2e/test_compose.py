"""docker-compose.yml for the scaled shape, validated by Debian's docker-compose (no
Docker engine runs here, so it is checked, not started)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = (
    "POSTGRES_PASSWORD",
    "CREDBROKER_MASTER_KEY",
    "CREDBROKER_ADMIN_KEY",
    "CREDBROKER_HOOK_KEY",
)


def _config(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=clean | env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_compose_file_is_valid_and_wires_rabbitmq_to_the_hooks() -> None:
    done = _config(**dict.fromkeys(SECRETS, "x" * 48))
    assert done.returncode == 0, done.stderr
    for service in ("postgres:", "api:", "broker:", "rabbitmq:"):
        assert service in done.stdout
    conf = (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf.in").read_text()
    for hook in ("user", "vhost", "resource", "topic"):
        assert f"@api:8000/v1/hooks/rabbitmq/{hook}" in conf
    assert (ROOT / "Dockerfile").exists()


def test_the_brokers_wait_for_a_healthy_api() -> None:
    done = _config(**dict.fromkeys(SECRETS, "x" * 48))
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    probe = services["api"]["healthcheck"]["test"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(probe)
    for waiting in ("broker", "rabbitmq"):
        assert services[waiting]["depends_on"]["api"] == {"condition": "service_healthy"}


def test_the_compose_file_refuses_to_start_without_its_secrets() -> None:
    done = _config()
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stderr or "set CREDBROKER_" in done.stderr
